/* test_dtype.c -- --dtype bf16|fp16 through the backend (docs/numerics.md §3-§5).
 * dtype_model: the whole model (GPT-2 Pre-LN and Llama Pre-LN, L4 d32) in bf16 and fp16 against fp32 on
 * the same parameters and batch: the loss and the parameter gradients within the four-sigma bounds of
 * §5.2, the difference not zero (a missing rounding would pass any upper bound), every stored
 * activation and activation gradient representable in the dtype (rule 3), and no rounding counted in
 * fp32. dtype_train: determinism per dtype (two runs, identical bits; bf16 and fp16 differ from fp32), and
 * 200 steps of bf16 and of fp16 (loss scale 2^16) tracking the fp32 curve: the mean loss of steps
 * 151-200 within max(3 sigma_seed, 0.02 L_32) of fp32's, sigma_seed over three fp32 seeds (§5.2,
 * "Training curves"); the library's trainer skipping fp16 overflow steps. dtype_cli: an fp16 run whose loss scale starts at 2^32, so the gradients overflow:
 * the scale halves on each skipped step, training then goes on and the scale grows again; resume per
 * dtype reproduces the uninterrupted curve bit for bit (loss scaler state in the checkpoint); the dtype
 * in config.txt, the export's metadata and the report; bad values refused with one line. */
#include "check.h"
#include "config.h"
#include "cpu/gemm.h"
#include "cpu/lowp.h"
#include "model.h"
#include "optim.h"
#include "tests.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { DV = 64, DT = 16, DB = 4 };

static nl_config small(int arch, int dtype, uint64_t seed) {
    nl_config c = nl_test_config(DV, 4, 32, 4, DT, seed);
    c.placement = NL_PLACE_PRE;
    c.arch = arch;
    c.dtype = dtype;
    return c;
}

/* a learnable stream: a fixed random walk over the vocabulary with repeats */
static void batch(int *inp, int *tgt, uint64_t seed) {
    nl_rng r;
    nl_rng_seed(&r, seed);
    for (int b = 0; b < DB; b++) {
        int t = (int)nl_rng_below(&r, DV);
        for (int i = 0; i <= DT; i++) {
            if (i < DT) inp[b * DT + i] = t;
            if (i > 0) tgt[b * DT + i - 1] = t;
            t = nl_rng_below(&r, 4) == 0 ? (int)nl_rng_below(&r, DV) : (t * 5 + 3) % DV;
        }
    }
}

