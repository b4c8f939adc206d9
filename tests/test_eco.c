/* test_eco.c -- issue 5's ecosystem features end to end: normlab prepare (shards equal the tokenizer's
 * stream, split and sharding), GPT-2-vocabulary training, sampling (pad ids never drawn) and export to
 * the PyTorch twin, and train --config (overrides, errors, a run's config.txt re-runs the run). */
#include "bpe.h"
#include "check.h"
#include "config.h"
#include "data.h"
#include "model.h"
#include "sample.h"
#include "tests.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char out[1 << 16];

#define run(...) nl_run_fmt(out, sizeof out, __VA_ARGS__)

static void spit(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    NL_ASSERT(f);
    fputs(s, f);
    fclose(f);
}

int test_prepare(void) {
    int fails = 0;
    char dir[] = "/tmp/nl_prep_XXXXXX", a[4096], p[256];
    NL_ASSERT(mkdtemp(dir));
    const char *t1 = "First file: it's a test.\n\nWith  spaces and caf\xc3\xa9 \xe6\xbc\xa2\xe5\xad\x97 \xf0\x9f\x98\x80!\n",
               *t2 = "Second file\xff\xfe with invalid bytes\n";
    snprintf(p, sizeof p, "%s/a.txt", dir);
    spit(p, t1);
    snprintf(p, sizeof p, "%s/b.txt", dir);
    spit(p, t2);
    int rc = run("%s prepare --in %s/a.txt %s/b.txt --out %s/gpt2 --val-frac 0.25 --shard-tokens 7 2>&1", nl_test_bin(),
                 dir, dir, dir);
    fails += NL_CHECK(rc == 0 && strstr(out, "prepared 2 file(s)"), "prepare gpt2: %s", out);
    /* the shards hold [eot] + encode(a) + [eot] + encode(b), split 75/25, at most 7 tokens each */
    nl_bpe *b;
    NL_ASSERT(nl_bpe_load(&b, "") == NL_OK);
    nl_ids want = { 0 };
    nl_ids_push(&want, 50256);
    nl_bpe_encode(b, t1, strlen(t1), &want);
    nl_ids_push(&want, 50256);
    nl_bpe_encode(b, t2, strlen(t2), &want);
    nl_bpe_free(b);
    const size_t nval = (size_t)(0.25 * (double)want.n + 0.5);
    nl_tokens tr, va;
    snprintf(p, sizeof p, "%s/gpt2/train_*.bin", dir);
    fails += NL_CHECK(nl_tokens_open(&tr, p) == NL_OK, "open train shards: %s", nl_last_error());
    snprintf(p, sizeof p, "%s/gpt2/val_*.bin", dir);
    fails += NL_CHECK(nl_tokens_open(&va, p) == NL_OK, "open val shards: %s", nl_last_error());
    if (!fails) {
        int *got = nl_xmalloc(want.n * sizeof(int));
        fails += NL_CHECK(tr.n + va.n == want.n && va.n == nval, "%zu + %zu tokens, want %zu (val %zu)", tr.n, va.n,
                          want.n, nval);
        if (!fails) {
            nl_tokens_read(&tr, 0, tr.n, got);
            nl_tokens_read(&va, 0, va.n, got + tr.n);
            fails += NL_CHECK(!memcmp(got, want.v, want.n * sizeof(int)), "shard tokens == the tokenizer's stream");
        }
        int big = 0;
        for (int i = 0; i < tr.nseg; i++) big |= tr.seg[i].n > 7;
        fails += NL_CHECK(!big && tr.nseg == (int)((tr.n + 6) / 7), "train shards of at most 7 tokens (%d shards)",
                          tr.nseg);
        free(got);
        nl_tokens_close(&tr);
        nl_tokens_close(&va);
    }
    nl_ids_free(&want);
    /* byte tokenizer: the bytes themselves, no separator */
    rc = run("%s prepare --tokenizer byte --in '%s/*.txt' --out %s/bytes --val-frac 0 2>&1", nl_test_bin(), dir, dir);
    snprintf(p, sizeof p, "%s/bytes/train_000000.bin", dir);
    fails += NL_CHECK(rc == 0 && nl_tokens_open(&tr, p) == NL_OK, "prepare byte: %s", out);
    if (rc == 0 && tr.n) {
        int *got = nl_xmalloc(tr.n * sizeof(int));
        nl_tokens_read(&tr, 0, tr.n, got);
        int same = tr.n == strlen(t1) + strlen(t2);
        for (size_t i = 0; same && i < tr.n; i++)
            same = got[i] == (unsigned char)(i < strlen(t1) ? t1[i] : t2[i - strlen(t1)]);
        fails += NL_CHECK(same, "byte shards hold the files' bytes in glob order");
        snprintf(p, sizeof p, "%s/bytes/val_000000.bin", dir);
        fails += NL_CHECK(access(p, F_OK) != 0, "--val-frac 0 writes no val shard");
        free(got);
        nl_tokens_close(&tr);
    }
    /* errors */
    snprintf(a, sizeof a, "prepare --in %s/a.txt --out %s/x --tokenizer bogus", dir, dir);
    fails += nl_expect_error(2, "--tokenizer: 'bogus' is not gpt2|byte", a);
    snprintf(a, sizeof a, "prepare --out %s/x", dir);
    fails += nl_expect_error(2, "--in is required", a);
    snprintf(a, sizeof a, "prepare --in %s/a.txt", dir);
    fails += nl_expect_error(2, "--out is required", a);
    snprintf(a, sizeof a, "prepare --in %s/missing.txt --out %s/x", dir, dir);
    fails += nl_expect_error(1, "cannot open", a);
    snprintf(a, sizeof a, "prepare --in '%s/none*.txt' --out %s/x", dir, dir);
    fails += nl_expect_error(1, "no file matches", a);
    snprintf(a, sizeof a, "prepare --in %s/a.txt --out %s/x --val-frac 1", dir, dir);
    fails += nl_expect_error(2, "--val-frac 1", a);
    snprintf(a, sizeof a, "prepare --in %s/a.txt --out %s/x --shard-tokens 0", dir, dir);
    fails += nl_expect_error(2, "--shard-tokens 0", a);
    snprintf(a, sizeof a, "prepare --in %s/a.txt --out %s/x --bpe-dir %s", dir, dir, dir);
    fails += nl_expect_error(1, "encoder.json", a);
    char longdir[NL_PATH_MAX + 2];
    memset(longdir, 'd', sizeof longdir - 1);
    longdir[sizeof longdir - 1] = 0;
    snprintf(a, sizeof a, "prepare --in %s/a.txt --out %s", dir, longdir);
    fails += nl_expect_error(2, "--out: value longer than 1023 bytes", a);
    fails += nl_test_rmdir(dir);
    return fails;
}

