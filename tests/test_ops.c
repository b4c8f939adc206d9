/* test_ops.c -- every CPU op: forward against a naive double-precision version, backward against
 * central finite differences of that double version. The scalar loss is L = sum(out * wout) with
 * random wout, so the kernel's backward runs with dout = wout. Tolerances: forward 1e-5 and backward
 * 1e-4 relative (fp32 kernels with accumulations over <= 64 terms against double references). */
#include "check.h"
#include "fastmath.h"
#include "normlab.h"
#include "cpu/kernels.h"
#include "cpu/lowp.h"
#include "tests.h"

#include <complex.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FWD_TOL 1e-5
#define BWD_TOL 1e-4

static double dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ---------------------------------------------------------------- norms */

typedef struct {
    int N, C, type;
    double scale, eps, *x, *w, *b, *wout, *out;
} norm_ctx;

static void norm_ref(norm_ctx *c) {
    for (int n = 0; n < c->N; n++) {
        const double *x = c->x + n * c->C;
        double m = 0, v = 0;
        if (c->type == NL_LAYERNORM) {
            for (int i = 0; i < c->C; i++) m += x[i];
            m /= c->C;
        }
        for (int i = 0; i < c->C; i++) v += (x[i] - m) * (x[i] - m);
        double s = 1.0 / sqrt(v / c->C + c->eps);
        for (int i = 0; i < c->C; i++)
            c->out[n * c->C + i] = c->scale * ((x[i] - m) * s * c->w[i] + (c->type == NL_LAYERNORM ? c->b[i] : 0));
    }
}

static double norm_loss(void *p) {
    norm_ctx *c = p;
    norm_ref(c);
    return dot(c->out, c->wout, (size_t)c->N * c->C);
}

/* two shapes: one row block of the lane reductions plus a tail; and more rows than one row chunk of the
 * parameter-gradient reduction (ops_norm.c), several lane blocks and a tail */
int test_ops_norm(void) {
    int fails = 0;
    nl_rng r;
    nl_rng_seed(&r, 1);
    const int shapes[2][2] = { { 5, 24 }, { 70, 40 } };
    for (int sh = 0; sh < 2; sh++) {
        const int N = shapes[sh][0], C = shapes[sh][1], NC = N * C;
        float *fb = calloc((size_t)7 * NC + 3 * C + 2 * N, sizeof(float));
        double *db_ = calloc((size_t)4 * NC + 2 * C, sizeof(double));
        float *x = fb, *wout = x + NC, *out = wout + NC, *dx = out + NC, *w = dx + NC, *b = w + C, *dw = b + C,
              *mean = dw + C, *rstd = mean + N, *db = rstd + N;
        double *X = db_, *WO = X + NC, *O = WO + NC, *g = O + NC, *W = g + NC, *Bb = W + C;
        for (int type = 0; type < NL_NORM_TYPE_COUNT; type++) {
            for (int sc = 0; sc < 2; sc++) {
                memset(dx, 0, (size_t)NC * sizeof *dx), memset(dw, 0, (size_t)C * sizeof *dw),
                        memset(db, 0, (size_t)C * sizeof *db);
                nl_fill(&r, x, NC, 2.0);
                for (int i = 0; i < C; i++) x[i] += 3.0f; /* a row with a large mean */
                nl_fill(&r, w, C, 1.0);
                nl_fill(&r, b, C, 1.0);
                nl_fill(&r, wout, NC, 1.0);
                nl_to_double(x, X, NC), nl_to_double(w, W, C), nl_to_double(b, Bb, C), nl_to_double(wout, WO, NC);
                norm_ctx c = { N, C, type, sc ? 0.5 : 1.0, 1e-5, X, W, Bb, WO, O };
                norm_ref(&c);
                nl_norm_forward(out, mean, rstd, x, w, b, (float)c.scale, type, 1e-5f, (size_t)N, C);
                fails += nl_check_rel(type ? "rmsnorm forward" : "layernorm forward", out, O, NC, FWD_TOL);
                nl_norm_backward(dx, dw, db, wout, x, w, mean, rstd, (float)c.scale, type, (size_t)N, C);
                nl_fd_grad(norm_loss, &c, X, NC, g);
                fails += nl_check_rel("norm dx", dx, g, NC, BWD_TOL);
                nl_fd_grad(norm_loss, &c, W, C, g);
                fails += nl_check_rel("norm dw", dw, g, C, BWD_TOL);
                if (type == NL_LAYERNORM) {
                    nl_fd_grad(norm_loss, &c, Bb, C, g);
                    fails += nl_check_rel("norm db", db, g, C, BWD_TOL);
                }
            }
        }
        free(fb);
        free(db_);
    }
    return fails;
}

/* ScaleNorm, DyT, SeeDNorm: one double reference for the three (kind = NL_SCALENORM, NL_DYT, NL_SEEDNORM). */
typedef struct {
    int N, C, kind;
    double scale, eps, *x, *w, *b, *al, *be, *wout, *out;
} xnorm_ctx;

