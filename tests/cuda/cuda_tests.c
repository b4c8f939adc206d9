/* cuda_tests.c -- make test-cuda (a GPU machine): the CUDA backend against the CPU backend.
 *   ops      every op of the table on random inputs, fp32: norm-wise relative error <= 1e-5 (sums and
 *            the stream statistics, accumulated in double: 1e-9); accumulating outputs start non-zero
 *   model    every placement (and every norm type, llama with grouped-query attention and q/k norms,
 *            SkipInit) in fp32: the loss within 1e-5 and all gradients within 1e-5 of the CPU backend's
 *            (norm-wise over the whole gradient vector; 1e-4 per tensor, where small gain tensors sum
 *            many cancelling terms); two CUDA backward passes give the same bits
 *   train    50 AdamW steps of every placement on tinyshakespeare bytes: each step's loss within 1e-3
 *            (relative) of the CPU run's
 * Exits 1 at once, with one line, where no CUDA GPU can be used. */
#include "backend.h"
#include "../check.h"
#include "config.h"
#include "cpu/kernels.h"
#include "model.h"
#include "placement.h"
#include "optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const nl_backend *cpu, *gpu;
static nl_rng rng;

/* one array on both sides: h for the CPU op, d for the CUDA op, equal at the start */
typedef struct {
    float *h, *d;
    size_t n;
} arr;
typedef struct {
    int *h, *d;
    size_t n;
} iarr;

static arr mk(size_t n, double scale, float offset) {
    arr a = { nl_xmalloc((n ? n : 1) * sizeof(float)), gpu->alloc(n * sizeof(float)), n };
    nl_fill(&rng, a.h, n, scale);
    for (size_t i = 0; i < n; i++) a.h[i] += offset;
    gpu->from_host(a.d, a.h, n * sizeof(float));
    return a;
}
static arr zeros(size_t n) { return mk(n, 0.0, 0.0f); }
static void drop(arr *a) {
    free(a->h);
    gpu->free(a->d);
}

/* the CUDA result against the CPU result */
static int cmp(const char *op, const char *what, const arr *a, double rtol) {
    float *g = nl_xmalloc((a->n ? a->n : 1) * sizeof(float));
    double *w = nl_xmalloc((a->n ? a->n : 1) * sizeof(double));
    gpu->to_host(g, a->d, a->n * sizeof(float));
    nl_to_double(a->h, w, a->n);
    char label[128];
    snprintf(label, sizeof label, "%s: %s", op, what);
    const int f = nl_check_rel(label, g, w, a->n, rtol);
    free(g);
    free(w);
    return f;
}

/* runs expr once with be = the CPU backend and P(x) = x.h, once with the CUDA backend and x.d */
#define BOTH(expr)                                                                                                     \
    do {                                                                                                               \
        for (int dev_ = 0; dev_ < 2; dev_++) {                                                                         \
            const nl_backend *be = dev_ ? gpu : cpu;                                                                   \
            expr;                                                                                                      \
        }                                                                                                              \
    } while (0)
#define P(a) (dev_ ? (a).d : (a).h)
#define PN(a, on) ((on) ? P(a) : NULL)

enum { TOL_OP = 0 };
static const double RTOL = 1e-5, RTOL_SUM = 1e-9;

/* ---------------------------------------------------------------- ops */

