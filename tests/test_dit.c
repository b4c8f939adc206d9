/* test_dit.c -- --arch dit: the new kernels against double-precision references and central finite
 * differences (ops_dit), the patch layout (dit_patches), and the model against its PyTorch twin
 * (python/dit_torch.py via tests/dit_ref.py): loss, every gradient and AdamW steps for every placement
 * of the table (dit_twin). */
#include "check.h"
#include "ckpt.h"
#include "config.h"
#include "cpu/kernels.h"
#include "dit.h"
#include "model.h"
#include "optim.h"
#include "placement.h"
#include "safetensors.h"
#include "tests.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- kernels */

enum { KB = 2, KT = 3, KC = 5, KLD = 7 }; /* ld > C: the vectors are columns of a wider array */

typedef struct ada_ctx {
    double *x, *s, *h, *r; /* r: the weights of the scalar loss sum r . out */
    float k;
    int with_h;
} ada_ctx;

static double ada_loss(void *p) {
    const ada_ctx *a = p;
    double L = 0;
    for (int b = 0; b < KB; b++)
        for (int t = 0; t < KT; t++)
            for (int c = 0; c < KC; c++) {
                const size_t n = (size_t)b * KT + t;
                const double o = a->x[n * KC + c] * (a->k + a->s[b * KLD + c]) + (a->with_h ? a->h[b * KLD + c] : 0.0);
                L += a->r[n * KC + c] * o;
            }
    return L;
}

static int check_ada(float k, int with_h) {
    nl_rng r;
    nl_rng_seed(&r, 7 + with_h);
    const size_t NX = KB * KT * KC, NS = KB * KLD;
    float x[KB * KT * KC], s[KB * KLD], h[KB * KLD], rr[KB * KT * KC], out[KB * KT * KC], dx[KB * KT * KC];
    float ds[KB * KLD] = { 0 }, dh[KB * KLD] = { 0 };
    nl_fill(&r, x, NX, 1.0), nl_fill(&r, s, NS, 1.0), nl_fill(&r, h, NS, 1.0), nl_fill(&r, rr, NX, 1.0);
    double xd[KB * KT * KC], sd[KB * KLD], hd[KB * KLD], rd[KB * KT * KC],
            g[KB * KT * KC > KB * KLD ? KB * KT * KC : KB * KLD];
    nl_to_double(x, xd, NX), nl_to_double(s, sd, NS), nl_to_double(h, hd, NS), nl_to_double(rr, rd, NX);
    ada_ctx a = { xd, sd, hd, rd, k, with_h };
    int f = 0;
    nl_ada_forward(out, x, s, with_h ? h : NULL, KLD, k, KB, KT, KC);
    double want[KB * KT * KC];
    for (size_t n = 0; n < (size_t)KB * KT; n++)
        for (int c = 0; c < KC; c++)
            want[n * KC + c] = xd[n * KC + c] * (k + sd[n / KT * KLD + c]) + (with_h ? hd[n / KT * KLD + c] : 0.0);
    f += nl_check_rel("ada forward", out, want, NX, 1e-6);
    nl_ada_backward(dx, ds, with_h ? dh : NULL, rr, x, s, KLD, k, KB, KT, KC);
    nl_fd_grad(ada_loss, &a, xd, NX, g);
    f += nl_check_rel("ada dx", dx, g, NX, 1e-6);
    nl_fd_grad(ada_loss, &a, sd, NS, g);
    for (int b = 0; b < KB; b++) /* columns beyond C are untouched */
        for (int c = KC; c < KLD; c++) f += NL_CHECK(ds[b * KLD + c] == 0.0f && g[b * KLD + c] == 0.0, "ds outside C");
    f += nl_check_rel("ada ds", ds, g, NS, 1e-6);
    if (with_h) {
        nl_fd_grad(ada_loss, &a, hd, NS, g);
        f += nl_check_rel("ada dh", dh, g, NS, 1e-6);
    }
    /* in place: dx may be dout */
    float din[KB * KT * KC];
    memcpy(din, rr, sizeof din);
    memset(ds, 0, sizeof ds);
    nl_ada_backward(din, ds, NULL, din, x, s, KLD, k, KB, KT, KC);
    f += NL_CHECK(!memcmp(din, dx, sizeof din), "ada backward in place");
    return f;
}

