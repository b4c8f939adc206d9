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

static int count(const char *s, const char *what) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what)) n++;
    return n;
}

/* item 1: resuming a directory whose only checkpoint is truncated names the reason once */
int test_resume_truncated(void) {
    int fails = 0;
    make_tmpdir();
    fails += NL_CHECK(run("%s train " TINY " --steps 2 --data %s --out %s/r 2>&1", nl_test_bin(), txt, tmpdir) == 0, "train: %s", out);
    run("truncate -s 20000 %s/r/ckpt-00000002.safetensors", tmpdir);
    int rc = run("%s train --resume %s/r 2>&1 >/dev/null | grep -v 'warning: skipping'", nl_test_bin(), tmpdir);
    (void)rc;
    fails += NL_CHECK(count(out, "\n") == 1 && count(out, "no checkpoint in it loads") == 1 && strstr(out, "do not fit") &&
                          count(out, "(the last error: ") == 1,
                      "one clean line: %s", out);
    fails += NL_CHECK(run("%s train --resume %s/r >/dev/null 2>&1", nl_test_bin(), tmpdir) == 1, "exit 1");
    return fails + remove_tmpdir();
}

/* item 12: config.txt (and the checkpoint's metadata) hold the shortest decimal that reads back exactly */
int test_config_shortest(void) {
    int fails = 0;
    make_tmpdir();
    fails += NL_CHECK(run("%s train " TINY " --steps 1 --warmup 1 --lr 0.30000000000000004 --data %s --out %s/r 2>&1", nl_test_bin(), txt, tmpdir) == 0,
                      "train: %s", out);
    run("cat %s/r/config.txt", tmpdir);
    fails += NL_CHECK(strstr(out, "\nval_frac = 0.1\n") && strstr(out, "\nmin_lr_frac = 0.1\n") && strstr(out, "\neps = 1e-05\n") &&
                          strstr(out, "\nlr = 0.30000000000000004\n") && strstr(out, "\nrope_theta = 10000\n"),
                      "shortest exact values: %s", out);
    /* the file reads back to the same config: re-running it writes the same file */
    fails += NL_CHECK(run("%s train --config %s/r/config.txt --out %s/r2 >/dev/null 2>&1 && cd %s && diff r/config.txt r2/config.txt | grep -v '^[0-9c-]*$\\|^. out = '",
                          nl_test_bin(), tmpdir, tmpdir, tmpdir) == 1, "config.txt round trip: %s", out);
    return fails + remove_tmpdir();
}