static int ops_norms(void) {
    int f = 0;
    const size_t N = 37;
    static const int widths[] = { 67, 1500 };
    for (int wi = 0; wi < 2; wi++) {
        const int C = widths[wi];
        char op[64];
        for (int k = 0; k < 3; k++) { /* layernorm with bias, layernorm without, rmsnorm */
            const int type = k < 2 ? NL_LAYERNORM : NL_RMSNORM, hasb = k == 0;
            snprintf(op, sizeof op, "norm %s%s C=%d", k < 2 ? "layernorm" : "rmsnorm", k == 1 ? " (no bias)" : "", C);
            arr x = mk(N * C, 1.0, 0.3f), w = mk(C, 0.5, 1.0f), b = mk(C, 0.5, 0.0f), out = zeros(N * C),
                mean = zeros(N), rstd = zeros(N), dout = mk(N * C, 1.0, 0.0f), dinp = mk(N * C, 1.0, 0.0f),
                dw = mk(C, 1.0, 0.0f), db = mk(C, 1.0, 0.0f);
            BOTH(be->norm_forward(P(out), P(mean), P(rstd), P(x), P(w), PN(b, hasb), 0.7f, type, 1e-5f, N, C));
            f += cmp(op, "out", &out, RTOL) + cmp(op, "mean", &mean, RTOL) + cmp(op, "rstd", &rstd, RTOL);
            BOTH(be->norm_backward(P(dinp), P(dw), PN(db, hasb), P(dout), P(x), P(w), P(mean), P(rstd), 0.7f, type, N, C));
            f += cmp(op, "dinp", &dinp, RTOL) + cmp(op, "dw", &dw, RTOL) + cmp(op, "db", &db, RTOL);
            arr *all[] = { &x, &w, &b, &out, &mean, &rstd, &dout, &dinp, &dw, &db };
            for (size_t i = 0; i < sizeof all / sizeof *all; i++) drop(all[i]);
        }
        { /* ScaleNorm */
            snprintf(op, sizeof op, "scalenorm C=%d", C);
            arr x = mk(N * C, 1.0, 0.0f), g = mk(1, 0.0, 3.0f), out = zeros(N * C), rstd = zeros(N),
                dout = mk(N * C, 1.0, 0.0f), dinp = mk(N * C, 1.0, 0.0f), dg = mk(1, 1.0, 0.0f);
            BOTH(be->scalenorm_forward(P(out), P(rstd), P(x), P(g), 0.7f, 1e-5f, N, C));
            f += cmp(op, "out", &out, RTOL) + cmp(op, "rstd", &rstd, RTOL);
            BOTH(be->scalenorm_backward(P(dinp), P(dg), P(dout), P(x), P(g), P(rstd), 0.7f, N, C));
            f += cmp(op, "dinp", &dinp, RTOL) + cmp(op, "dg", &dg, RTOL);
            arr *all[] = { &x, &g, &out, &rstd, &dout, &dinp, &dg };
            for (size_t i = 0; i < sizeof all / sizeof *all; i++) drop(all[i]);
        }
        for (int hasb = 0; hasb < 2; hasb++) { /* DyT */
            snprintf(op, sizeof op, "dyt%s C=%d", hasb ? "" : " (no bias)", C);
            arr x = mk(N * C, 1.0, 0.0f), w = mk(C, 0.5, 1.0f), b = mk(C, 0.5, 0.0f), a = mk(1, 0.0, 0.8f),
                out = zeros(N * C), dout = mk(N * C, 1.0, 0.0f), dinp = mk(N * C, 1.0, 0.0f), dw = mk(C, 1.0, 0.0f),
                db = mk(C, 1.0, 0.0f), da = mk(1, 1.0, 0.0f);
            BOTH(be->dyt_forward(P(out), P(x), P(w), PN(b, hasb), P(a), 0.7f, N, C));
            f += cmp(op, "out", &out, RTOL);
            BOTH(be->dyt_backward(P(dinp), P(dw), PN(db, hasb), P(da), P(dout), P(x), P(w), P(a), 0.7f, N, C));
            f += cmp(op, "dinp", &dinp, RTOL) + cmp(op, "dw", &dw, RTOL) + cmp(op, "db", &db, RTOL) +
                 cmp(op, "dalpha", &da, RTOL);
            arr *all[] = { &x, &w, &b, &a, &out, &dout, &dinp, &dw, &db, &da };
            for (size_t i = 0; i < sizeof all / sizeof *all; i++) drop(all[i]);
        }
        { /* SeeDNorm */
            snprintf(op, sizeof op, "seednorm C=%d", C);
            arr x = mk(N * C, 1.0, 0.0f), w = mk(C, 0.5, 1.0f), al = mk(C, 0.5, 0.0f), be_ = mk(C, 0.1, 0.0f),
                out = zeros(N * C), bx = zeros(N), rstd = zeros(N), dout = mk(N * C, 1.0, 0.0f),
                dinp = mk(N * C, 1.0, 0.0f), dw = mk(C, 1.0, 0.0f), dal = mk(C, 1.0, 0.0f), dbe = mk(C, 1.0, 0.0f);
            BOTH(be->seednorm_forward(P(out), P(bx), P(rstd), P(x), P(w), P(al), P(be_), 0.7f, 1e-5f, N, C));
            f += cmp(op, "out", &out, RTOL) + cmp(op, "bx", &bx, RTOL) + cmp(op, "rstd", &rstd, RTOL);
            BOTH(be->seednorm_backward(P(dinp), P(dw), P(dal), P(dbe), P(dout), P(x), P(w), P(al), P(be_), P(bx),
                                       P(rstd), 0.7f, N, C));
            f += cmp(op, "dinp", &dinp, RTOL) + cmp(op, "dw", &dw, RTOL) + cmp(op, "dalpha", &dal, RTOL) +
                 cmp(op, "dbeta", &dbe, RTOL);
            arr *all[] = { &x, &w, &al, &be_, &out, &bx, &rstd, &dout, &dinp, &dw, &dal, &dbe };
            for (size_t i = 0; i < sizeof all / sizeof *all; i++) drop(all[i]);
        }
        { /* CRMSNorm */
            snprintf(op, sizeof op, "crmsnorm C=%d", C);
            arr x = mk(N * C, 1.0, 0.0f), w = mk(C, 0.5, 1.0f), out = zeros(N * C), s1 = zeros(N), rstd = zeros(N),
                dout = mk(N * C, 1.0, 0.0f), dinp = mk(N * C, 1.0, 0.0f), dw = mk(C, 1.0, 0.0f);
            BOTH(be->crmsnorm_forward(P(out), P(s1), P(rstd), P(x), P(w), 0.7f, 1e-5f, N, C));
            f += cmp(op, "out", &out, RTOL) + cmp(op, "s1", &s1, RTOL) + cmp(op, "rstd", &rstd, RTOL);
            BOTH(be->crmsnorm_backward(P(dinp), P(dw), P(dout), P(x), P(w), P(s1), P(rstd), 0.7f, N, C));
            f += cmp(op, "dinp", &dinp, RTOL) + cmp(op, "dw", &dw, RTOL);
            arr *all[] = { &x, &w, &out, &s1, &rstd, &dout, &dinp, &dw };
            for (size_t i = 0; i < sizeof all / sizeof *all; i++) drop(all[i]);
        }
    }
    return f;
}

