/* test_analyze.c -- layer removal and angular distances (src/analyze.c): skipping block l equals the
 * model built without it; nl_analyze's numbers equal evaluations and dot products done by hand; the
 * CLI writes valid JSON and fails cleanly. */
#include "analyze.h"
#include "check.h"
#include "config.h"
#include "json.h"
#include "placement.h"
#include "train.h"
#include "tests.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { B = 2, T = 8, V = 40 };

static nl_config cfg(int placement, int layers) {
    nl_config c;
    nl_config_defaults(&c);
    c.vocab = V, c.layers = layers, c.dim = 16, c.heads = 2, c.seq_len = T, c.placement = placement, c.seed = 11;
    return c;
}

/* Skipping block 2 of 3 gives the logits of the 2-block model holding blocks 1 and 3. */
int test_analyze_skip(void) {
    int fails = 0;
    const int placements[] = { NL_PLACE_PRE, NL_PLACE_POST, NL_PLACE_PERI };
    for (int k = 0; k < 3; k++) {
        nl_config c3 = cfg(placements[k], 3), c2 = cfg(placements[k], 2);
        nl_model m3, m2;
        NL_ASSERT(nl_model_init(&m3, &c3) == NL_OK && nl_model_init(&m2, &c2) == NL_OK);
        nl_rng r;
        nl_rng_seed(&r, 5);
        for (size_t i = 0; i < m3.nparams; i++) m3.params[i] += (float)(0.05 * nl_rng_normal(&r)); /* gains off 1 */
        for (int i = 0; i < m2.ntensors; i++) {
            char name[160];
            int l;
            char rest[64];
            if (sscanf(m2.tensors[i].name, "blocks.%d.%63s", &l, rest) == 2)
                snprintf(name, sizeof name, "blocks.%d.%s", l == 0 ? 0 : 2, rest);
            else snprintf(name, sizeof name, "%s", m2.tensors[i].name);
            const nl_tensor *t = nl_model_find(&m3, name);
            NL_ASSERT(t && t->numel == m2.tensors[i].numel);
            memcpy(m2.params + m2.tensors[i].offset, m3.params + t->offset, t->numel * sizeof(float));
        }
        int inp[B * T], tgt[B * T];
        for (int i = 0; i < B * T; i++) inp[i] = (int)nl_rng_below(&r, V), tgt[i] = (int)nl_rng_below(&r, V);
        nl_model_alloc_acts(&m3, B, T);
        nl_model_alloc_acts(&m2, B, T);
        const float full = nl_model_forward(&m3, inp, tgt, B, T, 0.0f);
        m3.skip_block = 2;
        const float skipped = nl_model_forward(&m3, inp, tgt, B, T, 0.0f);
        const float manual = nl_model_forward(&m2, inp, tgt, B, T, 0.0f);
        fails += NL_CHECK(skipped == manual, "%s: skip block 2 loss %.9g, 2-block model %.9g",
                          nl_placements[placements[k]].name, skipped, manual);
        fails += NL_CHECK(skipped != full, "%s: skipping changes the loss", nl_placements[placements[k]].name);
        m3.skip_block = 0;
        fails += NL_CHECK(nl_model_forward(&m3, inp, tgt, B, T, 0.0f) == full, "skip_block 0 restores the model");
        nl_model_free(&m3);
        nl_model_free(&m2);
    }
    return fails;
}

/* nl_analyze against nl_eval_windows with skip_block set, and d(1, n) of a single window by hand. */
int test_analyze_numbers(void) {
    int fails = 0;
    nl_config c = cfg(NL_PLACE_PRE, 3);
    nl_model m;
    const char *text = "to be or not to be, that is the question: whether tis nobler in the mind to suffer";
    char path[] = "/tmp/nl_analyze_XXXXXX";
    int fd = mkstemp(path);
    NL_ASSERT(fd >= 0);
    FILE *f = fdopen(fd, "w");
    for (int i = 0; i < 4; i++) fputs(text, f);
    fclose(f);
    nl_tokens t;
    NL_ASSERT(nl_tokens_open(&t, path) == NL_OK);
    c.vocab = 256; /* byte text */
    NL_ASSERT(nl_model_init(&m, &c) == NL_OK);
    nl_analysis a;
    fails += NL_CHECK(nl_analyze(&m, &t, 5, 2, &a) == NL_OK, "analyze");
    double loss;
    size_t nt;
    NL_ASSERT(nl_eval_windows(&m, &t, 5, 2, &loss, &nt) == NL_OK);
    fails += nl_check_scalar("full loss", a.loss, loss, 1e-6);
    for (int l = 0; l < 3; l++) {
        m.skip_block = l + 1;
        NL_ASSERT(nl_eval_windows(&m, &t, 5, 2, &loss, &nt) == NL_OK);
        m.skip_block = 0;
        fails += nl_check_scalar("skip loss", a.skip_loss[l], loss, 1e-6);
    }
    fails += NL_CHECK(isnan(a.angular[1 * 3 + 2]) && isfinite(a.angular[2 * 3 + 0]), "angular triangle");
    nl_analysis_free(&a);
    /* one window: d(1, n) from the stored streams */
    NL_ASSERT(nl_analyze(&m, &t, 1, 1, &a) == NL_OK);
    int inp[T], tgt[T], buf[T + 1];
    nl_tokens_read(&t, 0, T + 1, buf);
    memcpy(inp, buf, sizeof inp);
    memcpy(tgt, buf + 1, sizeof tgt);
    nl_model_forward(&m, inp, tgt, 1, T, 0.0f);
    for (int n = 1; n <= 3; n++) {
        const float *x = m.sub[0].xin + (T - 1) * 16, *y = (n == 3 ? m.sub[5].xout : m.sub[2 * n].xin) + (T - 1) * 16;
        double xy = 0, xx = 0, yy = 0;
        for (int j = 0; j < 16; j++) xy += (double)x[j] * y[j], xx += (double)x[j] * x[j], yy += (double)y[j] * y[j];
        fails += nl_check_scalar("d(1,n)", a.angular[n - 1], acos(xy / sqrt(xx * yy)) / M_PI, 1e-9);
        fails += NL_CHECK(a.angular[n - 1] > 0 && a.angular[n - 1] < 1, "d(1,%d) = %g in (0, 1)", n, a.angular[n - 1]);
    }
    nl_analysis_free(&a);
    nl_tokens_close(&t);
    nl_model_free(&m);
    remove(path);
    return fails;
}

