/* ops_linear.c -- fully connected layers through nl_gemm. */
#include "gemm.h"
#include "kernels.h"

void nl_linear_forward(float *out, const float *inp, const float *w, const float *b, size_t N, int IC, int OC) {
    nl_gemm(0, 1, (int)N, OC, IC, 1.0f, inp, IC, w, IC, 0.0f, out, OC);
    if (!b) return;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++)
#pragma omp simd
        for (int o = 0; o < OC; o++) out[n * OC + o] += b[o];
}

void nl_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                        size_t N, int IC, int OC) {
    nl_gemm(0, 0, (int)N, IC, OC, 1.0f, dout, OC, w, IC, 0.0f, dinp, IC);
    nl_gemm(1, 0, OC, IC, (int)N, 1.0f, dout, OC, inp, IC, 1.0f, dw, IC);
    if (db) nl_colsum(db, dout, N, OC, OC);
}