static int ops_scales(void) {
    int f = 0;
    const size_t N = 37;
    const int C = 64, NH = 4;
    arr x = mk(N * C, 1.0, 0.0f), y = mk(N * C, 1.0, 0.0f), g = mk(NH, 0.5, 1.0f), lam = mk(C, 0.5, 1.0f),
        s = mk(1, 0.0, 0.6f), out = zeros(N * C), dout = mk(N * C, 1.0, 0.0f), dinp = zeros(N * C),
        dg = mk(NH, 1.0, 0.0f), dlam = mk(C, 1.0, 0.0f), ds = mk(1, 1.0, 0.0f);
    BOTH(be->headscale_forward(P(out), P(x), P(g), N, C, NH));
    f += cmp("headscale", "out", &out, RTOL);
    BOTH(be->headscale_backward(P(dinp), P(dg), P(dout), P(x), P(g), N, C, NH));
    f += cmp("headscale", "dinp", &dinp, RTOL) + cmp("headscale", "dg", &dg, RTOL);
    BOTH(be->chanres_forward(P(out), P(x), P(y), P(lam), N, C));
    f += cmp("chanres", "out", &out, RTOL);
    BOTH(be->chanres_backward(P(dinp), P(dlam), P(dout), P(x), P(lam), N, C));
    f += cmp("chanres", "dx", &dinp, RTOL) + cmp("chanres", "dlam", &dlam, RTOL);
    BOTH(be->gain_forward(P(out), P(x), P(s), N * C));
    f += cmp("gain", "out", &out, RTOL);
    BOTH(be->gain_backward(P(dout), P(ds), P(dout), P(x), P(s), N * C)); /* dinp aliasing dout */
    f += cmp("gain", "dinp (in place)", &dout, RTOL) + cmp("gain", "dg", &ds, RTOL);
    BOTH(be->gpas_forward(P(out), P(x), P(s), N * C));
    f += cmp("gpas", "out", &out, RTOL);
    BOTH(be->gpas_backward(P(ds), P(dout), P(x), P(s), N * C));
    f += cmp("gpas", "dgate", &ds, RTOL);
    BOTH(be->residual_forward(P(out), P(x), P(y), 0.37f, N * C));
    f += cmp("residual", "out", &out, RTOL);
    BOTH(be->scale_shift(P(out), P(out), 1.7f, -0.2f, N * C));
    f += cmp("scale_shift", "out (in place)", &out, RTOL);
    BOTH(be->copy_cols(P(out) + 3, C, P(x) + 5, C, N, 17));
    f += cmp("copy_cols", "out", &out, RTOL);
    arr *all[] = { &x, &y, &g, &lam, &s, &out, &dout, &dinp, &dg, &dlam, &ds };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) drop(all[i]);
    return f;
}

