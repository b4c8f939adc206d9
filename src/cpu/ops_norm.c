/* ops_norm.c -- LayerNorm and RMSNorm forward/backward (docs/methods.md §1), and column sums.
 * LayerNorm: y = w*(x-mu)*rstd + b,  rstd = 1/sqrt(var + eps) (biased var).
 * RMSNorm:   y = w*x*rstd,           rstd = 1/sqrt(mean(x^2) + eps).
 * Backward with gh = w * dL/dy (times the output scale):
 *   dx = rstd * (gh - mean(gh) - xh * mean(gh*xh))   (LayerNorm; RMSNorm drops the mean(gh) term). */
#include "normlab.h"
#include "common.h"
#include "kernels.h"
#include "lanes.h"

#include <math.h>
#include <stdlib.h>

/* Row chunks: the parameter gradients of nl_norm_backward and the column sums of nl_colsum add each
 * chunk of ROW_CHUNK rows into its own partial row (rows in order), then the partials in chunk order.
 * The chunking is fixed, so the result does not depend on the thread count; each row is read once, in
 * memory order (a column-block walk strides a row's width per row: a new page every row or two). */
enum { ROW_CHUNK = 32 };

/* nchunk * cols floats of partial rows, grown on demand and kept for the process (one caller thread
 * at a time, as the model calls its backend) */
static float *partials(size_t nchunk, int cols) {
    static float *buf;
    static size_t cap;
    const size_t n = nchunk * (size_t)cols;
    if (n > cap) {
        free(buf);
        buf = nl_xmalloc(n * sizeof *buf);
        cap = n;
    }
    return buf;
}

/* out[i] += sum over chunks of part[ch * cols + i], chunks in order */
static void add_partials(float *out, const float *part, size_t nchunk, int cols) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < cols; i++) {
        float s = 0.0f;
        for (size_t ch = 0; ch < nchunk; ch++) s += part[ch * (size_t)cols + (size_t)i];
        out[i] += s;
    }
}

void nl_norm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                     float scale, int type, float eps, size_t N, int C) {
    const int ln = type == NL_LAYERNORM;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        const float m = ln ? nl_lanes_sum(x, C) / (float)C : 0.0f;
        const float s = 1.0f / sqrtf(nl_lanes_sqdev(x, m, C) / (float)C + eps);
        float *y = out + n * C;
        if (ln && b)
#pragma omp simd
            for (int i = 0; i < C; i++) y[i] = scale * ((x[i] - m) * s * w[i] + b[i]);
        else
#pragma omp simd
            for (int i = 0; i < C; i++) y[i] = scale * ((x[i] - m) * s * w[i]);
        mean[n] = m;
        rstd[n] = s;
    }
}

void nl_norm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                      const float *mean, const float *rstd, float scale, int type, size_t N, int C) {
    const int ln = type == NL_LAYERNORM;
    const size_t nchunk = (N + ROW_CHUNK - 1) / ROW_CHUNK;
    float *pw = partials(2 * nchunk, C), *pb = pw + nchunk * (size_t)C;
#pragma omp parallel for schedule(static)
    for (size_t ch = 0; ch < nchunk; ch++) {
        float *aw = pw + ch * (size_t)C, *ab = pb + ch * (size_t)C;
        for (int i = 0; i < C; i++) aw[i] = ab[i] = 0.0f;
        const size_t n1 = (ch + 1) * ROW_CHUNK < N ? (ch + 1) * ROW_CHUNK : N;
        for (size_t n = ch * ROW_CHUNK; n < n1; n++) {
            const float *x = inp + n * C, *g = dout + n * C;
            const float m = mean[n], s = rstd[n];
            float acc_gh[NL_LANES] = { 0 }, acc_ghxh[NL_LANES] = { 0 };
            for (int i0 = 0; i0 < C; i0 += NL_LANES) {
                const int k1 = C - i0 < NL_LANES ? C - i0 : NL_LANES;
#pragma omp simd
                for (int k = 0; k < k1; k++) {
                    const int i = i0 + k;
                    const float gh = scale * g[i] * w[i];
                    acc_gh[k] += gh;
                    acc_ghxh[k] += gh * ((x[i] - m) * s);
                }
            }
            const float mgh = ln ? nl_lanes_fold(acc_gh) / (float)C : 0.0f, mghxh = nl_lanes_fold(acc_ghxh) / (float)C;
            float *dx = dinp + n * C;
#pragma omp simd
            for (int i = 0; i < C; i++) {
                const float xh = (x[i] - m) * s, gs = scale * g[i];
                dx[i] += s * (gs * w[i] - mgh - xh * mghxh);
                aw[i] += gs * xh;
                ab[i] += gs;
            }
        }
    }
    add_partials(dw, pw, nchunk, C);
    if (db) add_partials(db, pb, nchunk, C);
}

