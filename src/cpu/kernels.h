/* kernels.h -- the CPU backend's kernels (src/cpu/): each op is a forward/backward pair on raw
 * row-major fp32 arrays; src/cpu/backend.c puts them into the nl_backend table, through which the
 * model calls them (nothing outside src/cpu/ and the tests includes this header).
 * Shapes use N = B*T rows and C channels. Conventions (llm.c order): outputs and saved statistics
 * first, then inputs, then weights, then sizes. Backward functions OVERWRITE the input gradient unless
 * noted and ACCUMULATE (+=) into parameter gradients, so micro-batches add up. Matrix products go
 * through nl_gemm (gemm.h); everything else is OpenMP-parallel over rows or over
 * column blocks, with a fixed reduction order so results do not depend on scheduling. */
#ifndef NL_CPU_KERNELS_H
#define NL_CPU_KERNELS_H

#include "backend.h"

#include <stddef.h>

/* Normalization, per row over C channels (docs/methods.md §1). type: NL_LAYERNORM or NL_RMSNORM
 * (b may be NULL: no bias; ignored for rmsnorm). out = scale * (w * xh + b). mean is 0 for rmsnorm. */
void nl_norm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                     float scale, int type, float eps, size_t N, int C);
/* dinp += dL/dinp; dw += ..., db += ... (db may be NULL). */
void nl_norm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                      const float *mean, const float *rstd, float scale, int type, size_t N, int C);

/* ScaleNorm (Nguyen & Salazar 2019): out = scale * g * x / sqrt(sum(x^2) + eps), g one scalar. */
void nl_scalenorm_forward(float *out, float *rstd, const float *inp, const float *g, float scale, float eps, size_t N,
                          int C);
void nl_scalenorm_backward(float *dinp, float *dg, const float *dout, const float *inp, const float *g,
                           const float *rstd, float scale, size_t N, int C);
/* DyT (Zhu et al. 2025): out = scale * (w * tanh(alpha x) + b), alpha one scalar; b may be NULL. */
void nl_dyt_forward(float *out, const float *inp, const float *w, const float *b, const float *alpha, float scale,
                    size_t N, int C);
void nl_dyt_backward(float *dinp, float *dw, float *db, float *dalpha, const float *dout, const float *inp,
                     const float *w, const float *alpha, float scale, size_t N, int C);
/* SeeDNorm (Cai et al. 2025): out = scale * (tanh(beta . x) * alpha + w) * x / sqrt(mean(x^2) + eps);
 * alpha, beta, w are (C) vectors; bx and rstd save beta . x and 1/rms per row. */
void nl_seednorm_forward(float *out, float *bx, float *rstd, const float *inp, const float *w, const float *alpha,
                         const float *beta, float scale, float eps, size_t N, int C);
void nl_seednorm_backward(float *dinp, float *dw, float *dalpha, float *dbeta, const float *dout, const float *inp,
                          const float *w, const float *alpha, const float *beta, const float *bx, const float *rstd,
                          float scale, size_t N, int C);

/* CRMSNorm (Jiang et al. 2023): RMSNorm whose RMS comes from the first C-1 coordinates of a zero-mean
 * vector, q = (sum_{i<C-1} x_i^2 + (sum_{i<C-1} x_i)^2)/C + eps; out = scale * w * x / sqrt(q).
 * s1 and rstd save sum_{i<C-1} x_i and 1/sqrt(q) per row. */
void nl_crmsnorm_forward(float *out, float *s1, float *rstd, const float *inp, const float *w, float scale, float eps,
                         size_t N, int C);
void nl_crmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w, const float *s1,
                          const float *rstd, float scale, size_t N, int C);

/* Per-head scaling (NormFormer HeadScale): out[n, h*hs + i] = g[h] * inp[n, h*hs + i], hs = C/NH.
 * Backward: dinp overwritten; dg accumulated. */
void nl_headscale_forward(float *out, const float *inp, const float *g, size_t N, int C, int NH);
void nl_headscale_backward(float *dinp, float *dg, const float *dout, const float *inp, const float *g, size_t N, int C,
                           int NH);

/* Per-channel residual weight (NormFormer's lambda_resid): out = lam * x + y, lam (C).
 * Backward: dx = lam * dout (overwrite); dlam += column sums of dout * x. */
void nl_chanres_forward(float *out, const float *x, const float *y, const float *lam, size_t N, int C);
void nl_chanres_backward(float *dx, float *dlam, const float *dout, const float *x, const float *lam, size_t N, int C);

/* Scalar branch gain (SkipInit): out = g * inp; dinp = g * dout (overwrite; may alias dout);
 * dg += sum(dout * inp). */
void nl_gain_forward(float *out, const float *inp, const float *g, size_t n);
void nl_gain_backward(float *dinp, float *dg, const float *dout, const float *inp, const float *g, size_t n);