/* nGPT's ops (src/cpu/ops_sphere.c) */
static int ops_sphere(void) {
    int f = 0;
    const size_t N = 37;
    const int C = 64, G = 16, LD = 70;
    arr x = mk(N * C, 1.0, 0.0f), y = mk(N * C, 1.0, 0.0f), sc = mk(C, 0.5, 1.0f), rstd = zeros(N * C / G),
        out = zeros(N * C), dout = mk(N * C, 1.0, 0.0f), dinp = mk(N * C, 1.0, 0.0f), dy = zeros(N * C),
        ds = mk(C, 1.0, 0.0f), xl = mk(N * LD, 1.0, 0.0f), dl = mk(N * LD, 1.0, 0.0f), ol = zeros(N * LD),
        w = mk(65 * (size_t)C, 0.3, 0.0f);
    BOTH(be->l2norm_forward(P(out), P(rstd), P(x), P(sc), 2.5f, N, C, G));
    f += cmp("l2norm", "out", &out, RTOL) + cmp("l2norm", "rstd", &rstd, RTOL);
    BOTH(be->l2norm_backward(P(dinp), P(ds), P(dout), P(x), P(sc), P(rstd), 2.5f, N, C, G)); /* dinp accumulates */
    f += cmp("l2norm", "dinp", &dinp, RTOL) + cmp("l2norm", "ds", &ds, RTOL);
    BOTH(be->l2norm_forward(P(out), P(rstd), P(x), NULL, 1.0f, N, C, C));
    f += cmp("l2norm (no scales)", "out", &out, RTOL);
    BOTH(be->lerp_forward(P(out), P(x), P(y), P(sc), -0.3f, N, C));
    f += cmp("lerp", "out", &out, RTOL);
    BOTH(be->lerp_backward(P(dinp), P(dy), P(ds), P(dout), P(x), P(y), P(sc), -0.3f, N, C));
    f += cmp("lerp", "dx", &dinp, RTOL) + cmp("lerp", "dy", &dy, RTOL) + cmp("lerp", "dalpha", &ds, RTOL);
    BOTH(be->colscale_forward(P(ol), P(xl), P(sc), 1.7f, N, C, LD));
    f += cmp("colscale", "out", &ol, RTOL);
    BOTH(be->colscale_backward(P(dl), P(ds), P(dl), P(xl), P(sc), 1.7f, N, C, LD)); /* in place */
    f += cmp("colscale", "dinp (in place, stride)", &dl, RTOL) + cmp("colscale", "ds", &ds, RTOL);
    BOTH(be->unit_project(P(w), 65, C, 0));
    f += cmp("unit_project", "rows", &w, RTOL);
    BOTH(be->unit_project(P(w), 65, C, 1));
    f += cmp("unit_project", "columns", &w, RTOL);
    arr *all[] = { &x, &y, &sc, &rstd, &out, &dout, &dinp, &dy, &ds, &xl, &dl, &ol, &w };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) drop(all[i]);
    return f;
}

static int ops_linear(void) {
    int f = 0;
    const size_t N = 37;
    const int IC = 67, OC = 45;
    for (int hasb = 0; hasb < 2; hasb++) {
        const char *op = hasb ? "linear" : "linear (no bias)";
        arr x = mk(N * IC, 1.0, 0.0f), w = mk((size_t)OC * IC, 0.2, 0.0f), b = mk(OC, 0.5, 0.0f), out = zeros(N * OC),
            dout = mk(N * OC, 1.0, 0.0f), dinp = zeros(N * IC), dw = mk((size_t)OC * IC, 1.0, 0.0f),
            db = mk(OC, 1.0, 0.0f);
        BOTH(be->linear_forward(P(out), P(x), P(w), PN(b, hasb), N, IC, OC));
        f += cmp(op, "out", &out, RTOL);
        BOTH(be->linear_backward(P(dinp), P(dw), PN(db, hasb), P(dout), P(x), P(w), N, IC, OC));
        f += cmp(op, "dinp", &dinp, RTOL) + cmp(op, "dw", &dw, RTOL) + cmp(op, "db", &db, RTOL);
        arr *all[] = { &x, &w, &b, &out, &dout, &dinp, &dw, &db };
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) drop(all[i]);
    }
    const int M = 33, Nn = 29, K = 41;
    for (int tA = 0; tA < 2; tA++)
        for (int tB = 0; tB < 2; tB++) {
            const int lda = (tA ? M : K) + 3, ldb = (tB ? K : Nn) + 5, ldc = Nn + 2;
            arr A = mk((size_t)(tA ? K : M) * lda, 1.0, 0.0f), B = mk((size_t)(tB ? Nn : K) * ldb, 1.0, 0.0f),
                Cm = mk((size_t)M * ldc, 1.0, 0.0f);
            BOTH(be->gemm(tA, tB, M, Nn, K, 0.7f, P(A), lda, P(B), ldb, 0.3f, P(Cm), ldc));
            char op[32];
            snprintf(op, sizeof op, "gemm tA=%d tB=%d", tA, tB);
            f += cmp(op, "C", &Cm, RTOL);
            BOTH(be->gemm(tA, tB, M, Nn, K, 1.0f, P(A), lda, P(B), ldb, 0.0f, P(Cm), ldc)); /* again: the cached plan */
            f += cmp(op, "C (cached plan, beta 0)", &Cm, RTOL);
            drop(&A), drop(&B), drop(&Cm);
        }
    printf("    gemm: %s\n", gpu->gemm_info());
    return f;
}

