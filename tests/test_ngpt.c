/* test_ngpt.c -- nGPT (--norm ngpt, docs/placements.md): its CPU kernels against double references and central
 * finite differences, the options it refuses, and a bit-identical resume. The model itself is compared with
 * the PyTorch twin in test_torch_twin (test_model.c), the projection after every step included. */
#include "check.h"
#include "cpu/kernels.h"
#include "normlab.h"
#include "tests.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FWD_TOL 1e-5
#define BWD_TOL 1e-4

enum { N = 5, C = 24, G = 6, LD = 29 };

/* kind 0: l2norm over groups of G with scales s and factor f; 1: lerp; 2: colscale with row stride LD */
typedef struct {
    int kind;
    double f, *x, *y, *s, *wout, *out;
} sph_ctx;

static void sph_ref(sph_ctx *c) {
    for (int n = 0; n < N; n++)
        for (int g = 0; g < C / G; g++) {
            const double *x = c->x + n * C + g * G;
            double ss = 0;
            for (int i = 0; i < G; i++) ss += x[i] * x[i];
            for (int i = 0; i < G; i++) {
                const int j = n * C + g * G + i, ch = g * G + i;
                if (c->kind == 0) c->out[j] = c->f * c->s[ch] * x[i] / sqrt(ss);
                if (c->kind == 1) c->out[j] = x[i] + fabs(c->f * c->s[ch]) * (c->y[j] - x[i]);
                if (c->kind == 2) c->out[j] = c->f * c->s[ch] * x[i];
            }
        }
}

static double sph_loss(void *p) {
    sph_ctx *c = p;
    sph_ref(c);
    double l = 0;
    for (int i = 0; i < N * C; i++) l += c->out[i] * c->wout[i];
    return l;
}