static void xnorm_ref(xnorm_ctx *c) {
    for (int n = 0; n < c->N; n++) {
        const double *x = c->x + n * c->C;
        double *y = c->out + n * c->C, ss = 0, bx = 0;
        for (int i = 0; i < c->C; i++) ss += x[i] * x[i];
        for (int i = 0; i < c->C; i++) bx += c->be[i] * x[i];
        for (int i = 0; i < c->C; i++) {
            if (c->kind == NL_SCALENORM) y[i] = c->scale * c->w[0] * x[i] / sqrt(ss + c->eps);
            else if (c->kind == NL_DYT) y[i] = c->scale * (c->w[i] * tanh(c->al[0] * x[i]) + c->b[i]);
            else if (c->kind == NL_SEEDNORM)
                y[i] = c->scale * (tanh(bx) * c->al[i] + c->w[i]) * x[i] / sqrt(ss / c->C + c->eps);
            else { /* crmsnorm: the first C-1 coordinates */ double s1 = 0, s2 = 0;
                for (int j = 0; j < c->C - 1; j++) s1 += x[j], s2 += x[j] * x[j];
                y[i] = c->scale * c->w[i] * x[i] / sqrt((s2 + s1 * s1) / c->C + c->eps);
            }
        }
    }
}

static double xnorm_loss(void *p) {
    xnorm_ctx *c = p;
    xnorm_ref(c);
    return dot(c->out, c->wout, (size_t)c->N * c->C);
}

int test_ops_norm_types(void) {
    int fails = 0;
    nl_rng r;
    nl_rng_seed(&r, 11);
    static const char *const names[] = {
        [NL_SCALENORM] = "scalenorm", [NL_DYT] = "dyt", [NL_SEEDNORM] = "seednorm", [NL_CRMSNORM] = "crmsnorm"
    };
    for (int kind = NL_SCALENORM; kind <= NL_CRMSNORM; kind++) {
        enum { N = 5, C = 24 };
        float x[N * C], w[C], b[C], al[C], be[C], wout[N * C], out[N * C], s0[N], s1[N];
        float dx[N * C] = { 0 }, dw[C] = { 0 }, db[C] = { 0 }, dal[C] = { 0 }, dbe[C] = { 0 };
        double X[N * C], W[C], Bb[C], AL[C], BE[C], WO[N * C], O[N * C], g[N * C];
        nl_fill(&r, x, N * C, 1.5);
        for (int i = 0; i < C; i++) x[i] += 2.0f; /* a row with a large mean */
        nl_fill(&r, w, C, 1.0), nl_fill(&r, b, C, 1.0), nl_fill(&r, al, C, 0.7), nl_fill(&r, be, C, 0.3);
        nl_fill(&r, wout, N * C, 1.0);
        if (kind == NL_SCALENORM) w[0] = 4.0f;
        if (kind == NL_DYT) al[0] = 0.6f;
        nl_to_double(x, X, N * C), nl_to_double(w, W, C), nl_to_double(b, Bb, C), nl_to_double(al, AL, C);
        nl_to_double(be, BE, C), nl_to_double(wout, WO, N * C);
        xnorm_ctx c = { N, C, kind, 0.7, 1e-5, X, W, Bb, AL, BE, WO, O };
        xnorm_ref(&c);
        char label[64];
        const float sc = (float)c.scale;
        if (kind == NL_SCALENORM) {
            nl_scalenorm_forward(out, s1, x, w, sc, 1e-5f, N, C);
            nl_scalenorm_backward(dx, dw, wout, x, w, s1, sc, N, C);
        } else if (kind == NL_DYT) {
            nl_dyt_forward(out, x, w, b, al, sc, N, C);
            nl_dyt_backward(dx, dw, db, dal, wout, x, w, al, sc, N, C);
        } else if (kind == NL_CRMSNORM) {
            nl_crmsnorm_forward(out, s0, s1, x, w, sc, 1e-5f, N, C);
            nl_crmsnorm_backward(dx, dw, wout, x, w, s0, s1, sc, N, C);
        } else {
            nl_seednorm_forward(out, s0, s1, x, w, al, be, sc, 1e-5f, N, C);
            nl_seednorm_backward(dx, dw, dal, dbe, wout, x, w, al, be, s0, s1, sc, N, C);
        }
        snprintf(label, sizeof label, "%s forward", names[kind]);
        fails += nl_check_rel(label, out, O, N * C, FWD_TOL);
        snprintf(label, sizeof label, "%s dx", names[kind]);
        nl_fd_grad(xnorm_loss, &c, X, N * C, g);
        fails += nl_check_rel(label, dx, g, N * C, BWD_TOL);
        snprintf(label, sizeof label, "%s dw", names[kind]);
        nl_fd_grad(xnorm_loss, &c, W, kind == NL_SCALENORM ? 1 : C, g);
        fails += nl_check_rel(label, dw, g, kind == NL_SCALENORM ? 1 : C, BWD_TOL);
        if (kind == NL_DYT) {
            nl_fd_grad(xnorm_loss, &c, Bb, C, g);
            fails += nl_check_rel("dyt db", db, g, C, BWD_TOL);
            nl_fd_grad(xnorm_loss, &c, AL, 1, g);
            fails += nl_check_rel("dyt dalpha", dal, g, 1, BWD_TOL);
        }
        if (kind == NL_SEEDNORM) {
            nl_fd_grad(xnorm_loss, &c, AL, C, g);
            fails += nl_check_rel("seednorm dalpha", dal, g, C, BWD_TOL);
            nl_fd_grad(xnorm_loss, &c, BE, C, g);
            fails += nl_check_rel("seednorm dbeta", dbe, g, C, BWD_TOL);
        }
    }
    /* SeeDNorm with a saturated tanh (|beta . x| ~ 40): the backward stays finite and dalpha matches */
    {
        enum { N = 3, C = 16 };
        float x[N * C], w[C], al[C], be[C], wout[N * C], out[N * C], s0[N], s1[N];
        float dx[N * C] = { 0 }, dw[C] = { 0 }, dal[C] = { 0 }, dbe[C] = { 0 };
        double X[N * C], W[C], AL[C], BE[C], WO[N * C], O[N * C], g[C];
        nl_fill(&r, x, N * C, 1.0), nl_fill(&r, w, C, 1.0), nl_fill(&r, al, C, 1.0), nl_fill(&r, wout, N * C, 1.0);
        for (int i = 0; i < C; i++) be[i] = 2.5f * (x[i] > 0 ? 1.0f : -1.0f);
        nl_to_double(x, X, N * C), nl_to_double(w, W, C), nl_to_double(al, AL, C), nl_to_double(be, BE, C),
                nl_to_double(wout, WO, N * C);
        xnorm_ctx c = { N, C, NL_SEEDNORM, 1.0, 1e-5, X, W, NULL, AL, BE, WO, O };
        nl_seednorm_forward(out, s0, s1, x, w, al, be, 1.0f, 1e-5f, N, C);
        nl_seednorm_backward(dx, dw, dal, dbe, wout, x, w, al, be, s0, s1, 1.0f, N, C);
        nl_fd_grad(xnorm_loss, &c, AL, C, g);
        fails += nl_check_rel("seednorm dalpha, saturated tanh", dal, g, C, BWD_TOL);
    }
    return fails;
}

