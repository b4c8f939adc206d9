/* backend.c -- the CPU backend: host memory, the kernels of src/cpu/, and the threads' numeric mode.
 *
 * Subnormal floats: Intel cores take a microcode assist (on the order of 100 cycles) for a subnormal
 * operand or result, so a training run whose small values drift into the subnormal range slows down
 * (issue 16: Pre-LN at lr 1e-2 fell from 3,500 to under 400 tok/s after step 80). The
 * backend flushes them: FTZ (subnormal results become 0) and DAZ (subnormal inputs read as 0), as GPUs
 * do for bf16/fp16 and as PyTorch does with set_flush_denormal(True). The mode is per thread, so it is
 * set on the caller and on every OpenMP worker (BLAS computes on the same pool in OpenBLAS's OpenMP
 * build); threads that the pool creates later inherit it from the thread that creates them. */
#include "backend.h"

#include "common.h"
#include "gemm.h"
#include "kernels.h"
#include "lowp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* openblas_set_num_threads is declared by OpenBLAS's cblas.h, which only gemm.c includes */
void openblas_set_num_threads(int n);

/* ---------------------------------------------------------------- numeric mode */

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
enum { FP_BITS = 0x8040 }; /* MXCSR bit 15 FTZ, bit 6 DAZ */
static void fp_set(void) { _mm_setcsr(_mm_getcsr() | FP_BITS); }
int nl_fp_mode_ok(void) { return (_mm_getcsr() & FP_BITS) == FP_BITS; }
#elif defined(__aarch64__)
/* FPCR bit 24 FZ: subnormal inputs and results are flushed to zero */
static uint64_t fpcr_get(void) {
    uint64_t r;
    __asm__ volatile("mrs %0, fpcr" : "=r"(r));
    return r;
}
static void fp_set(void) {
    const uint64_t r = fpcr_get() | ((uint64_t)1 << 24);
    __asm__ volatile("msr fpcr, %0" : : "r"(r));
}
int nl_fp_mode_ok(void) { return (int)((fpcr_get() >> 24) & 1); }
#else
/* other architectures: no flush mode is set (subnormals are handled at full speed, or slowly) */
static void fp_set(void) {}
int nl_fp_mode_ok(void) { return 1; }
#endif

void nl_fp_mode_set_all(void) {
    fp_set();
#pragma omp parallel
    fp_set();
}

static void cpu_enter(void) {
    if (!nl_fp_mode_ok()) nl_fp_mode_set_all();
}

void nl_set_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    openblas_set_num_threads(n);
    nl_fp_mode_set_all();
}

/* ---------------------------------------------------------------- memory: host memory */

static void *cpu_alloc(size_t bytes) { return nl_xcalloc(bytes ? bytes : 1); }
static void cpu_free(void *p) { free(p); }
static void cpu_zero(void *p, size_t bytes) { memset(p, 0, bytes); }
static void cpu_copy(void *dst, const void *src, size_t bytes) {
    if (dst != src) memmove(dst, src, bytes);
}

/* ---------------------------------------------------------------- the tables
 * One per dtype (docs/numerics.md §3): the bf16 and fp16 tables differ from the fp32 one only in the
 * matrix products (rounded operands, fp32 accumulation; bf16 on oneDNN's bf16 kernels where
 * nl_gemm_bf16_on(), hence its own gemm_info), attention (P and dS rounded) and round_act. */

static void round_none(float *x, size_t n, nl_lowp_counts *counts) { (void)x, (void)n, (void)counts; }

#define LOWP_OPS(sfx, DT)                                                                                                 \
    static void gemm_##sfx(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,     \
                           int ldb, float beta, float *C, int ldc) {                                                      \
        nl_lowp_gemm_op(DT, tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);                                        \
    }                                                                                                                     \
    static void linear_forward_##sfx(float *out, const float *inp, const float *w, const float *b, size_t N, int IC,      \
                                     int OC) {                                                                            \
        nl_lowp_linear_forward(DT, out, inp, w, b, N, IC, OC);                                                            \
    }                                                                                                                     \
    static void linear_backward_##sfx(float *dinp, float *dw, float *db, const float *dout, const float *inp,             \
                                      const float *w, size_t N, int IC, int OC) {                                         \
        nl_lowp_linear_backward(DT, dinp, dw, db, dout, inp, w, N, IC, OC);                                               \
    }                                                                                                                     \
    static void attention_forward_##sfx(float *out, float *att, const float *qkv, int B, int T, int C, int NH, int KVH) { \
        nl_lowp_attention_forward(DT, out, att, qkv, B, T, C, NH, KVH);                                                   \
    }                                                                                                                     \
    static void attention_backward_##sfx(float *dqkv, float *datt, const float *dout, const float *qkv,                   \
                                         const float *att, int B, int T, int C, int NH, int KVH) {                        \
        nl_lowp_attention_backward(DT, dqkv, datt, dout, qkv, att, B, T, C, NH, KVH);                                     \
    }                                                                                                                     \
    static void round_##sfx(float *x, size_t n, nl_lowp_counts *counts) { nl_lowp_round(x, x, n, DT, counts); }
