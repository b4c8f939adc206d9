/* lowp.h -- bf16 and fp16 on the CPU: conversions from and to fp32, rounding fp32 arrays to a dtype's
 * representable values (what the CPU emulation of --dtype stores between ops), counters of overflowed and
 * flushed values, and a matrix product of rounded inputs with fp32 accumulation. docs/numerics.md is the
 * contract these implement.
 *
 * fp32 -> bf16/fp16 rounds to nearest, ties to even. A finite value that rounds past the largest finite
 * value becomes +-inf (fp16: |x| >= 65520; bf16: |x| >= 0x1.ffp127). Subnormal results are kept in both
 * formats (fp16 below 2^-14, bf16 below 2^-126), as a GPU's conversion instructions keep them; a nonzero
 * value becomes +-0 only when it rounds to zero (fp16: |x| <= 2^-25; bf16: |x| <= 2^-134). NaN stays NaN:
 * sign kept, quiet bit set, the payload's top bits kept. Widening (bf16/fp16 -> fp32) is exact; a NaN comes
 * back quiet with its sign and payload. The conversions work on the bits with integer arithmetic (plus one
 * exact fp32 product of normal numbers for fp16 subnormals; the AVX-512 fp16 path uses VCVTPS2PH/VCVTPH2PS,
 * which agree bit for bit), so the FPU's FTZ/DAZ modes do not change them. The array functions use AVX-512
 * intrinsics when the build targets it (-march=native on an AVX-512 CPU) and otherwise loops over the
 * branch-free scalar functions that the compiler vectorises (omp simd); both give the scalar functions' bits. */
#ifndef NL_LOWP_H
#define NL_LOWP_H

#include "backend.h"
#include "normlab.h"

#include <stddef.h>
#include <stdint.h>

/* One scalar conversion each way. */
uint16_t nl_fp32_to_bf16(float x);
uint16_t nl_fp32_to_fp16(float x);
float nl_bf16_to_fp32(uint16_t h);
float nl_fp16_to_fp32(uint16_t h);

/* dst[i] = src[i] rounded to dt's representable values, as fp32 (dst may equal src: rounding in place).
 * NL_DTYPE_FP32 copies. counts may be NULL. */
void nl_lowp_round(float *dst, const float *src, size_t n, nl_dtype dt, nl_lowp_counts *counts);

/* 16-bit storage: dst[i] = the bf16/fp16 bits of src[i] (dt NL_DTYPE_BF16 or NL_DTYPE_FP16), and back. */
void nl_lowp_pack(uint16_t *dst, const float *src, size_t n, nl_dtype dt, nl_lowp_counts *counts);
void nl_lowp_unpack(float *dst, const uint16_t *src, size_t n, nl_dtype dt);

/* dst (rows x cols, packed) = the bf16/fp16 bits of src (rows of stride ld): nl_lowp_pack by rows. */
void nl_lowp_pack_matrix(uint16_t *dst, const float *src, int rows, int cols, int ld, nl_dtype dt);

/* C (M x N) = alpha * op(round(A)) @ op(round(B)) + beta * C, row-major, op(X) = X^T when tX != 0, with
 * lda/ldb/ldc the row strides (the nl_gemm convention): A and B are rounded to dt into scratch (M*K + K*N
 * floats, not overlapping A, B or C), then one fp32 GEMM multiplies them. Every product of two bf16 or fp16
 * numbers is exact in fp32, so the result differs from a GPU's (tensor cores: rounded inputs, fp32
 * accumulation) only in the order of the fp32 additions. C is not rounded: the caller rounds what it
 * stores, after its epilogue (bias). NL_DTYPE_FP32 skips the rounding. counts (may be NULL) sees A and B. */
void nl_lowp_gemm(nl_dtype dt, int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc, float *scratch, nl_lowp_counts *counts);

/* ---- the ops of the dtype emulation (docs/numerics.md §3), dt NL_DTYPE_BF16 or NL_DTYPE_FP16; the CPU
 * backend's bf16 and fp16 tables (backend.c) bind dt. */

/* nl_lowp_gemm with both operands rounded into scratch that the CPU backend owns (grown on demand,
 * never shrunk; one caller thread at a time, as the model calls its backend). */
void nl_lowp_gemm_op(nl_dtype dt, int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc);
/* nl_linear_forward/backward (kernels.h) with rounded operands and fp32 accumulation; bias and the
 * bias gradient in fp32. The outputs are not rounded: the caller stores them (round_act). */
void nl_lowp_linear_forward(nl_dtype dt, float *out, const float *inp, const float *w, const float *b, size_t N, int IC,
                            int OC);
void nl_lowp_linear_backward(nl_dtype dt, float *dinp, float *dw, float *db, const float *dout, const float *inp,
                             const float *w, size_t N, int IC, int OC);
/* nl_attention_forward/backward with P rounded to dt before P V, and dS before dq and dk. */
void nl_lowp_attention_forward(nl_dtype dt, float *out, float *att, const float *qkv, int B, int T, int C, int NH,
                               int KVH);
void nl_lowp_attention_backward(nl_dtype dt, float *dqkv, float *datt, const float *dout, const float *qkv,
                                const float *att, int B, int T, int C, int NH, int KVH);

#endif
