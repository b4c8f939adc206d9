/* ops_attn.c -- causal multi-head self-attention with materialised (T,T) probabilities, with
 * grouped-query attention (NH query heads share KVH key/value heads), and rotary positions (RoPE).
 * Per (batch, head h): S = Q_h K_g^T / sqrt(hs), P = causal softmax(S), Y_h = P V_g with g = h / (NH/KVH).
 * Backward: dP = dY V^T, dV_g = sum_h P^T dY_h, dS = P * (dP - rowsum(P * dP)) / sqrt(hs),
 * dQ_h = dS K_g, dK_g = sum_h dS^T Q_h.
 * Each phase runs (batch, head) or (batch, kv head) tasks in an OpenMP loop whose per-head products are
 * nl_gemm calls, which run on the calling thread inside a parallel region, so the heads, not the small
 * per-head GEMMs, are what is split across cores. A task owns its kv head's gradient rows, so the sums
 * over a group need no atomics and keep a fixed order. */
#include "fastmath.h"
#include "gemm.h"
#include "kernels.h"
#include "lanes.h"
#include "lowp.h"

#include <math.h>
#include <string.h>

/* dt (docs/numerics.md §3): fp32, or the dtype P is rounded to before P V (q, k, v arrive rounded);
 * causal 0: every position attends to all T (--arch dit), the rows of P are full */
static void attention_forward(nl_dtype dt, int causal, float *out, float *att, const float *qkv, int B, int T, int C,
                              int NH, int KVH) {
    const int hs = C / NH, kvC = KVH * hs, ld = C + 2 * kvC, grp = NH / KVH;
    const float sc = 1.0f / sqrtf((float)hs);
    const size_t TT = (size_t)T * T;
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        const int b = bh / NH, h = bh % NH;
        const float *row = qkv + (size_t)b * T * ld;
        nl_gemm(0, 1, T, T, hs, sc, row + h * hs, ld, row + C + (h / grp) * hs, ld, 0.0f, att + bh * TT, T);
    }
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < (size_t)B * NH * T; r++) {
        const int i = causal ? (int)(r % T) : T - 1; /* the last key a query sees */
        float *p = att + r * T;
        const float mx = nl_lanes_max(p, i + 1);
        float acc[NL_LANES] = { 0 };
        for (int j0 = 0; j0 <= i; j0 += NL_LANES) {
            const int k1 = i + 1 - j0 < NL_LANES ? i + 1 - j0 : NL_LANES;
#pragma omp simd
            for (int k = 0; k < k1; k++) {
                p[j0 + k] = nl_expf(p[j0 + k] - mx);
                acc[k] += p[j0 + k];
            }
        }
        const float inv = 1.0f / nl_lanes_fold(acc);
#pragma omp simd
        for (int j = 0; j <= i; j++) p[j] *= inv;
        for (int j = i + 1; j < T; j++) p[j] = 0.0f;
        if (dt != NL_DTYPE_FP32) nl_lowp_round(p, p, (size_t)i + 1, dt, NULL);
    }
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        const int b = bh / NH, h = bh % NH;
        const float *v = qkv + (size_t)b * T * ld + C + kvC + (h / grp) * hs;
        nl_gemm(0, 0, T, hs, T, 1.0f, att + bh * TT, T, v, ld, 0.0f, out + (size_t)b * T * C + h * hs, C);
    }
}

/* dt: fp32, or the dtype dS is rounded to before dq = dS k and dk = dS^T q (dout, qkv and P arrive
 * rounded) */
static void attention_backward(nl_dtype dt, int causal, float *dqkv, float *datt, const float *dout, const float *qkv,
                               const float *att, int B, int T, int C, int NH, int KVH) {
    const int hs = C / NH, kvC = KVH * hs, ld = C + 2 * kvC, grp = NH / KVH;
    const float sc = 1.0f / sqrtf((float)hs);
    const size_t TT = (size_t)T * T;
#pragma omp parallel for schedule(static)
    for (int bg = 0; bg < B * KVH; bg++) { /* dP of the group's heads; dV_g */
        const int b = bg / KVH, g = bg % KVH;
        const size_t r0 = (size_t)b * T * ld, vo = r0 + C + kvC + g * hs;
        for (int h = g * grp; h < (g + 1) * grp; h++) {
            const size_t bh = (size_t)b * NH + h;
            const float *dy = dout + (size_t)b * T * C + h * hs;
            nl_gemm(0, 1, T, T, hs, 1.0f, dy, C, qkv + vo, ld, 0.0f, datt + bh * TT, T);
            nl_gemm(1, 0, T, hs, T, 1.0f, att + bh * TT, T, dy, C, h == g * grp ? 0.0f : 1.0f, dqkv + vo, ld);
        }
    }
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < (size_t)B * NH * T; r++) {
        const int i = causal ? (int)(r % T) : T - 1;
        const float *p = att + r * T;
        float *d = datt + r * T;
        const float dot = nl_lanes_dot(p, d, i + 1);
#pragma omp simd
        for (int j = 0; j <= i; j++) d[j] = sc * p[j] * (d[j] - dot);
        for (int j = i + 1; j < T; j++) d[j] = 0.0f;
        if (dt != NL_DTYPE_FP32) nl_lowp_round(d, d, (size_t)i + 1, dt, NULL);
    }