/* HeadScale, the per-channel residual weight and the scalar branch gain */
typedef struct {
    int N, C, NH;
    double *x, *y, *g, *wout;
    int kind; /* 0 headscale, 1 chanres, 2 gain */
} scal_ctx;

static double scal_loss(void *p) {
    scal_ctx *c = p;
    double s = 0;
    const int hs = c->C / c->NH;
    for (int n = 0; n < c->N; n++)
        for (int i = 0; i < c->C; i++) {
            const double x = c->x[n * c->C + i];
            const double v = c->kind == 0   ? c->g[i / hs] * x
                             : c->kind == 1 ? c->g[i] * x + c->y[n * c->C + i]
                                            : c->g[0] * x;
            s += c->wout[n * c->C + i] * v;
        }
    return s;
}

int test_ops_scales(void) {
    enum { N = 6, C = 12, NH = 3 };
    static const char *const names[] = { "headscale", "chanres", "gain" };
    nl_rng r;
    nl_rng_seed(&r, 12);
    int fails = 0;
    for (int kind = 0; kind < 3; kind++) {
        float x[N * C], y[N * C], g[C], wout[N * C], out[N * C], dx[N * C], dg[C] = { 0 };
        double X[N * C], Y[N * C], G[C], WO[N * C], O[N * C], gr[N * C];
        nl_fill(&r, x, N * C, 1), nl_fill(&r, y, N * C, 1), nl_fill(&r, g, C, 1), nl_fill(&r, wout, N * C, 1);
        nl_to_double(x, X, N * C), nl_to_double(y, Y, N * C), nl_to_double(g, G, C), nl_to_double(wout, WO, N * C);
        scal_ctx c = { N, C, NH, X, Y, G, WO, kind };
        const int ng = kind == 0 ? NH : kind == 1 ? C : 1;
        for (int i = 0; i < N * C; i++) { /* forward: the value each element contributes */
            const int hs = C / NH, ch = i % C;
            O[i] = kind == 0 ? G[ch / hs] * X[i] : kind == 1 ? G[ch] * X[i] + Y[i] : G[0] * X[i];
        }
        if (kind == 0) nl_headscale_forward(out, x, g, N, C, NH), nl_headscale_backward(dx, dg, wout, x, g, N, C, NH);
        if (kind == 1) nl_chanres_forward(out, x, y, g, N, C), nl_chanres_backward(dx, dg, wout, x, g, N, C);
        if (kind == 2) nl_gain_forward(out, x, g, N * C), nl_gain_backward(dx, dg, wout, x, g, N * C);
        char label[64];
        snprintf(label, sizeof label, "%s forward", names[kind]);
        fails += nl_check_rel(label, out, O, N * C, FWD_TOL);
        snprintf(label, sizeof label, "%s dx", names[kind]);
        nl_fd_grad(scal_loss, &c, X, N * C, gr);
        fails += nl_check_rel(label, dx, gr, N * C, BWD_TOL);
        snprintf(label, sizeof label, "%s dscale", names[kind]);
        nl_fd_grad(scal_loss, &c, G, ng, gr);
        fails += nl_check_rel(label, dg, gr, ng, BWD_TOL);
    }
    return fails;
}

/* ---------------------------------------------------------------- GPAS */

/* GPAS's stop-gradient form out = x - SiLU(g) sg(x) (arXiv:2506.22049): its backward is the gradient of
 * the surrogate x - SiLU(g) c with c a constant equal to x, so the finite differences are taken of that
 * surrogate (c held fixed while x moves): d/dx = 1 (the stream's gradient passes unchanged) and
 * d/dg = -SiLU'(g) c. The forward itself, (1 - SiLU(g)) x, has d/dx = 1 - SiLU(g): deliberately not
 * what the backward passes on, which the test checks too. */
