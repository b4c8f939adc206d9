/* test_sweep.c -- `normlab sweep`: a tiny grid with one learning rate that must diverge; the
 * diverged runs are recorded with their step; a second invocation skips every finished run and a
 * run whose result.json is gone is run again; the summary CSV has the grid's rows. */
#include "check.h"
#include "sweep.h"
#include "tests.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char out[1 << 16];

static double mtime(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (double)sb.st_mtim.tv_sec + 1e-9 * sb.st_mtim.tv_nsec : -1.0;
}

int test_sweep_resume(void) {
    int fails = 0;
    char dir[] = "/tmp/nl_sweep_XXXXXX", cmd[4096], sweep[2048], path[256];
    NL_ASSERT(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "awk 'BEGIN{srand(3); for(i=0;i<4000;i++) printf \"%%s \", (rand()<0.5?\"ab\":\"cde\")}' > %s/t.txt", dir);
    fails += NL_CHECK(system(cmd) == 0, "make text");
    snprintf(sweep, sizeof sweep,
             "%s sweep --norm pre,post --lr 1e-3,30 --seeds 2 --jobs 2 --out %s/sw --data %s/t.txt --layers 2 --dim 32 "
             "--heads 2 --seq-len 32 --batch 4 --steps 12 --warmup 0 --diverge-window 3 --eval-every 0 --threads 1 2>&1",
             nl_test_bin(), dir, dir);
    fails += NL_CHECK(nl_run_cmd(sweep, out, sizeof out) == 0, "sweep: %s", out);
    fails += NL_CHECK(strstr(out, "0 finished earlier") != NULL, "first sweep runs everything: %s", out);
    nl_sweep_result r;
    snprintf(path, sizeof path, "%s/sw/pre_lr30_s1338", dir);
    fails += NL_CHECK(nl_sweep_read_result(path, &r) == NL_OK && !strcmp(r.status, "diverged") && r.step >= 1 && r.step < 12 &&
                          r.seed == 1338 && r.lr == 30,
                      "lr 30 diverged early: %s at step %d", r.status, r.step);
    snprintf(path, sizeof path, "%s/sw/post_lr0.001_s1337", dir);
    fails += NL_CHECK(nl_sweep_read_result(path, &r) == NL_OK && !strcmp(r.status, "done") && r.step == 12 && isfinite(r.val_loss),
                      "lr 1e-3 finished: %s at step %d, val %g", r.status, r.step, r.val_loss);
    snprintf(cmd, sizeof cmd, "grep -c . %s/sw/summary.csv; grep '^pre,30,2,0,2,0' %s/sw/summary.csv", dir, dir);
    nl_run_cmd(cmd, out, sizeof out);
    fails += NL_CHECK(!strncmp(out, "5\npre,30,2,0,2,0", 16), "summary.csv: %s", out);
    /* resume: everything skipped; then a lost result is rerun, and only it */
    snprintf(path, sizeof path, "%s/sw/pre_lr0.001_s1337/metrics.jsonl", dir);
    const double t_kept = mtime(path);
    fails += NL_CHECK(nl_run_cmd(sweep, out, sizeof out) == 0 && strstr(out, "8 finished earlier") && !strstr(out, "[8/8]"), "second sweep: %s", out);
    snprintf(cmd, sizeof cmd, "rm %s/sw/post_lr30_s1337/result.json", dir);
    fails += NL_CHECK(system(cmd) == 0, "rm result");
    fails += NL_CHECK(nl_run_cmd(sweep, out, sizeof out) == 0 && strstr(out, "7 finished earlier") && strstr(out, "[8/8] post lr 30 seed 1337: diverged"),
                      "third sweep reruns one: %s", out);
    fails += NL_CHECK(mtime(path) == t_kept, "a finished run was not touched");
    snprintf(path, sizeof path, "%s/sw/post_lr30_s1337", dir);
    fails += NL_CHECK(nl_sweep_read_result(path, &r) == NL_OK && !strcmp(r.status, "diverged"), "rerun recorded");
    /* errors are one line, exit 2 */
    snprintf(cmd, sizeof cmd, "%s sweep --norm pre,nope --lr 1e-3 2>&1 >/dev/null", nl_test_bin());
    fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 2 && strstr(out, "unknown placement 'nope'"), "bad norm: %s", out);
    snprintf(cmd, sizeof cmd, "%s sweep --norm pre --lr 1e-3,abc 2>&1 >/dev/null", nl_test_bin());
    fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 2 && strstr(out, "'abc' is not a learning rate"), "bad lr: %s", out);
    snprintf(cmd, sizeof cmd, "%s sweep --lr 1e-3 2>&1 >/dev/null", nl_test_bin());
    fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 2 && strstr(out, "--norm is required"), "no norm: %s", out);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    fails += NL_CHECK(system(cmd) == 0, "cleanup");
    return fails;
}