int test_ops_sphere(void) {
    static const char *const names[] = { "l2norm", "lerp", "colscale" };
    nl_rng r;
    nl_rng_seed(&r, 20);
    int fails = 0;
    for (int kind = 0; kind < 3; kind++) {
        float x[N * C], y[N * C], s[C], wout[N * C], out[N * C], dx[N * C] = { 0 }, dy[N * C], ds[C] = { 0 },
                                                                        rstd[N * C / G];
        double X[N * C], Y[N * C], S[C], WO[N * C], O[N * C], gr[N * C];
        nl_fill(&r, x, N * C, 1.5), nl_fill(&r, y, N * C, 1.0), nl_fill(&r, s, C, 1.0), nl_fill(&r, wout, N * C, 1.0);
        if (kind == 1) s[3] = -0.4f; /* a negative alpha: |f alpha| */
        nl_to_double(x, X, N * C), nl_to_double(y, Y, N * C), nl_to_double(s, S, C), nl_to_double(wout, WO, N * C);
        const float f = kind == 1 ? 0.3f : 2.5f;
        sph_ctx c = { kind, f, X, Y, S, WO, O };
        sph_ref(&c);
        if (kind == 0) {
            nl_l2norm_forward(out, rstd, x, s, f, N, C, G);
            for (int i = 0; i < N * C; i++) dx[i] = 0.5f; /* backward accumulates */
            nl_l2norm_backward(dx, ds, wout, x, s, rstd, f, N, C, G);
            for (int i = 0; i < N * C; i++) dx[i] -= 0.5f;
        } else if (kind == 1) {
            nl_lerp_forward(out, x, y, s, f, N, C);
            nl_lerp_backward(dx, dy, ds, wout, x, y, s, f, N, C);
        } else { /* rows of stride LD: the columns past C are left alone */
            float xs[N * LD], os[N * LD], gs[N * LD];
            for (int i = 0; i < N * LD; i++) xs[i] = os[i] = gs[i] = 7.0f;
            for (int n = 0; n < N; n++)
                for (int i = 0; i < C; i++) xs[n * LD + i] = x[n * C + i], gs[n * LD + i] = wout[n * C + i];
            nl_colscale_forward(os, xs, s, f, N, C, LD);
            nl_colscale_backward(gs, ds, gs, xs, s, f, N, C, LD); /* in place on dout */
            int pad = 0;
            for (int n = 0; n < N; n++)
                for (int i = 0; i < LD; i++) {
                    if (i < C) out[n * C + i] = os[n * LD + i], dx[n * C + i] = gs[n * LD + i];
                    else pad += os[n * LD + i] != 7.0f || gs[n * LD + i] != 7.0f;
                }
            fails += NL_CHECK(pad == 0, "colscale wrote %d padding entries", pad);
        }
        char label[64];
        snprintf(label, sizeof label, "%s forward", names[kind]);
        fails += nl_check_rel(label, out, O, N * C, FWD_TOL);
        snprintf(label, sizeof label, "%s dx", names[kind]);
        nl_fd_grad(sph_loss, &c, X, N * C, gr);
        fails += nl_check_rel(label, dx, gr, N * C, BWD_TOL);
        if (kind == 1) {
            nl_fd_grad(sph_loss, &c, Y, N * C, gr);
            fails += nl_check_rel("lerp dy", dy, gr, N * C, BWD_TOL);
        }
        snprintf(label, sizeof label, "%s ds", names[kind]);
        nl_fd_grad(sph_loss, &c, S, C, gr);
        fails += nl_check_rel(label, ds, gr, C, BWD_TOL);
    }
    /* without scales (s NULL): the plain x/|x| of every norm site; a zero group stays zero */
    float x[N * C], out[N * C], rstd[N * C / G];
    nl_fill(&r, x, N * C, 1.0);
    for (int i = 0; i < G; i++) x[i] = 0.0f;
    nl_l2norm_forward(out, rstd, x, NULL, 1.0f, N, C, G);
    double worst = 0;
    for (int row = 1; row < N * C / G; row++) {
        double ss = 0;
        for (int i = 0; i < G; i++) ss += (double)out[row * G + i] * out[row * G + i];
        worst = fmax(worst, fabs(sqrt(ss) - 1.0));
    }
    fails += NL_CHECK(worst < 1e-6 && out[0] == 0.0f && isfinite(out[1]),
                      "x/|x| unit norms (max dev %g), zero group %g", worst, out[0]);
    /* the projection: rows or columns to unit norm, direction kept, zero rows kept */
    for (int by_col = 0; by_col < 2; by_col++) {
        enum { R = 7, K = 70 }; /* K > the kernel's column block */
        float w[R * K], w0[R * K];
        nl_fill(&r, w, R * K, 0.3);
        for (int k = 0; k < K; k++) w[2 * K + k] = 0.0f; /* a zero row */
        w[3] = 0.0f;
        memcpy(w0, w, sizeof w);
        nl_unit_project(w, R, K, by_col);
        double dev = 0, dirdev = 0;
        const int nv = by_col ? K : R, len = by_col ? R : K;
        for (int v = 0; v < nv; v++) {
            double ss = 0, ss0 = 0;
            for (int i = 0; i < len; i++) {
                const int j = by_col ? i * K + v : v * K + i;
                ss += (double)w[j] * w[j], ss0 += (double)w0[j] * w0[j];
            }
            if (ss0 == 0) {
                dev = fmax(dev, ss);
                continue;
            }
            dev = fmax(dev, fabs(sqrt(ss) - 1.0));
            for (int i = 0; i < len; i++) {
                const int j = by_col ? i * K + v : v * K + i;
                dirdev = fmax(dirdev, fabs(w[j] - w0[j] / sqrt(ss0)));
            }
        }
        fails += NL_CHECK(dev < 1e-6 && dirdev < 1e-6, "unit_project %s: norm dev %g, direction dev %g",
                          by_col ? "columns" : "rows", dev, dirdev);
    }
    return fails;
}

/* ---------------------------------------------------------------- the command line */

static char out[1 << 14];

#define TINY                                                                                                           \
    "--norm ngpt --layers 2 --dim 32 --heads 4 --seq-len 16 --batch 4 --threads 1 --eval-every 0 --eval-windows 4"

