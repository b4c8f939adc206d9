/* ops_sphere.c -- the kernels of nGPT (Loshchilov et al., arXiv:2410.01131; docs/methods.md §2.16):
 * L2 normalisation with per-channel scales, the eigen-learning-rate interpolation, per-column scales and
 * the projection of weight rows or columns back onto the unit sphere. Semantics in kernels.h. */
#include "kernels.h"
#include "lanes.h"

#include <math.h>

#define L2_TINY 1e-12f /* |x| below it: divide by it instead (F.normalize's clamp); a zero vector stays zero */

static float sgnf(float x) { return (float)((x > 0.0f) - (x < 0.0f)); }

void nl_l2norm_forward(float *out, float *rstd, const float *inp, const float *s, float f, size_t N, int C, int G) {
    const int ng = C / G;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++)
        for (int g = 0; g < ng; g++) {
            const float *x = inp + n * C + (size_t)g * G;
            float ss = 0.0f;
            for (int i = 0; i < G; i++) ss += x[i] * x[i];
            const float r = 1.0f / fmaxf(sqrtf(ss), L2_TINY);
            rstd[n * ng + g] = r;
            float *o = out + n * C + (size_t)g * G;
            for (int i = 0; i < G; i++) o[i] = f * (s ? s[g * G + i] : 1.0f) * x[i] * r;
        }
}

void nl_l2norm_backward(float *dinp, float *ds, const float *dout, const float *inp, const float *s, const float *rstd,
                        float f, size_t N, int C, int G) {
    const int ng = C / G;
    if (ds) { /* ds[c] += f * sum_n dout * xhat, before dinp (which may not alias dout anyway) */
        const int nblk = (C + NL_COL_BLOCK - 1) / NL_COL_BLOCK;
#pragma omp parallel for schedule(static)
        for (int blk = 0; blk < nblk; blk++) {
            const int c0 = blk * NL_COL_BLOCK, c1 = c0 + NL_COL_BLOCK < C ? c0 + NL_COL_BLOCK : C;
            float acc[NL_COL_BLOCK] = { 0 };
            for (size_t n = 0; n < N; n++)
                for (int c = c0; c < c1; c++) acc[c - c0] += dout[n * C + c] * inp[n * C + c] * rstd[n * ng + c / G];
            for (int c = c0; c < c1; c++) ds[c] += f * acc[c - c0];
        }
    }
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++)
        for (int g = 0; g < ng; g++) {
            const size_t o = n * C + (size_t)g * G;
            const float r = rstd[n * ng + g];
            const int clamped = r >= 1.0f / L2_TINY; /* constant divisor: no projection */
            float dot = 0.0f;
            for (int i = 0; i < G; i++) dot += f * (s ? s[g * G + i] : 1.0f) * dout[o + i] * inp[o + i] * r;
            if (clamped) dot = 0.0f;
            for (int i = 0; i < G; i++) {
                const float dy = f * (s ? s[g * G + i] : 1.0f) * dout[o + i];
                dinp[o + i] += r * (dy - inp[o + i] * r * dot);
            }
        }
}

void nl_lerp_forward(float *out, const float *x, const float *y, const float *alpha, float f, size_t N, int C) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const size_t i = n * C + c;
            out[i] = x[i] + fabsf(f * alpha[c]) * (y[i] - x[i]);
        }
}

void nl_lerp_backward(float *dx, float *dy, float *dalpha, const float *dout, const float *x, const float *y,
                      const float *alpha, float f, size_t N, int C) {
    const int nblk = (C + NL_COL_BLOCK - 1) / NL_COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        const int c0 = blk * NL_COL_BLOCK, c1 = c0 + NL_COL_BLOCK < C ? c0 + NL_COL_BLOCK : C;
        float acc[NL_COL_BLOCK] = { 0 };
        for (size_t n = 0; n < N; n++)
            for (int c = c0; c < c1; c++) acc[c - c0] += dout[n * C + c] * (y[n * C + c] - x[n * C + c]);
        for (int c = c0; c < c1; c++) dalpha[c] += f * sgnf(f * alpha[c]) * acc[c - c0];
    }
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const size_t i = n * C + c;
            const float a = fabsf(f * alpha[c]), g = dout[i];
            dx[i] = (1.0f - a) * g;
            dy[i] = a * g;
        }
}

void nl_colscale_forward(float *out, const float *inp, const float *s, float f, size_t N, int C, int ld) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++)
        for (int c = 0; c < C; c++) out[n * ld + c] = f * s[c] * inp[n * ld + c];
}

void nl_colscale_backward(float *dinp, float *ds, const float *dout, const float *inp, const float *s, float f,
                          size_t N, int C, int ld) {
    const int nblk = (C + NL_COL_BLOCK - 1) / NL_COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) { /* each element is read, then (dinp may alias dout) written */
        const int c0 = blk * NL_COL_BLOCK, c1 = c0 + NL_COL_BLOCK < C ? c0 + NL_COL_BLOCK : C;
        float acc[NL_COL_BLOCK] = { 0 };
        for (size_t n = 0; n < N; n++)
            for (int c = c0; c < c1; c++) {
                const float g = dout[n * ld + c];
                acc[c - c0] += g * inp[n * ld + c];
                dinp[n * ld + c] = f * s[c] * g;
            }
        for (int c = c0; c < c1; c++) ds[c] += f * acc[c - c0];
    }
}

void nl_unit_project(float *w, size_t rows, int cols, int by_col) {
    if (!by_col) {
#pragma omp parallel for schedule(static)
        for (size_t r = 0; r < rows; r++) {
            float *x = w + r * cols;
            double ss = 0.0;
            for (int c = 0; c < cols; c++) ss += (double)x[c] * x[c];
            if (ss > 0) {
                const double k = 1.0 / sqrt(ss);
                for (int c = 0; c < cols; c++) x[c] = (float)(x[c] * k);
            }
        }
        return;
    }
    const int nblk = (cols + NL_COL_BLOCK - 1) / NL_COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        const int c0 = blk * NL_COL_BLOCK, c1 = c0 + NL_COL_BLOCK < cols ? c0 + NL_COL_BLOCK : cols;
        double ss[NL_COL_BLOCK] = { 0 };
        for (size_t r = 0; r < rows; r++)
            for (int c = c0; c < c1; c++) ss[c - c0] += (double)w[r * cols + c] * w[r * cols + c];
        for (int c = c0; c < c1; c++) ss[c - c0] = ss[c - c0] > 0 ? 1.0 / sqrt(ss[c - c0]) : 1.0;
        for (size_t r = 0; r < rows; r++)
            for (int c = c0; c < c1; c++) w[r * cols + c] = (float)(w[r * cols + c] * ss[c - c0]);
    }
}
