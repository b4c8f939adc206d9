/* test_diag.c -- the diagnostics (src/diag.c): stream statistics on hand-computed cases, selection,
 * spike and divergence trackers, the per-block gradient norms of a real model, and that
 * --diag-every leaves the training curve unchanged. */
#include "check.h"
#include "config.h"
#include "cpu/kernels.h"
#include "diag.h"
#include "optim.h"
#include "placement.h"
#include "tests.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int test_diag_stats(void) {
    int fails = 0;
    float scratch[64];
    nl_stream_stat s;
    /* token 1: mean 0, var 1, rms 1; token 2: constant 2, var 0, rms 2 */
    const float a[8] = { 1, -1, 1, -1, 2, 2, 2, 2 };
    nl_stream_stats(a, 2, 4, scratch, &s);
    fails += nl_check_scalar("var", s.var, 0.5, 1e-12);
    fails += nl_check_scalar("gvar", s.gvar, 1.5, 1e-12); /* E[x^2] 2.5 - mean^2 1 */
    fails += nl_check_scalar("rms", s.rms, 1.5, 1e-12);
    fails += nl_check_scalar("max", s.maxabs, 2.0, 0);
    fails += nl_check_scalar("median (even)", s.median, 1.5, 0);
    /* one massive activation: |x| = 1 3 2 0 100, median 2 */
    const float b[5] = { 1, -3, 2, 0, -100 };
    nl_stream_stats(b, 1, 5, scratch, &s);
    fails += nl_check_scalar("max", s.maxabs, 100.0, 0);
    fails += nl_check_scalar("median (odd)", s.median, 2.0, 0);
    fails += nl_check_scalar("var", s.var, (1 + 9 + 4 + 0 + 10000) / 5.0 - pow(-100 / 5.0, 2), 1e-12);
    /* a non-finite entry makes the max infinite instead of being skipped */
    const float c[4] = { 1, NAN, 2, 3 };
    nl_stream_stats(c, 1, 4, scratch, &s);
    fails += NL_CHECK(isinf(s.maxabs), "max with a NaN: %g", s.maxabs);
    /* selection against sorting, with many ties */
    nl_rng r;
    nl_rng_seed(&r, 9);
    for (int trial = 0; trial < 200; trial++) {
        float x[37], y[37];
        const int n = 1 + (int)nl_rng_below(&r, 37);
        for (int i = 0; i < n; i++) x[i] = y[i] = (float)nl_rng_below(&r, 6);
        qsort(y, (size_t)n, sizeof(float), cmp_float);
        const size_t k = nl_rng_below(&r, (uint64_t)n);
        const float got = nl_select_kth(x, (size_t)n, k);
        if (got != y[k]) fails += NL_CHECK(0, "select k=%zu of %d: %g, want %g", k, n, got, y[k]);
    }
    return fails;
}

int test_diag_trackers(void) {
    int fails = 0;
    nl_spikes sp;
    nl_spikes_init(&sp, 6.0);
    for (int i = 0; i < NL_SPIKE_MIN - 1; i++)
        fails += NL_CHECK(!nl_spikes_push(&sp, i == 3 ? 100.0 : 1.0), "no spike before %d steps", NL_SPIKE_MIN);
    fails += NL_CHECK(!nl_spikes_push(&sp, 1.0), "1 x median is no spike");
    fails += NL_CHECK(!nl_spikes_push(&sp, 5.9), "5.9 x median is no spike");
    fails += NL_CHECK(nl_spikes_push(&sp, 6.1), "6.1 x median is a spike");
    fails += NL_CHECK(!nl_spikes_push(&sp, NAN), "NaN is not a spike (divergence handles it)");
    fails += NL_CHECK(sp.count == 1, "spike count %d, want 1", sp.count);

    nl_diverge d;
    nl_diverge_init(&d, 2, 3); /* window 2, warmup 3 */
    fails += NL_CHECK(!nl_diverge_push(&d, 1, 5.0, 1.0) && !nl_diverge_push(&d, 2, 9.0, 1.0) &&
                              !nl_diverge_push(&d, 3, 9.0, 1.0),
                      "no divergence during warmup");
    const char *why = nl_diverge_push(&d, 4, 9.0, 1.0);
    fails += NL_CHECK(why && !strcmp(why, "loss"), "after warmup: %s", why ? why : "none");
    nl_diverge_free(&d);
    nl_diverge_init(&d, 4, 2);                            /* window 4, warmup 2 */
    const double ok[] = { 5.0, 4.0, 3.0, 3.0, 3.0, 9.0 }; /* last: (3+3+3+9)/4 = 4.5 < 5, a spike */
    for (int i = 0; i < 6; i++)
        fails += NL_CHECK(!nl_diverge_push(&d, i + 1, ok[i], 1.0), "no divergence at step %d", i + 1);
    why = nl_diverge_push(&d, 7, 9.0, 1.0); /* (3+3+9+9)/4 = 6 > 5 */
    fails += NL_CHECK(why && !strcmp(why, "loss"), "smoothed loss above the first: %s", why ? why : "none");
    why = nl_diverge_push(&d, 8, 1.0, INFINITY);
    fails += NL_CHECK(why && !strcmp(why, "nonfinite"), "infinite grad norm: %s", why ? why : "none");
    nl_diverge_free(&d);
    nl_diverge_init(&d, 0, 0);
    fails += NL_CHECK(!nl_diverge_push(&d, 1, 100.0, 1.0), "window 0: only non-finite");
    fails += NL_CHECK(nl_diverge_push(&d, 2, NAN, 1.0) != NULL, "window 0: NaN diverges");
    nl_diverge_free(&d);
    return fails;
}