typedef struct silu_ctx {
    double *x, *r;
    size_t n;
} silu_ctx;
static double silu_loss(void *p) {
    const silu_ctx *a = p;
    double L = 0;
    for (size_t i = 0; i < a->n; i++) L += a->r[i] * a->x[i] / (1.0 + exp(-a->x[i]));
    return L;
}

/* bidirectional attention in double: out = softmax(q k^T / sqrt(hs)) v per head, no mask */
typedef struct att_ctx {
    double *qkv, *r;
    int B, T, C, NH, KVH;
} att_ctx;
static void att_ref(const att_ctx *a, double *out) {
    const int hs = a->C / a->NH, kvC = a->KVH * hs, ld = a->C + 2 * kvC, grp = a->NH / a->KVH;
    for (int b = 0; b < a->B; b++)
        for (int h = 0; h < a->NH; h++)
            for (int i = 0; i < a->T; i++) {
                double s[16], mx = -1e300, sum = 0;
                const double *q = a->qkv + ((size_t)b * a->T + i) * ld + h * hs;
                for (int j = 0; j < a->T; j++) {
                    const double *k = a->qkv + ((size_t)b * a->T + j) * ld + a->C + (h / grp) * hs;
                    s[j] = 0;
                    for (int e = 0; e < hs; e++) s[j] += q[e] * k[e];
                    s[j] /= sqrt((double)hs);
                    mx = fmax(mx, s[j]);
                }
                for (int j = 0; j < a->T; j++) sum += s[j] = exp(s[j] - mx);
                for (int e = 0; e < hs; e++) {
                    double o = 0;
                    for (int j = 0; j < a->T; j++)
                        o += s[j] / sum * a->qkv[((size_t)b * a->T + j) * ld + a->C + kvC + (h / grp) * hs + e];
                    out[((size_t)b * a->T + i) * a->C + h * hs + e] = o;
                }
            }
}
static double att_loss(void *p) {
    const att_ctx *a = p;
    double out[2 * 5 * 8], L = 0;
    att_ref(a, out);
    for (int i = 0; i < a->B * a->T * a->C; i++) L += a->r[i] * out[i];
    return L;
}

static int check_attention_bidir(void) {
    enum { B = 2, T = 5, C = 8, NH = 4, KVH = 2, HS = C / NH, LD = C + 2 * KVH * HS };
    nl_rng r;
    nl_rng_seed(&r, 11);
    float qkv[B * T * LD], rr[B * T * C], out[B * T * C], att[B * NH * T * T], dqkv[B * T * LD], datt[B * NH * T * T];
    double qd[B * T * LD], rd[B * T * C], want[B * T * C], g[B * T * LD];
    nl_fill(&r, qkv, B * T * LD, 1.0), nl_fill(&r, rr, B * T * C, 1.0);
    nl_to_double(qkv, qd, B * T * LD), nl_to_double(rr, rd, B * T * C);
    att_ctx a = { qd, rd, B, T, C, NH, KVH };
    int f = 0;
    nl_attention_bidir_forward(out, att, qkv, B, T, C, NH, KVH);
    att_ref(&a, want);
    f += nl_check_rel("bidir attention forward", out, want, B * T * C, 1e-5);
    /* the last query of the causal op sees every key: the same row */
    float out_c[B * T * C], att_c[B * NH * T * T];
    nl_attention_forward(out_c, att_c, qkv, B, T, C, NH, KVH);
    f += NL_CHECK(!memcmp(out_c + (T - 1) * C, out + (T - 1) * C, C * sizeof(float)), "last row equals the causal op's");
    f += NL_CHECK(memcmp(out_c, out, C * sizeof(float)) != 0, "first row differs from the causal op's");
    nl_attention_bidir_backward(dqkv, datt, rr, qkv, att, B, T, C, NH, KVH);
    nl_fd_grad(att_loss, &a, qd, B * T * LD, g);
    f += nl_check_rel("bidir attention dqkv", dqkv, g, B * T * LD, 1e-5);
    return f;
}

