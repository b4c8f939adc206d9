/* test_friction.c -- what a new user ran into (issue 21, section 4): each test names its item and
 * fails on the behaviour the item describes. */
#include "check.h"
#include "tests.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char out[1 << 16];

#define run(...) nl_run_fmt(out, sizeof out, __VA_ARGS__)
#define TINY "--layers 2 --dim 32 --heads 2 --seq-len 32 --batch 4 --threads 1 --lr 3e-3 --eval-windows 4"

static char tmpdir[64], txt[96];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/nl_friction_XXXXXX");
    NL_ASSERT(mkdtemp(tmpdir));
    snprintf(txt, sizeof txt, "%s/t.txt", tmpdir);
    nl_make_text(txt, 6000);
}

static int remove_tmpdir(void) { return NL_CHECK(run("rm -rf %s", tmpdir) == 0, "cleanup"); }

/* item 1: resuming a directory whose only checkpoint is truncated names the reason once */
int test_resume_truncated(void) {
    int fails = 0;
    make_tmpdir();
    fails += NL_CHECK(run("%s train " TINY " --steps 2 --data %s --out %s/r 2>&1", nl_test_bin(), txt, tmpdir) == 0,
                      "train: %s", out);
    run("truncate -s 20000 %s/r/ckpt-00000002.safetensors", tmpdir);
    int rc = run("%s train --resume %s/r 2>&1 >/dev/null | grep -v 'warning: skipping'", nl_test_bin(), tmpdir);
    (void)rc;
    fails += NL_CHECK(nl_count(out, "\n") == 1 && nl_count(out, "no checkpoint in it loads") == 1 &&
                              strstr(out, "do not fit") && nl_count(out, "(the last error: ") == 1,
                      "one clean line: %s", out);
    fails += NL_CHECK(run("%s train --resume %s/r >/dev/null 2>&1", nl_test_bin(), tmpdir) == 1, "exit 1");
    return fails + remove_tmpdir();
}

/* item 12: config.txt (and the checkpoint's metadata) hold the shortest decimal that reads back exactly */
int test_config_shortest(void) {
    int fails = 0;
    make_tmpdir();
    fails += NL_CHECK(run("%s train " TINY " --steps 1 --warmup 1 --lr 0.30000000000000004 --data %s --out %s/r 2>&1",
                          nl_test_bin(), txt, tmpdir) == 0,
                      "train: %s", out);
    run("cat %s/r/config.txt", tmpdir);
    fails += NL_CHECK(strstr(out, "\nval_frac = 0.1\n") && strstr(out, "\nmin_lr_frac = 0.1\n") &&
                              strstr(out, "\neps = 1e-05\n") && strstr(out, "\nlr = 0.30000000000000004\n") &&
                              strstr(out, "\nrope_theta = 10000\n"),
                      "shortest exact values: %s", out);
    /* the file reads back to the same config: re-running it writes the same file */
    fails += NL_CHECK(run("%s train --config %s/r/config.txt --out %s/r2 >/dev/null 2>&1 && cd %s && diff r/config.txt r2/config.txt | grep -v '^[0-9c-]*$\\|^. out = '",
                          nl_test_bin(), tmpdir, tmpdir, tmpdir) == 1,
                      "config.txt round trip: %s", out);
    return fails + remove_tmpdir();
}

/* the "key": number values of one key in a metrics.jsonl, in line order; returns how many */
static int values(const char *path, const char *key, double *v, int cap) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[4096], k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    int n = 0;
    while (fgets(line, sizeof line, f) && n < cap) {
        const char *p = strstr(line, k);
        if (p) v[n++] = atof(p + strlen(k));
    }
    fclose(f);
    return n;
}

/* items 5 and 6: a finished run extended with --resume --steps follows the stated rule (the schedule
 * of the first run, then the floor LR), bit-identical to a fresh run told the same with --lr-steps;
 * time_s continues across the resume */
