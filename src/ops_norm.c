/* ops_norm.c -- LayerNorm and RMSNorm forward/backward (ln-methods.md §1), and column sums.
 * LayerNorm: y = w*(x-mu)*rstd + b,  rstd = 1/sqrt(var + eps) (biased var).
 * RMSNorm:   y = w*x*rstd,           rstd = 1/sqrt(mean(x^2) + eps).
 * Backward with gh = w * dL/dy (times the output scale):
 *   dx = rstd * (gh - mean(gh) - xh * mean(gh*xh))   (LayerNorm; RMSNorm drops the mean(gh) term). */
#include "normlab.h"
#include "ops.h"

#include <math.h>

enum { COL_BLOCK = 64 }; /* columns per task in column reductions */

void nl_norm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                     const float *b, float scale, int type, float eps, size_t N, int C) {
    const int ln = type == NL_LAYERNORM;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float m = 0.0f;
        if (ln) {
            for (int i = 0; i < C; i++) m += x[i];
            m /= (float)C;
        }
        float v = 0.0f;
        for (int i = 0; i < C; i++) v += (x[i] - m) * (x[i] - m);
        float s = 1.0f / sqrtf(v / (float)C + eps);
        float *y = out + n * C;
        if (ln)
            for (int i = 0; i < C; i++) y[i] = scale * ((x[i] - m) * s * w[i] + b[i]);
        else
            for (int i = 0; i < C; i++) y[i] = scale * (x[i] * s * w[i]);
        mean[n] = m;
        rstd[n] = s;
    }
}

void nl_norm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                      const float *w, const float *mean, const float *rstd, float scale, int type,
                      size_t N, int C) {
    const int ln = type == NL_LAYERNORM;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C, *g = dout + n * C;
        const float m = mean[n], s = rstd[n];
        float sum_gh = 0.0f, sum_ghxh = 0.0f;
        for (int i = 0; i < C; i++) {
            float gh = scale * g[i] * w[i];
            sum_gh += gh;
            sum_ghxh += gh * (x[i] - m) * s;
        }
        const float mgh = ln ? sum_gh / (float)C : 0.0f, mghxh = sum_ghxh / (float)C;
        float *dx = dinp + n * C;
        for (int i = 0; i < C; i++) {
            float xh = (x[i] - m) * s;
            dx[i] += s * (scale * g[i] * w[i] - mgh - xh * mghxh);
        }
    }
    /* parameter gradients: reduce over rows, one column block per task, rows in order */
    const int nblk = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        const int c0 = blk * COL_BLOCK, c1 = c0 + COL_BLOCK < C ? c0 + COL_BLOCK : C;
        float accw[COL_BLOCK] = { 0 }, accb[COL_BLOCK] = { 0 };
        for (size_t n = 0; n < N; n++) {
            const float *x = inp + n * C, *g = dout + n * C;
            const float m = mean[n], s = rstd[n];
            for (int i = c0; i < c1; i++) {
                accw[i - c0] += scale * g[i] * (x[i] - m) * s;
                accb[i - c0] += scale * g[i];
            }
        }
        for (int i = c0; i < c1; i++) {
            dw[i] += accw[i - c0];
            if (db) db[i] += accb[i - c0];
        }
    }
}

void nl_colsum(float *out, const float *x, size_t N, int cols, int ld) {
    const int nblk = (cols + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        const int c0 = blk * COL_BLOCK, c1 = c0 + COL_BLOCK < cols ? c0 + COL_BLOCK : cols;
        float acc[COL_BLOCK] = { 0 };
        for (size_t n = 0; n < N; n++) {
            const float *r = x + n * (size_t)ld;
            for (int i = c0; i < c1; i++) acc[i - c0] += r[i];
        }
        for (int i = c0; i < c1; i++) out[i] += acc[i - c0];
    }
}