int test_ops_dit(void) {
    int f = check_ada(1.0f, 1) + check_ada(0.0f, 0);
    enum { N = 64 };
    nl_rng r;
    nl_rng_seed(&r, 3);
    float x[N], rr[N], out[N], dx[N];
    double xd[N], rd[N], want[N], g[N];
    nl_fill(&r, x, N, 4.0), nl_fill(&r, rr, N, 1.0);
    x[0] = -90.0f, x[1] = 90.0f; /* the tails */
    nl_to_double(x, xd, N), nl_to_double(rr, rd, N);
    nl_silu_forward(out, x, N);
    for (int i = 0; i < N; i++) want[i] = xd[i] / (1.0 + exp(-xd[i]));
    f += nl_check_rel("silu forward", out, want, N, 1e-6);
    nl_silu_backward(dx, x, rr, N);
    silu_ctx s = { xd, rd, N };
    nl_fd_grad(silu_loss, &s, xd, N, g);
    f += nl_check_rel("silu backward", dx, g, N, 1e-6);
    f += check_attention_bidir();
    return f;
}

/* ---------------------------------------------------------------- patches */

static nl_config tiny(int placement, int h, int w, int ch) {
    nl_config c = nl_test_config(0, 2, 16, 2, 0, 5); /* vocab and seq_len from the image */
    c.arch = NL_ARCH_DIT;
    c.placement = placement;
    c.img_h = h, c.img_w = w, c.img_ch = ch;
    c.patch = 2;
    c.classes = 3;
    c.weight_decay = 0.1;
    return c;
}

int test_dit_patches(void) {
    nl_config c = tiny(NL_PLACE_PERI, 4, 6, 3);
    int f = NL_CHECK(nl_config_resolve(&c) == NL_OK && c.seq_len == 6 && c.vocab == 4, "resolve: %s", nl_last_error());
    float img[4 * 6 * 3], p[6 * 12], back[4 * 6 * 3];
    for (int i = 0; i < 72; i++) img[i] = (float)i;
    nl_dit_patchify(&c, img, p);
    /* token 4 = patch row 1, column 1: pixel (2, 2) channel 0 first, then (2, 2) ch 1, ..., (3, 3) ch 2 */
    f += NL_CHECK(p[4 * 12] == img[(2 * 6 + 2) * 3] && p[4 * 12 + 1] == img[(2 * 6 + 2) * 3 + 1], "patch layout");
    f += NL_CHECK(p[4 * 12 + 11] == img[(3 * 6 + 3) * 3 + 2], "patch layout (last)");
    nl_dit_unpatchify(&c, p, back);
    f += NL_CHECK(!memcmp(img, back, sizeof img), "unpatchify inverts patchify");
    /* bad shapes: one line each */
    nl_config b = tiny(NL_PLACE_PERI, 5, 6, 1);
    f += NL_CHECK(nl_config_resolve(&b) == NL_ERR_ARG && strstr(nl_last_error(), "--patch 2"), "%s", nl_last_error());
    b = tiny(NL_PLACE_PERI, 0, 0, 0);
    f += NL_CHECK(nl_config_resolve(&b) == NL_ERR_ARG && strstr(nl_last_error(), "from --data"), "%s", nl_last_error());
    b = tiny(NL_PLACE_PERI, 4, 4, 1), b.heads = 4; /* head size 4 ok */
    f += NL_CHECK(nl_config_resolve(&b) == NL_OK, "%s", nl_last_error());
    b = tiny(NL_PLACE_PERI, 4, 4, 1), b.dim = 12, b.heads = 2; /* head size 6 */
    f += NL_CHECK(nl_config_resolve(&b) == NL_ERR_ARG && strstr(nl_last_error(), "multiple of 4"), "%s", nl_last_error());
    b = tiny(NL_PLACE_PERI, 4, 4, 1), b.dtype = NL_DTYPE_BF16;
    f += NL_CHECK(nl_config_resolve(&b) == NL_ERR_ARG && strstr(nl_last_error(), "fp32"), "%s", nl_last_error());
    return f;
}

/* ---------------------------------------------------------------- twin */

enum { DB = 3, DK = 3 };
static const float dit_lrs[DK] = { 1e-3f, 3e-3f, 2e-3f };

typedef struct dit_case {
    nl_config c;
    char dir[96];
    float *xt, *v, t[DB];
    int y[DB];
} dit_case;

/* every parameter moved by N(0, 0.1): the zero-initialised adaLN and final layers then carry gradients */
static void perturb(nl_model *m, uint64_t seed) {
    nl_rng r;
    nl_rng_seed(&r, seed);
    for (size_t j = 0; j < m->nparams; j++) m->params[j] += (float)(0.1 * nl_rng_normal(&r));
}