/* nGPT (arXiv:2410.01131, docs/methods.md §2.16), src/cpu/ops_sphere.c.
 * L2 norm over each group of G channels (G divides C): out[n,c] = f * s[c] * x[n,c] / |x[n,group]|, s (C) may
 * be NULL (1); a group of norm below 1e-12 is divided by 1e-12. rstd (N, C/G) keeps 1/|x|.
 * Backward: dinp += J^T dout; ds += f * column sums of dout * x / |x| (ds NULL when s is). */
void nl_l2norm_forward(float *out, float *rstd, const float *inp, const float *s, float f, size_t N, int C, int G);
void nl_l2norm_backward(float *dinp, float *ds, const float *dout, const float *inp, const float *s, const float *rstd,
                        float f, size_t N, int C, int G);
/* Eigen-learning-rate step: out = x + a (y - x), a[c] = |f alpha[c]| (N, C). Backward: dx = (1 - a) dout,
 * dy = a dout (both overwritten, neither may alias dout); dalpha += f sign(f alpha) column sums of dout (y - x). */
void nl_lerp_forward(float *out, const float *x, const float *y, const float *alpha, float f, size_t N, int C);
void nl_lerp_backward(float *dx, float *dy, float *dalpha, const float *dout, const float *x, const float *y,
                      const float *alpha, float f, size_t N, int C);
/* Column scale of the first C columns of rows of stride ld: out = f s[c] inp (may alias inp).
 * Backward: ds += f column sums of dout * inp; dinp = f s dout (may alias dout). */
void nl_colscale_forward(float *out, const float *inp, const float *s, float f, size_t N, int C, int ld);
void nl_colscale_backward(float *dinp, float *ds, const float *dout, const float *inp, const float *s, float f,
                          size_t N, int C, int ld);
/* Scales each row (by_col 0) or each column (by_col 1) of w (rows x cols) to unit L2 norm (sums in double);
 * an all-zero row or column stays zero. */
void nl_unit_project(float *w, size_t rows, int cols, int by_col);
/* GPAS (Chen et al., arXiv:2506.22049): out = inp - SiLU(g) sg(inp), g one scalar gate, so the forward
 * is (1 - SiLU(g)) inp (out may alias inp). The backward is that of the stop-gradient form: the gradient
 * of inp is dout unchanged (nothing to compute), and dg += -SiLU'(g) sum(dout * inp) with
 * SiLU'(g) = sig(g) (1 + g (1 - sig(g))). */
void nl_gpas_forward(float *out, const float *inp, const float *g, size_t n);
void nl_gpas_backward(float *dg, const float *dout, const float *inp, const float *g, size_t n);

/* out (N,OC) = inp (N,IC) @ w^T (w is (OC,IC), PyTorch Linear layout) + b (b may be NULL). */
void nl_linear_forward(float *out, const float *inp, const float *w, const float *b, size_t N, int IC, int OC);
/* dinp = dout @ w (overwrite); dw += dout^T @ inp; db += column sums of dout (db may be NULL). */
void nl_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                        size_t N, int IC, int OC);

/* Causal multi-head attention with NH query heads and KVH key/value heads (KVH divides NH; query head
 * h reads kv head h / (NH/KVH)). qkv (B*T, C + 2 kvC), kvC = KVH * C/NH, holds q | k | v, head h of q in
 * columns h*hs.., kv head g of k in C + g*hs.., of v in C + kvC + g*hs..; att (B,NH,T,T) keeps the
 * softmax probabilities; out (B*T, C) the concatenated heads (before the projection). */
void nl_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH, int KVH);
/* dqkv overwritten; datt is scratch of att's size. */
void nl_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv, const float *att, int B,
                           int T, int C, int NH, int KVH);
/* Rows per block of the causal products (src/cpu/ops_attn.c, "Causal skipping"); rows <= 0: the default, 64.
 * A block of T rows or more computes the full T x T products. For tests; one setting per process. */
void nl_attention_causal_block(int rows);
/* The same without the causal mask (--arch dit): every query attends to all T keys. fp32. */
void nl_attention_bidir_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH, int KVH);
void nl_attention_bidir_backward(float *dqkv, float *datt, const float *dout, const float *qkv, const float *att, int B,
                                 int T, int C, int NH, int KVH);

/* Rotary position embedding (Su et al., arXiv:2104.09864), LLaMA's interleaved pairs: in each head of hs
 * channels, pair (2i, 2i+1) is the complex number x_2i + j x_2i+1, multiplied by e^(j t theta^(-2i/hs))
 * at position t = row % T. The table holds cos and sin of those angles, (T, hs/2) each. */
void nl_rope_table(float *cos_t, float *sin_t, int T, int hs, double theta);
/* Rotates columns [0, nrot) (whole heads) of the B*T rows of inp (row stride ld) into out and copies
 * columns [nrot, ld); out may alias inp. */