static double norm2(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

/* 1 if every value of x is representable in dt (rounding changes nothing) */
static int representable(const float *x, size_t n, nl_dtype dt) {
    float *y = nl_xmalloc(n * sizeof *y);
    nl_lowp_round(y, x, n, dt, NULL);
    const int ok = !memcmp(x, y, n * sizeof *y);
    free(y);
    return ok;
}

/* the stored activations of the last forward and backward that rule 3 says are in the dtype */
static int check_stored(const nl_model *m, nl_dtype dt, const char *label) {
    const size_t N = (size_t)DB * DT, C = (size_t)m->cfg.dim, NC = N * C;
    int fails = NL_CHECK(representable(m->emb, NC, dt), "%s: embedding output stored in the dtype", label);
    for (int l = 0; l < m->cfg.layers; l++) {
        const nl_sub_acts *A = &m->sub[2 * l], *M = &m->sub[2 * l + 1];
        fails += NL_CHECK(representable(A->u, NC, dt) && representable(A->qkv, N * (size_t)m->Q3, dt) &&
                                  representable(A->att, (size_t)DB * m->cfg.heads * DT * DT, dt) &&
                                  representable(A->atty, NC, dt) && representable(A->a, NC, dt) &&
                                  representable(A->z, NC, dt),
                          "%s: block %d attention activations (norm out, qkv, P, heads, projection, sum) in the dtype",
                          label, l);
        fails += NL_CHECK(representable(M->fch, N * (size_t)m->FW, dt) && representable(M->fgelu, N * (size_t)m->F, dt) &&
                                  representable(M->a, NC, dt) && representable(M->z, NC, dt),
                          "%s: block %d MLP activations in the dtype", label, l);
    }
    fails += NL_CHECK(representable(m->xf, NC, dt) && representable(m->logits, N * (size_t)m->cfg.vocab_padded, dt),
                      "%s: final norm output and dlogits in the dtype", label);
    /* backward scratch: the last values written (block 0's) */
    fails += NL_CHECK(representable(m->du, NC, dt) && representable(m->dqkv, N * (size_t)m->Q3, dt) &&
                              representable(m->dfch, N * (size_t)m->FW, dt) && representable(m->gA, NC, dt) &&
                              representable(m->gB, NC, dt),
                      "%s: activation gradients in the dtype", label);
    return fails;
}

int test_dtype_model(void) {
    int fails = 0;
    static const double u[NL_DTYPE_COUNT] = { 0, 0x1p-8, 0x1p-11 };
    const size_t N = (size_t)DB * DT;
    int inp[DB * DT], tgt[DB * DT];
    batch(inp, tgt, 3);
    for (int arch = 0; arch <= NL_ARCH_LLAMA; arch++) { /* the language models: --arch dit is fp32 only */
        nl_model ref;
        nl_config c = small(arch, NL_DTYPE_FP32, 11);
        fails += NL_CHECK(nl_model_init(&ref, &c) == NL_OK, "init: %s", nl_last_error());
        nl_model_alloc_acts(&ref, DB, DT);
        nl_model_zero_grad(&ref);
        const float L32 = nl_model_forward(&ref, inp, tgt, DB, DT, 0.0f);
        double zmax = 0;
        for (size_t i = 0; i < N; i++)
            for (int j = 0; j < DV; j++) zmax = fmax(zmax, fabs(ref.logits[i * ref.cfg.vocab_padded + j]));
        nl_model_forward(&ref, inp, tgt, DB, DT, 1.0f / (float)N);
        nl_model_backward(&ref);
        uint64_t counted = 0;
        for (int i = 0; i < 2 * (c.layers + 2); i++) counted += ref.lowp[i].overflow + ref.lowp[i].flushed;
        fails += NL_CHECK(counted == 0, "fp32 counts no rounding");
        const double g32 = norm2(ref.grads, ref.nparams);
        /* §5.2: sites per block 15 (GPT-2: norm, weights, products, GELU, sums) or 16 (Llama: + RoPE), 4 at
         * the ends; a = 2.5 (GELU) or 3.5 (SwiGLU); attention scores at init are far below 1 */
        const int n_fwd = (arch == NL_ARCH_LLAMA ? 16 : 15) * c.layers + 4;
        const double a = arch == NL_ARCH_LLAMA ? 3.5 : 2.5;
        for (int dt = NL_DTYPE_BF16; dt <= NL_DTYPE_FP16; dt++) {
            nl_model m;
            c = small(arch, dt, 11);
            fails += NL_CHECK(nl_model_init(&m, &c) == NL_OK, "init: %s", nl_last_error());
            fails += NL_CHECK(m.be->dtype == (nl_dtype)dt && !memcmp(m.params, ref.params, m.nparams * sizeof(float)),
                              "the dtype is the backend's; the same fp32 parameters");
            nl_model_alloc_acts(&m, DB, DT);
            nl_model_zero_grad(&m);
            /* fp16: the loss scale 2^16 of training, divided out of the fp32 gradients after */
            const double S = dt == NL_DTYPE_FP16 ? 65536.0 : 1.0;
            const float LD = nl_model_forward(&m, inp, tgt, DB, DT, (float)(S / (double)N));
            nl_model_backward(&m);
            char label[64];
            snprintf(label, sizeof label, "%s %s", nl_arch_names[arch], nl_dtype_names[dt]);
            fails += check_stored(&m, (nl_dtype)dt, label);
            double d2 = 0;
            for (size_t i = 0; i < m.nparams; i++) {
                const double e = m.grads[i] / S - ref.grads[i];
                d2 += e * e;
            }
            const double gerr = sqrt(d2) / g32, lerr = fabs((double)LD - L32);
            const double gbound = 4 * a * sqrt(2.0 * n_fwd / 3) * u[dt], gworst = 2 * a * n_fwd * u[dt];
            const double lbound = 8 * a * sqrt(n_fwd / 3.0) * u[dt] * zmax, lworst = 2 * a * n_fwd * u[dt] * zmax;
            printf("    %s: loss %.6f vs %.6f: |dL| %.3g = %.3f of the 4-sigma bound %.3g (%.4f of the worst case); "
                   "gradients rel %.3g = %.3f of %.3g (%.4f of the worst case)\n",
                   label, LD, L32, lerr, lerr / lbound, lbound, lerr / lworst, gerr, gerr / gbound, gbound,
                   gerr / gworst);
            fails += NL_CHECK(lerr <= lbound, "%s: loss within the bound", label);
            fails += NL_CHECK(gerr <= gbound, "%s: gradients within the bound", label);
            /* not fp32: one rounding of every gradient would already be about u/sqrt(3) */
            fails += NL_CHECK(gerr > u[dt] / 16 && LD != L32, "%s: differs from fp32 by more than u/16 (%.3g)", label,
                              gerr);
            uint64_t ov = 0;
            for (int i = 0; i < 2 * (c.layers + 2); i++) ov += m.lowp[i].overflow;
            fails += NL_CHECK(ov == 0, "%s: nothing overflows at this scale", label);
            nl_model_free(&m);
        }
        nl_model_free(&ref);
    }
    /* the counters see overflow: a huge loss scale makes fp16's dlogits inf, counted at the head */
    nl_model m;
    nl_config c = small(NL_ARCH_GPT2, NL_DTYPE_FP16, 11);
    nl_model_init(&m, &c);
    nl_model_alloc_acts(&m, DB, DT);
    nl_model_zero_grad(&m);
    nl_model_forward(&m, inp, tgt, DB, DT, (float)(0x1p32 / (double)N));
    nl_model_backward(&m);
    const nl_lowp_counts *head = &m.lowp[2 * (c.layers + 1) + 1];
    fails += NL_CHECK(head->overflow > 0 && m.lowp[2 * (c.layers + 1)].overflow == 0 &&
                              m.be->first_nonfinite(m.grads, m.nparams) < m.nparams,
                      "fp16 dlogits past 65504 counted as overflow in the head's backward (%llu), gradients not finite",
                      (unsigned long long)head->overflow);
    nl_model_free(&m);
    return fails;
}

/* steps of training from seed on the batches of batch(); returns the mean loss of steps from..steps and
 * leaves the parameters in params (nparams floats, may be NULL) */
static double train(int dtype, uint64_t seed, int steps, int from, float *params) {
    nl_model m;
    nl_config c = small(NL_ARCH_GPT2, dtype, seed);
    c.layers = 2;
    NL_ASSERT(nl_model_init(&m, &c) == NL_OK);
    nl_model_alloc_acts(&m, DB, DT);
    const double S = dtype == NL_DTYPE_FP16 ? 65536.0 : 1.0, N = (double)DB * DT;
    int inp[DB * DT], tgt[DB * DT];
    double sum = 0;
    for (int s = 0; s < steps; s++) {
        batch(inp, tgt, 1000 + (uint64_t)s);
        nl_model_zero_grad(&m);
        const float loss = nl_model_forward(&m, inp, tgt, DB, DT, (float)(S / N));
        nl_model_backward(&m);
        const double gn = nl_grad_norm(&m) / S;
        NL_ASSERT(isfinite(gn));
        nl_adamw_step(&m, 3e-3, nl_clip_scale(gn, 1.0) / S, s + 1);
        if (s + 1 >= from) sum += loss;
    }
    if (params) memcpy(params, m.params, m.nparams * sizeof(float));
    nl_model_free(&m);
    return sum / (steps - from + 1);
}

/* the library's trainer: fp16 steps whose gradients overflow are skipped (the loss of the same batch does
 * not move), then it trains */
static int library_fp16(void) {
    int fails = 0;
    nl_config c;
    nl_config_defaults(&c);
    c.vocab = DV;
    const char *const kv[][2] = {
        { "layers", "1" },  { "dim", "32" },   { "heads", "2" }, { "seq_len", "16" }, { "batch", "4" },
        { "threads", "1" }, { "warmup", "0" }, { "lr", "1e-2" }, { "dtype", "fp16" }, { "loss_scale", "4294967296" }
    };
    for (size_t i = 0; i < sizeof kv / sizeof *kv; i++)
        fails += NL_CHECK(nl_config_set(&c, kv[i][0], kv[i][1]) == NL_OK, "set %s", kv[i][0]);
    nl_trainer *t;
    fails += NL_CHECK(nl_trainer_create(&t, &c) == NL_OK, "trainer: %s", nl_last_error());
    if (fails) return fails;
    int w[DB * (DT + 1)], inp[DB * DT], tgt[DB * DT];
    batch(inp, tgt, 9);
    for (int b = 0; b < DB; b++) {
        memcpy(w + b * (DT + 1), inp + b * DT, DT * sizeof(int));
        w[b * (DT + 1) + DT] = tgt[b * DT + DT - 1];
    }
    double l[40];
    for (int s = 0; s < 40; s++)
        fails += NL_CHECK(nl_trainer_step(t, w, &l[s]) == NL_OK, "step %d: %s", s + 1, nl_last_error());
    printf("    library fp16 from 2^32: loss %.4f %.4f %.4f ... %.4f\n", l[0], l[1], l[2], l[39]);
    fails += NL_CHECK(l[0] == l[1] && l[1] == l[2] && l[39] < l[0] - 1.0,
                      "the first steps are skipped, then the trainer learns");
    nl_trainer_free(t);
    return fails;
}

/* the parameter count of a model of config c */
static size_t nparams_of(const nl_config *c) {
    nl_model probe;
    nl_model_init(&probe, c);
    const size_t np = probe.nparams;
    nl_model_free(&probe);
    return np;
}

int test_dtype_train(void) {
    int fails = 0;
    const int threads = omp_get_max_threads();
    nl_set_threads(1); /* small products: one thread is the fast and quiet choice */
    nl_config c = small(NL_ARCH_GPT2, NL_DTYPE_FP32, 1);
    c.layers = 2;
    const size_t np = nparams_of(&c);
    float *p[NL_DTYPE_COUNT][2];
    for (int dt = 0; dt < NL_DTYPE_COUNT; dt++)
        for (int k = 0; k < 2; k++) {
            p[dt][k] = nl_xmalloc(np * sizeof(float));
            train(dt, 5, 3, 1, p[dt][k]);
        }
    for (int dt = 0; dt < NL_DTYPE_COUNT; dt++) {
        fails += NL_CHECK(!memcmp(p[dt][0], p[dt][1], np * sizeof(float)), "%s: two runs give the same bits",
                          nl_dtype_names[dt]);
        if (dt)
            fails += NL_CHECK(memcmp(p[dt][0], p[0][0], np * sizeof(float)) != 0, "%s: differs from fp32",
                              nl_dtype_names[dt]);
    }
    for (int dt = 0; dt < NL_DTYPE_COUNT; dt++) free(p[dt][0]), free(p[dt][1]);
    /* 200 steps: the end of the curve within the seed-to-seed spread of fp32 */
    double f[3], mean = 0, var = 0;
    for (int k = 0; k < 3; k++) mean += (f[k] = train(NL_DTYPE_FP32, 21 + (uint64_t)k, 200, 151, NULL)) / 3;
    for (int k = 0; k < 3; k++) var += (f[k] - mean) * (f[k] - mean) / 2;
    const double tol = fmax(3 * sqrt(var), 0.02 * f[0]);
    const double first = train(NL_DTYPE_FP32, 21, 10, 1, NULL);
    for (int dt = NL_DTYPE_BF16; dt <= NL_DTYPE_FP16; dt++) {
        const double d = train(dt, 21, 200, 151, NULL);
        printf("    %s: mean loss of steps 151-200 %.4f, fp32 %.4f (seeds: %.4f %.4f %.4f, sigma %.4f; first 10 steps %.4f); "
               "tolerance %.4f\n",
               nl_dtype_names[dt], d, f[0], f[0], f[1], f[2], sqrt(var), first, tol);
        fails += NL_CHECK(fabs(d - f[0]) <= tol, "%s tracks the fp32 curve", nl_dtype_names[dt]);
        fails += NL_CHECK(d < first - 0.5, "%s learns (%.3f from %.3f)", nl_dtype_names[dt], d, first);
    }
    fails += library_fp16();
    nl_set_threads(threads);
    return fails;
}

/* --dtype bf16 on its two matmul paths (NL_GEMM_BF16, src/cpu/gemm.h): oneDNN's bf16 kernels and the f32
 * kernels on rounded operands compute the same products up to the order of the fp32 additions. Whole
 * model, GPT-2 and Llama: the loss and the gradients of the two paths within the §5.2 bounds of bf16 against
 * fp32 with u^2, the variance of one rounding, replaced by u gamma_K: two sums of the same products differ by
 * at most gamma_K |x| (K the longest sum), which moves a value across a bf16 rounding boundary (an error of
 * up to one ulp, 2u |x|) with probability at most gamma_K / u, so each stored value's squared deviation is at
 * most about 4 u gamma_K |x|^2 where a rounding's is u^2 |x|^2 / 3. The gradients differ somewhere (the two
 * paths are distinct code); three training steps on the bf16 kernels give the same bits twice. Skipped where
 * oneDNN has no bf16 matmul. */
int test_dtype_bf16_kernels(void) {
    if (!nl_gemm_bf16_can()) {
        printf("    skipped: oneDNN has no bf16 matmul on this CPU\n");
        return 0;
    }
    int fails = 0;
    const size_t N = (size_t)DB * DT;
    int inp[DB * DT], tgt[DB * DT];
    batch(inp, tgt, 3);
    const int was = nl_gemm_bf16_use(1);
    for (int arch = 0; arch <= NL_ARCH_LLAMA; arch++) {
        nl_model m[2];
        float loss[2];
        double zmax = 0;
        for (int on = 0; on < 2; on++) {
            nl_gemm_bf16_use(on);
            nl_config c = small(arch, NL_DTYPE_BF16, 11);
            fails += NL_CHECK(nl_model_init(&m[on], &c) == NL_OK, "init: %s", nl_last_error());
            nl_model_alloc_acts(&m[on], DB, DT);
            nl_model_zero_grad(&m[on]);
            nl_model_forward(&m[on], inp, tgt, DB, DT, 0.0f);
            for (size_t i = 0; i < N; i++)
                for (int j = 0; j < DV; j++) zmax = fmax(zmax, fabs(m[on].logits[i * m[on].cfg.vocab_padded + j]));
            /* two micro-batches of the same batch: the second accumulates (beta 1 in the weight gradients) */
            for (int k = 0; k < 2; k++) {
                loss[on] = nl_model_forward(&m[on], inp, tgt, DB, DT, 0.5f / (float)N);
                nl_model_backward(&m[on]);
            }
        }
        double d2 = 0, gmax = 0;
        for (size_t i = 0; i < m[0].nparams; i++) {
            const double e = (double)m[1].grads[i] - m[0].grads[i];
            d2 += e * e, gmax = fmax(gmax, fabs(e));
        }
        const int n_fwd = (arch == NL_ARCH_LLAMA ? 16 : 15) * m[0].cfg.layers + 4;
        const double a = arch == NL_ARCH_LLAMA ? 3.5 : 2.5, u = 0x1p-8;
        const double kmax = fmax(fmax(m[0].FW, m[0].cfg.vocab), fmax((double)N, m[0].cfg.dim));
        const double ug = sqrt(12 * u * kmax * 0x1p-24 / (1 - kmax * 0x1p-24)); /* replaces u: sqrt(4 u gamma / (1/3)) */
        const double gerr = sqrt(d2) / norm2(m[0].grads, m[0].nparams), lerr = fabs((double)loss[1] - loss[0]);
        const double gbound = 4 * a * sqrt(2.0 * n_fwd / 3) * ug, lbound = 8 * a * sqrt(n_fwd / 3.0) * ug * zmax;
        printf("    %s bf16, oneDNN bf16 kernels vs f32 kernels: loss %.7f vs %.7f, |dL| %.3g (%.2g of the bound); "
               "gradients: max |d| %.3g, rel %.3g (%.2g of the bound)\n",
               nl_arch_names[arch], loss[1], loss[0], lerr, lerr / lbound, gmax, gerr, gerr / gbound);
        fails += NL_CHECK(lerr <= lbound && gerr <= gbound, "%s: the two bf16 paths within the bounds",
                          nl_arch_names[arch]);
        fails += NL_CHECK(gmax > 0, "%s: the two paths give the same bits (is the switch dead?)", nl_arch_names[arch]);
        nl_model_free(&m[0]), nl_model_free(&m[1]);
    }
    nl_gemm_bf16_use(1);
    nl_config c = small(NL_ARCH_GPT2, NL_DTYPE_FP32, 1);
    c.layers = 2;
    const size_t np = nparams_of(&c);
    float *p[2] = { nl_xmalloc(np * sizeof(float)), nl_xmalloc(np * sizeof(float)) };
    train(NL_DTYPE_BF16, 5, 3, 1, p[0]);
    train(NL_DTYPE_BF16, 5, 3, 1, p[1]);
    fails += NL_CHECK(!memcmp(p[0], p[1], np * sizeof(float)), "bf16 kernels: two runs give the same bits");
    free(p[0]), free(p[1]);
    nl_gemm_bf16_use(was);
    return fails;
}

/* ---------------------------------------------------------------- the CLI: loss scaling and resume */

static char out[1 << 16];
#define RUN(...) nl_run_fmt(out, sizeof out, __VA_ARGS__)
#define SMALL                                                                                                          \
    "--layers 2 --dim 32 --heads 2 --seq-len 32 --batch 4 --threads 1 --lr 3e-3 --warmup 5 --eval-every 0 --eval-windows 4"

/* the value of "key": in a metrics line (NAN if absent) */
static double field(const char *line, const char *key) {
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *p = strstr(line, k);
    return p ? strtod(p + strlen(k), NULL) : NAN;
}

int test_dtype_cli(void) {
    int fails = 0;
    char dir[] = "/tmp/nl_dtype_XXXXXX", txt[64], d[96], p[160];
    NL_ASSERT(mkdtemp(dir));
    snprintf(txt, sizeof txt, "%s/t.txt", dir);
    nl_make_text(txt, 20000);
    /* fp16 from a loss scale of 2^32: gradients overflow, steps are skipped while the scale halves */
    snprintf(d, sizeof d, "%s/ov", dir);
    int rc = RUN("%s train " SMALL
                 " --steps 60 --dtype fp16 --loss-scale 4294967296 --loss-scale-interval 10 --data %s --out %s 2>&1",
                 nl_test_bin(), txt, d);
    fails += NL_CHECK(rc == 0, "fp16 run: exit %d: %s", rc, out);
    snprintf(p, sizeof p, "%s/metrics.jsonl", d);
    FILE *f = fopen(p, "r");
    fails += NL_CHECK(f != NULL, "metrics.jsonl");
    char line[1024];
    int nskip = 0, steps = 0, streak = -1, halvings_ok = 1, grew = 0;
    double prev = NAN, first = NAN, last = NAN, clean_scale = NAN;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "{\"step\": ", 9)) continue;
        const double s = field(line, "loss_scale"), loss = field(line, "loss");
        const int sk = strstr(line, "\"skipped\": 1") != NULL;
        if (steps == 0) first = loss;
        last = loss;
        if (!isnan(prev) && s < prev && s != prev / 2) halvings_ok = 0; /* every fall is one halving */
        if (!isnan(prev) && s > prev) grew = 1;
        if (sk) {
            nskip++;
            halvings_ok &= strstr(line, "\"grad_norm\": null") != NULL;
        } else if (streak < 0) {
            streak = steps; /* the skipped steps before the first update */
            clean_scale = s;
        }
        prev = s;
        steps++;
    }
    if (f) fclose(f);
    printf("    fp16 from 2^32: %d of %d steps skipped (%d before the first update, at scale %g), the scale grew again: %d, "
           "loss %.3f -> %.3f\n",
           nskip, steps, streak, clean_scale, grew, first, last);
    fails += NL_CHECK(steps == 60 && streak >= 5 && clean_scale == ldexp(1.0, 32 - streak) && halvings_ok,
                      "overflowing steps are skipped and each halves the scale (grad_norm null)");
    fails += NL_CHECK(grew && last < first - 1.0, "the run recovers: the scale grows again and the loss falls");
    /* the dtype in config.txt and in the checkpoint's and the export's metadata */
    fails += NL_CHECK(RUN("grep -x 'dtype = fp16' %s/config.txt", d) == 0, "config.txt records the dtype");
    snprintf(p, sizeof p, "%s/m.safetensors", dir);
    rc = RUN("%s export --ckpt %s --out %s 2>&1 && head -c 4096 %s | grep -c '\"dtype\":\"fp16\"'", nl_test_bin(), d, p,
             p);
    fails += NL_CHECK(rc == 0, "the export (fp32 tensors) records the dtype: %s", out);
    snprintf(d, sizeof d, "%s/ov", dir);
    rc = RUN("%s report %s -o %s/r.html 2>&1 && grep -c '<td>fp16</td>' %s/r.html", nl_test_bin(), d, dir, dir);
    fails += NL_CHECK(rc == 0, "the report shows the dtype: %s", out);
    /* resume per dtype: the uninterrupted curve bit for bit (the fp16 one through skips and growth) */
    static const char *const extra[] = { "--dtype fp32", "--dtype bf16",
                                         "--dtype fp16 --loss-scale 4294967296 --loss-scale-interval 4" };
    for (int dt = 0; dt < NL_DTYPE_COUNT; dt++) {
        static char ref[1 << 15], got[1 << 15];
        snprintf(d, sizeof d, "%s/r%d", dir, dt);
        RUN("%s train " SMALL " --steps 30 --ckpt-every 10 %s --data %s --out %s 2>&1", nl_test_bin(), extra[dt], txt, d);
        snprintf(p, sizeof p, "%s/metrics.jsonl", d);
        const int n = nl_metrics_curve(p, ref, sizeof ref);
        RUN("rm %s/ckpt-00000020.safetensors %s/ckpt-00000030.safetensors", d, d);
        rc = RUN("%s train --resume %s 2>&1", nl_test_bin(), d);
        nl_metrics_curve(p, got, sizeof got);
        fails += NL_CHECK(rc == 0 && n == 30 && !strcmp(ref, got), "%s: resumed from step 10, the same curve (exit %d)",
                          nl_dtype_names[dt], rc);
        if (dt == NL_DTYPE_FP16)
            fails += NL_CHECK(strstr(ref, "\"skipped\": 1") != NULL, "the fp16 curve has skipped steps");
    }
    /* bad values: one line naming the problem, exit 2 */
    rc = RUN("%s train --dtype fp8 --data %s 2>&1", nl_test_bin(), txt);
    fails += NL_CHECK(rc == 2 && strstr(out, "--dtype: 'fp8' is not fp32|bf16|fp16"), "bad --dtype: %d %s", rc, out);
    rc = RUN("%s train --dtype fp16 --loss-scale 3 --data %s --out %s/x 2>&1", nl_test_bin(), txt, dir);
    fails += NL_CHECK(rc == 2 && strstr(out, "--loss-scale 3: must be a power of two"), "bad --loss-scale: %d %s", rc,
                      out);
    RUN("rm -rf %s", dir);
    return fails;
}