typedef struct {
    int n, frozen; /* frozen: sg(x) held at c */
    double *x, *c, *g, *wout;
} gpas_ctx;

static double silu_d(double g) { return g / (1.0 + exp(-g)); }

static double gpas_loss(void *p) {
    gpas_ctx *k = p;
    double s = 0;
    for (int i = 0; i < k->n; i++) s += k->wout[i] * (k->x[i] - silu_d(k->g[0]) * (k->frozen ? k->c[i] : k->x[i]));
    return s;
}

int test_ops_gpas(void) {
    enum { N = 7, C = 12, NC = N * C };
    nl_rng r;
    nl_rng_seed(&r, 21);
    int fails = 0;
    for (int t = 0; t < 3; t++) {
        const float gates[3] = { 0.0f, 0.7f, -1.3f }; /* the init, and a gate on each side of 0 */
        float x[NC], wout[NC], out[NC], g[1] = { gates[t] }, dg[1] = { 0.25f };
        double X[NC], Cc[NC], G[1] = { gates[t] }, WO[NC], O[NC], gr[NC], gg[1];
        nl_fill(&r, x, NC, 1), nl_fill(&r, wout, NC, 1);
        nl_to_double(x, X, NC), nl_to_double(x, Cc, NC), nl_to_double(wout, WO, NC);
        for (int i = 0; i < NC; i++) O[i] = (1.0 - silu_d(G[0])) * X[i];
        nl_gpas_forward(out, x, g, NC);
        char label[64];
        snprintf(label, sizeof label, "gpas forward (g %g)", gates[t]);
        fails += nl_check_rel(label, out, O, NC, FWD_TOL);
        nl_gpas_backward(dg, wout, x, g, NC); /* accumulates onto 0.25 */
        gpas_ctx k = { NC, 1, X, Cc, G, WO };
        nl_fd_grad(gpas_loss, &k, G, 1, gg);
        gg[0] += 0.25;
        snprintf(label, sizeof label, "gpas dgate (g %g)", gates[t]);
        fails += nl_check_rel(label, dg, gg, 1, BWD_TOL);
        /* the stream: the surrogate's gradient is wout itself, the forward's is (1 - SiLU(g)) wout */
        nl_fd_grad(gpas_loss, &k, X, NC, gr);
        snprintf(label, sizeof label, "gpas d stream = dout (g %g)", gates[t]);
        fails += nl_check_rel(label, wout, gr, NC, BWD_TOL);
        k.frozen = 0;
        nl_fd_grad(gpas_loss, &k, X, NC, gr);
        float grf[NC];
        for (int i = 0; i < NC; i++) O[i] = (1.0 - silu_d(G[0])) * WO[i], grf[i] = (float)gr[i];
        snprintf(label, sizeof label, "gpas d forward = (1-SiLU(g)) dout (g %g)", gates[t]);
        fails += nl_check_rel(label, grf, O, NC, BWD_TOL);
    }
    return fails;
}

/* ---------------------------------------------------------------- linear */

typedef struct {
    int N, IC, OC;
    double *x, *w, *b, *wout, *out;
} lin_ctx;

static double lin_loss(void *p) {
    lin_ctx *c = p;
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->OC; o++) {
            double s = c->b[o];
            for (int i = 0; i < c->IC; i++) s += c->x[n * c->IC + i] * c->w[o * c->IC + i];
            c->out[n * c->OC + o] = s;
        }
    return dot(c->out, c->wout, (size_t)c->N * c->OC);
}

int test_ops_linear(void) {
    enum { N = 70, IC = 16, OC = 12 }; /* N: more rows than one row chunk of the bias gradient (nl_colsum) */
    nl_rng r;
    nl_rng_seed(&r, 2);
    float x[N * IC], w[OC * IC], b[OC], wout[N * OC], out[N * OC], dx[N * IC], dw[OC * IC] = { 0 }, db[OC] = { 0 };
    double X[N * IC], W[OC * IC], Bb[OC], WO[N * OC], O[N * OC], g[N * IC > OC * IC ? N * IC : OC * IC];
    nl_fill(&r, x, N * IC, 1), nl_fill(&r, w, OC * IC, 1), nl_fill(&r, b, OC, 1), nl_fill(&r, wout, N * OC, 1);
    nl_to_double(x, X, N * IC), nl_to_double(w, W, OC * IC), nl_to_double(b, Bb, OC), nl_to_double(wout, WO, N * OC);
    lin_ctx c = { N, IC, OC, X, W, Bb, WO, O };
    lin_loss(&c);
    int fails = 0;
    nl_linear_forward(out, x, w, b, N, IC, OC);
    fails += nl_check_rel("linear forward", out, O, N * OC, FWD_TOL);
    nl_linear_backward(dx, dw, db, wout, x, w, N, IC, OC);
    nl_fd_grad(lin_loss, &c, X, N * IC, g);
    fails += nl_check_rel("linear dx", dx, g, N * IC, BWD_TOL);
    nl_fd_grad(lin_loss, &c, W, OC * IC, g);
    fails += nl_check_rel("linear dw", dw, g, OC * IC, BWD_TOL);
    nl_fd_grad(lin_loss, &c, Bb, OC, g);
    fails += nl_check_rel("linear db", db, g, OC, BWD_TOL);
    /* parameter gradients accumulate: a second backward doubles them */
    nl_linear_backward(dx, dw, db, wout, x, w, N, IC, OC);
    for (int i = 0; i < OC; i++) g[i] *= 2;
    fails += nl_check_rel("linear db accumulates", db, g, OC, BWD_TOL);
    return fails;
}