static void collect(int token, void *ctx) { nl_ids_push(ctx, token); }

int test_gpt2_vocab(void) {
    int fails = 0;
    /* sampling reads only the first V logits: padding rows that would win every draw are never drawn */
    nl_config c;
    nl_config_defaults(&c);
    c.vocab = 300, c.layers = 1, c.dim = 16, c.heads = 2, c.seq_len = 8;
    nl_model m;
    fails += NL_CHECK(nl_model_init(&m, &c) == NL_OK && m.cfg.vocab_padded == 320, "vocab 300 pads to 320");
    if (fails) return fails;
    for (int v = c.vocab; v < m.cfg.vocab_padded; v++)
        for (int k = 0; k < c.dim; k++) m.w.wte[(size_t)v * c.dim + k] = 1e3f * (k % 2 ? 1.0f : -1.0f);
    nl_ids got = { 0 };
    const int prompt[2] = { 1, 2 };
    nl_generate(&m, prompt, 2, 30, 1.0, 0, 1, collect, &got);
    nl_generate(&m, prompt, 2, 30, 0.0, 0, 1, collect, &got);
    nl_generate(&m, prompt, 2, 30, 2.0, 5, 1, collect, &got);
    int pad = 0;
    for (size_t i = 0; i < got.n; i++) pad |= got.v[i] >= c.vocab || got.v[i] < 0;
    fails += NL_CHECK(got.n == 90 && !pad, "no padding id sampled");
    nl_ids_free(&got);
    nl_model_free(&m);
    /* prepare -> train (GPT-2 vocabulary) -> sample through the tokenizer -> export -> PyTorch twin */
    char dir[] = "/tmp/nl_gpt2_XXXXXX", p[256];
    NL_ASSERT(mkdtemp(dir));
    int rc = run("for i in $(seq 20); do cat tests/data/bpe_corpus.txt; done > %s/t.txt && %s prepare --in %s/t.txt --out %s/sh 2>&1",
                 dir, nl_test_bin(), dir, dir);
    fails += NL_CHECK(rc == 0, "prepare: %s", out);
    rc = run("%s train --data '%s/sh/train_*.bin' --val-data '%s/sh/val_*.bin' --layers 1 --dim 32 --heads 2 --seq-len 16 "
             "--batch 2 --steps 3 --eval-windows 2 --threads 2 --out %s/run 2>&1",
             nl_test_bin(), dir, dir, dir);
    fails += NL_CHECK(rc == 0 && strstr(out, "V=50257"), "train on GPT-2 shards: %s", out);
    rc = run("%s sample --ckpt %s/run --prompt 'The caf\xc3\xa9' --tokens 8 --seed 2 2>&1", nl_test_bin(), dir);
    fails += NL_CHECK(rc == 0 && !strncmp(out, "The caf\xc3\xa9", 9) && strlen(out) > 10,
                      "sample decodes GPT-2 tokens: %s", out);
    rc = run("%s sample --ckpt %s/run --prompt '' --tokens 4 --temperature 0 2>&1", nl_test_bin(), dir);
    fails += NL_CHECK(rc == 0, "sample with an empty prompt (starts at <|endoftext|>): %s", out);
    rc = run("%s eval --ckpt %s/run --data %s/sh/val_000000.bin --max-windows 8 2>&1", nl_test_bin(), dir, dir);
    const double c_loss = nl_json_number(out, "\"loss\": ");
    fails += NL_CHECK(rc == 0, "eval: %s", out);
    rc = run("%s export --ckpt %s/run --out %s/m.safetensors 2>&1 && %s tests/ref_check.py eval --model %s/m.safetensors "
             "--data %s/sh/val_000000.bin --max-windows 8 2>&1",
             nl_test_bin(), dir, dir, nl_test_python(), dir, dir);
    fails += NL_CHECK(rc == 0, "export + PyTorch eval: %s", out);
    fails += nl_check_scalar("GPT-2-vocabulary export: normlab eval vs PyTorch twin", c_loss,
                             nl_json_number(out, "\"loss\": "), 1e-4);
    /* bits per byte: the scored targets' bytes come from the tokenizer */
    rc = run("%s eval --ckpt %s/run --data %s/sh/val_000000.bin --max-windows 8 --metric bpb 2>&1", nl_test_bin(), dir,
             dir);
    fails += NL_CHECK(rc == 0 && strstr(out, "\"bpb\": "), "eval --metric bpb on a GPT-2 model: %s", out);
    const double bpb = nl_json_number(out, "\"bpb\": "), loss = nl_json_number(out, "\"loss\": ");
    nl_tokens vt;
    snprintf(p, sizeof p, "%s/sh/val_000000.bin", dir);
    if (rc == 0 && nl_tokens_open(&vt, p) == NL_OK) {
        nl_bpe *b;
        NL_ASSERT(nl_bpe_load(&b, "") == NL_OK);
        int tok[129];
        nl_tokens_read(&vt, 0, 129, tok);
        double bytes = 0;
        for (int k = 1; k <= 128; k++) { /* 8 windows of 16: targets 1..128 */
            const unsigned char *q;
            bytes += (double)nl_bpe_token(b, tok[k], &q);
        }
        fails += nl_check_scalar("bpb = nats / ln 2 / decoded bytes", bpb, loss * 128 / log(2.0) / bytes, 1e-5);
        nl_bpe_free(b);
        nl_tokens_close(&vt);
    }
    /* eval-mc encodes the items with the GPT-2 tokenizer */
    snprintf(p, sizeof p, "%s/mc.jsonl", dir);
    spit(p, "{\"context\": \"The cat\", \"choices\": [\"sat on the mat.\", \"caf\\u00e9 \\ud83d\\ude00\"], \"label\": 0}\n"
            "{\"context\": \"It's\", \"choices\": [\"a test\", \"  two  spaces\"], \"label\": 1}\n");
    rc = run("%s eval-mc --ckpt %s/run --task generic --data %s/mc.jsonl 2>&1", nl_test_bin(), dir, dir);
    fails += NL_CHECK(rc == 0 && strstr(out, "\"items\": 2"), "eval-mc on a GPT-2-vocabulary model: %s", out);
    fails += nl_test_rmdir(dir);
    return fails;
}

