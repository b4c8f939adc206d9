/* test_cli.c -- the normlab binary end to end: bad input gives one line on stderr and exit 2 (usage)
 * or 1 (runtime), never a crash; train -> eval -> export -> PyTorch eval agree; the loss curve is
 * bit-identical across runs with the same seed. */
#include "check.h"
#include "safetensors.h"
#include "tests.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char out[1 << 16];

#define run(...) nl_run_fmt(out, sizeof out, __VA_ARGS__)

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    NL_ASSERT(f);
    fwrite(p, 1, n, f);
    fclose(f);
}

#define TINY "--layers 2 --dim 32 --heads 2 --seq-len 32 --batch 4 --threads 2"

int test_cli_errors(void) {
    int fails = 0;
    char dir[] = "/tmp/nl_cli_XXXXXX", a[8192];
    NL_ASSERT(mkdtemp(dir));
    char txt[64], small[64], empty[64], bad[64], junk[64];
    snprintf(txt, sizeof txt, "%s/t.txt", dir);
    snprintf(small, sizeof small, "%s/small.txt", dir);
    snprintf(empty, sizeof empty, "%s/empty.txt", dir);
    snprintf(bad, sizeof bad, "%s/bad.bin", dir);
    snprintf(junk, sizeof junk, "%s/junk.safetensors", dir);
    nl_make_text(txt, 3000);
    write_file(small, "tiny corpus", 11);
    write_file(empty, "", 0);
    write_file(bad, "not a shard at all, far too short", 33);
    write_file(junk, "\x10\0\0\0\0\0\0\0{\"a\":[1,2,3]}   ", 24);
    struct {
        int code;
        const char *want;
        const char *fmt;
    } cases[] = {
        { 2, "unknown placement 'bogus'", "train --norm bogus --data %s" },
        { 2, "--heads 5 does not divide --dim 128", "train --heads 5 --dim 128 --data %s" },
        { 2, "--layers 0", "train --layers 0 --data %s" },
        { 2, "--dim -4", "train --dim -4 --data %s" },
        { 2, "--lr: 'nan' is not finite", "train --lr nan --data %s" },
        { 2, "--lr -1", "train --lr -1 --data %s" },
        { 2, "--batch 0", "train --batch 0 --data %s" },
        { 2, "not an integer", "train --layers two --data %s" },
        { 2, "unknown option '--bogus'", "train --bogus 1 --data %s" },
        { 2, "needs a value", "train --data %s --layers" },
        { 2, "unknown norm type", "train --norm-type batchnorm --data %s" },
        { 2, "not on|off", "train --emb-norm maybe --data %s" },
        { 2, "--seq-len 64 is longer than the training data", "train --seq-len 64 --val-frac 0 --data %s" },
        { 2, "--mix-alpha 2", "train --norm mix --mix-alpha 2 --data %s" },
        { 2, "only with --norm pre or lns", "train --norm post --norm-type crmsnorm --data %s" },
        { 2, "already normalises q, k and v", "train --norm hybrid --qk-norm --data %s" },
        { 2, "--scale-resids: only for --norm normformer", "train --norm pre --scale-resids --data %s" },
        { 2, "--gpas: only for placements without a norm after the residual add", "train --norm post --gpas --data %s" },
        { 2, "mix normalises after the add in block 1", "train --norm mix --layers 4 --gpas --data %s" },
        { 2, "--sdd: 'maybe' is not on|off", "train --sdd=maybe --data %s" },
        { 2, "residual needs the final norm", "train --norm residual --final-norm off --data %s" },
        { 2, "--dyt-alpha 0", "train --norm-type dyt --dyt-alpha 0 --data %s" },
        { 2, "unknown architecture 'bert'", "train --arch bert --data %s" },
        { 2, "--kv-heads 4: must divide --heads 6", "train --kv-heads 4 --data %s" },
        { 2, "--ffn-dim -5", "train --ffn-dim -5 --data %s" },
        { 2, "--rope-theta 0", "train --arch llama --rope-theta 0 --data %s" },
        { 2, "head size --dim/--heads = 3 must be even", "train --arch llama --dim 12 --heads 4 --data %s" },
        { 2, "not on|off", "train --tie-head sometimes --data %s" },
        { 2, "--zero 2: must be 0 (off) or 1", "train --zero 2 --data %s" },
        { 2, "--global-batch -4: must be 0 (off) or positive", "train --global-batch -4 --data %s" },
        { 2, "--overlap: 'sometimes' is not on|off", "train --overlap sometimes --data %s" },
        { 2, "--dp-timeout -5: must be in 0..1e6 seconds (0: off)", "train --dp-timeout -5 --data %s" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(a, sizeof a, cases[i].fmt, i == 12 ? small : txt);
        fails += nl_expect_error(cases[i].code, cases[i].want, a);
    }
    snprintf(a, sizeof a, "train --data %s/missing.txt", dir);
    fails += nl_expect_error(1, "cannot open", a);
    snprintf(a, sizeof a, "train --data %s", empty);
    fails += nl_expect_error(1, "is empty", a);
    snprintf(a, sizeof a, "train --data %s", bad);
    fails += nl_expect_error(1, "shorter than the 1024-byte shard header", a);
    fails += nl_expect_error(2, "unknown command 'fly'", "fly");
    fails += nl_expect_error(2, "unknown option '--bogus'", "info --bogus");
    fails += NL_CHECK(run("NL_GEMM=bogus %s info 2>&1 >/dev/null", nl_test_bin()) == 2 &&
                              !strcmp(out, "normlab: NL_GEMM=bogus: expected onednn or openblas\n"),
                      "NL_GEMM=bogus: %s", out);
    /* checkpoints: truncated, foreign, garbage */
    fails += NL_CHECK(run("%s train " TINY " --steps 2 --data %s --out %s/run 2>&1", nl_test_bin(), txt, dir) == 0,
                      "tiny train: %s", out);
    snprintf(a, sizeof a,
             "cp %s/run/ckpt-00000002.safetensors %s/trunc.safetensors && truncate -s 20000 %s/trunc.safetensors", dir,
             dir, dir);
    fails += NL_CHECK(system(a) == 0, "truncate");
    snprintf(a, sizeof a, "eval --ckpt %s/trunc.safetensors --data %s", dir, txt);
    fails += nl_expect_error(1, "do not fit", a);
    snprintf(a, sizeof a, "eval --ckpt %s --data %s", junk, txt);
    fails += nl_expect_error(1, "malformed safetensors header", a);
    snprintf(a, sizeof a, "export --ckpt %s/run --out %s/m.safetensors", dir, dir);
    fails += NL_CHECK(run("%s %s", nl_test_bin(), a) == 0, "export");
    snprintf(a, sizeof a, "eval --ckpt %s/m.safetensors --data %s", dir, txt);
    fails += nl_expect_error(1, "not a normlab checkpoint", a);
    snprintf(a, sizeof a, "eval --ckpt %s --data %s", dir, txt);
    fails += nl_expect_error(1, "holds no checkpoint", a);
    snprintf(a, sizeof a, "eval --ckpt %s/run --data %s", dir, small);
    fails += nl_expect_error(2, "fewer than seq-len + 1", a);
    snprintf(a, sizeof a, "train --init-from %s/m.safetensors --layers 3 --data %s", dir, txt);
    fails += nl_expect_error(2, "--layers: the model's shape and placement come from --init-from", a);
    snprintf(a, sizeof a, "train --init-from %s --data %s", junk, txt);
    fails += nl_expect_error(1, "malformed", a);
    fails += nl_test_rmdir(dir);
    return fails;
}

/* The 30-step curve of run directory rundir into curve (cap bytes): 30 lines and a falling loss; *first
 * gets the first loss. */
static int check_curve(const char *rundir, char *curve, size_t cap, double *first) {
    char p[160];
    snprintf(p, sizeof p, "%s/metrics.jsonl", rundir);
    int fails = NL_CHECK(nl_metrics_curve(p, curve, cap) == 30, "30 metrics lines");
    *first = nl_json_number(curve, "\"loss\": ");
    const double last = nl_json_number(strstr(curve, "\"step\": 30"), "\"loss\": ");
    return fails + NL_CHECK(last < *first - 0.5, "loss falls: %.3f -> %.3f", *first, last);
}

/* normlab eval of rundir on txt, then export to dir/m.safetensors: the PyTorch twin's eval of the export
 * gives the same loss */
static int check_export_twin(const char *dir, const char *rundir, const char *txt) {
    int rc = run("%s eval --ckpt %s --data %s --max-windows 20 2>&1", nl_test_bin(), rundir, txt);
    const double c_loss = nl_json_number(out, "\"loss\": ");
    int fails = NL_CHECK(rc == 0 && strstr(out, "\"tokens\": 640,"), "eval: %s", out);
    rc = run("%s export --ckpt %s --out %s/m.safetensors 2>&1", nl_test_bin(), rundir, dir);
    fails += NL_CHECK(rc == 0, "export: %s", out);
    rc = run("%s tests/ref_check.py eval --model %s/m.safetensors --data %s --max-windows 20 2>&1", nl_test_python(),
             dir, txt);
    fails += NL_CHECK(rc == 0 && strstr(out, "\"tokens\": 640"), "twin eval: %s", out);
    return fails + nl_check_scalar("normlab eval vs PyTorch eval of the export", c_loss,
                                   nl_json_number(out, "\"loss\": "), 1e-4);
}

/* normlab info = normlab --version; NL_GEMM switches the matmul library, and a short run gives the same
 * losses on either (to float rounding); info names what runs --dtype bf16's matmuls (NL_GEMM_BF16) */
int test_cli_info(void) {
    static char info[sizeof out];
    char dir[] = "/tmp/nl_info_XXXXXX", txt[64];
    int fails = NL_CHECK(run("%s info", nl_test_bin()) == 0, "info: %s", out);
    snprintf(info, sizeof info, "%s", out);
    fails += NL_CHECK(!strncmp(info, "normlab " NL_VERSION "\nmatmul: oneDNN ", 24 + strlen(NL_VERSION)) &&
                              strstr(info, "\nthreads: ") && strstr(info, "\ncpu: "),
                      "info: %s", info);
    fails += NL_CHECK(run("%s --version", nl_test_bin()) == 0 && !strcmp(out, info), "--version: %s", out);
    fails += NL_CHECK(run("NL_GEMM=openblas %s info", nl_test_bin()) == 0 && strstr(out, "\nmatmul: OpenBLAS "), "%s",
                      out);
    fails += NL_CHECK(strstr(info, "\nbf16 matmul: ") != NULL, "info names the bf16 matmuls: %s", info);
    fails += NL_CHECK(run("NL_GEMM_BF16=f32 %s info", nl_test_bin()) == 0 && strstr(out, "\nbf16 matmul: oneDNN 2") &&
                              strstr(out, "on operands rounded to bf16"),
                      "NL_GEMM_BF16=f32: %s", out);
    fails += NL_CHECK(run("NL_GEMM_BF16=bogus %s info 2>&1 >/dev/null", nl_test_bin()) == 2 &&
                              !strcmp(out, "normlab: NL_GEMM_BF16=bogus: expected onednn or f32\n"),
                      "NL_GEMM_BF16=bogus: %s", out);
    NL_ASSERT(mkdtemp(dir));
    snprintf(txt, sizeof txt, "%s/t.txt", dir);
    nl_make_text(txt, 3000);
    double loss[2][3];
    for (int lib = 0; lib < 2; lib++) {
        fails += NL_CHECK(run("NL_GEMM=%s %s train " TINY " --steps 3 --val-frac 0 --data %s --out %s/%d 2>&1",
                              lib ? "openblas" : "onednn", nl_test_bin(), txt, dir, lib) == 0,
                          "train: %s", out);
        char p[128];
        snprintf(p, sizeof p, "%s/%d/metrics.jsonl", dir, lib);
        FILE *f = fopen(p, "r");
        char line[1024];
        for (int i = 0; i < 3; i++)
            loss[lib][i] = f && fgets(line, sizeof line, f) ? nl_json_number(line, "\"loss\": ") : NAN;
        if (f) fclose(f);
    }
    for (int i = 0; i < 3; i++)
        fails += NL_CHECK(fabs(loss[0][i] - loss[1][i]) <= 1e-5 * fabs(loss[0][i]),
                          "step %d: loss %.9g (oneDNN) vs %.9g (OpenBLAS)", i + 1, loss[0][i], loss[1][i]);
    fails += nl_test_rmdir(dir);
    return fails;
}

int test_cli_end_to_end(void) {
    int fails = 0;
    char dir[] = "/tmp/nl_e2e_XXXXXX", txt[64], p[128];
    NL_ASSERT(mkdtemp(dir));
    snprintf(txt, sizeof txt, "%s/t.txt", dir);
    nl_make_text(txt, 20000);
    /* train with periodic eval and checkpoints */
    int rc = run("%s train " TINY
                 " --steps 30 --lr 3e-3 --warmup 5 --eval-every 10 --ckpt-every 10 --data %s --out %s/run 2>&1",
                 nl_test_bin(), txt, dir);
    fails += NL_CHECK(rc == 0, "train exit %d: %s", rc, out);
    static char l1[1 << 15], l2[1 << 15];
    double first;
    snprintf(p, sizeof p, "%s/run", dir);
    fails += check_curve(p, l1, sizeof l1, &first);
    fails += NL_CHECK(strstr(l1, "\"step\": 10") && strstr(l1, "val_loss"), "val loss logged");
    for (int s = 10; s <= 30; s += 10) {
        snprintf(p, sizeof p, "%s/run/ckpt-%08d.safetensors", dir, s);
        fails += NL_CHECK(access(p, R_OK) == 0, "checkpoint %s", p);
    }
    snprintf(p, sizeof p, "grep -q '^norm = peri$' %s/run/config.txt", dir);
    fails += NL_CHECK(system(p) == 0, "config.txt records the placement");
    /* same seed, same threads: bit-identical loss curve */
    rc = run("%s train " TINY
             " --steps 30 --lr 3e-3 --warmup 5 --eval-every 10 --ckpt-every 10 --data %s --out %s/run2 2>&1",
             nl_test_bin(), txt, dir);
    snprintf(p, sizeof p, "%s/run2/metrics.jsonl", dir);
    nl_metrics_curve(p, l2, sizeof l2);
    fails += NL_CHECK(rc == 0 && !strcmp(l1, l2), "rerun with the same seed gives the same loss curve");
    /* eval -> export -> the PyTorch twin evaluates the same loss */
    snprintf(p, sizeof p, "%s/run", dir);
    fails += check_export_twin(dir, p, txt);
    /* sample and init-from */
    rc = run("%s sample --ckpt %s/run --prompt 'the ' --tokens 40 --seed 3 2>&1", nl_test_bin(), dir);
    fails += NL_CHECK(rc == 0 && strlen(out) >= 44 && !strncmp(out, "the ", 4), "sample: %s", out);
    rc = run("%s train --init-from %s/m.safetensors --steps 2 --batch 4 --data %s --out %s/run3 --threads 2 2>&1",
             nl_test_bin(), dir, txt, dir);
    fails += NL_CHECK(rc == 0 && strstr(out, "L=2 d=32"), "train --init-from: %s", out);
    snprintf(p, sizeof p, "%s/run3/metrics.jsonl", dir);
    nl_metrics_curve(p, l2, sizeof l2);
    double init_loss = nl_json_number(l2, "\"loss\": ");
    fails += NL_CHECK(init_loss < first - 0.5, "--init-from starts from the trained weights (loss %.3f vs fresh %.3f)",
                      init_loss, first);
    fails += nl_test_rmdir(dir);
    return fails;
}

/* --arch llama end to end: train (grouped-query, one kv head), eval, export -> the twin's eval,
 * sample, init-from the export */
int test_cli_llama(void) {
    int fails = 0;
    char dir[] = "/tmp/nl_llama_XXXXXX", txt[64], p[160];
    NL_ASSERT(mkdtemp(dir));
    snprintf(txt, sizeof txt, "%s/t.txt", dir);
    nl_make_text(txt, 20000);
    int rc = run("%s train --arch llama --kv-heads 1 " TINY
                 " --steps 30 --lr 3e-3 --warmup 5 --data %s --out %s/run 2>&1",
                 nl_test_bin(), txt, dir);
    fails += NL_CHECK(rc == 0 && strstr(out, "llama peri (rmsnorm), L=2 d=32 H=2 KV=1 F=64"), "train: %s", out);
    static char l1[1 << 15];
    double first;
    snprintf(p, sizeof p, "%s/run", dir);
    fails += check_curve(p, l1, sizeof l1, &first);
    fails += check_export_twin(dir, p, txt);
    snprintf(p, sizeof p, "grep -q '^arch = llama$' %s/run/config.txt && grep -q '^tie_head = off$' %s/run/config.txt",
             dir, dir);
    fails += NL_CHECK(system(p) == 0, "config.txt records the architecture");
    snprintf(p, sizeof p, "%s/m.safetensors", dir);
    nl_st_file f;
    fails += NL_CHECK(nl_st_read(p, &f) == NL_OK, "read export");
    fails += NL_CHECK(nl_st_find(&f, "lm_head.weight") && nl_st_find(&f, "blocks.1.mlp.gate.weight") &&
                              nl_st_find(&f, "blocks.1.mlp.up.weight") && nl_st_find(&f, "blocks.1.mlp.down.weight") &&
                              !nl_st_find(&f, "pos_emb.weight") && !nl_st_find(&f, "blocks.0.attn.qkv.bias"),
                      "llama export names");
    const char *ffn = nl_st_get_meta(&f, "ffn_dim"), *theta = nl_st_get_meta(&f, "rope_theta"),
               *arch = nl_st_get_meta(&f, "arch");
    fails += NL_CHECK(ffn && !strcmp(ffn, "64") && theta && !strcmp(theta, "10000") && arch && !strcmp(arch, "llama"),
                      "metadata arch, ffn_dim, rope_theta");
    nl_st_free(&f);
    rc = run("%s sample --ckpt %s/run --prompt 'the ' --tokens 40 --seed 3 2>&1", nl_test_bin(), dir);
    fails += NL_CHECK(rc == 0 && strlen(out) >= 44, "sample: %s", out);
    rc = run("%s train --init-from %s/m.safetensors --steps 2 --batch 4 --data %s --out %s/run2 --threads 2 2>&1",
             nl_test_bin(), dir, txt, dir);
    fails += NL_CHECK(rc == 0 && strstr(out, "llama peri"), "train --init-from a llama export: %s", out);
    fails += nl_test_rmdir(dir);
    return fails;
}