/* ---------------------------------------------------------------- attention */

typedef struct {
    int B, T, C, NH, KVH;
    double *qkv, *wout, *out;
} att_ctx;

/* query head h reads kv head h / (NH/KVH); rows of qkv are q (C) | k (kvC) | v (kvC) */
static double att_loss(void *p) {
    att_ctx *c = p;
    const int hs = c->C / c->NH, kvC = c->KVH * hs, ld = c->C + 2 * kvC, grp = c->NH / c->KVH;
    double *s = malloc((size_t)c->T * sizeof *s);
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->NH; h++)
            for (int i = 0; i < c->T; i++) {
                const double *q = c->qkv + ((size_t)b * c->T + i) * ld + h * hs;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= i; j++) {
                    const double *k = c->qkv + ((size_t)b * c->T + j) * ld + c->C + (h / grp) * hs;
                    s[j] = 0;
                    for (int e = 0; e < hs; e++) s[j] += q[e] * k[e];
                    s[j] /= sqrt((double)hs);
                    mx = fmax(mx, s[j]);
                }
                for (int j = 0; j <= i; j++) sum += (s[j] = exp(s[j] - mx));
                double *y = c->out + ((size_t)b * c->T + i) * c->C + h * hs;
                for (int e = 0; e < hs; e++) {
                    y[e] = 0;
                    for (int j = 0; j <= i; j++)
                        y[e] += s[j] / sum * c->qkv[((size_t)b * c->T + j) * ld + c->C + kvC + (h / grp) * hs + e];
                }
            }
    free(s);
    return dot(c->out, c->wout, (size_t)c->B * c->T * c->C);
}

/* Causal skipping (src/cpu/ops_attn.c, "Causal skipping") against the full T x T products (one block of T
 * rows), bit for bit: out, P and dqkv, fp32, bf16 and fp16, multi-head and grouped, blocks of 64 and 128 rows,
 * at head size 64 and T 257 (a last block of 65 or 129 rows) and at head size 32 (a scale 1/sqrt(32) that is
 * not a power of two) and T 600 (sums longer than one chunk of 256). */
static int attention_blocks(void) {
    enum { B = 2, TM = 600, NH = 2, NM = B * TM, LDMAX = 3 * 64 * NH };
    static float qkv[NM * LDMAX], dout[NM * 64 * NH], out[2][NM * 64 * NH], att[2][B * NH * TM * TM],
            datt[B * NH * TM * TM], dqkv[2][NM * LDMAX];
    static const int shapes[][2] = { { 64, 257 }, { 32, TM } }, blocks[] = { TM, 64, 128 };
    int fails = 0;
    for (int s = 0; s < 2; s++)
        for (int KVH = NH; KVH >= 1; KVH--)
            for (int dt = 0; dt < NL_DTYPE_COUNT; dt++) {
                const int hs = shapes[s][0], T = shapes[s][1], C = NH * hs, ld = C + 2 * KVH * hs, N = B * T;
                nl_rng r;
                nl_rng_seed(&r, 31);
                nl_fill(&r, qkv, N * ld, 1), nl_fill(&r, dout, N * C, 1);
                nl_lowp_round(qkv, qkv, N * ld, dt, NULL); /* the inputs of a dtype arrive rounded */
                nl_lowp_round(dout, dout, N * C, dt, NULL);
                for (int k = 0; k < 3; k++) {
                    const int x = k > 0; /* slot 0: the full products */
                    nl_attention_causal_block(blocks[k]);
                    if (dt == NL_DTYPE_FP32) {
                        nl_attention_forward(out[x], att[x], qkv, B, T, C, NH, KVH);
                        nl_attention_backward(dqkv[x], datt, dout, qkv, att[x], B, T, C, NH, KVH);
                    } else {
                        nl_lowp_attention_forward(dt, out[x], att[x], qkv, B, T, C, NH, KVH);
                        nl_lowp_attention_backward(dt, dqkv[x], datt, dout, qkv, att[x], B, T, C, NH, KVH);
                    }
                    if (x)
                        fails += NL_CHECK(!memcmp(out[0], out[1], sizeof(float) * N * C) &&
                                                  !memcmp(att[0], att[1], sizeof(float) * B * NH * T * T) &&
                                                  !memcmp(dqkv[0], dqkv[1], sizeof(float) * N * ld),
                                          "%s, head size %d, T %d, kv heads %d, blocks of %d rows: out, P or dqkv "
                                          "differ from the full products",
                                          nl_dtype_names[dt], hs, T, KVH, blocks[k]);
                }
            }
    nl_attention_causal_block(0);
    return fails;
}

/* T 7: rows shorter than one lane block of the softmax reductions; T 37: several blocks and a tail; T 150
 * (smaller heads, for the finite differences' sake): several row blocks of the causal products */