static int ops_attention(void) {
    int f = 0;
    const int B = 2, T = 19, C = 32, NH = 4;
    static const int kvh[] = { 4, 2, 1 };
    for (int k = 0; k < 3; k++) {
        const int KVH = kvh[k], kvC = KVH * (C / NH), ld = C + 2 * kvC;
        const size_t N = (size_t)B * T, ATT = (size_t)B * NH * T * T;
        char op[48];
        snprintf(op, sizeof op, "attention NH=%d KVH=%d", NH, KVH);
        arr qkv = mk(N * ld, 1.0, 0.0f), out = zeros(N * C), att = zeros(ATT), dout = mk(N * C, 1.0, 0.0f),
            dqkv = mk(N * ld, 1.0, 0.0f), datt = zeros(ATT);
        BOTH(be->attention_forward(P(out), P(att), P(qkv), B, T, C, NH, KVH));
        f += cmp(op, "out", &out, RTOL) + cmp(op, "att", &att, RTOL);
        BOTH(be->attention_backward(P(dqkv), P(datt), P(dout), P(qkv), P(att), B, T, C, NH, KVH));
        f += cmp(op, "dqkv", &dqkv, RTOL);
        /* a shorter call into the same buffers (the model's smaller batches) */
        BOTH(be->attention_forward(P(out), P(att), P(qkv), 1, T - 4, C, NH, KVH));
        f += cmp(op, "out (B=1, T-4)", &out, RTOL);
        arr *all[] = { &qkv, &out, &att, &dout, &dqkv, &datt };
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) drop(all[i]);
    }
    { /* RoPE on q and k of a grouped layout */
        const int hs = 8, kvC = 16, ld = C + 2 * kvC, nrot = C + kvC;
        const size_t N = (size_t)B * T;
        arr cs = zeros((size_t)T * hs / 2), sn = zeros((size_t)T * hs / 2), x = mk(N * ld, 1.0, 0.0f), y = zeros(N * ld);
        BOTH(be->rope_table(P(cs), P(sn), T, hs, 10000.0));
        f += cmp("rope", "cos table", &cs, RTOL) + cmp("rope", "sin table", &sn, RTOL);
        BOTH(be->rope_forward(P(y), P(x), P(cs), P(sn), B, T, ld, nrot, hs));
        f += cmp("rope", "forward", &y, RTOL);
        BOTH(be->rope_forward(P(x), P(x), P(cs), P(sn), B, T, ld, nrot, hs));
        f += cmp("rope", "forward in place", &x, RTOL);
        BOTH(be->rope_backward(P(y), P(cs), P(sn), B, T, ld, nrot, hs));
        f += cmp("rope", "backward", &y, RTOL);
        drop(&cs), drop(&sn), drop(&x), drop(&y);
    }
    return f;
}

