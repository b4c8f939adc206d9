/* test_tboard.c -- CRC-32C, the terminal progress line, and TensorBoard event files read back by the
 * `tensorboard` package (tests/tb_check.py in the virtual environment of scripts/requirements.txt). */
#include "check.h"
#include "progress.h"
#include "tboard.h"
#include "tests.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int test_crc32c(void) {
    int fails = 0;
    /* the check value of the CRC catalogue and the vectors of RFC 3720 (iSCSI), appendix B.4 */
    unsigned char b[32];
    fails += NL_CHECK(nl_crc32c(0, "123456789", 9) == 0xE3069283u, "crc32c check value: %08x",
                      nl_crc32c(0, "123456789", 9));
    memset(b, 0, sizeof b);
    fails += NL_CHECK(nl_crc32c(0, b, 32) == 0x8A9136AAu, "32 zero bytes: %08x", nl_crc32c(0, b, 32));
    memset(b, 0xFF, sizeof b);
    fails += NL_CHECK(nl_crc32c(0, b, 32) == 0x62A8AB43u, "32 0xFF bytes: %08x", nl_crc32c(0, b, 32));
    for (int i = 0; i < 32; i++) b[i] = (unsigned char)i;
    fails += NL_CHECK(nl_crc32c(0, b, 32) == 0x46DD794Eu, "bytes 0..31: %08x", nl_crc32c(0, b, 32));
    for (int i = 0; i < 32; i++) b[i] = (unsigned char)(31 - i);
    fails += NL_CHECK(nl_crc32c(0, b, 32) == 0x113FDB5Cu, "bytes 31..0: %08x", nl_crc32c(0, b, 32));
    fails += NL_CHECK(nl_crc32c(nl_crc32c(0, "1234", 4), "56789", 5) == 0xE3069283u, "continued crc");
    fails += NL_CHECK(nl_crc32(0, "123456789", 9) == 0xCBF43926u, "crc32 check value: %08x", nl_crc32(0, "123456789", 9));
    const uint32_t c = 0xE3069283u, masked = ((c >> 15) | (c << 17)) + 0xa282ead8u;
    fails += NL_CHECK(nl_tb_masked_crc("123456789", 9) == masked, "masked crc");
    return fails;
}