static char out[1 << 16];

int test_analyze_cli(void) {
    int fails = 0;
    char dir[] = "/tmp/nl_anacli_XXXXXX", cmd[4096];
    NL_ASSERT(mkdtemp(dir));
    snprintf(cmd, sizeof cmd,
             "awk 'BEGIN{srand(3); for(i=0;i<4000;i++) printf \"%%s \", (rand()<0.5?\"ab\":\"cde\")}' > %s/t.txt", dir);
    fails += NL_CHECK(system(cmd) == 0, "make text");
    snprintf(cmd, sizeof cmd,
             "%s train --layers 3 --dim 32 --heads 2 --seq-len 32 --batch 4 --threads 1 --steps 3 --data %s/t.txt --out %s/r 2>&1",
             nl_test_bin(), dir, dir);
    fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 0, "train: %s", out);
    snprintf(cmd, sizeof cmd, "%s analyze --ckpt %s/r --data %s/t.txt --max-windows 6 --threads 1 --out %s/a.json 2>&1",
             nl_test_bin(), dir, dir, dir);
    fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 0, "analyze: %s", out);
    char path[128], *buf = NULL;
    size_t len;
    snprintf(path, sizeof path, "%s/a.json", dir);
    if (nl_read_file(path, 1 << 20, &buf, &len) == NL_OK) {
        nl_json_doc d;
        if (nl_json_parse(&d, buf, len, path) == NL_OK) {
            double delta[8];
            fails += NL_CHECK(nl_json_nums(nl_json_get(d.root, "skip_delta"), delta, 8) == 3, "3 skip deltas");
            const nl_json *ang = nl_json_get(d.root, "angular");
            fails += NL_CHECK(ang && ang->n == 3 && nl_json_at(ang, 0)->n == 3 && nl_json_at(ang, 2)->n == 1,
                              "angular rows 3, 2, 1");
            fails += NL_CHECK(nl_json_num(nl_json_get(d.root, "windows")) == 6, "6 windows");
            nl_json_free(&d);
        } else {
            fails += NL_CHECK(0, "a.json: %s", nl_last_error());
        }
        free(buf);
    } else {
        fails += NL_CHECK(0, "no a.json");
    }
    /* without --data: the run's held-out split (its config's data and val-frac), the same numbers as the
     * last 0.1 of t.txt; written to analyze.json in the run directory, and the command says so */
    snprintf(cmd, sizeof cmd, "%s analyze --ckpt %s/r --max-windows 6 --threads 1 2>&1", nl_test_bin(), dir);
    int rc = nl_run_cmd(cmd, out, sizeof out);
    char want[160];
    snprintf(want, sizeof want, "wrote %s/r/analyze.json: 6 windows of the val split of %s/t.txt", dir, dir);
    fails += NL_CHECK(rc == 0 && strstr(out, want), "analyze with the run's data: %s", out);
    snprintf(cmd, sizeof cmd, "cmp %s/r/analyze.json %s/a.json 2>&1", dir, dir);
    fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 0, "the same analysis as --data t.txt: %s", out);
    snprintf(cmd, sizeof cmd, "%s analyze --ckpt %s/r --max-windows 2 --out - 2>&1", nl_test_bin(), dir);
    fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 0 && !strncmp(out, "{\"analyze\": 1,", 14),
                      "--out -: standard output: %s", out);
    snprintf(cmd, sizeof cmd, "%s analyze --ckpt %s/r --split bogus 2>&1 >/dev/null", nl_test_bin(), dir);
    fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 2 && strstr(out, "--split: 'bogus' is not all|train|val"),
                      "bad split: %s", out);
    snprintf(cmd, sizeof cmd, "%s analyze --ckpt %s/r --bogus 1 2>&1 >/dev/null", nl_test_bin(), dir);
    fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 2 && strstr(out, "unknown option '--bogus'"),
                      "unknown option from the table: %s", out);
    snprintf(cmd, sizeof cmd, "%s analyze --ckpt %s/nothing --data %s/t.txt 2>&1 >/dev/null", nl_test_bin(), dir, dir);
    fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 1, "missing ckpt: %s", out);
    fails += nl_test_rmdir(dir);
    return fails;
}