void nl_rope_forward(float *out, const float *inp, const float *cos_t, const float *sin_t, int B, int T, int ld,
                     int nrot, int hs);
/* In place on columns [0, nrot) of d: the transposed (inverse) rotation, the gradient of the forward. */
void nl_rope_backward(float *d, const float *cos_t, const float *sin_t, int B, int T, int ld, int nrot, int hs);

/* GELU, tanh approximation. */
void nl_gelu_forward(float *out, const float *inp, size_t n);
void nl_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* SwiGLU (Shazeer, arXiv:2002.05202): inp (N, 2F) holds gate | up; out (N, F) = silu(gate) * up with
 * silu(g) = g sigmoid(g). Backward overwrites dinp (N, 2F). */
void nl_swiglu_forward(float *out, const float *inp, size_t N, int F);
void nl_swiglu_backward(float *dinp, const float *inp, const float *dout, size_t N, int F);

/* out (B*T, C) = wte[tokens] + wpe[t] (wpe NULL: no position term). Backward accumulates into dwte and
 * dwpe (NULL with wpe). */
void nl_encoder_forward(float *out, const int *tokens, const float *wte, const float *wpe, int B, int T, int C);
void nl_encoder_backward(float *dwte, float *dwpe, const float *dout, const int *tokens, int B, int T, int C);

/* out = alpha * x + y */
void nl_residual_forward(float *out, const float *x, const float *y, float alpha, size_t n);

/* Cross-entropy over the first V columns of logits (N rows, row stride ld); the rows are scratch
 * afterwards. Writes each row's loss to
 * losses[n]. If dscale != 0, overwrites those V columns with dscale * (softmax - onehot), the gradient
 * of dscale * sum(losses). */
void nl_xent(float *losses, float *logits, const int *targets, size_t N, int V, int ld, float dscale);

/* out (N, cols) column sums accumulated: out[c] += sum_n x[n*ld + c] */
void nl_colsum(float *out, const float *x, size_t N, int cols, int ld);

/* out = a * x + b (out may alias x) */
void nl_scale_shift(float *out, const float *x, float a, float b, size_t n);

/* dst[r*ldd + c] = src[r*lds + c], r < rows, c < cols */
void nl_copy_cols(float *dst, int ldd, const float *src, int lds, size_t rows, int cols);

/* AdamW on n parameters (nl_adamw_hp in backend.h). */
void nl_adamw(float *p, float *m, float *v, const float *g, size_t n, const nl_adamw_hp *hp);

/* Reductions in double. nl_sum adds in index order; nl_sumsq adds fixed chunks of NL_SUMSQ_CHUNK
 * elements (in parallel; within a chunk in NL_LANES lanes, lanes.h), then the chunk sums in order: neither
 * depends on the thread count. */
enum { NL_SUMSQ_CHUNK = 1 << 14 };
double nl_sum(const float *x, size_t n);
double nl_sumsq(const float *x, size_t n);
/* Index of the first non-finite value of x[0..n), or n. */
size_t nl_first_nonfinite(const float *x, size_t n);
/* The statistics of nl_stream_stat (backend.h); scratch holds N*C floats. */
void nl_stream_stats(const float *x, size_t N, int C, float *scratch, nl_stream_stat *out);

/* Flush-to-zero and denormals-are-zero (x86 MXCSR FTZ|DAZ, aarch64 FPCR.FZ) on the calling thread
 * and on every thread of the OpenMP pool; nl_fp_mode_ok says whether the calling thread has it (always
 * 1 on other architectures, where it is a no-op). */
void nl_fp_mode_set_all(void);
int nl_fp_mode_ok(void);

/* --arch dit (src/cpu/ops_dit.c, docs/dit.md §2). Per-sample modulation of (B, T, C) rows by (B, C) vectors
 * read with row stride ld (columns of the adaLN output): out[b,t,c] = x[b,t,c] (k + s[b ld + c]) + h[b ld + c]
 * (h may be NULL: no shift). k = 1 is adaLN's scale (1 + scale), k = 0 a gate. Backward: dx = dout (k + s)
 * (overwritten; dx may be dout); ds[b ld + c] += sum_t dout x; dh[b ld + c] += sum_t dout (dh may be NULL). */
void nl_ada_forward(float *out, const float *x, const float *s, const float *h, int ld, float k, int B, int T, int C);
void nl_ada_backward(float *dx, float *ds, float *dh, const float *dout, const float *x, const float *s, int ld,
                     float k, int B, int T, int C);
/* SiLU: out = x sigmoid(x); backward overwrites dinp (may be dout). */
void nl_silu_forward(float *out, const float *inp, size_t n);
void nl_silu_backward(float *dinp, const float *inp, const float *dout, size_t n);

#endif
