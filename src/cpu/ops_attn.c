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

/* Causal skipping: the products run on row blocks of g_cblk queries (64, nl_attention_causal_block; the last
 * block takes the remainder, 64 to 127 rows). Block [i0, i1) sees keys [0, i1), so the scores, P V, dP and dQ
 * compute no column at or past i1, and the dV and dK rows of block [i0, i1) sum over queries [i0, T) only: of
 * the masked half of the T x T products only the blocks on the diagonal remain (5/8 of the full products at
 * T = 256). Every term skipped is an exact zero (P and dS are 0 above the diagonal), so the results keep
 * their bits where the library computes each remaining element as it would in the full product. oneDNN's
 * sgemm does, with two exceptions that the code avoids: it applies a product's alpha in a way that depends
 * on the shape (so the scores are scaled by 1/sqrt(hs) in the softmax pass, not as alpha: the same bits
 * when the scale is a power of two, hs = 16, 64, 256), and it splits a sum of more than 384 terms into
 * equal parts that depend on the length (so sums over keys or queries run in chunks of KCH terms at fixed
 * positions, each its own product accumulated into the result: summed the same way with or without the
 * skipped terms). ops_attention compares blocks of 64 and 128 rows with the full products (one block of T
 * rows) bit for bit, on oneDNN and on OpenBLAS (whose kernels for blocks of 32 rows sum differently from
 * its full products). Without the mask (causal 0) one block covers all T rows and every key. */
enum { CBLK = 64, KCH = 256 };
static int g_cblk = CBLK;

void nl_attention_causal_block(int rows) { g_cblk = rows > 0 ? rows : CBLK; }

/* the end of the row block that starts at i0 (with the mask, also the end of the keys it sees) */
static int block_end(int i0, int T, int causal) { return causal && g_cblk <= (T - i0) / 2 ? i0 + g_cblk : T; }

/* C (M x N) = sum over k in [k0, k1) of op(A)[:, k] B[k, :] + beta C, op(A) = A (M x k1, row stride lda) or,
 * with tA, A^T (A stored k1 x M); B (k1 x N, row stride ldb); the sum in chunks [c KCH, (c+1) KCH) cut at
 * fixed positions (the first and last clipped to [k0, k1)), one product each, accumulated into C */
static void gemm_chunked(int tA, int M, int N, int k0, int k1, const float *A, int lda, const float *B, int ldb,
                         float beta, float *C, int ldc) {
    for (int c0 = k0, c1; c0 < k1; c0 = c1, beta = 1.0f) {
        c1 = (c0 / KCH + 1) * KCH < k1 ? (c0 / KCH + 1) * KCH : k1;
        nl_gemm(tA, 0, M, N, c1 - c0, 1.0f, tA ? A + (size_t)c0 * lda : A + c0, lda, B + (size_t)c0 * ldb, ldb, beta, C,
                ldc);
    }
}

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
        for (int i0 = 0, i1; i0 < T; i0 = i1) {
            i1 = block_end(i0, T, causal);
            nl_gemm(0, 1, i1 - i0, causal ? i1 : T, hs, 1.0f, row + (size_t)i0 * ld + h * hs, ld,
                    row + C + (h / grp) * hs, ld, 0.0f, att + bh * TT + (size_t)i0 * T, T);
        }
    }
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < (size_t)B * NH * T; r++) {
        const int i = causal ? (int)(r % T) : T - 1; /* the last key a query sees */
        float *p = att + r * T;
#pragma omp simd
        for (int j = 0; j <= i; j++) p[j] *= sc; /* the scores' scale here, not as the product's alpha (below) */
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
        for (int j = i + 1; j < T; j++) p[j] = 0.0f; /* the saved P is the full matrix */
        if (dt != NL_DTYPE_FP32) nl_lowp_round(p, p, (size_t)i + 1, dt, NULL);
    }
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        const int b = bh / NH, h = bh % NH;
        const float *v = qkv + (size_t)b * T * ld + C + kvC + (h / grp) * hs;
        for (int i0 = 0, i1; i0 < T; i0 = i1) {
            i1 = block_end(i0, T, causal);
            gemm_chunked(0, i1 - i0, hs, 0, causal ? i1 : T, att + bh * TT + (size_t)i0 * T, T, v, ld, 0.0f,
                         out + ((size_t)b * T + i0) * C + h * hs, C);
        }
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
            const float *dy = dout + (size_t)b * T * C + h * hs, *p = att + bh * TT;
            for (int i0 = 0, i1; i0 < T; i0 = i1) {
                i1 = block_end(i0, T, causal);
                const int q0 = causal ? i0 : 0; /* the first query that sees keys [i0, i1) */
                nl_gemm(0, 1, i1 - i0, causal ? i1 : T, hs, 1.0f, dy + (size_t)i0 * C, C, qkv + vo, ld, 0.0f,
                        datt + bh * TT + (size_t)i0 * T, T);
                gemm_chunked(1, i1 - i0, hs, q0, T, p + i0, T, dy, C, h == g * grp ? 0.0f : 1.0f,
                             dqkv + vo + (size_t)i0 * ld, ld);
            }
        }
    }
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < (size_t)B * NH * T; r++) {
        const int i = causal ? (int)(r % T) : T - 1, e = block_end(i - i % g_cblk, T, causal);
        const float *p = att + r * T;
        float *d = datt + r * T;
        const float dot = nl_lanes_dot(p, d, i + 1);
#pragma omp simd
        for (int j = 0; j <= i; j++) d[j] = sc * p[j] * (d[j] - dot);
        for (int j = i + 1; j < e; j++) d[j] = 0.0f; /* what the products below read of the masked part */
        if (dt != NL_DTYPE_FP32) nl_lowp_round(d, d, (size_t)i + 1, dt, NULL);
    }
#pragma omp parallel for schedule(static)
    for (int bg = 0; bg < B * KVH; bg++) { /* dQ of the group's heads; dK_g */
        const int b = bg / KVH, g = bg % KVH;
        const size_t r0 = (size_t)b * T * ld, ko = r0 + C + g * hs;
        for (int h = g * grp; h < (g + 1) * grp; h++) {
            const size_t bh = (size_t)b * NH + h, qo = r0 + h * hs;
            const float *ds = datt + bh * TT;
            for (int i0 = 0, i1; i0 < T; i0 = i1) {
                i1 = block_end(i0, T, causal);
                const int q0 = causal ? i0 : 0;
                gemm_chunked(0, i1 - i0, hs, 0, causal ? i1 : T, ds + (size_t)i0 * T, T, qkv + ko, ld, 0.0f,
                             dqkv + qo + (size_t)i0 * ld, ld);
                gemm_chunked(1, i1 - i0, hs, q0, T, ds + i0, T, qkv + qo, ld, h == g * grp ? 0.0f : 1.0f,
                             dqkv + ko + (size_t)i0 * ld, ld);
            }
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