static int ops_misc(void) {
    int f = 0;
    const size_t N = 37;
    const int F = 53;
    arr x = mk(N * 2 * F, 1.5, 0.0f), y = zeros(N * 2 * F), dy = mk(N * 2 * F, 1.0, 0.0f), dx = zeros(N * 2 * F);
    BOTH(be->gelu_forward(P(y), P(x), N * 2 * F));
    f += cmp("gelu", "out", &y, RTOL);
    BOTH(be->gelu_backward(P(dx), P(x), P(dy), N * 2 * F));
    f += cmp("gelu", "dinp", &dx, RTOL);
    BOTH(be->swiglu_forward(P(y), P(x), N, F));
    f += cmp("swiglu", "out", &y, RTOL);
    BOTH(be->swiglu_backward(P(dx), P(x), P(dy), N, F));
    f += cmp("swiglu", "dinp", &dx, RTOL);
    drop(&x), drop(&y), drop(&dy), drop(&dx);

    const int B = 3, T = 11, C = 40, V = 50;
    iarr tok = { nl_xmalloc((size_t)B * T * sizeof(int)), gpu->alloc((size_t)B * T * sizeof(int)), (size_t)B * T };
    for (size_t i = 0; i < tok.n; i++)
        tok.h[i] = (int)(nl_rng_below(&rng, 7)) * 7; /* repeated ids: the scatter-add collides */
    gpu->from_host(tok.d, tok.h, tok.n * sizeof(int));
    for (int haspos = 0; haspos < 2; haspos++) {
        const char *op = haspos ? "encoder" : "encoder (no positions)";
        arr wte = mk((size_t)V * C, 1.0, 0.0f), wpe = mk((size_t)T * C, 1.0, 0.0f), out = zeros((size_t)B * T * C),
            dout = mk((size_t)B * T * C, 1.0, 0.0f), dwte = mk((size_t)V * C, 1.0, 0.0f),
            dwpe = mk((size_t)T * C, 1.0, 0.0f);
        BOTH(be->encoder_forward(P(out), P(tok), P(wte), PN(wpe, haspos), B, T, C));
        f += cmp(op, "out", &out, RTOL);
        BOTH(be->encoder_backward(P(dwte), PN(dwpe, haspos), P(dout), P(tok), B, T, C));
        f += cmp(op, "dwte", &dwte, RTOL) + cmp(op, "dwpe", &dwpe, RTOL);
        arr *all[] = { &wte, &wpe, &out, &dout, &dwte, &dwpe };
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) drop(all[i]);
    }
    { /* cross-entropy over the first V of ld columns */
        const int Vx = 91, ld = 96;
        for (int k = 0; k < 2; k++) {
            const float dscale = k ? 1.0f / (float)tok.n : 0.0f;
            arr z = mk(tok.n * ld, 2.0, 0.0f), loss = zeros(tok.n);
            BOTH(be->xent(P(loss), P(z), P(tok), tok.n, Vx, ld, dscale));
            f += cmp("xent", "losses", &loss, RTOL);
            if (k) f += cmp("xent", "dlogits", &z, RTOL);
            drop(&z), drop(&loss);
        }
    }
    free(tok.h);
    gpu->free(tok.d);
    { /* three AdamW steps */
        const size_t n = 1001;
        arr p = mk(n, 1.0, 0.0f), m = zeros(n), v = zeros(n), g = mk(n, 1.0, 0.0f);
        for (int t = 1; t <= 3; t++) {
            const nl_adamw_hp hp = { 1e-2f,
                                     0.9f,
                                     0.95f,
                                     1e-8f,
                                     0.1f,
                                     (float)(1.0 / (1.0 - pow(0.9, t))),
                                     (float)(1.0 / (1.0 - pow(0.95, t))),
                                     0.5f };
            BOTH(be->adamw(P(p), P(m), P(v), P(g), n, &hp));
        }
        f += cmp("adamw", "p", &p, RTOL) + cmp("adamw", "m", &m, RTOL) + cmp("adamw", "v", &v, RTOL);
        drop(&p), drop(&m), drop(&v), drop(&g);
    }
    { /* reductions to the host */
        const size_t n = 100007;
        arr a = mk(n, 1.0, 0.1f), scr = zeros(n);
        f += nl_check_scalar("sum", gpu->sum(a.d, n), cpu->sum(a.h, n), RTOL_SUM);
        f += nl_check_scalar("sumsq", gpu->sumsq(a.d, n), cpu->sumsq(a.h, n), RTOL_SUM);
        f += NL_CHECK(gpu->first_nonfinite(a.d, n) == n, "first_nonfinite on finite data");
        nl_stream_stat sc, sg;
        cpu->stream_stats(a.h, 1001, 99, scr.h, &sc);
        gpu->stream_stats(a.d, 1001, 99, scr.d, &sg);
        f += nl_check_scalar("stream var", sg.var, sc.var, RTOL_SUM) +
             nl_check_scalar("stream gvar", sg.gvar, sc.gvar, RTOL_SUM) +
             nl_check_scalar("stream rms", sg.rms, sc.rms, RTOL_SUM) +
             nl_check_scalar("stream maxabs", sg.maxabs, sc.maxabs, RTOL_SUM) +
             nl_check_scalar("stream median", sg.median, sc.median, RTOL_SUM);
        const float bad[2] = { NAN, INFINITY };
        gpu->from_host(a.d + 50000, &bad[1], sizeof(float));
        gpu->from_host(a.d + 12345, &bad[0], sizeof(float));
        const size_t i = gpu->first_nonfinite(a.d, n);
        f += NL_CHECK(i == 12345, "first_nonfinite: %zu, want 12345", i);
        drop(&a), drop(&scr);
    }
    return f;
}

/* ---------------------------------------------------------------- the whole model */

typedef struct {
    const char *name;
    int placement, norm_type, arch, kv_heads, qk_norm, skip_init, gpas, sdd;
} model_case;

static void small_config(nl_config *c, const model_case *k, int device) {
    nl_config_defaults(c);
    c->vocab = 256;
    c->layers = 3;
    c->dim = 32;
    c->heads = 4;
    c->seq_len = 16;
    c->batch = 2;
    c->placement = k->placement;
    c->norm_type = k->norm_type;
    c->arch = k->arch;
    c->kv_heads = k->kv_heads;
    c->qk_norm = k->qk_norm;
    c->skip_init = k->skip_init;
    c->gpas = k->gpas;
    c->sdd = k->sdd;
    c->seed = 7;
    c->device = device;
}