static void make_inputs(dit_case *d) {
    const size_t n = (size_t)DB * d->c.seq_len * d->c.patch * d->c.patch * d->c.img_ch;
    nl_rng r;
    nl_rng_seed(&r, 99);
    d->xt = nl_xmalloc(n * sizeof(float));
    d->v = nl_xmalloc(n * sizeof(float));
    nl_fill(&r, d->xt, n, 1.0);
    nl_fill(&r, d->v, n, 1.0);
    for (int b = 0; b < DB; b++) d->t[b] = 0.15f + 0.3f * b, d->y[b] = b % (d->c.classes + 1); /* the null class too */
}

static int write_dit_case(dit_case *d) {
    nl_model m;
    char path[160];
    if (nl_model_init(&m, &d->c) != NL_OK) return printf("    init: %s\n", nl_last_error()), 1;
    d->c = m.cfg; /* resolved: seq_len */
    make_inputs(d);
    perturb(&m, d->c.seed + 100);
    snprintf(path, sizeof path, "%s/model.safetensors", d->dir);
    nl_status st = nl_export(&m, path);
    const int P = m.P, T = d->c.seq_len;
    nl_model_free(&m);
    if (st != NL_OK) return printf("    export: %s\n", nl_last_error()), 1;
    nl_st_entry e[5] = { { "xt", NL_ST_F32, 3, { DB, T, P }, d->xt },
                         { "v", NL_ST_F32, 3, { DB, T, P }, d->v },
                         { "t", NL_ST_F32, 1, { DB }, d->t },
                         { "y", NL_ST_I32, 1, { DB }, d->y },
                         { "lrs", NL_ST_F32, 1, { DK }, dit_lrs } };
    snprintf(path, sizeof path, "%s/batch.safetensors", d->dir);
    if (nl_twin_write_batch(path, e, 5, &d->c) != NL_OK) return printf("    batch: %s\n", nl_last_error()), 1;
    return 0;
}

static float dit_step_loss(nl_model *m, dit_case *d) {
    nl_model_zero_grad(m);
    const float loss = nl_dit_forward(m, d->xt, d->t, d->y, d->v, DB, 1.0f);
    nl_model_backward(m);
    return loss;
}

/* a gradient against the twin's (nl_twin_cmp): 2-norm relative error within 1e-4 */
static int grad_check(void *ctx, const char *label, const float *got, const double *want, size_t n) {
    (void)ctx;
    return nl_check_rel(label, got, want, n, 1e-4);
}

static int compare_dit_case(dit_case *d) {
    char path[160];
    nl_st_file ref;
    snprintf(path, sizeof path, "%s/ref.safetensors", d->dir);
    if (nl_st_read(path, &ref) != NL_OK) return printf("    %s\n", nl_last_error()), 1;
    nl_model m;
    nl_model_init(&m, &d->c);
    perturb(&m, d->c.seed + 100);
    nl_model_alloc_acts(&m, DB, d->c.seq_len);
    int fails = 0;
    const float loss = dit_step_loss(&m, d);
    nl_grad_norm(&m); /* zeroes frozen gradients */
    const nl_st_tensor *rl = nl_st_find(&ref, "loss"), *rls = nl_st_find(&ref, "losses");
    NL_ASSERT(rl && rls && rls->nbytes == (DK + 1) * sizeof(float));
    fails += nl_check_scalar("loss", loss, ((const float *)rl->data)[0], 1e-4);
    fails += nl_twin_grads(&m, &ref, grad_check, NULL);
    float losses[DK + 1];
    losses[0] = loss;
    for (int k = 0; k < DK; k++) {
        if (k) losses[k] = dit_step_loss(&m, d);
        const double gn = nl_grad_norm(&m);
        nl_adamw_step(&m, dit_lrs[k], nl_clip_scale(gn, d->c.clip), k + 1);
    }
    losses[DK] = nl_dit_forward(&m, d->xt, d->t, d->y, d->v, DB, 0.0f);
    double want[DK + 1];
    nl_to_double((const float *)rls->data, want, DK + 1);
    fails += nl_check_rel("losses after AdamW steps", losses, want, DK + 1, 1e-4);
    fails += NL_CHECK(losses[DK] < losses[0], "training lowers the loss (%g -> %g)", losses[0], losses[DK]);
    nl_model_free(&m);
    nl_st_free(&ref);
    return fails;
}

