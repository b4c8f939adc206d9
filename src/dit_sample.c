/* dit_sample.c -- sampling a --arch dit model (docs/dit.md §3): the probability-flow ODE dx/dt = v(x, t) from
 * pure noise at t = 1 to an image at t = 0 on a uniform grid of t, by Euler or Heun steps, with
 * classifier-free guidance v = v(x, t, null) + w (v(x, t, y) - v(x, t, null)); and the PNG grid of samples. */
#include "dit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void nl_ode_integrate(float *x, size_t n, int steps, int heun, nl_velocity_fn f, void *ctx, float *scratch) {
    float *v = scratch, *v2 = scratch + n, *xp = scratch + 2 * n;
    for (int i = 0; i < steps; i++) {
        const float t = 1.0f - (float)i / steps, tn = 1.0f - (float)(i + 1) / steps, h = t - tn;
        f(ctx, x, t, v, n);
        if (!heun) {
            for (size_t j = 0; j < n; j++) x[j] -= h * v[j];
            continue;
        }
        for (size_t j = 0; j < n; j++) xp[j] = x[j] - h * v[j]; /* Euler predictor, trapezoid corrector */
        f(ctx, xp, tn, v2, n);
        for (size_t j = 0; j < n; j++) x[j] -= 0.5f * h * (v[j] + v2[j]);
    }
}

typedef struct guide_ctx {
    nl_model *m;
    int B;          /* images in this batch */
    const int *y;   /* their labels */
    int *null;      /* (B) the null class */
    float *tb, *vc; /* (B) times; (B, T, P) the conditional velocity */
    double w;       /* guidance scale: 1 = the conditional model alone */
} guide_ctx;

/* the model's velocity of the batch (B, T, P) at time t; with w != 1 two passes, labels and null class */
static void guided_velocity(void *p, const float *x, float t, float *v, size_t n) {
    guide_ctx *g = p;
    const nl_backend *be = g->m->be;
    for (int b = 0; b < g->B; b++) g->tb[b] = t;
    nl_dit_forward(g->m, x, g->tb, g->y, NULL, g->B, 0.0f);
    be->to_host(v, g->m->dit_out, n * sizeof(float));
    if (g->w == 1.0) return;
    memcpy(g->vc, v, n * sizeof(float));
    nl_dit_forward(g->m, x, g->tb, g->null, NULL, g->B, 0.0f);
    be->to_host(v, g->m->dit_out, n * sizeof(float));
    for (size_t j = 0; j < n; j++) v[j] += (float)(g->w * (g->vc[j] - v[j]));
}

void nl_dit_sample(nl_model *m, int n, const int *labels, double w, int steps, int heun, uint64_t seed, float *img) {
    const nl_config *c = &m->cfg;
    const size_t TP = (size_t)c->seq_len * m->P;
    const int B = n < 64 ? n : 64;
    if (m->B < B) nl_model_alloc_acts(m, B, c->seq_len);
    float *x = nl_xmalloc((size_t)B * TP * sizeof(float)), *scr = nl_xmalloc(3 * (size_t)B * TP * sizeof(float));
    guide_ctx g = { m,
                    0,
                    NULL,
                    nl_xmalloc((size_t)B * sizeof(int)),
                    nl_xmalloc((size_t)B * sizeof(float)),
                    nl_xmalloc((size_t)B * TP * sizeof(float)),
                    c->classes ? w : 1.0 };
    for (int b = 0; b < B; b++) g.null[b] = c->classes;
    nl_rng rng;
    nl_rng_seed(&rng, seed);
    for (int i0 = 0; i0 < n; i0 += B) {
        g.B = n - i0 < B ? n - i0 : B;
        g.y = labels + i0;
        for (size_t j = 0; j < (size_t)g.B * TP; j++) x[j] = (float)nl_rng_normal(&rng);
        nl_ode_integrate(x, (size_t)g.B * TP, steps, heun, guided_velocity, &g, scr);
        for (int b = 0; b < g.B; b++) nl_dit_unpatchify(c, x + (size_t)b * TP, img + (size_t)(i0 + b) * TP);
    }
    free(x), free(scr), free(g.null), free(g.tb), free(g.vc);
}

nl_status nl_dit_grid_png(const char *path, const float *img, int rows, int cols, int h, int w, int ch) {
    const int gap = 1, H = rows * h + (rows - 1) * gap, W = cols * w + (cols - 1) * gap;
    uint8_t *pix = nl_xcalloc((size_t)H * W * ch);
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < cols; k++) {
            const float *im = img + (size_t)(r * cols + k) * h * w * ch;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w * ch; x++) {
                    const float v = roundf((im[(size_t)y * w * ch + x] + 1.0f) * 127.5f);
                    pix[((size_t)(r * (h + gap) + y) * W + (size_t)k * (w + gap)) * ch + x] = (uint8_t)(v < 0     ? 0
                                                                                                        : v > 255 ? 255
                                                                                                                  : v);
                }
        }
    nl_status st = nl_png_write(path, pix, H, W, ch);
    free(pix);
    return st;
}