int test_progress_line(void) {
    int fails = 0;
    char s[512];
    const double up[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
    nl_sparkline(up, 8, s, sizeof s);
    fails += NL_CHECK(!strcmp(s, "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"), "ramp: %s", s);
    const double mixed[4] = { 3.0, NAN, 1.0, 2.0 };
    nl_sparkline(mixed, 4, s, sizeof s);
    fails += NL_CHECK(!strcmp(s, "\u2588 \u2581\u2585"), "min/max scaling, a gap for NaN: %s", s); /* 2.0 -> 3.5 -> 4 */
    const double flat[3] = { 2, 2, 2 };
    nl_sparkline(flat, 3, s, sizeof s);
    fails += NL_CHECK(!strcmp(s, "\u2581\u2581\u2581"), "flat: %s", s);
    fails += NL_CHECK(nl_sparkline(up, 8, s, 7) == 6 && nl_utf8_cols(s) == 2, "truncated at a character boundary: %s", s);

    nl_progress p;
    nl_progress_init(&p, 2); /* one point per 2 steps */
    nl_progress_format(&p, 0, 10, 5.0, 1000, "1s", 100, s, sizeof s);
    fails += NL_CHECK(!strcmp(s, "step 0/10 | loss 5.0000 | 1000 tok/s | ETA 1s"), "no points yet: %s", s);
    const double losses[5] = { 5.0, 4.0, 3.0, 3.0, 2.0 }; /* points 4.5, 3.0, and 2.0 in progress */
    for (int i = 0; i < 5; i++) nl_progress_loss(&p, losses[i]);
    nl_progress_val(&p, 3.5);
    nl_progress_format(&p, 5, 10, 2.0, 1234.4, "3s", 100, s, sizeof s);
    fails += NL_CHECK(!strcmp(s, "step 5/10 | loss 2.0000 \u2588\u2584\u2581 | val 3.5000 | 1234 tok/s | ETA 3s"),
                      "first val: %s", s);
    nl_progress_val(&p, 3.25);
    nl_progress_format(&p, 5, 10, 2.0, 1234.4, "3s", 100, s, sizeof s);
    fails += NL_CHECK(strstr(s, "| val 3.2500 \u21930.2500 |") != NULL, "val down: %s", s);
    nl_progress_val(&p, 3.5);
    nl_progress_format(&p, 5, 10, 2.0, 1234.4, "3s", 100, s, sizeof s);
    fails += NL_CHECK(strstr(s, "| val 3.5000 \u21910.2500 |") != NULL, "val up: %s", s);

    /* the widest line still fits 100 columns; narrower limits drop the oldest points, then the trend */
    nl_progress_init(&p, 1);
    for (int i = 0; i < 40; i++) nl_progress_loss(&p, 1e6 + i);
    nl_progress_val(&p, 123456.789);
    nl_progress_val(&p, -123456.789);
    int w = nl_progress_format(&p, 2147483647, 2147483647, 1e6, 1e12, "999h59m", 100, s, sizeof s);
    fails += NL_CHECK(w <= 100 && w == nl_utf8_cols(s), "widest line: %d columns: %s", w, s);
    nl_progress_init(&p, 1);
    for (int i = 0; i < 40; i++) nl_progress_loss(&p, 40 - i);
    nl_progress_val(&p, 3.5);
    nl_progress_val(&p, 3.25);
    /* "step 1/2 | loss 3.0000 | val 3.2500 <down arrow>0.2500 | 10 tok/s | ETA 0s" is 63 columns */
    w = nl_progress_format(&p, 1, 2, 3.0, 10, "0s", 70, s, sizeof s);
    fails += NL_CHECK(w == 70 && strstr(s, "loss 3.0000 \u2588\u2587\u2585\u2584\u2582\u2581 | val 3.2500 \u21930.2500 |"),
                      "70 columns: the trend and the newest 6 points (6..1 scaled): %s", s);
    w = nl_progress_format(&p, 1, 2, 3.0, 10, "0s", 50, s, sizeof s);
    fails += NL_CHECK(w == 50 && !strstr(s, "\u2193") && !strstr(s, "\u2581") &&
                              !strncmp(s, "step 1/2 | loss 3.0000 | val 3.2500 | 10 tok/s | E", 50),
                      "50 columns: no trend, no points, cut: %s", s);
    return fails;
}

/* ---------------------------------------------------------------- event files read back */

static int count_events(const char *dir) {
    char out[64];
    nl_run_fmt(out, sizeof out, "ls %s | grep -c tfevents", dir);
    return atoi(out);
}

int test_tensorboard(void) {
    int fails = 0;
    char dir[] = "/tmp/nl_tb_XXXXXX", out[1 << 14];
    const char *py = nl_test_venv_python();
    if (access(py, X_OK) != 0) {
        printf("    no Python at %s: the tensorboard read-back needs the virtual environment of scripts/requirements.txt "
               "(scripts/deps.sh makes build/venv; NORMLAB_VENV=DIR picks another)\n",
               py);
        return 1;
    }
    if (nl_run_fmt(out, sizeof out, "%s -c 'import tensorboard' 2>&1", py) != 0) {
        printf("    %s cannot import tensorboard (pip install -r scripts/requirements.txt): %s\n", py, out);
        return 1;
    }
    NL_ASSERT(mkdtemp(dir));
    char txt[128];
    snprintf(txt, sizeof txt, "%s/t.txt", dir);
    nl_make_text(txt, 3000);
    const char *tiny = "--layers 2 --dim 32 --heads 2 --seq-len 32 --batch 4 --threads 1 --steps 12 --eval-every 4 --diag-every 4 "
                       "--ckpt-every 4 --norm peri";
    int rc = nl_run_fmt(out, sizeof out, "%s train %s --data %s --out %s/a 2>&1", nl_test_bin(), tiny, txt, dir);
    fails += NL_CHECK(rc == 0, "train: %s", out);
    char a[256];
    snprintf(a, sizeof a, "%s/a", dir);
    fails += NL_CHECK(count_events(a) == 1, "one event file in the run directory");
    rc = nl_run_fmt(out, sizeof out, "%s tests/tb_check.py %s 2>&1", py, a);
    fails += NL_CHECK(rc == 0, "tb_check (run a): %s", out);

    /* killed while writing the checkpoint of step 8: the resumed run cuts the first file back to
     * steps <= 4 and writes the rest into a second one; together they equal the uninterrupted run */
    rc = nl_run_fmt(out, sizeof out,
                    "NORMLAB_FAULT=kill-in-ckpt:8 %s train %s --data %s --out %s/b --tensorboard %s/tb 2>&1",
                    nl_test_bin(), tiny, txt, dir, dir);
    fails += NL_CHECK(rc != 0, "the fault kills the run: %s", out);
    rc = nl_run_fmt(out, sizeof out, "%s train --resume %s/b 2>&1", nl_test_bin(), dir);
    fails += NL_CHECK(rc == 0, "resume: %s", out);
    char b[256], tb[256];
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(tb, sizeof tb, "%s/tb", dir);
    fails += NL_CHECK(count_events(tb) == 2 && count_events(b) == 0,
                      "two event files in --tensorboard DIR, none in the run: %d", count_events(tb));
    rc = nl_run_fmt(out, sizeof out, "%s tests/tb_check.py %s --tb %s --same-as %s 2>&1", py, b, tb, a);
    fails += NL_CHECK(rc == 0, "tb_check (resumed run b against a): %s", out);
    rc = nl_run_fmt(out, sizeof out, "%s tests/tb_check.py %s --tb %s --same-as %s 2>&1", py, a, a, tb);
    fails += NL_CHECK(rc == 0, "tb_check (a against b): %s", out);

    /* a finished run resumed again: nothing to do, nothing cut */
    rc = nl_run_fmt(out, sizeof out, "%s train --resume %s/b 2>&1 && %s tests/tb_check.py %s --tb %s --same-as %s 2>&1",
                    nl_test_bin(), dir, py, b, tb, a);
    fails += NL_CHECK(rc == 0 && count_events(tb) == 2, "resume of a finished run: %s", out);

    /* a NaN at step 6 rolls back to the checkpoint of step 4: the events are cut like metrics.jsonl */
    rc = nl_run_fmt(out, sizeof out,
                    "NORMLAB_FAULT=nan-at:6 %s train %s --on-nan rollback --data %s --out %s/e 2>&1 && %s tests/tb_check.py %s/e 2>&1",
                    nl_test_bin(), tiny, txt, dir, py, dir);
    snprintf(b, sizeof b, "%s/e", dir);
    fails += NL_CHECK(rc == 0 && strstr(out, "rolled back to step 4") && count_events(b) == 2, "rollback: %s", out);

    /* the check can fail: another seed's run is not the same */
    rc = nl_run_fmt(out, sizeof out,
                    "%s train %s --seed 7 --data %s --out %s/c 2>&1 && %s tests/tb_check.py %s/c --same-as %s 2>&1",
                    nl_test_bin(), tiny, txt, dir, py, dir, a);
    fails += NL_CHECK(rc == 1 && strstr(out, "differ"), "another seed must differ: %s", out);

    /* a fresh run refuses a --tensorboard DIR that holds event files; a fresh run in an old run
     * directory (--overwrite) replaces its event files */
    rc = nl_run_fmt(out, sizeof out, "%s train %s --data %s --out %s/d --tensorboard %s 2>&1", nl_test_bin(), tiny, txt,
                    dir, tb);
    fails += NL_CHECK(rc == 2 && strstr(out, "already holds event files"), "--tensorboard DIR in use: rc %d: %s", rc,
                      out);
    rc = nl_run_fmt(out, sizeof out,
                    "%s train %s --steps 4 --overwrite --data %s --out %s 2>&1 && %s tests/tb_check.py %s 2>&1",
                    nl_test_bin(), tiny, txt, a, py, a);
    fails += NL_CHECK(rc == 0 && count_events(a) == 1, "a fresh run in an old run directory (--overwrite): %s", out);

    return fails + nl_test_rmdir(dir);
}