void nl_colsum(float *out, const float *x, size_t N, int cols, int ld) {
    const size_t nchunk = (N + ROW_CHUNK - 1) / ROW_CHUNK;
    float *part = partials(nchunk, cols);
#pragma omp parallel for schedule(static)
    for (size_t ch = 0; ch < nchunk; ch++) {
        float *acc = part + ch * (size_t)cols;
        for (int i = 0; i < cols; i++) acc[i] = 0.0f;
        const size_t n1 = (ch + 1) * ROW_CHUNK < N ? (ch + 1) * ROW_CHUNK : N;
        for (size_t n = ch * ROW_CHUNK; n < n1; n++) {
            const float *r = x + n * (size_t)ld;
#pragma omp simd
            for (int i = 0; i < cols; i++) acc[i] += r[i];
        }
    }
    add_partials(out, part, nchunk, cols);
}

/* ---------------------------------------------------------------- ScaleNorm, DyT, SeeDNorm */

/* ScaleNorm: y = scale * g * x * r, r = 1/sqrt(sum(x^2) + eps) (one scalar g).
 * Backward with xh = x r: dx = scale g r (dy - xh * sum(dy xh)); dg = scale * sum(dy xh). */
void nl_scalenorm_forward(float *out, float *rstd, const float *inp, const float *g, float scale, float eps, size_t N,
                          int C) {
    const float k = scale * g[0];
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float ss = 0.0f;
        for (int i = 0; i < C; i++) ss += x[i] * x[i];
        const float r = 1.0f / sqrtf(ss + eps);
        float *y = out + n * C;
        for (int i = 0; i < C; i++) y[i] = k * x[i] * r;
        rstd[n] = r;
    }
}

void nl_scalenorm_backward(float *dinp, float *dg, const float *dout, const float *inp, const float *g,
                           const float *rstd, float scale, size_t N, int C) {
    const float k = scale * g[0];
    double acc = 0.0;
    /* the per-row dots are summed in row order after the parallel loop: deterministic */
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C, *d = dout + n * C;
        const float r = rstd[n];
        float dot = 0.0f;
        for (int i = 0; i < C; i++) dot += d[i] * x[i] * r;
        float *dx = dinp + n * C;
        for (int i = 0; i < C; i++) dx[i] += k * r * (d[i] - x[i] * r * dot);
    }
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C, *d = dout + n * C;
        float dot = 0.0f;
        for (int i = 0; i < C; i++) dot += d[i] * x[i];
        acc += (double)(dot * rstd[n]);
    }
    dg[0] += (float)(scale * acc);
}

/* DyT: y = scale * (w * tanh(alpha x) + b), alpha one scalar (b may be NULL). */
void nl_dyt_forward(float *out, const float *inp, const float *w, const float *b, const float *alpha, float scale,
                    size_t N, int C) {
    const float a = alpha[0];
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float *y = out + n * C;
        for (int i = 0; i < C; i++) y[i] = scale * (w[i] * tanhf(a * x[i]) + (b ? b[i] : 0.0f));
    }
}

/* dx = scale dy w alpha (1 - t^2); dw = scale sum dy t; db = scale sum dy;
 * dalpha = scale sum dy w x (1 - t^2), t = tanh(alpha x). */