static int init_pair(const model_case *k, nl_model *mc, nl_model *mg) {
    nl_config c;
    small_config(&c, k, NL_DEVICE_CPU);
    if (nl_model_init(mc, &c) != NL_OK) return printf("    %s: cpu init: %s\n", k->name, nl_last_error()), 1;
    small_config(&c, k, NL_DEVICE_CUDA);
    if (nl_model_init(mg, &c) != NL_OK)
        return printf("    %s: cuda init: %s\n", k->name, nl_last_error()), nl_model_free(mc), 1;
    nl_model_alloc_acts(mc, c.batch, c.seq_len);
    nl_model_alloc_acts(mg, c.batch, c.seq_len);
    return 0;
}

static int grads_match(const model_case *k, const nl_model *mc, const nl_model *mg) {
    float *g = nl_xmalloc(mc->nparams * sizeof(float));
    double *w = nl_xmalloc(mc->nparams * sizeof(double));
    gpu->to_host(g, mg->grads, mc->nparams * sizeof(float));
    nl_to_double(mc->grads, w, mc->nparams);
    char label[160];
    snprintf(label, sizeof label, "%s: all gradients", k->name);
    int f = nl_check_rel(label, g, w, mc->nparams, 1e-5);
    for (int i = 0; i < mc->ntensors; i++) {
        const nl_tensor *t = &mc->tensors[i];
        snprintf(label, sizeof label, "%s: grad %s", k->name, t->name);
        f += nl_check_rel(label, g + t->offset, w + t->offset, t->numel, 1e-4);
    }
    free(g);
    free(w);
    return f;
}

static int model_fp32(const model_case *k, const int *inp, const int *tgt) {
    nl_model mc, mg;
    if (init_pair(k, &mc, &mg)) return 1;
    const int B = mc.cfg.batch, T = mc.cfg.seq_len;
    int f = 0;
    nl_model_zero_grad(&mc);
    nl_model_zero_grad(&mg);
    const float lc = nl_model_forward(&mc, inp, tgt, B, T, 1.0f / (float)(B * T));
    const float lg = nl_model_forward(&mg, inp, tgt, B, T, 1.0f / (float)(B * T));
    char label[96];
    snprintf(label, sizeof label, "%s: loss", k->name);
    f += nl_check_scalar(label, lg, lc, 1e-5);
    nl_model_backward(&mc);
    nl_model_backward(&mg);
    f += grads_match(k, &mc, &mg);
    /* determinism: the same forward and backward again, bit for bit */
    float *g1 = nl_xmalloc(mg.nparams * sizeof(float)), *g2 = nl_xmalloc(mg.nparams * sizeof(float));
    gpu->to_host(g1, mg.grads, mg.nparams * sizeof(float));
    nl_model_zero_grad(&mg);
    nl_model_forward(&mg, inp, tgt, B, T, 1.0f / (float)(B * T));
    nl_model_backward(&mg);
    gpu->to_host(g2, mg.grads, mg.nparams * sizeof(float));
    f += NL_CHECK(!memcmp(g1, g2, mg.nparams * sizeof(float)), "%s: two CUDA backward passes differ", k->name);
    free(g1);
    free(g2);
    nl_model_free(&mc);
    nl_model_free(&mg);
    return f;
}

/* 50 AdamW steps (lr 1e-3, warmup 5, clip 1) on windows of the text; each step's loss is compared */
static int train_curve(const model_case *k, const unsigned char *text, size_t ntext) {
    nl_model mc, mg;
    if (init_pair(k, &mc, &mg)) return 1;
    nl_config c = mc.cfg;
    c.steps = 50;
    c.lr = 1e-3;
    c.warmup = 5;
    const int B = c.batch, T = c.seq_len;
    int *inp = nl_xmalloc((size_t)B * T * sizeof(int)), *tgt = nl_xmalloc((size_t)B * T * sizeof(int));
    nl_rng r;
    nl_rng_seed(&r, 99);
    double worst = 0.0;
    int worst_step = 0;
    float lc = 0, lg = 0;
    for (int step = 0; step < c.steps; step++) {
        for (int b = 0; b < B; b++) {
            const size_t o = nl_rng_below(&r, ntext - (size_t)T - 1);
            for (int t = 0; t < T; t++) inp[b * T + t] = text[o + t], tgt[b * T + t] = text[o + t + 1];
        }
        nl_model *ms[2] = { &mc, &mg };
        float l[2];
        for (int j = 0; j < 2; j++) {
            nl_model_zero_grad(ms[j]);
            l[j] = nl_model_forward(ms[j], inp, tgt, B, T, 1.0f / (float)(B * T));
            nl_model_backward(ms[j]);
            const double gn = nl_grad_norm(ms[j]);
            nl_adamw_step(ms[j], nl_lr_at(&c, step), nl_clip_scale(gn, 1.0), step + 1);
        }
        const double d = fabs((double)l[1] - l[0]) / fabs((double)l[0]);
        if (!(d <= worst)) worst = d, worst_step = step;
        lc = l[0], lg = l[1];
    }
    printf("    %-28s final loss cpu %.5f cuda %.5f, worst step %d: relative difference %.2e\n", k->name, lc, lg,
           worst_step, worst);
    int f = NL_CHECK(worst <= 1e-3, "%s: the CUDA loss curve leaves the CPU curve (%.2e at step %d)", k->name, worst,
                     worst_step);
    free(inp);
    free(tgt);
    nl_model_free(&mc);
    nl_model_free(&mg);
    return f;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    const long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *s = nl_xmalloc((size_t)len + 1);
    *n = fread(s, 1, (size_t)len, fp);
    fclose(fp);
    return s;
}

