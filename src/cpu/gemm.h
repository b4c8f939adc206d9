/* gemm.h -- the one matrix product of the CPU backend: every product in normlab (linear layers,
 * attention's per-head products, the LM head) goes through nl_gemm. Replaceable as a unit: another
 * implementation of this interface (a different BLAS, oneDNN) drops in without touching a caller. */
#ifndef NL_CPU_GEMM_H
#define NL_CPU_GEMM_H

/* C (M x N) = alpha * op(A) @ op(B) + beta * C, row-major; op(X) = X^T when tX != 0; lda/ldb/ldc = row strides. */
void nl_gemm(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc);
/* One line naming the library and kernel ISA that run nl_gemm (e.g. "OpenBLAS 0.3.21 (Zen)"). */
const char *nl_gemm_info(void);

#endif
