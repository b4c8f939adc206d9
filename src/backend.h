/* backend.h -- nl_backend: the table of everything that touches the numbers of a model. The model
 * (model.c), the optimizer (optim.c), the diagnostics (diag.c, analyze.c), training, evaluation and
 * sampling (train.c, evalmc.c, sample.c) reach parameters and activations only through it: they hold
 * pointers into backend memory but never dereference them, and read scalars back through the
 * reductions or to_host. The CPU backend is src/cpu/ (nl_backend_cpu); a CUDA backend is another table
 * whose pointers are device pointers (docs/architecture.md, "Backends").
 *
 * Conventions are those of the kernels (src/cpu/kernels.h): row-major fp32, N = rows, C = channels;
 * outputs first, then inputs, then weights, then sizes; backward functions overwrite the input
 * gradient unless noted and accumulate (+=) into parameter gradients. Scalar parameters (gains, DyT
 * alpha, head scales) are backend pointers too; host scalars are passed by value. Every operation is
 * deterministic: the same inputs and thread count give the same bits. */
#ifndef NL_BACKEND_H
#define NL_BACKEND_H

#include "normlab.h"

#include <stddef.h>
#include <stdint.h>

/* What rounding to a dtype did to the values it saw (docs/numerics.md §2); rounding functions ADD to
 * these, so a diagnostics counter can sum a layer's calls. overflow: finite values that became +-inf.
 * flushed: nonzero values that became +-0. NaN and inf inputs count in neither. */
typedef struct nl_lowp_counts {
    uint64_t overflow;
    uint64_t flushed;
} nl_lowp_counts;

/* Statistics of one residual-stream tensor x (N tokens x C channels), returned to the host. */
typedef struct nl_stream_stat {
    double var;    /* mean over tokens of the per-token variance over channels (population) */
    double gvar;   /* variance over all N*C entries */
    double rms;    /* mean over tokens of the per-token RMS, sqrt(mean_c x^2) */
    double maxabs; /* max |x| (+Inf if any entry is non-finite) */
    double median; /* median |x| over all entries (mean of the two middle values when N*C is even) */
} nl_stream_stat;

/* One AdamW update: g' = gscale * g; m = b1 m + (1-b1) g'; v = b2 v + (1-b2) g'^2;
 * p -= lr (wd p + m ic1 / (sqrt(v ic2) + eps)), ic1/ic2 the bias corrections 1/(1 - b^t). */
typedef struct nl_adamw_hp {
    float lr, beta1, beta2, eps, wd, ic1, ic2, gscale;
} nl_adamw_hp;