void nl_dyt_backward(float *dinp, float *dw, float *db, float *dalpha, const float *dout, const float *inp,
                     const float *w, const float *alpha, float scale, size_t N, int C) {
    const float a = alpha[0];
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C, *d = dout + n * C;
        float *dx = dinp + n * C;
        for (int i = 0; i < C; i++) {
            const float t = tanhf(a * x[i]);
            dx[i] += scale * d[i] * w[i] * a * (1.0f - t * t);
        }
    }
    const int nblk = (C + NL_COL_BLOCK - 1) / NL_COL_BLOCK;
    double acca = 0.0;
    for (size_t n = 0; n < N; n++) { /* row order: deterministic */
        const float *x = inp + n * C, *d = dout + n * C;
        float s = 0.0f;
        for (int i = 0; i < C; i++) {
            const float t = tanhf(a * x[i]);
            s += d[i] * w[i] * x[i] * (1.0f - t * t);
        }
        acca += s;
    }
    dalpha[0] += (float)(scale * acca);
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        const int c0 = blk * NL_COL_BLOCK, c1 = c0 + NL_COL_BLOCK < C ? c0 + NL_COL_BLOCK : C;
        float accw[NL_COL_BLOCK] = { 0 }, accb[NL_COL_BLOCK] = { 0 };
        for (size_t n = 0; n < N; n++) {
            const float *x = inp + n * C, *d = dout + n * C;
            for (int i = c0; i < c1; i++) {
                accw[i - c0] += scale * d[i] * tanhf(a * x[i]);
                accb[i - c0] += scale * d[i];
            }
        }
        for (int i = c0; i < c1; i++) {
            dw[i] += accw[i - c0];
            if (db) db[i] += accb[i - c0];
        }
    }
}

/* SeeDNorm: y = scale * (s * alpha + w) * x * r, s = tanh(beta . x), r = 1/sqrt(mean(x^2) + eps).
 * Saves bx = beta . x (not s: 1 - s^2 is taken as sech^2(bx), exact where tanh saturates) and r per
 * row. Backward with xh = x r, gain k = s alpha + w, gh = scale dy k:
 *   dx = r (gh - xh mean(gh xh)) + ds sech^2(bx) beta,  ds = scale sum(dy alpha xh);
 *   dw = scale sum dy xh; dalpha = scale sum dy xh s; dbeta = sum ds sech^2(bx) x. */
void nl_seednorm_forward(float *out, float *bxv, float *rstd, const float *inp, const float *w, const float *alpha,
                         const float *beta, float scale, float eps, size_t N, int C) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float ss = 0.0f, bx = 0.0f;
        for (int i = 0; i < C; i++) ss += x[i] * x[i], bx += beta[i] * x[i];
        const float r = 1.0f / sqrtf(ss / (float)C + eps), s = tanhf(bx);
        float *y = out + n * C;
        for (int i = 0; i < C; i++) y[i] = scale * (s * alpha[i] + w[i]) * x[i] * r;
        bxv[n] = bx;
        rstd[n] = r;
    }
}

static float sech2f(float x) {
    const float ch = coshf(x); /* inf for |x| > 89: sech^2 = 0 */
    return 1.0f / (ch * ch);
}