int test_dit_twin(void) {
    enum { NCASE = NL_PLACE_COUNT + 4 };
    dit_case *dc = nl_xcalloc(NCASE * sizeof *dc);
    char root[] = "/tmp/nl_dit_twin_XXXXXX";
    NL_ASSERT(mkdtemp(root));
    int n = 0, fails = 0;
    for (int p = 0; p < NL_PLACE_COUNT; p++) /* every placement (but ngpt: refused for dit), its default norm type */
        if (!nl_placements[p].sphere) dc[n++].c = tiny(p, 4, 4, 1);
    dc[n].c = tiny(NL_PLACE_PERI, 4, 6, 3), dc[n++].c.norm_type = NL_LAYERNORM; /* RGB, rows != columns */
    dc[n].c = tiny(NL_PLACE_PRE, 4, 4, 1), dc[n].c.qk_norm = 1, dc[n++].c.kv_heads = 1;
    dc[n].c = tiny(NL_PLACE_POST, 6, 4, 1), dc[n++].c.classes = 0; /* unconditional: the null class only */
    dc[n].c = tiny(NL_PLACE_PERI, 4, 4, 1), dc[n++].c.skip_init = 1;
    NL_ASSERT(n <= NCASE);
    for (int i = 0; i < n; i++) {
        nl_twin_case_dir(dc[i].dir, sizeof dc[i].dir, root, i);
        fails += write_dit_case(&dc[i]);
    }
    static char out[1 << 16];
    if (nl_twin_run("tests/dit_ref.py", root, n, out, sizeof out)) fails++;
    else {
        for (int i = 0; i < n; i++) {
            const int f = compare_dit_case(&dc[i]);
            const nl_config *c = &dc[i].c;
            printf("  dit twin %-10s %-9s %dx%dx%d classes %d%s%s: %s\n", nl_placements[c->placement].name,
                   nl_norm_type_names[c->norm_type], c->img_h, c->img_w, c->img_ch, c->classes,
                   c->qk_norm ? " qk-norm kv-heads 1" : "", c->skip_init ? " skip-init" : "", f ? "FAIL" : "ok");
            fails += f;
        }
    }
    for (int i = 0; i < n; i++) free(dc[i].xt), free(dc[i].v);
    free(dc);
    return fails + nl_test_rmdir(root);
}

/* ---------------------------------------------------------------- training from the command line */

static char cli_out[1 << 16];
#define run(...) nl_run_fmt(cli_out, sizeof cli_out, __VA_ARGS__)
#define DTINY                                                                                                          \
    "--arch dit --patch 2 --layers 2 --dim 16 --heads 2 --batch 4 --threads 1 --lr 3e-3 --warmup 2 --eval-windows 2 --seed 3"

/* metrics.jsonl without the timing fields (nl_metrics_curve), the diagnostic records' "seconds" blanked */
static int curve_of(const char *dir, char *buf, size_t cap) {
    char p[256];
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    const int n = nl_metrics_curve(p, buf, cap);
    for (char *s = buf; (s = strstr(s, "\"seconds\": ")); s++)
        for (char *d = s + 11; *d && *d != '}' && *d != '|'; d++) *d = ' ';
    return n;
}

