/* dit.h -- --arch dit (a small Next-DiT, docs/dit.md): the ends of the model that differ from the language
 * models (patch embedding, time + label conditioning, adaLN outputs, final adaLN + linear, the flow-matching
 * loss), the 2-D rotary table, and the host-side image <-> patch layout. The blocks are model.c's template;
 * it calls these functions where the ends differ. fp32 on the CPU backend. */
#ifndef NL_DIT_H
#define NL_DIT_H

#include "common.h"
#include "images.h"
#include "model.h"

#define NL_DIT_TFREQ 256 /* sinusoidal features of t (DiT's frequency embedding size) */

/* One forward on host inputs: xt (B*T, P) noisy patches, t (B) times in [0, 1], y (B) labels (classes: the
 * null class), v (B*T, P) the target velocity or NULL. With v: returns the mean squared error over all
 * B*T*P numbers and, if dscale != 0, leaves dscale * its gradient for nl_model_backward. Without v: returns 0
 * and leaves the predicted velocity (B*T, P) in m->dit_out (backend memory). */
float nl_dit_forward(nl_model *m, const float *xt, const float *t, const int *y, const float *v, int B, float dscale);

/* the adaLN outputs of block l (0-based; (B, 6C): shift, scale, gate of attn, then of mlp) or, for
 * l = layers, of the final layer ((B, 2C): shift, scale) */
float *nl_dit_mod(const nl_model *m, int l, int B);

/* called by model.c */
void nl_dit_rope_table(nl_model *m);
void nl_dit_embed_forward(nl_model *m, int B);
float nl_dit_head_forward(nl_model *m, int B, float dscale);
void nl_dit_head_backward(nl_model *m, float *dxf);
void nl_dit_embed_backward(nl_model *m, const float *demb);

/* A flow-matching batch (docs/dit.md §2) of B images, image idx[b] (idx NULL: drawn from rng): with x_0 the
 * image's patches, eps ~ N(0, 1), t from c->time_sampling, x_t = (1 - t) x_0 + t eps and v = eps - x_0; the
 * label, or the null class c->classes with probability drop (always for unlabelled images). xt and v are
 * (B, T, P). Per image the draws come in a fixed order: index, t, drop, eps. */
void nl_dit_fm_batch(const nl_config *c, const nl_images *im, nl_rng *rng, const int *idx, int B, double drop,
                     float *xt, float *v, float *t, int *y);
/* Held-out flow-matching loss: the mean over the first min(n, im->n) images in batches of at most m->B, each
 * with t and noise from a generator seeded with `seed` (the same numbers at every call). */
double nl_dit_eval(nl_model *m, const nl_images *im, int n, uint64_t seed);

/* ---- sampling (src/dit_sample.c, docs/dit.md §3) */
/* v = dx/dt at time t of the n numbers x */
typedef void (*nl_velocity_fn)(void *ctx, const float *x, float t, float *v, size_t n);
/* Integrates dx/dt = f from t = 1 to t = 0 in `steps` uniform steps, in place: Euler (heun 0) or Heun's
 * trapezoid (2 evaluations a step). scratch: 3n floats. */
void nl_ode_integrate(float *x, size_t n, int steps, int heun, nl_velocity_fn f, void *ctx, float *scratch);
/* n images (n, h, w, ch) into img, image i of class labels[i] (classes: the null class), from noise drawn
 * from seed, with guidance scale w (1: none; unconditional models ignore it). */
void nl_dit_sample(nl_model *m, int n, const int *labels, double w, int steps, int heun, uint64_t seed, float *img);
/* rows x cols images (h, w, ch, values in [-1, 1]) as one PNG, 1-pixel black gaps */
nl_status nl_dit_grid_png(const char *path, const float *img, int rows, int cols, int h, int w, int ch);

/* Image (h, w, ch) <-> its T = (h/p)(w/p) patches (T, p*p*ch): token i*(w/p)+j is the patch at row i, column
 * j; inside it, element (py*p + px)*ch + c is pixel (i*p + py, j*p + px) channel c. */
void nl_dit_patchify(const nl_config *c, const float *img, float *patches);
void nl_dit_unpatchify(const nl_config *c, const float *patches, float *img);

#endif