int test_ops_attention(void) {
    enum { B = 2, TMAX = 37, C = 12, NH = 3, NMAX = B * TMAX };
    int fails = 0;
    static float qkv[NMAX * 3 * C], wout[NMAX * C], out[NMAX * C], att[B * NH * TMAX * TMAX],
            datt[B * NH * TMAX * TMAX], dqkv[NMAX * 3 * C];
    static double Q[NMAX * 3 * C], WO[NMAX * C], O[NMAX * C], g[NMAX * 3 * C];
    for (int T = 7; T <= TMAX; T += TMAX - 7)
        for (int KVH = NH; KVH >= 1; KVH -= 2) { /* multi-head, then grouped-query with one kv head */
            const int ld = C + 2 * KVH * (C / NH), N = B * T;
            nl_rng r;
            nl_rng_seed(&r, 3);
            nl_fill(&r, qkv, N * ld, 1), nl_fill(&r, wout, N * C, 1);
            nl_to_double(qkv, Q, N * ld), nl_to_double(wout, WO, N * C);
            att_ctx c = { B, T, C, NH, KVH, Q, WO, O };
            att_loss(&c);
            char label[64];
            nl_attention_forward(out, att, qkv, B, T, C, NH, KVH);
            snprintf(label, sizeof label, "attention forward (T %d, kv heads %d)", T, KVH);
            fails += nl_check_rel(label, out, O, N * C, FWD_TOL);
            nl_attention_backward(dqkv, datt, wout, qkv, att, B, T, C, NH, KVH);
            nl_fd_grad(att_loss, &c, Q, N * ld, g);
            snprintf(label, sizeof label, "attention dqkv (T %d, kv heads %d)", T, KVH);
            fails += nl_check_rel(label, dqkv, g, N * ld, BWD_TOL);
            /* causality: the first token's output is its own value vector */
            fails += NL_CHECK(fabsf(out[0] - qkv[C + KVH * (C / NH)]) < 1e-6f, "token 0 attends only to itself");
        }
    enum { TB = 150, CB = 4, NHB = 2, NB = TB };
    static float bqkv[NB * 3 * CB], bwout[NB * CB], bout[NB * CB], batt[NHB * TB * TB], bdatt[NHB * TB * TB],
            bdqkv[NB * 3 * CB];
    static double BQ[NB * 3 * CB], BWO[NB * CB], BO[NB * CB], bg[NB * 3 * CB];
    for (int KVH = NHB; KVH >= 1; KVH--) {
        const int ld = CB + 2 * KVH * (CB / NHB);
        nl_rng r;
        nl_rng_seed(&r, 5);
        nl_fill(&r, bqkv, NB * ld, 1), nl_fill(&r, bwout, NB * CB, 1);
        nl_to_double(bqkv, BQ, NB * ld), nl_to_double(bwout, BWO, NB * CB);
        att_ctx c = { 1, TB, CB, NHB, KVH, BQ, BWO, BO };
        att_loss(&c);
        char label[64];
        nl_attention_forward(bout, batt, bqkv, 1, TB, CB, NHB, KVH);
        snprintf(label, sizeof label, "attention forward (T %d, kv heads %d)", TB, KVH);
        fails += nl_check_rel(label, bout, BO, NB * CB, FWD_TOL);
        nl_attention_backward(bdqkv, bdatt, bwout, bqkv, batt, 1, TB, CB, NHB, KVH);
        nl_fd_grad(att_loss, &c, BQ, NB * ld, bg);
        snprintf(label, sizeof label, "attention dqkv (T %d, kv heads %d)", TB, KVH);
        fails += nl_check_rel(label, bdqkv, bg, NB * ld, BWD_TOL);
    }
    return fails + attention_blocks();
}

/* RoPE against the complex-number formulation in double: pair (x_2i, x_2i+1) of each head is
 * z = x_2i + j x_2i+1, multiplied by e^(j t theta^(-2i/hs)). */
typedef struct {
    int B, T, ld, nrot, hs;
    double theta, *x, *wout, *out;
} rope_ctx;

static double rope_loss(void *p) {
    rope_ctx *c = p;
    for (int n = 0; n < c->B * c->T; n++) {
        const double *x = c->x + (size_t)n * c->ld;
        double *y = c->out + (size_t)n * c->ld;
        for (int k = 0; k < c->ld; k++) y[k] = x[k];
        for (int h0 = 0; h0 < c->nrot; h0 += c->hs)
            for (int i = 0; i < c->hs / 2; i++) {
                const double complex z = (x[h0 + 2 * i] + I * x[h0 + 2 * i + 1]) *
                                         cexp(I * (n % c->T) * pow(c->theta, -2.0 * i / c->hs));
                y[h0 + 2 * i] = creal(z), y[h0 + 2 * i + 1] = cimag(z);
            }
    }
    return dot(c->out, c->wout, (size_t)c->B * c->T * c->ld);
}