#pragma omp parallel for schedule(static)
    for (int bg = 0; bg < B * KVH; bg++) { /* dQ of the group's heads; dK_g */
        const int b = bg / KVH, g = bg % KVH;
        const size_t r0 = (size_t)b * T * ld, ko = r0 + C + g * hs;
        for (int h = g * grp; h < (g + 1) * grp; h++) {
            const size_t bh = (size_t)b * NH + h, qo = r0 + h * hs;
            nl_gemm(0, 0, T, hs, T, 1.0f, datt + bh * TT, T, qkv + ko, ld, 0.0f, dqkv + qo, ld);
            nl_gemm(1, 0, T, hs, T, 1.0f, datt + bh * TT, T, qkv + qo, ld, h == g * grp ? 0.0f : 1.0f, dqkv + ko, ld);
        }
    }
}

void nl_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH, int KVH) {
    attention_forward(NL_DTYPE_FP32, 1, out, att, qkv, B, T, C, NH, KVH);
}

void nl_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv, const float *att, int B,
                           int T, int C, int NH, int KVH) {
    attention_backward(NL_DTYPE_FP32, 1, dqkv, datt, dout, qkv, att, B, T, C, NH, KVH);
}

void nl_attention_bidir_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH, int KVH) {
    attention_forward(NL_DTYPE_FP32, 0, out, att, qkv, B, T, C, NH, KVH);
}

void nl_attention_bidir_backward(float *dqkv, float *datt, const float *dout, const float *qkv, const float *att, int B,
                                 int T, int C, int NH, int KVH) {
    attention_backward(NL_DTYPE_FP32, 0, dqkv, datt, dout, qkv, att, B, T, C, NH, KVH);
}

void nl_lowp_attention_forward(nl_dtype dt, float *out, float *att, const float *qkv, int B, int T, int C, int NH,
                               int KVH) {
    attention_forward(dt, 1, out, att, qkv, B, T, C, NH, KVH);
}

void nl_lowp_attention_backward(nl_dtype dt, float *dqkv, float *datt, const float *dout, const float *qkv,
                                const float *att, int B, int T, int C, int NH, int KVH) {
    attention_backward(dt, 1, dqkv, datt, dout, qkv, att, B, T, C, NH, KVH);
}

void nl_rope_table(float *cos_t, float *sin_t, int T, int hs, double theta) {
    for (int t = 0; t < T; t++)
        for (int i = 0; i < hs / 2; i++) {
            const double a = t * pow(theta, -2.0 * i / hs);
            cos_t[(size_t)t * (hs / 2) + i] = (float)cos(a);
            sin_t[(size_t)t * (hs / 2) + i] = (float)sin(a);
        }
}

/* rotates pairs by +angle (dir 1) or -angle (dir -1); see nl_rope_forward */
static void rope_rotate(float *out, const float *inp, const float *cos_t, const float *sin_t, int B, int T, int ld,
                        int nrot, int hs, float dir) {
    const int half = hs / 2;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < (size_t)B * T; n++) {
        const float *c = cos_t + (n % T) * half, *s = sin_t + (n % T) * half, *x = inp + n * ld;
        float *y = out + n * ld;
        for (int h0 = 0; h0 < nrot; h0 += hs)
            for (int i = 0; i < half; i++) {
                const float x0 = x[h0 + 2 * i], x1 = x[h0 + 2 * i + 1], si = dir * s[i];
                y[h0 + 2 * i] = x0 * c[i] - x1 * si;
                y[h0 + 2 * i + 1] = x0 * si + x1 * c[i];
            }
        if (y != x) memcpy(y + nrot, x + nrot, (size_t)(ld - nrot) * sizeof(float));
    }
}

void nl_rope_forward(float *out, const float *inp, const float *cos_t, const float *sin_t, int B, int T, int ld,
                     int nrot, int hs) {
    rope_rotate(out, inp, cos_t, sin_t, B, T, ld, nrot, hs, 1.0f);
}

void nl_rope_backward(float *d, const float *cos_t, const float *sin_t, int B, int T, int ld, int nrot, int hs) {
    rope_rotate(d, d, cos_t, sin_t, B, T, ld, nrot, hs, -1.0f);
}
