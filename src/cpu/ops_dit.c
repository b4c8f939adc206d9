/* ops_dit.c -- the kernels --arch dit adds (docs/dit.md §2): adaLN modulation / gates of (B, T, C) rows by
 * per-sample (B, C) vectors, and SiLU. Semantics in kernels.h. The parameter-gradient sums run over t in
 * order inside one task per sample b, so they do not depend on the thread count. */
#include "fastmath.h"
#include "kernels.h"

void nl_ada_forward(float *out, const float *x, const float *s, const float *h, int ld, float k, int B, int T, int C) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < (size_t)B * T; n++) {
        const size_t b = n / (size_t)T;
        const float *sb = s + b * (size_t)ld, *hb = h ? h + b * (size_t)ld : NULL, *xn = x + n * C;
        float *o = out + n * C;
        for (int c = 0; c < C; c++) o[c] = xn[c] * (k + sb[c]) + (hb ? hb[c] : 0.0f);
    }
}

void nl_ada_backward(float *dx, float *ds, float *dh, const float *dout, const float *x, const float *s, int ld,
                     float k, int B, int T, int C) {
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        float *dsb = ds + (size_t)b * ld, *dhb = dh ? dh + (size_t)b * ld : NULL;
        const float *sb = s + (size_t)b * ld;
        for (int t = 0; t < T; t++) {
            const size_t n = (size_t)b * T + t;
            const float *g = dout + n * C, *xn = x + n * C;
            float *d = dx + n * C;
            for (int c = 0; c < C; c++) {
                const float gc = g[c];
                dsb[c] += gc * xn[c];
                if (dhb) dhb[c] += gc;
                d[c] = gc * (k + sb[c]);
            }
        }
    }
}

void nl_silu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = inp[i] / (1.0f + nl_expf(-inp[i]));
}

void nl_silu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float sg = 1.0f / (1.0f + nl_expf(-inp[i]));
        dinp[i] = dout[i] * sg * (1.0f + inp[i] * (1.0f - sg));
    }
}