void nl_seednorm_backward(float *dinp, float *dw, float *dalpha, float *dbeta, const float *dout, const float *inp,
                          const float *w, const float *alpha, const float *beta, const float *bxv, const float *rstd,
                          float scale, size_t N, int C) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C, *d = dout + n * C;
        const float r = rstd[n], s = tanhf(bxv[n]);
        double sum_ghxh = 0.0, ds = 0.0;
        for (int i = 0; i < C; i++) {
            const float xh = x[i] * r;
            sum_ghxh += scale * d[i] * (s * alpha[i] + w[i]) * xh;
            ds += scale * d[i] * alpha[i] * xh;
        }
        const float m = (float)(sum_ghxh / C), dbx = (float)ds * sech2f(bxv[n]);
        float *dx = dinp + n * C;
        for (int i = 0; i < C; i++) {
            const float xh = x[i] * r;
            dx[i] += r * (scale * d[i] * (s * alpha[i] + w[i]) - xh * m) + dbx * beta[i];
        }
    }
    const int nblk = (C + NL_COL_BLOCK - 1) / NL_COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        const int c0 = blk * NL_COL_BLOCK, c1 = c0 + NL_COL_BLOCK < C ? c0 + NL_COL_BLOCK : C;
        double accw[NL_COL_BLOCK] = { 0 }, acca[NL_COL_BLOCK] = { 0 }, accb[NL_COL_BLOCK] = { 0 };
        for (size_t n = 0; n < N; n++) {
            const float *x = inp + n * C, *d = dout + n * C;
            const float r = rstd[n], s = tanhf(bxv[n]);
            double ds = 0.0; /* recomputed per block: cheap next to the O(C) row it scans */
            for (int i = 0; i < C; i++) ds += scale * d[i] * alpha[i] * x[i] * r;
            const double dbx = ds * sech2f(bxv[n]);
            for (int i = c0; i < c1; i++) {
                accw[i - c0] += scale * d[i] * x[i] * r;
                acca[i - c0] += scale * d[i] * x[i] * r * s;
                accb[i - c0] += dbx * x[i];
            }
        }
        for (int i = c0; i < c1; i++) {
            dw[i] += (float)accw[i - c0];
            dalpha[i] += (float)acca[i - c0];
            dbeta[i] += (float)accb[i - c0];
        }
    }
}

/* ---------------------------------------------------------------- CRMSNorm */

/* CRMSNorm (Jiang et al. 2023): the RMS of a zero-mean vector from its first C-1 coordinates,
 * q = (sum_{i<C-1} x_i^2 + (sum_{i<C-1} x_i)^2) / C + eps; y = scale * w * x / sqrt(q).
 * Saves S1 = sum_{i<C-1} x_i and r = 1/sqrt(q). On a zero-mean x it equals RMSNorm.
 * Backward with gh = scale w dy, xh = x r, dot = sum(gh xh):
 *   dx_j = r (gh_j - (xh_j + S1 r) dot / C) for j < C-1, dx_{C-1} = r gh_{C-1}. */
void nl_crmsnorm_forward(float *out, float *s1v, float *rstd, const float *inp, const float *w, float scale, float eps,
                         size_t N, int C) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float s1 = 0.0f, s2 = 0.0f;
        for (int i = 0; i < C - 1; i++) s1 += x[i], s2 += x[i] * x[i];
        const float r = 1.0f / sqrtf((s2 + s1 * s1) / (float)C + eps);
        float *y = out + n * C;
        for (int i = 0; i < C; i++) y[i] = scale * w[i] * x[i] * r;
        s1v[n] = s1;
        rstd[n] = r;
    }
}

void nl_crmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w, const float *s1v,
                          const float *rstd, float scale, size_t N, int C) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C, *d = dout + n * C;
        const float r = rstd[n], s1r = s1v[n] * r;
        float dot = 0.0f;
        for (int i = 0; i < C; i++) dot += scale * w[i] * d[i] * x[i] * r;
        const float k = dot / (float)C;
        float *dx = dinp + n * C;
        for (int i = 0; i < C - 1; i++) dx[i] += r * (scale * w[i] * d[i] - (x[i] * r + s1r) * k);
        dx[C - 1] += r * scale * w[C - 1] * d[C - 1];
    }
    const int nblk = (C + NL_COL_BLOCK - 1) / NL_COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        const int c0 = blk * NL_COL_BLOCK, c1 = c0 + NL_COL_BLOCK < C ? c0 + NL_COL_BLOCK : C;
        float acc[NL_COL_BLOCK] = { 0 };
        for (size_t n = 0; n < N; n++)
            for (int i = c0; i < c1; i++) acc[i - c0] += scale * dout[n * C + i] * inp[n * C + i] * rstd[n];
        for (int i = c0; i < c1; i++) dw[i] += acc[i - c0];
    }
}
