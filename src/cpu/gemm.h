/* gemm.h -- the entry points to matrix products (src/cpu/gemm.c): single precision, and bf16 inputs with
 * fp32 accumulation. */
#ifndef NL_CPU_GEMM_H
#define NL_CPU_GEMM_H

#include <stdint.h>

/* C (M x N) = alpha * op(A) @ op(B) + beta * C, row-major; op(X) = X^T when tX != 0; lda/ldb/ldc = row strides.
 * Callable from inside an OpenMP parallel region (it then runs on the calling thread). */
void nl_gemm(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc);
/* One line naming the library and kernel ISA that run nl_gemm (e.g. "oneDNN 2.6.3 (avx512_core)"). */
const char *nl_gemm_info(void);

/* C (M x N) = alpha * op(A) @ op(B) + beta * C as nl_gemm, with A and B bf16 (the bits, nl_lowp_pack) and C
 * fp32: every product of two bf16 numbers is exact in fp32 and the sums are fp32, so the result is nl_gemm's
 * on the widened inputs up to the order of the additions (docs/numerics.md §3). oneDNN's bf16 matmul;
 * one calling thread at a time (it keeps its primitives in a table), not from inside a parallel region. */
void nl_gemm_bf16(int tA, int tB, int M, int N, int K, float alpha, const uint16_t *A, int lda, const uint16_t *B,
                  int ldb, float beta, float *C, int ldc);
/* Whether the bf16 table's products run on nl_gemm_bf16 (1) or on nl_gemm with operands rounded to bf16
 * (0). NL_GEMM_BF16=onednn|f32 chooses; the default is onednn where oneDNN finds avx512_bf16 or AMX. A bad
 * value, or onednn where it cannot run, exits with status 2 and a one-line message. */
int nl_gemm_bf16_on(void);
/* Whether nl_gemm_bf16 can run here (oneDNN 2.6: AVX-512 and up; without avx512_bf16 oneDNN emulates it). */
int nl_gemm_bf16_can(void);
/* Sets that choice (on only where nl_gemm_bf16_can()) for the rest of the process and returns the previous
 * one (tests and benchmarks). */
int nl_gemm_bf16_use(int on);
/* One line naming what runs the bf16 table's products: nl_gemm_bf16's library and ISA, or nl_gemm_info's. */
const char *nl_gemm_bf16_info(void);

#endif
