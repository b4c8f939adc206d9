/* ops_lowp.c -- the matrix products of the dtype emulation (lowp.h): nl_lowp_gemm with scratch the
 * backend owns, or for bf16 where nl_gemm_bf16_on() says so, oneDNN's bf16 kernels on operands rounded to
 * bf16 storage (the same products up to the order of the fp32 additions); and the linear layers built on
 * them. */
#include "common.h"
#include "gemm.h"
#include "kernels.h"
#include "lowp.h"

#include <stdlib.h>

/* M*K + K*N floats for nl_lowp_gemm; grown on demand and kept for the process (the model allocates
 * nothing per step after its first one). */
static float *scratch;
static size_t scratch_n;

static float *scratch_for(int M, int N, int K) {
    const size_t n = (size_t)M * (size_t)K + (size_t)K * (size_t)N;
    if (n > scratch_n) {
        free(scratch);
        scratch = nl_xmalloc(n * sizeof *scratch);
        scratch_n = n;
    }
    return scratch;
}

void nl_lowp_gemm_op(nl_dtype dt, int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc) {
    if (dt != NL_DTYPE_BF16 || !nl_gemm_bf16_on()) {
        nl_lowp_gemm(dt, tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, scratch_for(M, N, K), NULL);
        return;
    }
    /* the bf16 kernels: both operands rounded to bf16 storage (round to nearest even, the rounding of
     * nl_lowp_gemm; an activation is representable already, so its conversion only drops 16 zero bits),
     * then bf16 x bf16 -> f32 on oneDNN. The scratch of M*K + K*N floats holds the two 16-bit copies. */
    uint16_t *sa = (uint16_t *)scratch_for(M, N, K), *sb = sa + (size_t)M * (size_t)K;
    const int arows = tA ? K : M, acols = tA ? M : K, brows = tB ? N : K, bcols = tB ? K : N;
    nl_lowp_pack_matrix(sa, A, arows, acols, lda, dt);
    nl_lowp_pack_matrix(sb, B, brows, bcols, ldb, dt);
    nl_gemm_bf16(tA, tB, M, N, K, alpha, sa, acols > 0 ? acols : 1, sb, bcols > 0 ? bcols : 1, beta, C, ldc);
}

void nl_lowp_linear_forward(nl_dtype dt, float *out, const float *inp, const float *w, const float *b, size_t N, int IC,
                            int OC) {
    nl_lowp_gemm_op(dt, 0, 1, (int)N, OC, IC, 1.0f, inp, IC, w, IC, 0.0f, out, OC);
    if (!b) return;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++)
#pragma omp simd
        for (int o = 0; o < OC; o++) out[n * OC + o] += b[o];
}

void nl_lowp_linear_backward(nl_dtype dt, float *dinp, float *dw, float *db, const float *dout, const float *inp,
                             const float *w, size_t N, int IC, int OC) {
    nl_lowp_gemm_op(dt, 0, 0, (int)N, IC, OC, 1.0f, dout, OC, w, IC, 0.0f, dinp, IC);
    nl_lowp_gemm_op(dt, 1, 0, OC, IC, (int)N, 1.0f, dout, OC, inp, IC, 1.0f, dw, IC);
    if (db) nl_colsum(db, dout, N, OC, OC);
}