typedef struct nl_backend {
    const char *name;
    /* The number format of activations (docs/numerics.md §3). fp32: every op as written. bf16/fp16:
     * gemm and the linear ops round both operands to the dtype and accumulate in fp32; attention rounds
     * its probabilities P before P V and dS before dq, dk; everything else computes in fp32 from its
     * (already rounded) inputs, and the caller rounds each activation it stores with round_act. */
    nl_dtype dtype;
    /* Puts the calling thread (and the workers it computes with) into the backend's numeric mode; the
     * model calls it at the start of every forward, backward and optimizer step. CPU: flush-to-zero and
     * denormals-are-zero on the caller and every OpenMP worker (a CUDA backend: select the device). */
    void (*enter)(void);

    /* ---- memory (sizes in bytes) */
    void *(*alloc)(size_t bytes); /* zeroed; never NULL (aborts naming the size) */
    void (*free)(void *p);        /* NULL is fine */
    void (*zero)(void *p, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes);       /* backend -> backend */
    void (*to_host)(void *host, const void *src, size_t bytes);   /* backend -> host */
    void (*from_host)(void *dst, const void *host, size_t bytes); /* host -> backend */
    /* dst[r*ldd + c] = src[r*lds + c] for r < rows, c < cols (column blocks of a wider array) */
    void (*copy_cols)(float *dst, int ldd, const float *src, int lds, size_t rows, int cols);

    /* ---- matrix product: C (M x N) = alpha op(A) op(B) + beta C, row-major, op(X) = X^T if tX, with row
     * strides (the head reads V of Vp columns). The model needs no batched product: the per-head products
     * of attention are inside the attention ops, where a backend batches them its own way. */
    void (*gemm)(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc);
    const char *(*gemm_info)(void); /* the library and kernel ISA that run gemm */
    /* x[i] = x[i] rounded to the table's dtype (a no-op for fp32); counts (may be NULL) adds what it did */
    void (*round_act)(float *x, size_t n, nl_lowp_counts *counts);

    /* ---- operator pairs (semantics in src/cpu/kernels.h, under the same names without nl_) */
    void (*norm_forward)(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                         float scale, int type, float eps, size_t N, int C);
    void (*norm_backward)(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                          const float *mean, const float *rstd, float scale, int type, size_t N, int C);
    void (*scalenorm_forward)(float *out, float *rstd, const float *inp, const float *g, float scale, float eps,
                              size_t N, int C);
    void (*scalenorm_backward)(float *dinp, float *dg, const float *dout, const float *inp, const float *g,
                               const float *rstd, float scale, size_t N, int C);
    void (*dyt_forward)(float *out, const float *inp, const float *w, const float *b, const float *alpha, float scale,
                        size_t N, int C);
    void (*dyt_backward)(float *dinp, float *dw, float *db, float *dalpha, const float *dout, const float *inp,
                         const float *w, const float *alpha, float scale, size_t N, int C);
    void (*seednorm_forward)(float *out, float *bx, float *rstd, const float *inp, const float *w, const float *alpha,
                             const float *beta, float scale, float eps, size_t N, int C);
    void (*seednorm_backward)(float *dinp, float *dw, float *dalpha, float *dbeta, const float *dout, const float *inp,
                              const float *w, const float *alpha, const float *beta, const float *bx, const float *rstd,
                              float scale, size_t N, int C);
    void (*crmsnorm_forward)(float *out, float *s1, float *rstd, const float *inp, const float *w, float scale,
                             float eps, size_t N, int C);
    void (*crmsnorm_backward)(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                              const float *s1, const float *rstd, float scale, size_t N, int C);
    void (*headscale_forward)(float *out, const float *inp, const float *g, size_t N, int C, int NH);
    void (*headscale_backward)(float *dinp, float *dg, const float *dout, const float *inp, const float *g, size_t N,
                               int C, int NH);
    void (*chanres_forward)(float *out, const float *x, const float *y, const float *lam, size_t N, int C);
    void (*chanres_backward)(float *dx, float *dlam, const float *dout, const float *x, const float *lam, size_t N,
                             int C);
    void (*gain_forward)(float *out, const float *inp, const float *g, size_t n);
    void (*gain_backward)(float *dinp, float *dg, const float *dout, const float *inp, const float *g, size_t n);
    /* nGPT: L2 norms with per-channel scales, the alpha interpolation, column scales, and (after each optimizer
     * step) the projection of weight rows or columns onto the unit sphere */
    void (*l2norm_forward)(float *out, float *rstd, const float *inp, const float *s, float f, size_t N, int C, int G);
    void (*l2norm_backward)(float *dinp, float *ds, const float *dout, const float *inp, const float *s,
                            const float *rstd, float f, size_t N, int C, int G);
    void (*lerp_forward)(float *out, const float *x, const float *y, const float *alpha, float f, size_t N, int C);
    void (*lerp_backward)(float *dx, float *dy, float *dalpha, const float *dout, const float *x, const float *y,
                          const float *alpha, float f, size_t N, int C);
    void (*colscale_forward)(float *out, const float *inp, const float *s, float f, size_t N, int C, int ld);
    void (*colscale_backward)(float *dinp, float *ds, const float *dout, const float *inp, const float *s, float f,
                              size_t N, int C, int ld);
    void (*unit_project)(float *w, size_t rows, int cols, int by_col);
    void (*gpas_forward)(float *out, const float *inp, const float *g, size_t n);
    void (*gpas_backward)(float *dg, const float *dout, const float *inp, const float *g, size_t n);
    void (*linear_forward)(float *out, const float *inp, const float *w, const float *b, size_t N, int IC, int OC);
    void (*linear_backward)(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                            size_t N, int IC, int OC);
    void (*attention_forward)(float *out, float *att, const float *qkv, int B, int T, int C, int NH, int KVH);
    void (*attention_backward)(float *dqkv, float *datt, const float *dout, const float *qkv, const float *att, int B,
                               int T, int C, int NH, int KVH);
    /* --arch dit: bidirectional attention (fp32), adaLN modulation and gates, SiLU */
    void (*attention_bidir_forward)(float *out, float *att, const float *qkv, int B, int T, int C, int NH, int KVH);
    void (*attention_bidir_backward)(float *dqkv, float *datt, const float *dout, const float *qkv, const float *att,
                                     int B, int T, int C, int NH, int KVH);
    void (*ada_forward)(float *out, const float *x, const float *s, const float *h, int ld, float k, int B, int T, int C);
    void (*ada_backward)(float *dx, float *ds, float *dh, const float *dout, const float *x, const float *s, int ld,
                         float k, int B, int T, int C);
    void (*silu_forward)(float *out, const float *inp, size_t n);
    void (*silu_backward)(float *dinp, const float *inp, const float *dout, size_t n);
    void (*rope_table)(float *cos_t, float *sin_t, int T, int hs, double theta);
    void (*rope_forward)(float *out, const float *inp, const float *cos_t, const float *sin_t, int B, int T, int ld,
                         int nrot, int hs);
    void (*rope_backward)(float *d, const float *cos_t, const float *sin_t, int B, int T, int ld, int nrot, int hs);
    void (*gelu_forward)(float *out, const float *inp, size_t n);
    void (*gelu_backward)(float *dinp, const float *inp, const float *dout, size_t n);
    void (*swiglu_forward)(float *out, const float *inp, size_t N, int F);
    void (*swiglu_backward)(float *dinp, const float *inp, const float *dout, size_t N, int F);
    void (*encoder_forward)(float *out, const int *tokens, const float *wte, const float *wpe, int B, int T, int C);
    void (*encoder_backward)(float *dwte, float *dwpe, const float *dout, const int *tokens, int B, int T, int C);
    void (*residual_forward)(float *out, const float *x, const float *y, float alpha, size_t n); /* alpha x + y */
    void (*scale_shift)(float *out, const float *x, float a, float b, size_t n);                 /* a x + b */
    void (*xent)(float *losses, float *logits, const int *targets, size_t N, int V, int ld, float dscale);

    /* ---- optimizer: one AdamW update of n parameters */
    void (*adamw)(float *p, float *m, float *v, const float *g, size_t n, const nl_adamw_hp *hp);

    /* ---- reductions, returned to the host (accumulated in double, in a fixed order) */
    double (*sum)(const float *x, size_t n);
    double (*sumsq)(const float *x, size_t n);
    size_t (*first_nonfinite)(const float *x, size_t n); /* index of the first NaN/Inf, or n */
    /* scratch: N*C floats of backend memory, overwritten */
    void (*stream_stats)(const float *x, size_t N, int C, float *scratch, nl_stream_stat *out);
} nl_backend;

/* The CPU backend (src/cpu/backend.c) in fp32, and its emulation of a dtype (fp32: the same table). */
const nl_backend *nl_backend_cpu(void);
const nl_backend *nl_backend_cpu_dtype(nl_dtype dt);
/* The CUDA backend on device 0 (src/cuda/backend.c, make USE_CUDA=1). Fails with a one-line message:
 * NL_ERR_ARG in a build without CUDA (src/cuda/none.c), NL_ERR_IO when no GPU can be used. */
nl_status nl_backend_cuda(const nl_backend **out);

/* 0 < n: the number of threads the CPU backend computes with (OpenMP and BLAS), set up in its numeric
 * mode. */
void nl_set_threads(int n);

#endif