int test_dit_train(void) {
    char dir[] = "/tmp/nl_dit_train_XXXXXX", img[96], p[160];
    NL_ASSERT(mkdtemp(dir));
    snprintf(img, sizeof img, "%s/img", dir);
    NL_ASSERT(mkdir(img, 0755) == 0);
    nl_rng r;
    nl_rng_seed(&r, 4);
    for (int i = 0; i < 40; i++) { /* 8x8 stripes of random phase: something to learn */
        uint8_t px[64];
        const int ph = (int)nl_rng_below(&r, 4);
        for (int j = 0; j < 64; j++) px[j] = (uint8_t)(((j % 8 + ph) / 2 % 2) * 200 + nl_rng_below(&r, 40));
        snprintf(p, sizeof p, "%s/%03d.png", img, i);
        NL_ASSERT(nl_png_write(p, px, 8, 8, 1) == NL_OK);
    }
    int f = 0;
    /* a run of 6 steps, checkpoints at 3 and 6, diagnostics, held-out loss from the last 10% */
    int rc = run("%s train " DTINY " --data %s --steps 6 --ckpt-every 3 --eval-every 3 --diag-every 3 --out %s/a 2>&1",
                 nl_test_bin(), img, dir);
    f += NL_CHECK(rc == 0 && strstr(cli_out, "36 train / 4 val images") && strstr(cli_out, "val loss"),
                  "dit run (rc %d): %s", rc, cli_out);
    char a[8192], b[8192];
    const int na = curve_of((snprintf(p, sizeof p, "%s/a", dir), p), a, sizeof a);
    f += NL_CHECK(na > 0 && strstr(a, "\"val_loss\"") && strstr(a, "\"x_max\""), "metrics: %s", a);
    /* the same run resumed from its step-3 checkpoint (the last one removed): a bit-identical curve */
    rc = run("%s train " DTINY " --data %s --steps 6 --ckpt-every 3 --eval-every 3 --diag-every 3 --out %s/b 2>&1",
             nl_test_bin(), img, dir);
    f += NL_CHECK(rc == 0, "second run: %s", cli_out);
    snprintf(p, sizeof p, "%s/b/ckpt-00000006.safetensors", dir);
    f += NL_CHECK(unlink(p) == 0, "no %s", p);
    rc = run("%s train --resume %s/b 2>&1", nl_test_bin(), dir);
    f += NL_CHECK(rc == 0, "resume: %s", cli_out);
    const int nb = curve_of((snprintf(p, sizeof p, "%s/b", dir), p), b, sizeof b);
    f += NL_CHECK(na == nb && !strcmp(a, b), "resumed curve differs:\n%s\n%s", a, b);
    /* the run wrote samples.png (4 x 8 images of 8 x 8, 1-pixel gaps); the report embeds it (base64 as Python writes it) */
    snprintf(p, sizeof p, "%s/a/samples.png", dir);
    uint8_t *sp = NULL;
    int sh = 0, sw = 0, sc = 0;
    f += NL_CHECK(nl_png_read(p, &sp, &sh, &sw, &sc) == NL_OK && sh == 35 && sw == 71 && sc == 1,
                  "samples.png %dx%dx%d: %s", sw, sh, sc, nl_last_error());
    free(sp);
    rc = run("%s report %s/a -o %s/r.html 2>&1", nl_test_bin(), dir, dir);
    f += NL_CHECK(rc == 0, "report: %s", cli_out);
    static char b64[8192], html[1 << 18];
    rc = nl_run_fmt(b64, sizeof b64,
                    "%s -c 'import base64,sys; sys.stdout.write(base64.b64encode(open(\"%s\",\"rb\").read()).decode())'",
                    nl_test_python(), p);
    snprintf(p, sizeof p, "%s/r.html", dir);
    FILE *h = fopen(p, "r");
    const size_t hn = h ? fread(html, 1, sizeof html - 1, h) : 0;
    if (h) fclose(h);
    html[hn] = 0;
    f += NL_CHECK(rc == 0 && strlen(b64) > 100 && strstr(html, "<h2>Samples</h2>") && strstr(html, b64),
                  "report embeds samples.png (%zu bytes of html)", hn);
    /* a 2x3 grid of samples from the run: a PNG of 2 x 8 + 1 rows, 3 x 8 + 2 columns, gray */
    snprintf(p, sizeof p, "%s/grid.png", dir);
    rc = run("%s sample --ckpt %s/a --grid 2x3 --steps 3 --sampler euler --out %s 2>&1", nl_test_bin(), dir, p);
    uint8_t *px = NULL;
    int gh = 0, gw = 0, gc = 0;
    f += NL_CHECK(rc == 0 && nl_png_read(p, &px, &gh, &gw, &gc) == NL_OK && gh == 17 && gw == 26 && gc == 1,
                  "sample grid (rc %d) %dx%dx%d: %s", rc, gw, gh, gc, cli_out);
    int gap = 0; /* row 8 and columns 8 and 17 are the gaps */
    for (int i = 0; px && i < 26; i++) gap += px[8 * 26 + i];
    for (int i = 0; px && i < 17; i++) gap += px[i * 26 + 8] + px[i * 26 + 17];
    f += NL_CHECK(px && gap == 0, "black gaps between the images");
    free(px);
    rc = run("%s sample --ckpt %s/a --grid 2by3 --out %s 2>&1", nl_test_bin(), dir, p);
    f += NL_CHECK(rc == 2 && strstr(cli_out, "--grid '2by3'"), "bad grid (rc %d): %s", rc, cli_out);
    rc = run("%s sample --ckpt %s/a --sampler rk4 --out %s 2>&1", nl_test_bin(), dir, p);
    f += NL_CHECK(rc == 2 && strstr(cli_out, "--sampler 'rk4'"), "bad sampler (rc %d): %s", rc, cli_out);
    rc = run("%s sample --ckpt %s/a 2>&1", nl_test_bin(), dir);
    f += NL_CHECK(rc == 2 && strstr(cli_out, "--out FILE.png is required"), "no --out (rc %d): %s", rc, cli_out);
    /* bad input: one line, exit 2 for usage, 1 for data that cannot be read */
    rc = run("%s train " DTINY " --steps 1 --out %s/c 2>&1", nl_test_bin(), dir);
    f += NL_CHECK(rc == 2 && strstr(cli_out, "--data fashion-mnist or --data DIR"), "no --data (rc %d): %s", rc, cli_out);
    rc = run("%s train " DTINY " --data %s/none --steps 1 --out %s/c 2>&1", nl_test_bin(), dir, dir);
    f += NL_CHECK(rc == 1 && strstr(cli_out, "a directory of PNG images"), "missing folder (rc %d): %s", rc, cli_out);
    rc = run("%s train " DTINY " --data %s --patch 3 --steps 1 --out %s/c 2>&1", nl_test_bin(), img, dir);
    f += NL_CHECK(rc == 2 && strstr(cli_out, "--patch 3: must divide"), "bad patch (rc %d): %s", rc, cli_out);
    rc = run("%s train " DTINY " --data %s --device cuda --steps 1 --out %s/c 2>&1", nl_test_bin(), img, dir);
    f += NL_CHECK(rc == 2 && strstr(cli_out, "--arch dit"), "cuda refused (rc %d): %s", rc, cli_out);
    /* Fashion-MNIST (the Debian package), labelled: two steps */
    if (access(NL_FMNIST_DIR, R_OK) == 0) {
        rc = run("%s train " DTINY " --patch 7 --data fashion-mnist --steps 2 --out %s/f 2>&1", nl_test_bin(), dir);
        f += NL_CHECK(rc == 0 && strstr(cli_out, "10 classes") && strstr(cli_out, "60000 train / 10000 val images"),
                      "fashion-mnist (rc %d): %s", rc, cli_out);
    }
    return f + nl_test_rmdir(dir);
}