int test_resume_extend(void) {
    int fails = 0;
    make_tmpdir();
    static char a[1 << 15], b[1 << 15];
    char p[160];
    fails += NL_CHECK(run("%s train " TINY " --steps 10 --warmup 3 --eval-every 5 --data %s --out %s/a 2>&1",
                          nl_test_bin(), txt, tmpdir) == 0,
                      "train: %s", out);
    int rc = run("%s train --resume %s/a --steps 20 2>&1", nl_test_bin(), tmpdir);
    fails += NL_CHECK(rc == 0 && strstr(out, "resuming from step 10 of 20"), "extend to 20 steps: %s", out);
    fails += NL_CHECK(run("grep -c '^lr_steps = 10$' %s/a/config.txt", tmpdir) == 0, "config.txt records lr_steps = 10");
    fails += NL_CHECK(run("%s train " TINY " --steps 20 --lr-steps 10 --warmup 3 --eval-every 5 --data %s --out %s/b 2>&1",
                          nl_test_bin(), txt, tmpdir) == 0,
                      "fresh run: %s", out);
    snprintf(p, sizeof p, "%s/a/metrics.jsonl", tmpdir);
    int na = nl_metrics_curve(p, a, sizeof a);
    double lr[32], t[32];
    int nlr = values(p, "lr", lr, 32), nt = values(p, "time_s", t, 32);
    snprintf(p, sizeof p, "%s/b/metrics.jsonl", tmpdir);
    int nb = nl_metrics_curve(p, b, sizeof b);
    fails += NL_CHECK(na == 20 && nb == 20 && !strcmp(a, b),
                      "extended curve equals the fresh run with --lr-steps 10:\n%s\n%s", a, b);
    int floor_ok = nlr == 20 && lr[9] > 3.1e-4;
    for (int i = 10; i < nlr; i++) floor_ok &= fabs(lr[i] - 3e-4) < 1e-9;
    fails += NL_CHECK(floor_ok,
                      "steps 11..20 at the floor 0.1 x 3e-3, step 10 still on the cosine (lr at 10, 11, 20: %g %g %g)",
                      lr[9], lr[10], lr[19]);
    int mono = nt == 20;
    for (int i = 1; i < nt; i++) mono &= t[i] >= t[i - 1];
    fails += NL_CHECK(mono, "time_s never goes back across the resume (%d values; steps 10, 11: %g %g)", nt, t[9], t[10]);
    /* fewer steps than done: refused */
    rc = run("%s train --resume %s/a --steps 5 2>&1", nl_test_bin(), tmpdir);
    fails += NL_CHECK(rc == 2 && strstr(out, "already at step 20"), "--steps below the checkpoint: %s", out);
    return fails + remove_tmpdir();
}

/* item 7: --warmup longer than the schedule: one warning line on stderr, and the run still trains */
int test_warmup_warning(void) {
    int fails = 0;
    make_tmpdir();
    int rc = run("%s train " TINY " --steps 3 --warmup 5 --data %s --out %s/a 2>&1 >/dev/null", nl_test_bin(), txt,
                 tmpdir);
    fails += NL_CHECK(rc == 0 && nl_count(out, "\n") == 1 &&
                              strstr(out, "warning: --warmup 5 is longer than the 3-step schedule"),
                      "warning: %s", out);
    rc = run("%s train " TINY " --steps 3 --warmup 3 --data %s --out %s/b 2>&1 >/dev/null", nl_test_bin(), txt, tmpdir);
    fails += NL_CHECK(rc == 0 && !out[0], "no warning when warmup fits: %s", out);
    return fails + remove_tmpdir();
}

/* item 6: an interrupted run resumed: time_s continues from the checkpoint's step instead of restarting */
int test_resume_time(void) {
    int fails = 0;
    make_tmpdir();
    fails += NL_CHECK(run("%s train " TINY " --steps 20 --ckpt-every 10 --data %s --out %s/a 2>&1", nl_test_bin(), txt,
                          tmpdir) == 0,
                      "train: %s", out);
    run("rm %s/a/ckpt-00000020.safetensors", tmpdir);
    fails += NL_CHECK(run("%s train --resume %s/a 2>&1", nl_test_bin(), tmpdir) == 0, "resume: %s", out);
    char p[160];
    double t[32];
    snprintf(p, sizeof p, "%s/a/metrics.jsonl", tmpdir);
    int nt = values(p, "time_s", t, 32), mono = nt == 20;
    for (int i = 1; i < nt; i++) mono &= t[i] >= t[i - 1]; /* written with 1 ms resolution */
    fails += NL_CHECK(mono, "time_s never goes back across the resume (%d values; steps 10, 11: %g %g)", nt,
                      nt > 10 ? t[9] : -1, nt > 10 ? t[10] : -1);
    return fails + remove_tmpdir();
}

/* item 2: --out on a directory holding a run is refused; --overwrite removes that run's files (and
 * nothing else) before training; an empty or absent directory, or one with other files, is fine */