int test_config_file(void) {
    int fails = 0;
    char dir[] = "/tmp/nl_cfg_XXXXXX", a[4096], p[256];
    NL_ASSERT(mkdtemp(dir));
    snprintf(p, sizeof p, "for i in 1 2 3 4 5 6; do cat tests/data/bpe_corpus.txt; done > %s/t.txt", dir);
    fails += NL_CHECK(system(p) == 0, "corpus");
    /* a hand-written file: dashes and underscores, comments, blank lines; the command line overrides */
    snprintf(p, sizeof p, "%s/exp.txt", dir);
    snprintf(a, sizeof a,
             "# tiny experiment\n\nnorm = pre\nnorm-type = rmsnorm\n  layers = 2   # not a comment: an error\n");
    spit(p, a);
    snprintf(a, sizeof a, "train --config %s/exp.txt --data %s/t.txt", dir, dir);
    fails += nl_expect_error(2, "exp.txt:5: --layers: '2   # not a comment: an error' is not an integer", a);
    snprintf(a, sizeof a,
             "# tiny experiment\n\nnorm = pre\nnorm-type = rmsnorm\n  layers = 2\ndim=32\nheads = 2\nseq_len = 16\n"
             "batch = 2\nsteps = 3\neval_windows = 2\nthreads = 2\ndata = %s/t.txt\nout = %s/a\nlr = 1e-3\n",
             dir, dir);
    spit(p, a);
    int rc = run("%s train --config %s/exp.txt --steps 4 2>&1", nl_test_bin(), dir);
    fails += NL_CHECK(rc == 0 && strstr(out, "pre (rmsnorm), L=2 d=32"), "train --config: %s", out);
    snprintf(p, sizeof p, "grep -q '^steps = 4$' %s/a/config.txt && grep -q '^lr = 0.001$' %s/a/config.txt", dir, dir);
    fails += NL_CHECK(system(p) == 0, "the command line overrides the file (steps 4), the file sets lr");
    /* the saved config.txt re-runs the same experiment */
    rc = run("%s train --config %s/a/config.txt --out %s/b 2>&1", nl_test_bin(), dir, dir);
    fails += NL_CHECK(rc == 0, "re-run from config.txt: %s", out);
    static char l1[8192], l2[8192];
    snprintf(p, sizeof p, "%s/a/metrics.jsonl", dir);
    nl_metrics_curve(p, l1, sizeof l1);
    snprintf(p, sizeof p, "%s/b/metrics.jsonl", dir);
    nl_metrics_curve(p, l2, sizeof l2);
    fails += NL_CHECK(l1[0] && !strcmp(l1, l2), "config.txt reproduces the loss curve:\n%s\n%s", l1, l2);
    snprintf(p, sizeof p, "cmp -s <(grep -v '^out = ' %s/a/config.txt) <(grep -v '^out = ' %s/b/config.txt) || exit 1",
             dir, dir);
    snprintf(a, sizeof a, "bash -c \"%s\"", p);
    fails += NL_CHECK(system(a) == 0, "the re-run's config.txt equals the original's (but for out)");
    /* errors name the file and line */
    snprintf(p, sizeof p, "%s/bad.txt", dir);
    spit(p, "norm = pre\n\n# x\nbogus_key = 3\n");
    snprintf(a, sizeof a, "train --config %s/bad.txt", dir);
    fails += nl_expect_error(2, "bad.txt:4: unknown option 'bogus_key'", a);
    spit(p, "norm pre\n");
    fails += nl_expect_error(2, "bad.txt:1: expected 'key = value'", a);
    spit(p, "norm = sideways\n");
    fails += nl_expect_error(2, "bad.txt:1: --norm: unknown placement 'sideways'", a);
    spit(p, "config = other.txt\n");
    fails += nl_expect_error(2, "bad.txt:1: unknown option 'config' (config files do not nest)", a);
    snprintf(a, sizeof a, "train --config %s/missing.txt", dir);
    fails += nl_expect_error(1, "cannot open config file", a);
    fails += nl_test_rmdir(dir);
    return fails;
}

