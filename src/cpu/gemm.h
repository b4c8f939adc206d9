/* gemm.h -- the one entry point to single-precision matrix products (src/cpu/gemm.c). */
#ifndef NL_CPU_GEMM_H
#define NL_CPU_GEMM_H

/* C (M x N) = alpha * op(A) @ op(B) + beta * C, row-major; op(X) = X^T when tX != 0; lda/ldb/ldc = row strides.
 * Callable from inside an OpenMP parallel region (it then runs on the calling thread). */
void nl_gemm(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc);
/* One line naming the library and kernel ISA that run nl_gemm (e.g. "oneDNN 2.6.3 (avx512_core)"). */
const char *nl_gemm_info(void);

#endif