int test_run_dir_guard(void) {
    int fails = 0;
    make_tmpdir();
    fails += NL_CHECK(run("%s train " TINY " --steps 4 --ckpt-every 2 --data %s --out %s/a 2>&1", nl_test_bin(), txt,
                          tmpdir) == 0,
                      "train: %s", out);
    run("touch %s/a/notes.txt && echo '{}' > %s/a/evals.jsonl && mkdir -p %s/e", tmpdir, tmpdir, tmpdir);
    int rc = run("%s train " TINY " --steps 2 --data %s --out %s/a 2>&1 >/dev/null", nl_test_bin(), txt, tmpdir);
    fails += NL_CHECK(rc == 2 && nl_count(out, "\n") == 1 && strstr(out, "holds a run") && strstr(out, "--resume") &&
                              strstr(out, "--overwrite"),
                      "refused: %s", out);
    fails += NL_CHECK(run("ls %s/a | tr '\\n' ' '", tmpdir) == 0 && strstr(out, "ckpt-00000002") &&
                              strstr(out, "ckpt-00000004"),
                      "old run untouched: %s", out);
    rc = run("%s train " TINY " --steps 2 --overwrite --data %s --out %s/a 2>&1", nl_test_bin(), txt, tmpdir);
    fails += NL_CHECK(rc == 0, "--overwrite: %s", out);
    run("ls -A %s/a | grep -v '^events\\.out\\.tfevents\\.' | tr '\\n' ' '", tmpdir);
    fails += NL_CHECK(!strcmp(out, ".lock ckpt-00000002.safetensors config.txt metrics.jsonl notes.txt "),
                      "only the new run and other files remain: %s", out);
    run("ls -A %s/a | grep -c '^events\\.out\\.tfevents\\.'", tmpdir);
    fails += NL_CHECK(!strcmp(out, "1\n"), "one event file, the new run's: %s", out);
    fails += NL_CHECK(run("grep -c step %s/a/metrics.jsonl", tmpdir) == 0 && atoi(out) == 2,
                      "metrics.jsonl holds the new run only: %s", out);
    rc = run("%s train " TINY " --steps 1 --data %s --out %s/e 2>&1", nl_test_bin(), txt, tmpdir);
    fails += NL_CHECK(rc == 0, "an empty directory is fine: %s", out);
    rc = run("%s train --resume %s/a --overwrite 2>&1", nl_test_bin(), tmpdir);
    fails += NL_CHECK(rc == 2 && strstr(out, "--overwrite cannot be combined with --resume"),
                      "--overwrite with --resume: %s", out);
    return fails + remove_tmpdir();
}

/* item 4: eval scores the held-out split train used, from the run's saved config: without --data it is
 * the val split, and its loss is train's final val_loss over the same windows */
int test_eval_split(void) {
    int fails = 0;
    make_tmpdir();
    fails += NL_CHECK(run("%s train " TINY " --steps 10 --warmup 2 --data %s --out %s/r 2>&1", nl_test_bin(), txt,
                          tmpdir) == 0,
                      "train: %s", out);
    double v[32];
    char p[160];
    snprintf(p, sizeof p, "%s/r/metrics.jsonl", tmpdir);
    const int nv = values(p, "val_loss", v, 32);
    int rc = run("%s eval --ckpt %s/r --max-windows 4 2>&1", nl_test_bin(), tmpdir);
    const double val = nl_json_number(out, "\"loss\": ");
    fails += NL_CHECK(rc == 0 && strstr(out, "\"split\": \"val\"") && strstr(out, "\"step\": 10"),
                      "eval of the run's val split: %s", out);
    fails += NL_CHECK(nv == 1 && fabs(val - v[0]) < 2e-6,
                      "= train's final val_loss over its 4 --eval-windows (%.6f vs %.6f)", val, nv ? v[0] : NAN);
    rc = run("%s eval --ckpt %s/r --data %s --split val --max-windows 4 2>&1", nl_test_bin(), tmpdir, txt);
    fails += NL_CHECK(rc == 0 && nl_json_number(out, "\"loss\": ") == val,
                      "--data F --split val: the last --val-frac of F (%s)", out);
    rc = run("%s eval --ckpt %s/r --split train --max-windows 4 2>&1", nl_test_bin(), tmpdir);
    fails += NL_CHECK(rc == 0 && strstr(out, "\"split\": \"train\"") && nl_json_number(out, "\"loss\": ") != val,
                      "the train split differs: %s", out);
    rc = run("%s eval --ckpt %s/r --split test 2>&1 >/dev/null", nl_test_bin(), tmpdir);
    fails += NL_CHECK(rc == 2 && strstr(out, "--split: 'test' is not all|train|val"), "bad --split: %s", out);
    fails += NL_CHECK(run("%s train " TINY " --steps 1 --val-frac 0 --data %s --out %s/r0 2>&1", nl_test_bin(), txt,
                          tmpdir) == 0,
                      "train: %s", out);
    rc = run("%s eval --ckpt %s/r0 2>&1 >/dev/null", nl_test_bin(), tmpdir);
    fails += NL_CHECK(rc == 2 && strstr(out, "held out no validation data"), "no held-out split: %s", out);
    return fails + remove_tmpdir();
}