int test_ngpt_cli(void) {
    int fails = 0;
    char dir[] = "/tmp/nl_ngpt_XXXXXX", txt[96];
    NL_ASSERT(mkdtemp(dir));
    snprintf(txt, sizeof txt, "%s/t.txt", dir);
    nl_make_text(txt, 4000);
    /* what ngpt refuses: one line, exit 2 */
    static const struct {
        const char *opt, *msg;
    } bad[] = {
        { "--norm-type rmsnorm", "--norm-type rmsnorm: ngpt normalises with x/|x| only" },
        { "--final-norm on", "--final-norm on: ngpt has no norm gains and no final norm" },
        { "--emb-norm on", "--emb-norm on: ngpt has" },
        { "--qk-norm", "--qk-norm: ngpt has" },
        { "--skip-init", "--skip-init: ngpt has" },
        { "--kv-heads 2", "--kv-heads 2: ngpt shares s_qk between q and k" },
        { "--ngpt-alpha-init 0", "--ngpt-alpha-init 0: must be in (0, 1]" },
        { "--ngpt-alpha-scale 2", "--ngpt-alpha-scale 2: must be in [0, 1]" },
        { "--weight-decay -2", "--weight-decay -2: must be >= 0 (-1: the default)" },
        { "--warmup -3", "--warmup -3: must be >= 0 (-1: the default)" },
        { "--gpas", "--gpas: only for placements without a norm after the residual add" },
        { "--sdd", "--sdd: not with --norm ngpt" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const int rc = nl_run_fmt(out, sizeof out, "%s train " TINY " %s --steps 1 --data %s --out %s/bad 2>&1",
                                  nl_test_bin(), bad[i].opt, txt, dir);
        fails += NL_CHECK(rc == 2 && strstr(out, bad[i].msg) && strchr(out, '\n') == out + strlen(out) - 1, /* one line */
                          "%s: exit %d, %s", bad[i].opt, rc, out);
    }
    int rc = nl_run_fmt(out, sizeof out, "%s train --norm pre --norm-type l2 --steps 1 --data %s --out %s/bad 2>&1",
                        nl_test_bin(), txt, dir);
    fails += NL_CHECK(rc == 2 && strstr(out, "--norm-type l2: only with --norm ngpt"), "l2 outside ngpt: exit %d, %s",
                      rc, out);
    rc = nl_run_fmt(out, sizeof out, "%s train --help 2>&1", nl_test_bin());
    fails += NL_CHECK(rc == 0 && strstr(out, "ngpt ") && strstr(out, "--ngpt-alpha-init") && strstr(out, "0 for ngpt"),
                      "--help: %s", out);
    /* the defaults ngpt changes: no weight decay, no warmup; a value given still applies */
    rc = nl_run_fmt(out, sizeof out,
                    "%s train " TINY
                    " --steps 2 --data %s --out %s/d 2>&1 && grep -E '^(warmup|weight_decay|norm_type) ' %s/d/config.txt",
                    nl_test_bin(), txt, dir, dir);
    fails += NL_CHECK(rc == 0 && strstr(out, "warmup = 0") && strstr(out, "weight_decay = 0\n") &&
                              strstr(out, "norm_type = l2"),
                      "defaults: %s", out);
    rc = nl_run_fmt(out, sizeof out,
                    "%s train " TINY
                    " --steps 2 --warmup 1 --weight-decay 0.05 --data %s --out %s/e 2>&1 && grep -E '^(warmup|weight_decay) ' %s/e/config.txt",
                    nl_test_bin(), txt, dir, dir);
    fails += NL_CHECK(rc == 0 && strstr(out, "warmup = 1") && strstr(out, "weight_decay = 0.05"), "overrides: %s", out);
    /* resume: 12 steps straight, or 6 + 6 from the checkpoint, give the same bytes (llama: RoPE before the q/k norms) */
    for (int llama = 0; llama < 2; llama++) {
        const char *arch = llama ? "--arch llama" : "--arch gpt2";
        rc = nl_run_fmt(out, sizeof out,
                        "%s train " TINY " %s --steps 12 --ckpt-every 6 --lr 1e-2 --data %s --out %s/r%d 2>&1 && "
                        "mv %s/r%d/ckpt-00000012.safetensors %s/straight%d && cp %s/r%d/metrics.jsonl %s/m%d && "
                        "%s train --resume %s/r%d 2>&1 && cmp %s/r%d/ckpt-00000012.safetensors %s/straight%d",
                        nl_test_bin(), arch, txt, dir, llama, dir, llama, dir, llama, dir, llama, dir, llama,
                        nl_test_bin(), dir, llama, dir, llama, dir, llama);
        char a[4096], b[4096], pa[160], pb[160];
        snprintf(pa, sizeof pa, "%s/m%d", dir, llama);
        snprintf(pb, sizeof pb, "%s/r%d/metrics.jsonl", dir, llama);
        const int na = nl_metrics_curve(pa, a, sizeof a), nb = nl_metrics_curve(pb, b, sizeof b);
        fails += NL_CHECK(rc == 0 && na == 12 && na == nb && !strcmp(a, b),
                          "%s resume bit-identical (exit %d, %d/%d lines): %s", arch, rc, na, nb, out);
    }
    return fails + nl_test_rmdir(dir);
}
