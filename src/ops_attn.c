/* ops_attn.c -- causal multi-head self-attention with materialised (T,T) probabilities.
 * Per (batch, head): S = Q K^T / sqrt(hs), P = causal softmax(S), Y = P V.
 * Backward: dP = dY V^T, dV = P^T dY, dS = P * (dP - rowsum(P * dP)) / sqrt(hs), dQ = dS K, dK = dS^T Q.
 * Each phase runs all (batch, head) pairs in an OpenMP loop whose per-head products are BLAS calls;
 * OpenBLAS's OpenMP build runs a call made inside a parallel region on the calling thread, so the
 * heads, not the small per-head GEMMs, are what is split across cores. */
#include "fastmath.h"
#include "ops.h"

#include <cblas.h>
#include <math.h>

void nl_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH) {
    const int hs = C / NH, C3 = 3 * C;
    const float sc = 1.0f / sqrtf((float)hs);
    const size_t TT = (size_t)T * T;
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        const int b = bh / NH, h = bh % NH;
        const float *q = qkv + (size_t)b * T * C3 + h * hs;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, sc, q, C3, q + C, C3, 0.0f,
                    att + bh * TT, T);
    }
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < (size_t)B * NH * T; r++) {
        const int i = (int)(r % T);
        float *p = att + r * T;
        float mx = -INFINITY, sum = 0.0f;
        for (int j = 0; j <= i; j++) mx = p[j] > mx ? p[j] : mx;
        for (int j = 0; j <= i; j++) {
            p[j] = nl_expf(p[j] - mx);
            sum += p[j];
        }
        const float inv = 1.0f / sum;
        for (int j = 0; j <= i; j++) p[j] *= inv;
        for (int j = i + 1; j < T; j++) p[j] = 0.0f;
    }
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        const int b = bh / NH, h = bh % NH;
        const float *v = qkv + (size_t)b * T * C3 + 2 * C + h * hs;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, att + bh * TT, T, v, C3,
                    0.0f, out + (size_t)b * T * C + h * hs, C);
    }
}

void nl_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                           const float *att, int B, int T, int C, int NH) {
    const int hs = C / NH, C3 = 3 * C;
    const float sc = 1.0f / sqrtf((float)hs);
    const size_t TT = (size_t)T * T;
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        const int b = bh / NH, h = bh % NH;
        const size_t qo = (size_t)b * T * C3 + h * hs;
        const float *dy = dout + (size_t)b * T * C + h * hs;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, dy, C, qkv + qo + 2 * C,
                    C3, 0.0f, datt + bh * TT, T);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, att + bh * TT, T, dy, C,
                    0.0f, dqkv + qo + 2 * C, C3);
    }
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < (size_t)B * NH * T; r++) {
        const int i = (int)(r % T);
        const float *p = att + r * T;
        float *d = datt + r * T;
        float dot = 0.0f;
        for (int j = 0; j <= i; j++) dot += p[j] * d[j];
        for (int j = 0; j <= i; j++) d[j] = sc * p[j] * (d[j] - dot);
        for (int j = i + 1; j < T; j++) d[j] = 0.0f;
    }
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        const int b = bh / NH, h = bh % NH;
        const size_t qo = (size_t)b * T * C3 + h * hs;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, datt + bh * TT, T,
                    qkv + qo + C, C3, 0.0f, dqkv + qo, C3);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, datt + bh * TT, T,
                    qkv + qo, C3, 0.0f, dqkv + qo + C, C3);
    }
}
