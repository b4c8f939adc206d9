/* ops_misc.c -- embedding lookup, GELU, SwiGLU, residual add, the cross-entropy head, and elementwise
 * scale/shift and column-block copies. */
#include "fastmath.h"
#include "kernels.h"
#include "lanes.h"

#include <math.h>
#include <string.h>

void nl_encoder_forward(float *out, const int *tokens, const float *wte, const float *wpe, int B, int T, int C) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < (size_t)B * T; n++) {
        const float *e = wte + (size_t)tokens[n] * C;
        float *o = out + n * C;
        if (!wpe) {
            memcpy(o, e, (size_t)C * sizeof(float));
            continue;
        }
        const float *p = wpe + (n % T) * C;
#pragma omp simd
        for (int i = 0; i < C; i++) o[i] = e[i] + p[i];
    }
}

void nl_encoder_backward(float *dwte, float *dwpe, const float *dout, const int *tokens, int B, int T, int C) {
    /* column blocks in parallel, rows in order: deterministic scatter-add */
    const int nblk = (C + NL_COL_BLOCK - 1) / NL_COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        const int c0 = blk * NL_COL_BLOCK, c1 = c0 + NL_COL_BLOCK < C ? c0 + NL_COL_BLOCK : C;
        for (size_t n = 0; n < (size_t)B * T; n++) {
            const float *g = dout + n * C;
            float *e = dwte + (size_t)tokens[n] * C;
            for (int i = c0; i < c1; i++) e[i] += g[i];
            if (!dwpe) continue;
            float *p = dwpe + (n % T) * C;
            for (int i = c0; i < c1; i++) p[i] += g[i];
        }
    }
}

static const float GELU_K = 0.7978845608028654f; /* sqrt(2/pi) */

void nl_gelu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + nl_tanhf(GELU_K * (x + 0.044715f * x * x * x)));
    }
}

void nl_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i], u = GELU_K * (x + 0.044715f * x * x * x), t = nl_tanhf(u);
        float du = GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] = dout[i] * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du);
    }
}

void nl_swiglu_forward(float *out, const float *inp, size_t N, int F) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *g = inp + n * 2 * F, *u = g + F;
        float *y = out + n * F;
#pragma omp simd
        for (int i = 0; i < F; i++) y[i] = g[i] / (1.0f + nl_expf(-g[i])) * u[i];
    }
}

/* d gate = dy u sig (1 + g (1 - sig)), d up = dy g sig */
void nl_swiglu_backward(float *dinp, const float *inp, const float *dout, size_t N, int F) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const float *g = inp + n * 2 * F, *u = g + F, *dy = dout + n * F;
        float *dg = dinp + n * 2 * F, *du = dg + F;
#pragma omp simd
        for (int i = 0; i < F; i++) {
            const float sig = 1.0f / (1.0f + nl_expf(-g[i]));
            dg[i] = dy[i] * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
            du[i] = dy[i] * g[i] * sig;
        }
    }
}

void nl_residual_forward(float *out, const float *x, const float *y, float alpha, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = alpha * x[i] + y[i];
}

/* Per row: the max (lanes), then exp(z - max) with its sum in NL_LANES double lanes (a 50257-wide row
 * keeps the loss's precision), then the gradient scaling: three vectorised passes over the row. */
void nl_xent(float *losses, float *logits, const int *targets, size_t N, int V, int ld, float dscale) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        float *z = logits + n * (size_t)ld;
        const float zt = z[targets[n]], mx = nl_lanes_max(z, V);
        double acc[NL_LANES] = { 0 };
        for (int i0 = 0; i0 < V; i0 += NL_LANES) {
            const int k1 = V - i0 < NL_LANES ? V - i0 : NL_LANES;
#pragma omp simd
            for (int k = 0; k < k1; k++) {
                z[i0 + k] = nl_expf(z[i0 + k] - mx); /* the logits row is scratch from here on */
                acc[k] += z[i0 + k];
            }
        }
        for (int w = NL_LANES / 2; w > 0; w /= 2)
            for (int k = 0; k < w; k++) acc[k] += acc[k + w];
        const double sum = acc[0];
        losses[n] = (float)((double)mx + log(sum) - (double)zt);
        if (dscale == 0.0f) continue;
        const float k = dscale / (float)sum;