/* The diagnostic pass on a real model: its gradient norms against the gradient of a plain
 * forward/backward, and its first stream statistic against the embedding output. */
int test_diag_model(void) {
    int fails = 0;
    enum { B = 2, T = 8 };
    for (int placement = 0; placement < NL_PLACE_COUNT; placement++) {
        nl_config c;
        nl_config_defaults(&c);
        c.vocab = 40, c.layers = 3, c.dim = 16, c.heads = 2, c.seq_len = T, c.placement = placement, c.seed = 7;
        nl_model m;
        NL_ASSERT(nl_model_init(&m, &c) == NL_OK);
        nl_model_alloc_acts(&m, B, T);
        int inp[B * T], tgt[B * T];
        nl_rng r;
        nl_rng_seed(&r, 3);
        for (int i = 0; i < B * T; i++) inp[i] = (int)nl_rng_below(&r, 40), tgt[i] = (int)nl_rng_below(&r, 40);
        nl_diag d;
        nl_diag_init(&d, &m);
        nl_diag_run(&d, &m, inp, tgt, B, T);
        /* reference: the same gradient by hand */
        nl_model_zero_grad(&m);
        const float loss = nl_model_forward(&m, inp, tgt, B, T, 1.0f / (B * T));
        nl_model_backward(&m);
        fails += nl_check_scalar("diag loss", d.loss, loss, 1e-7);
        fails += nl_check_scalar("grad total", d.g_total, nl_grad_norm(&m), 1e-9);
        for (int l = 0; l < c.layers; l++) {
            char pre[64];
            snprintf(pre, sizeof pre, "blocks.%d.", l);
            double s = 0.0;
            for (int i = 0; i < m.ntensors; i++)
                if (!strncmp(m.tensors[i].name, pre, strlen(pre)))
                    for (size_t j = 0; j < m.tensors[i].numel; j++)
                        s += (double)m.grads[m.tensors[i].offset + j] * m.grads[m.tensors[i].offset + j];
            fails += nl_check_scalar("grad block", d.g_block[l], sqrt(s), 1e-9);
            const nl_tensor *t = nl_model_find(&m, (snprintf(pre, sizeof pre, "blocks.%d.mlp.proj.weight", l), pre));
            double q = 0.0;
            for (size_t j = 0; j < t->numel; j++) q += (double)m.grads[t->offset + j] * m.grads[t->offset + j];
            fails += nl_check_scalar("grad mlp.proj", d.g_mproj[l], sqrt(q), 1e-9);
            fails += NL_CHECK(d.g_qkv[l] > 0 && d.g_proj[l] > 0 && d.g_fc[l] > 0, "matrix grads of block %d", l);
        }
        const float *x1 = m.cfg.emb_norm ? m.embn : m.emb;
        float scratch[B * T * 16];
        nl_stream_stat ref;
        nl_stream_stats(x1, B * T, c.dim, scratch, &ref);
        fails += nl_check_scalar("x_1 var", d.x[0].var, ref.var, 0);
        nl_stream_stats(m.sub[2 * c.layers - 1].xout, B * T, c.dim, scratch, &ref);
        fails += nl_check_scalar("x_L+1 max", d.x[c.layers].maxabs, ref.maxabs, 0);
        int want_sites = (m.cfg.emb_norm ? 1 : 0) + (m.cfg.final_norm && !m.r ? 1 : 0);
        for (int l = 0; l < c.layers; l++)
            for (int s = 0; s < NL_SUB_COUNT; s++)
                for (int k = 0; k < 3; k++) want_sites += (nl_sub_sites(&m.cfg, l + 1, s) >> k) & 1u;
        fails += NL_CHECK(d.nsites == want_sites, "%s: %d norm sites, want %d", nl_placements[placement].name, d.nsites,
                          want_sites);
        nl_diag_free(&d);
        nl_model_free(&m);
    }
    return fails;
}

/* --gpas: gpas_silu[l] = SiLU(a_l) of each block's gate; --sdd: one site per SDD layer (4 per block) with
 * the RMS of the linear output and of alpha * RMSNorm of it, and the mean of alpha */
