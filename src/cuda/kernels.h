/* kernels.h -- the CUDA backend's kernels (src/cuda/kernels.cu), C linkage, on device pointers. Each
 * has the signature and semantics of the CPU kernel of the same name in src/cpu/kernels.h (nl_cu_
 * for nl_; attention's products are cuBLASLt calls in backend.c): simple fp32 kernels, one thread per output element or one block per row; every sum runs in
 * a fixed order (tree reductions of fixed shape, column sums in row chunks added in order), so results
 * are deterministic. All run on the default stream; nl_cu_check reports the first launch error. */
#ifndef NL_CUDA_KERNELS_H
#define NL_CUDA_KERNELS_H

#include "backend.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exits the process with one line naming what failed if a CUDA call or launch returned an error. */
void nl_cu_fail(const char *what, const char *err);
/* Device scratch of at least `bytes`, grown on demand; valid until the next call. */
void *nl_cu_scratch(size_t bytes);

void nl_cu_norm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                        float scale, int type, float eps, size_t N, int C);
void nl_cu_norm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                         const float *mean, const float *rstd, float scale, int type, size_t N, int C);
void nl_cu_scalenorm_forward(float *out, float *rstd, const float *inp, const float *g, float scale, float eps,
                             size_t N, int C);
void nl_cu_scalenorm_backward(float *dinp, float *dg, const float *dout, const float *inp, const float *g,
                              const float *rstd, float scale, size_t N, int C);
void nl_cu_dyt_forward(float *out, const float *inp, const float *w, const float *b, const float *alpha, float scale,
                       size_t N, int C);
void nl_cu_dyt_backward(float *dinp, float *dw, float *db, float *dalpha, const float *dout, const float *inp,
                        const float *w, const float *alpha, float scale, size_t N, int C);
void nl_cu_seednorm_forward(float *out, float *bx, float *rstd, const float *inp, const float *w, const float *alpha,
                            const float *beta, float scale, float eps, size_t N, int C);
void nl_cu_seednorm_backward(float *dinp, float *dw, float *dalpha, float *dbeta, const float *dout, const float *inp,
                             const float *w, const float *alpha, const float *beta, const float *bx, const float *rstd,
                             float scale, size_t N, int C);
void nl_cu_crmsnorm_forward(float *out, float *s1, float *rstd, const float *inp, const float *w, float scale,
                            float eps, size_t N, int C);
void nl_cu_crmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                             const float *s1, const float *rstd, float scale, size_t N, int C);
void nl_cu_headscale_forward(float *out, const float *inp, const float *g, size_t N, int C, int NH);
void nl_cu_headscale_backward(float *dinp, float *dg, const float *dout, const float *inp, const float *g, size_t N,
                              int C, int NH);
void nl_cu_chanres_forward(float *out, const float *x, const float *y, const float *lam, size_t N, int C);
void nl_cu_chanres_backward(float *dx, float *dlam, const float *dout, const float *x, const float *lam, size_t N, int C);
void nl_cu_gain_forward(float *out, const float *inp, const float *g, size_t n);
void nl_cu_gain_backward(float *dinp, float *dg, const float *dout, const float *inp, const float *g, size_t n);
/* nGPT: the ops of src/cpu/ops_sphere.c (semantics in src/cpu/kernels.h) */
void nl_cu_l2norm_forward(float *out, float *rstd, const float *inp, const float *s, float f, size_t N, int C, int G);
void nl_cu_l2norm_backward(float *dinp, float *ds, const float *dout, const float *inp, const float *s,
                           const float *rstd, float f, size_t N, int C, int G);
void nl_cu_lerp_forward(float *out, const float *x, const float *y, const float *alpha, float f, size_t N, int C);
void nl_cu_lerp_backward(float *dx, float *dy, float *dalpha, const float *dout, const float *x, const float *y,
                         const float *alpha, float f, size_t N, int C);
void nl_cu_colscale_forward(float *out, const float *inp, const float *s, float f, size_t N, int C, int ld);
void nl_cu_colscale_backward(float *dinp, float *ds, const float *dout, const float *inp, const float *s, float f,
                             size_t N, int C, int ld);
void nl_cu_unit_project(float *w, size_t rows, int cols, int by_col);
void nl_cu_gpas_forward(float *out, const float *inp, const float *g, size_t n);
void nl_cu_gpas_backward(float *dg, const float *dout, const float *inp, const float *g, size_t n);
void nl_cu_bias_add(float *out, const float *b, size_t N, int OC);
void nl_cu_colsum(float *out, const float *x, size_t N, int cols, int ld);
/* attention's row steps over rows of T (row r is query position r % T): the causal softmax in place,
 * zeros above the diagonal; and its backward, datt <- sc P (dP - rowsum(P dP)) */
void nl_cu_attn_softmax(float *att, size_t rows, int T);
void nl_cu_attn_dsoftmax(float *datt, const float *att, size_t rows, int T, float sc);
void nl_cu_rope_forward(float *out, const float *inp, const float *cos_t, const float *sin_t, int B, int T, int ld,
                        int nrot, int hs);
void nl_cu_rope_backward(float *d, const float *cos_t, const float *sin_t, int B, int T, int ld, int nrot, int hs);
void nl_cu_gelu_forward(float *out, const float *inp, size_t n);
void nl_cu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
void nl_cu_swiglu_forward(float *out, const float *inp, size_t N, int F);
void nl_cu_swiglu_backward(float *dinp, const float *inp, const float *dout, size_t N, int F);
void nl_cu_encoder_forward(float *out, const int *tokens, const float *wte, const float *wpe, int B, int T, int C);
void nl_cu_encoder_backward(float *dwte, float *dwpe, const float *dout, const int *tokens, int B, int T, int C);
void nl_cu_residual_forward(float *out, const float *x, const float *y, float alpha, size_t n);
void nl_cu_scale_shift(float *out, const float *x, float a, float b, size_t n);
void nl_cu_xent(float *losses, float *logits, const int *targets, size_t N, int V, int ld, float dscale);
void nl_cu_adamw(float *p, float *m, float *v, const float *g, size_t n, const nl_adamw_hp *hp);
/* Partial sums (double) of x[i] (sq = 0) or x[i]^2 (sq = 1) over chunks of chunk elements, into the host
 * array part[ceil(n / chunk)] */
void nl_cu_chunk_sums(double *part, const float *x, size_t n, size_t chunk, int sq);
size_t nl_cu_first_nonfinite(const float *x, size_t n);

#ifdef __cplusplus
}
#endif

#endif