int main(void) {
    cpu = nl_backend_cpu();
    if (nl_backend_cuda(&gpu) != NL_OK) {
        fprintf(stderr, "nl_cuda_tests: no GPU: %s\n", nl_last_error());
        return 1;
    }
    nl_rng_seed(&rng, 1234);
    int failed = 0, total = 0;
#define SECTION(name, expr)                                                                                            \
    do {                                                                                                               \
        printf("%s ...\n", name);                                                                                      \
        fflush(stdout);                                                                                                \
        const int f_ = (expr);                                                                                         \
        printf("%s %s\n", name, f_ ? "FAIL" : "ok");                                                                   \
        failed += f_ != 0;                                                                                             \
        total++;                                                                                                       \
    } while (0)
    SECTION("ops_norms", ops_norms());
    SECTION("ops_scales", ops_scales());
    SECTION("ops_sphere", ops_sphere());
    SECTION("ops_linear", ops_linear());
    SECTION("ops_attention", ops_attention());
    SECTION("ops_misc", ops_misc());

    /* every placement with its own defaults, then the other norm types and wirings */
    model_case cases[NL_PLACE_COUNT + 10];
    int nc = 0;
    for (int p = 0; p < NL_PLACE_COUNT; p++)
        cases[nc++] = (model_case){ nl_placements[p].name, p, -1, NL_ARCH_GPT2, 0, 0, 0, 0, 0 };
    for (int t = 0; t < NL_NORM_TYPE_COUNT; t++)
        if (t != NL_LAYERNORM && t != NL_L2NORM)
            cases[nc++] = (model_case){ nl_norm_type_names[t], NL_PLACE_PERI, t, NL_ARCH_GPT2, 0, 0, 0, 0, 0 };
    cases[nc++] = (model_case){ "llama pre gqa qk-norm", NL_PLACE_PRE, -1, NL_ARCH_LLAMA, 2, 1, 0, 0, 0 };
    cases[nc++] = (model_case){ "pre skip-init", NL_PLACE_PRE, -1, NL_ARCH_GPT2, 0, 0, 1, 0, 0 };
    cases[nc++] = (model_case){ "peri gpas sdd", NL_PLACE_PERI, -1, NL_ARCH_GPT2, 0, 0, 0, 1, 1 };
    cases[nc++] = (model_case){ "llama pre gqa gpas sdd", NL_PLACE_PRE, -1, NL_ARCH_LLAMA, 2, 0, 0, 1, 1 };
    int inp[2 * 16], tgt[2 * 16];
    for (int i = 0; i < 32; i++) inp[i] = (int)nl_rng_below(&rng, 256), tgt[i] = (int)nl_rng_below(&rng, 256);
    int fm = 0;
    printf("model_fp32 ...\n");
    for (int i = 0; i < nc; i++) fm += model_fp32(&cases[i], inp, tgt);
    printf("model_fp32 %s\n", fm ? "FAIL" : "ok");
    failed += fm != 0;
    total++;

    size_t ntext = 0;
    unsigned char *text = slurp("data/tinyshakespeare.txt", &ntext);
    int ft = NL_CHECK(text && ntext > 1000, "data/tinyshakespeare.txt not found (run from the repository root)");
    printf("train_50 ...\n");
    for (int p = 0; text && p < NL_PLACE_COUNT; p++) ft += train_curve(&cases[p], text, ntext);
    printf("train_50 %s\n", ft ? "FAIL" : "ok");
    failed += ft != 0;
    total++;
    free(text);
    printf("%d passed, %d failed\n", total - failed, failed);
    return failed ? 1 : 0;
}