int test_ops_rope(void) {
    enum { B = 2, T = 6, hs = 8, NROT = 3 * hs, LD = NROT + 5, N = B * T };
    nl_rng r;
    nl_rng_seed(&r, 12);
    float x[N * LD], wout[N * LD], out[N * LD], inplace[N * LD], cs[T * hs / 2], sn[T * hs / 2];
    double X[N * LD], WO[N * LD], O[N * LD], g[N * LD];
    nl_fill(&r, x, N * LD, 1), nl_fill(&r, wout, N * LD, 1);
    nl_to_double(x, X, N * LD), nl_to_double(wout, WO, N * LD);
    rope_ctx c = { B, T, LD, NROT, hs, 500.0, X, WO, O };
    rope_loss(&c);
    int fails = 0;
    nl_rope_table(cs, sn, T, hs, 500.0);
    nl_rope_forward(out, x, cs, sn, B, T, LD, NROT, hs);
    fails += nl_check_rel("rope forward = complex rotation (columns past nrot copied)", out, O, N * LD, FWD_TOL);
    memcpy(inplace, x, sizeof x);
    nl_rope_forward(inplace, inplace, cs, sn, B, T, LD, NROT, hs);
    fails += NL_CHECK(!memcmp(inplace, out, sizeof out), "rope in place = out of place");
    fails += NL_CHECK(!memcmp(out, x, LD * sizeof(float)), "rope is the identity at position 0");
    memcpy(inplace, wout, sizeof wout);
    nl_rope_backward(inplace, cs, sn, B, T, LD, NROT, hs);
    nl_fd_grad(rope_loss, &c, X, N * LD, g);
    fails += nl_check_rel("rope backward", inplace, g, N * LD, BWD_TOL);
    return fails;
}

/* ---------------------------------------------------------------- elementwise ops */

typedef struct {
    int n;
    double *x, *wout;
} gelu_ctx;

static double gelu_loss(void *p) {
    gelu_ctx *c = p;
    double s = 0;
    for (int i = 0; i < c->n; i++) {
        double x = c->x[i];
        s += c->wout[i] * 0.5 * x * (1 + tanh(sqrt(2 / 3.141592653589793) * (x + 0.044715 * x * x * x)));
    }
    return s;
}

int test_ops_gelu(void) {
    enum { n = 64 };
    nl_rng r;
    nl_rng_seed(&r, 4);
    float x[n], wout[n], out[n], dx[n];
    double X[n], WO[n], O[n], g[n];
    nl_fill(&r, x, n, 3), nl_fill(&r, wout, n, 1);
    nl_to_double(x, X, n), nl_to_double(wout, WO, n);
    gelu_ctx c = { n, X, WO };
    for (int i = 0; i < n; i++) { /* forward values: loss of a one-hot wout */
        double keep[n];
        memcpy(keep, WO, sizeof keep);
        memset(WO, 0, sizeof WO);
        WO[i] = 1;
        O[i] = gelu_loss(&c);
        memcpy(WO, keep, sizeof keep);
    }
    int fails = 0;
    nl_gelu_forward(out, x, n);
    fails += nl_check_rel("gelu forward", out, O, n, FWD_TOL);
    nl_gelu_backward(dx, x, wout, n);
    nl_fd_grad(gelu_loss, &c, X, n, g);
    fails += nl_check_rel("gelu dx", dx, g, n, BWD_TOL);
    return fails;
}

typedef struct {
    int N, F;
    double *x, *wout, *out;
} swiglu_ctx;

static double swiglu_loss(void *p) {
    swiglu_ctx *c = p;
    for (int n = 0; n < c->N; n++)
        for (int i = 0; i < c->F; i++) {
            const double g = c->x[n * 2 * c->F + i], u = c->x[n * 2 * c->F + c->F + i];
            c->out[n * c->F + i] = g / (1 + exp(-g)) * u;
        }
    return dot(c->out, c->wout, (size_t)c->N * c->F);
}

int test_ops_swiglu(void) {
    enum { N = 3, F = 20 };
    nl_rng r;
    nl_rng_seed(&r, 13);
    float x[N * 2 * F], wout[N * F], out[N * F], dx[N * 2 * F];
    double X[N * 2 * F], WO[N * F], O[N * F], g[N * 2 * F];
    nl_fill(&r, x, N * 2 * F, 4), nl_fill(&r, wout, N * F, 1);
    nl_to_double(x, X, N * 2 * F), nl_to_double(wout, WO, N * F);
    swiglu_ctx c = { N, F, X, WO, O };
    swiglu_loss(&c);
    int fails = 0;
    nl_swiglu_forward(out, x, N, F);
    fails += nl_check_rel("swiglu forward", out, O, N * F, FWD_TOL);
    nl_swiglu_backward(dx, x, wout, N, F);
    nl_fd_grad(swiglu_loss, &c, X, N * 2 * F, g);
    fails += nl_check_rel("swiglu dgate|dup", dx, g, N * 2 * F, BWD_TOL);
    return fails;
}

int test_ops_residual(void) {
    enum { n = 32 };
    nl_rng r;
    nl_rng_seed(&r, 5);
    float x[n], y[n], out[n];
    double want[n];
    nl_fill(&r, x, n, 1), nl_fill(&r, y, n, 1);
    for (int i = 0; i < n; i++) want[i] = 1.7 * (double)x[i] + (double)y[i];
    nl_residual_forward(out, x, y, 1.7f, n);
    return nl_check_rel("residual alpha*x + y", out, want, n, FWD_TOL);
}

typedef struct {
    int B, T, C;
    const int *tok;
    double *wte, *wpe, *wout;
} enc_ctx;

static double enc_loss(void *p) {
    enc_ctx *c = p;
    double s = 0;
    for (int n = 0; n < c->B * c->T; n++)
        for (int i = 0; i < c->C; i++)
            s += c->wout[n * c->C + i] * (c->wte[c->tok[n] * c->C + i] + c->wpe[(n % c->T) * c->C + i]);
    return s;
}