/* the example program (built by make against include/normlab.h only), then make install and a build of
 * the same example through pkg-config against the installed shared library */
int test_library(void) {
    int fails = 0;
    char bin[1024], d[1024], p[4096];
    snprintf(bin, sizeof bin, "%s", nl_test_bin());
    char *slash = strrchr(bin, '/');
    snprintf(d, sizeof d, "%.*s", slash ? (int)(slash - bin) : 1, slash ? bin : ".");
    char dir[] = "/tmp/nl_lib_XXXXXX";
    NL_ASSERT(mkdtemp(dir));
    int rc = run("%s/examples/train_api %s/m.safetensors 2>&1", d, dir);
    fails += NL_CHECK(rc == 0 && strstr(out, "step 20 loss"), "examples/train_api: exit %d: %s", rc, out);
    rc = run("%s eval --ckpt %s/m.safetensors --data tests/data/bpe_corpus.txt 2>&1", nl_test_bin(), dir);
    fails += NL_CHECK(rc == 1 && strstr(out, "not a normlab checkpoint"), "the export is an export: %s", out);
    rc = run("%s tests/ref_check.py eval --model %s/m.safetensors --data tests/data/bpe_corpus.txt --max-windows 4 2>&1",
             nl_test_python(), dir);
    fails += NL_CHECK(rc == 0, "the API's export loads in the PyTorch twin: %s", out);
    /* the binary of the build tree, run where no data/ is, trains on the corpus the repository ships */
    rc = run("cd %s && $OLDPWD/%s train --steps 2 --layers 1 --dim 32 --heads 2 --seq-len 16 --batch 2 --out r0 >/dev/null 2>&1 "
             "&& grep '^data = ' r0/config.txt",
             dir, nl_test_bin());
    fails += NL_CHECK(rc == 0 && strstr(out, "/../../data/tinyshakespeare.txt"),
                      "build-tree binary finds the shipped corpus: %s", out);
    const char *san = getenv("NORMLAB_SAN");
    if (san && san[0]) {
        printf("    (install + pkg-config build skipped in the %s build: its objects need the sanitizer runtime)\n", san);
    } else {
        rc = run("make -s install BUILD=%s PREFIX=%s/inst 2>&1", d, dir);
        fails += NL_CHECK(rc == 0, "make install: %s", out);
        snprintf(p, sizeof p, "%s/inst", dir);
        static const char *const files[] = { "bin/normlab", "lib/libnormlab.a", "lib/libnormlab.so",
                                             "include/normlab.h", "lib/pkgconfig/normlab.pc" };
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            char f[4200];
            snprintf(f, sizeof f, "%s/%s", p, files[i]);
            fails += NL_CHECK(access(f, R_OK) == 0, "installed %s", files[i]);
        }
        rc = run("cd %s && PKG_CONFIG_PATH=%s/inst/lib/pkgconfig cc -std=c11 -Wall -Wextra -Werror $OLDPWD/examples/train_api.c "
                 "$(PKG_CONFIG_PATH=%s/inst/lib/pkgconfig pkg-config --cflags --libs normlab) -o ex && ldd ex | grep -q '%s/inst/lib/libnormlab.so' && ./ex 2>&1",
                 dir, dir, dir, dir);
        fails += NL_CHECK(rc == 0 && strstr(out, "eval loss"),
                          "pkg-config build against the installed shared library: %s", out);
        /* the installed binary, run where no data/ is, trains on the corpus installed in share/normlab */
        rc = run("cd %s && inst/bin/normlab train --steps 2 --layers 1 --dim 32 --heads 2 --seq-len 16 --batch 2 --out r >/dev/null 2>&1 "
                 "&& grep '^data = ' r/config.txt",
                 dir);
        fails += NL_CHECK(rc == 0 && strstr(out, "/inst/bin/../share/normlab/tinyshakespeare.txt"),
                          "installed binary finds the shipped corpus: %s", out);
    }
    fails += nl_test_rmdir(dir);
    return fails;
}