LOWP_OPS(bf16, NL_DTYPE_BF16)
LOWP_OPS(fp16, NL_DTYPE_FP16)

/* every op but those a dtype changes */
#define CPU_COMMON_OPS                                                                                                 \
    .enter = cpu_enter, .alloc = cpu_alloc, .free = cpu_free, .zero = cpu_zero, .copy = cpu_copy, .to_host = cpu_copy, \
    .from_host = cpu_copy, .copy_cols = nl_copy_cols, .norm_forward = nl_norm_forward,                                 \
    .norm_backward = nl_norm_backward, .scalenorm_forward = nl_scalenorm_forward,                                      \
    .scalenorm_backward = nl_scalenorm_backward, .dyt_forward = nl_dyt_forward, .dyt_backward = nl_dyt_backward,       \
    .seednorm_forward = nl_seednorm_forward, .seednorm_backward = nl_seednorm_backward,                                \
    .crmsnorm_forward = nl_crmsnorm_forward, .crmsnorm_backward = nl_crmsnorm_backward,                                \
    .headscale_forward = nl_headscale_forward, .headscale_backward = nl_headscale_backward,                            \
    .chanres_forward = nl_chanres_forward, .chanres_backward = nl_chanres_backward, .gain_forward = nl_gain_forward,   \
    .gain_backward = nl_gain_backward, .l2norm_forward = nl_l2norm_forward, .l2norm_backward = nl_l2norm_backward,     \
    .lerp_forward = nl_lerp_forward, .lerp_backward = nl_lerp_backward, .colscale_forward = nl_colscale_forward,       \
    .colscale_backward = nl_colscale_backward, .unit_project = nl_unit_project,                                        \
    .attention_bidir_forward = nl_attention_bidir_forward, .attention_bidir_backward = nl_attention_bidir_backward,    \
    .ada_forward = nl_ada_forward, .ada_backward = nl_ada_backward, .silu_forward = nl_silu_forward,                   \
    .silu_backward = nl_silu_backward, .gpas_forward = nl_gpas_forward, .gpas_backward = nl_gpas_backward,             \
    .rope_table = nl_rope_table, .rope_forward = nl_rope_forward, .rope_backward = nl_rope_backward,                   \
    .gelu_forward = nl_gelu_forward, .gelu_backward = nl_gelu_backward, .swiglu_forward = nl_swiglu_forward,           \
    .swiglu_backward = nl_swiglu_backward, .encoder_forward = nl_encoder_forward,                                      \
    .encoder_backward = nl_encoder_backward, .residual_forward = nl_residual_forward, .scale_shift = nl_scale_shift,   \
    .xent = nl_xent, .adamw = nl_adamw, .sum = nl_sum, .sumsq = nl_sumsq, .first_nonfinite = nl_first_nonfinite,       \
    .stream_stats = nl_stream_stats,

#define CPU_TABLE(NAME, DT, GEMM, INFO, LF, LB, AF, AB, ROUND)                                                         \
    {                                                                                                                  \
        .name = NAME, .dtype = DT, .gemm = GEMM, .gemm_info = INFO, .linear_forward = LF, .linear_backward = LB,       \
        .attention_forward = AF, .attention_backward = AB, .round_act = ROUND, CPU_COMMON_OPS                          \
    }

static const nl_backend tables[NL_DTYPE_COUNT] = {
    [NL_DTYPE_FP32] = CPU_TABLE("cpu", NL_DTYPE_FP32, nl_gemm, nl_gemm_info, nl_linear_forward, nl_linear_backward,
                                nl_attention_forward, nl_attention_backward, round_none),
    [NL_DTYPE_BF16] = CPU_TABLE("cpu", NL_DTYPE_BF16, gemm_bf16, nl_gemm_bf16_info, linear_forward_bf16,
                                linear_backward_bf16, attention_forward_bf16, attention_backward_bf16, round_bf16),
    [NL_DTYPE_FP16] = CPU_TABLE("cpu", NL_DTYPE_FP16, gemm_fp16, nl_gemm_info, linear_forward_fp16,
                                linear_backward_fp16, attention_forward_fp16, attention_backward_fp16, round_fp16),
};

const nl_backend *nl_backend_cpu(void) { return nl_backend_cpu_dtype(NL_DTYPE_FP32); }

const nl_backend *nl_backend_cpu_dtype(nl_dtype dt) {
    NL_ASSERT(dt >= 0 && dt < NL_DTYPE_COUNT);
    cpu_enter();
    return &tables[dt];
}