/* ---------------------------------------------------------------- the ODE samplers' order */

/* dx/dt = x: from t = 1 to 0, x(0) = x(1) / e */
static void linear_field(void *ctx, const float *x, float t, float *v, size_t n) {
    (void)ctx, (void)t;
    for (size_t i = 0; i < n; i++) v[i] = x[i];
}

int test_dit_sampler(void) {
    int f = 0;
    double err[2][3];
    for (int heun = 0; heun < 2; heun++)
        for (int k = 0; k < 3; k++) {
            float x[2] = { 1.0f, -2.0f }, scr[6];
            nl_ode_integrate(x, 2, 8 << k, heun, linear_field, NULL, scr);
            err[heun][k] = fabs(x[0] - exp(-1.0)) + fabs(x[1] + 2.0 * exp(-1.0));
        }
    for (int k = 0; k < 2; k++) {
        const double re = err[0][k] / err[0][k + 1], rh = err[1][k] / err[1][k + 1];
        printf("  steps %d -> %d: Euler error %.3g -> %.3g (x%.2f), Heun %.3g -> %.3g (x%.2f)\n", 8 << k, 16 << k,
               err[0][k], err[0][k + 1], re, err[1][k], err[1][k + 1], rh);
        f += NL_CHECK(re > 1.8 && re < 2.2, "Euler is first order: ratio %.3f", re);
        f += NL_CHECK(rh > 3.6 && rh < 4.4, "Heun is second order: ratio %.3f", rh);
    }
    return f;
}