int test_diag_gpas_sdd(void) {
    int fails = 0;
    enum { B = 2, T = 8, L = 3 };
    nl_config c;
    nl_config_defaults(&c);
    c.vocab = 40, c.layers = L, c.dim = 16, c.heads = 2, c.seq_len = T, c.placement = NL_PLACE_PRE, c.seed = 7;
    c.gpas = 1, c.sdd = 1;
    nl_model m;
    NL_ASSERT(nl_model_init(&m, &c) == NL_OK);
    nl_model_alloc_acts(&m, B, T);
    for (int l = 0; l < L; l++) m.w.blocks[l].gpas[0] = 0.5f * (float)l - 0.4f;
    int inp[B * T], tgt[B * T];
    for (int i = 0; i < B * T; i++) inp[i] = (7 * i) % 40, tgt[i] = (11 * i + 3) % 40;
    nl_diag d;
    nl_diag_init(&d, &m);
    nl_diag_run(&d, &m, inp, tgt, B, T);
    for (int l = 0; l < L; l++) {
        const double a = 0.5 * l - 0.4;
        fails += nl_check_scalar("gpas_silu", d.gate_silu[l], a / (1.0 + exp(-a)), 1e-6);
    }
    int nsdd = 0;
    for (int i = 0; i < d.nsites; i++) {
        if (!strstr(d.sites[i].name, "_sdd")) continue;
        nsdd++;
        const int out_proj = strstr(d.sites[i].name, "proj_sdd") != NULL;
        fails += nl_check_scalar(d.sites[i].name, d.sites[i].gain, out_proj ? 1.0 / sqrt(2.0 * L) : 1.0, 1e-6);
        /* RMSNorm of a row: RMS 1 times alpha, up to eps (the small init linear outputs: ~0.2%) */
        fails += nl_check_scalar(d.sites[i].name, d.sites[i].out_rms, out_proj ? 1.0 / sqrt(2.0 * L) : 1.0, 1e-2);
    }
    fails += NL_CHECK(nsdd == 4 * L, "%d SDD sites, want %d", nsdd, 4 * L);
    /* the input RMS of block 0's qkv SDD layer, by hand from the kept linear output */
    const nl_sub_acts *A = &m.sub[0];
    double ss = 0.0;
    const size_t nq = (size_t)B * T * m.Q3;
    for (size_t j = 0; j < nq; j++) ss += (double)A->qkv_lin[j] * A->qkv_lin[j];
    for (int i = 0; i < d.nsites; i++)
        if (!strcmp(d.sites[i].name, "blocks.0.attn.qkv_sdd"))
            fails += nl_check_scalar("qkv_sdd in_rms", d.sites[i].in_rms, sqrt(ss / nq), 1e-9);
    nl_diag_free(&d);
    nl_model_free(&m);
    return fails;
}

static char out[1 << 16];

/* --diag-every writes L+1 stream entries per record, at step 0, every N and at the end, and does not
 * change the loss curve. */
int test_diag_cli(void) {
    int fails = 0;
    char dir[] = "/tmp/nl_diag_XXXXXX", cmd[4096];
    NL_ASSERT(mkdtemp(dir));
    snprintf(cmd, sizeof cmd,
             "awk 'BEGIN{srand(3); for(i=0;i<4000;i++) printf \"%%s \", (rand()<0.5?\"ab\":\"cde\")}' > %s/t.txt", dir);
    fails += NL_CHECK(system(cmd) == 0, "make text");
    const char *tiny = "--layers 2 --dim 32 --heads 2 --seq-len 32 --batch 4 --threads 1 --steps 7 --eval-every 0";
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, "%s train %s --data %s/t.txt --out %s/r%d --diag-every %d 2>&1", nl_test_bin(), tiny,
                 dir, dir, k, k ? 3 : 0);
        fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 0, "train: %s", out);
    }
    snprintf(cmd, sizeof cmd, "grep -o '\"diag\": [0-9]*' %s/r1/metrics.jsonl | tr '\\n' ' '", dir);
    nl_run_cmd(cmd, out, sizeof out);
    fails += NL_CHECK(!strcmp(out, "\"diag\": 0 \"diag\": 3 \"diag\": 6 \"diag\": 7 "), "diag steps: %s", out);
    snprintf(cmd, sizeof cmd, "grep -o '\"x_var\": \\[[^]]*\\]' %s/r1/metrics.jsonl | head -1 | tr -cd , | wc -c", dir);
    nl_run_cmd(cmd, out, sizeof out);
    fails += NL_CHECK(atoi(out) == 2, "x_var has L+1 = 3 entries: %s", out);
    snprintf(cmd, sizeof cmd,
             "cmp <(grep -o '\"loss\": [0-9.]*' %s/r0/metrics.jsonl) <(grep -v '\"diag\"' %s/r1/metrics.jsonl | grep -o '\"loss\": [0-9.]*')",
             dir, dir);
    FILE *f;
    char script[128];
    snprintf(script, sizeof script, "%s/cmp.sh", dir);
    f = fopen(script, "w");
    NL_ASSERT(f);
    fprintf(f, "%s\n", cmd);
    fclose(f);
    snprintf(cmd, sizeof cmd, "bash %s 2>&1", script);
    fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 0, "loss curve changed by --diag-every: %s", out);
    fails += nl_test_rmdir(dir);
    return fails;
}