int test_ops_encoder(void) {
    enum { B = 2, T = 5, C = 8, V = 7, N = B * T };
    const int tok[N] = { 1, 3, 3, 0, 6, 6, 6, 2, 1, 5 }; /* repeats exercise the scatter-add */
    nl_rng r;
    nl_rng_seed(&r, 6);
    float wte[V * C], wpe[T * C], wout[N * C], out[N * C], dwte[V * C] = { 0 }, dwpe[T * C] = { 0 };
    double E[V * C], P[T * C], WO[N * C], O[N * C], g[V * C];
    nl_fill(&r, wte, V * C, 1), nl_fill(&r, wpe, T * C, 1), nl_fill(&r, wout, N * C, 1);
    nl_to_double(wte, E, V * C), nl_to_double(wpe, P, T * C), nl_to_double(wout, WO, N * C);
    for (int n = 0; n < N; n++)
        for (int i = 0; i < C; i++) O[n * C + i] = E[tok[n] * C + i] + P[(n % T) * C + i];
    enc_ctx c = { B, T, C, tok, E, P, WO };
    int fails = 0;
    nl_encoder_forward(out, tok, wte, wpe, B, T, C);
    fails += nl_check_rel("encoder forward", out, O, N * C, FWD_TOL);
    nl_encoder_backward(dwte, dwpe, wout, tok, B, T, C);
    nl_fd_grad(enc_loss, &c, E, V * C, g);
    fails += nl_check_rel("encoder dwte", dwte, g, V * C, BWD_TOL);
    nl_fd_grad(enc_loss, &c, P, T * C, g);
    fails += nl_check_rel("encoder dwpe", dwpe, g, T * C, BWD_TOL);
    /* without a position table (llama): the token rows alone */
    for (int n = 0; n < N; n++)
        for (int i = 0; i < C; i++) O[n * C + i] = E[tok[n] * C + i];
    nl_encoder_forward(out, tok, wte, NULL, B, T, C);
    fails += nl_check_rel("encoder forward, no positions", out, O, N * C, FWD_TOL);
    memset(dwte, 0, sizeof dwte);
    nl_encoder_backward(dwte, NULL, wout, tok, B, T, C);
    nl_fd_grad(enc_loss, &c, E, V * C, g);
    fails += nl_check_rel("encoder dwte, no positions", dwte, g, V * C, BWD_TOL);
    return fails;
}

typedef struct {
    int N, V;
    const int *tgt;
    double *z;
} xent_ctx;

static double xent_loss(void *p) {
    xent_ctx *c = p;
    double s = 0;
    for (int n = 0; n < c->N; n++) {
        const double *z = c->z + n * c->V;
        double mx = -INFINITY, sum = 0;
        for (int i = 0; i < c->V; i++) mx = fmax(mx, z[i]);
        for (int i = 0; i < c->V; i++) sum += exp(z[i] - mx);
        s += mx + log(sum) - z[c->tgt[n]];
    }
    return s / c->N;
}

/* V 10: a row shorter than one lane block; V 70: several blocks and a tail */
int test_ops_xent(void) {
    enum { N = 4, VMAX = 70, LD = VMAX + 2 };
    const int tgt[N] = { 3, 0, 9, 3 };
    int fails = 0;
    for (int V = 10; V <= VMAX; V += VMAX - 10) {
        nl_rng r;
        nl_rng_seed(&r, 7);
        float z[N * LD], losses[N], grad[N * VMAX];
        double Z[N * VMAX], g[N * VMAX], want[N];
        nl_fill(&r, z, N * LD, 3);
        for (int n = 0; n < N; n++)
            for (int i = 0; i < V; i++) Z[n * V + i] = z[n * LD + i];
        xent_ctx c = { N, V, tgt, Z };
        for (int n = 0; n < N; n++) {
            xent_ctx one = { 1, V, tgt + n, Z + n * V };
            want[n] = xent_loss(&one);
        }
        nl_xent(losses, z, tgt, N, V, LD, 1.0f / N);
        fails += nl_check_rel("cross-entropy per-row loss", losses, want, N, FWD_TOL);
        for (int n = 0; n < N; n++) memcpy(grad + n * V, z + n * LD, (size_t)V * sizeof(float));
        nl_fd_grad(xent_loss, &c, Z, N * V, g);
        fails += nl_check_rel("cross-entropy dlogits", grad, g, N * V, BWD_TOL);
    }
    return fails;
}

/* the vectorisable expf/tanhf against libm over the ranges the kernels use */
int test_ops_fastmath(void) {
    double worst_exp = 0, worst_tanh = 0;
    for (int i = 0; i <= 200000; i++) {
        float x = -87.0f + 175.0f * (float)i / 200000.0f;
        worst_exp = fmax(worst_exp, fabs((double)nl_expf(x) - exp((double)x)) / exp((double)x));
        float y = -10.0f + 20.0f * (float)i / 200000.0f;
        worst_tanh = fmax(worst_tanh, fabs((double)nl_tanhf(y) - tanh((double)y)));
    }
    int fails = NL_CHECK(worst_exp < 3e-7, "nl_expf relative error %.3g", worst_exp);
    fails += NL_CHECK(worst_tanh < 3e-7, "nl_tanhf absolute error %.3g", worst_tanh);
    fails += NL_CHECK(nl_expf(-1000.0f) < 1e-37f && nl_expf(-1000.0f) >= 0 && nl_tanhf(50.0f) == 1.0f &&
                              nl_tanhf(-50.0f) == -1.0f,
                      "clamped tails");
    return fails;
}