#pragma omp simd
        for (int i = 0; i < V; i++) z[i] *= k;
        z[targets[n]] -= dscale;
    }
}

void nl_headscale_forward(float *out, const float *inp, const float *g, size_t N, int C, int NH) {
    const int hs = C / NH;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++)
        for (int i = 0; i < C; i++) out[n * C + i] = g[i / hs] * inp[n * C + i];
}

void nl_headscale_backward(float *dinp, float *dg, const float *dout, const float *inp, const float *g, size_t N, int C,
                           int NH) {
    const int hs = C / NH;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++)
        for (int i = 0; i < C; i++) dinp[n * C + i] = g[i / hs] * dout[n * C + i];
#pragma omp parallel for schedule(static)
    for (int h = 0; h < NH; h++) { /* one head per task, rows in order */
        double acc = 0.0;
        for (size_t n = 0; n < N; n++) {
            float s = 0.0f;
            for (int i = h * hs; i < (h + 1) * hs; i++) s += dout[n * C + i] * inp[n * C + i];
            acc += s;
        }
        dg[h] += (float)acc;
    }
}

void nl_chanres_forward(float *out, const float *x, const float *y, const float *lam, size_t N, int C) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++)
        for (int i = 0; i < C; i++) out[n * C + i] = lam[i] * x[n * C + i] + y[n * C + i];
}

void nl_chanres_backward(float *dx, float *dlam, const float *dout, const float *x, const float *lam, size_t N, int C) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++)
        for (int i = 0; i < C; i++) dx[n * C + i] = lam[i] * dout[n * C + i];
    const int nblk = (C + NL_COL_BLOCK - 1) / NL_COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        const int c0 = blk * NL_COL_BLOCK, c1 = c0 + NL_COL_BLOCK < C ? c0 + NL_COL_BLOCK : C;
        float acc[NL_COL_BLOCK] = { 0 };
        for (size_t n = 0; n < N; n++)
            for (int i = c0; i < c1; i++) acc[i - c0] += dout[n * C + i] * x[n * C + i];
        for (int i = c0; i < c1; i++) dlam[i] += acc[i - c0];
    }
}

void nl_gain_forward(float *out, const float *inp, const float *g, size_t n) {
    const float k = g[0];
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = k * inp[i];
}

void nl_gain_backward(float *dinp, float *dg, const float *dout, const float *inp, const float *g, size_t n) {
    const float k = g[0];
    double acc = 0.0; /* fixed chunks in order: deterministic; before dinp, so dinp may alias dout */
    for (size_t c0 = 0; c0 < n; c0 += 4096) {
        float s = 0.0f;
        for (size_t i = c0; i < n && i < c0 + 4096; i++) s += dout[i] * inp[i];
        acc += s;
    }
    dg[0] += (float)acc;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dinp[i] = k * dout[i];
}

static float silu_of(float g) { return g / (1.0f + expf(-g)); }

void nl_gpas_forward(float *out, const float *inp, const float *g, size_t n) {
    const float k = 1.0f - silu_of(g[0]);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = k * inp[i];
}

void nl_gpas_backward(float *dg, const float *dout, const float *inp, const float *g, size_t n) {
    const float sig = 1.0f / (1.0f + expf(-g[0])), dsilu = sig * (1.0f + g[0] * (1.0f - sig));
    double acc = 0.0; /* fixed chunks in order: deterministic */
    for (size_t c0 = 0; c0 < n; c0 += 4096) {
        float s = 0.0f;
        for (size_t i = c0; i < n && i < c0 + 4096; i++) s += dout[i] * inp[i];
        acc += s;
    }
    dg[0] -= dsilu * (float)acc;
}

void nl_scale_shift(float *out, const float *x, float a, float b, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = a * x[i] + b;
}

void nl_copy_cols(float *dst, int ldd, const float *src, int lds, size_t rows, int cols) {
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++)
        memcpy(dst + r * (size_t)ldd, src + r * (size_t)lds, (size_t)cols * sizeof(float));
}