/* item 3: eval of a GPT-2-vocabulary model on a text file encodes it with the GPT-2 tokenizer: the same
 * loss as on the shards `prepare` made of that file; without --data the run's --val-data is scored */
int test_eval_gpt2_text(void) {
    int fails = 0;
    make_tmpdir();
    int rc = run("%s prepare --in %s --out %s/sh 2>&1 && %s train --data '%s/sh/train_*.bin' --val-data '%s/sh/val_*.bin' --layers 1 --dim 32 "
                 "--heads 2 --seq-len 16 --batch 2 --steps 2 --warmup 1 --eval-windows 2 --threads 2 --out %s/g 2>&1",
                 nl_test_bin(), txt, tmpdir, nl_test_bin(), tmpdir, tmpdir, tmpdir);
    fails += NL_CHECK(rc == 0 && strstr(out, "V=50257"), "prepare + train a GPT-2-vocabulary model: %s", out);
    rc = run("%s eval --ckpt %s/g --data '%s/sh/*_000000.bin' --max-windows 8 2>&1", nl_test_bin(), tmpdir, tmpdir);
    const double shards = nl_json_number(out, "\"loss\": ");
    fails += NL_CHECK(rc == 0, "eval of the shards (train then val: the whole file): %s", out);
    rc = run("%s eval --ckpt %s/g --data %s --max-windows 8 2>&1", nl_test_bin(), tmpdir, txt);
    fails += NL_CHECK(rc == 0 && nl_json_number(out, "\"loss\": ") == shards && strstr(out, "\"tokens\": 128,"),
                      "the text file, BPE-encoded, scores the same: %s (shards %.6f)", out, shards);
    rc = run("%s eval --ckpt %s/g --max-windows 4 2>&1", nl_test_bin(), tmpdir);
    const double val = nl_json_number(out, "\"loss\": ");
    fails += NL_CHECK(rc == 0 && strstr(out, "sh/val_*.bin\", \"split\": \"val\""), "the run's --val-data: %s", out);
    rc = run("%s eval --ckpt %s/g --data %s/sh/val_000000.bin --max-windows 4 2>&1", nl_test_bin(), tmpdir, tmpdir);
    fails += NL_CHECK(rc == 0 && nl_json_number(out, "\"loss\": ") == val, "= eval of the val shard: %s", out);
    return fails + remove_tmpdir();
}

/* item 11: the usage example in python/normlab_torch.py's docstring runs as written (with the
 * interpreter the docstring names) on an exported model and prints the placement and a loss */
int test_twin_usage(void) {
    int fails = 0;
    make_tmpdir();
    fails += NL_CHECK(run("%s train " TINY
                          " --steps 2 --warmup 1 --data %s --out %s/r >/dev/null 2>&1 && %s export --ckpt %s/r --out %s/model.safetensors 2>&1",
                          nl_test_bin(), txt, tmpdir, nl_test_bin(), tmpdir, tmpdir) == 0,
                      "train + export: %s", out);
    int rc = run("%s -c \"import ast, textwrap; d = ast.get_docstring(ast.parse(open('python/normlab_torch.py').read())); "
                 "ex = d.split('Example:\\n', 1)[1].split('\\n\\n', 1)[0]; "
                 "exec(textwrap.dedent(ex).replace('\\\"model.safetensors\\\"', repr('%s/model.safetensors')))\" 2>&1",
                 nl_test_python(), tmpdir);
    fails += NL_CHECK(rc == 0 && !strncmp(out, "peri (1, 31, 256) ", 18), "the docstring's example: %s", out);
    return fails + remove_tmpdir();
}
