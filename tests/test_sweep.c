/* test_sweep.c -- `normlab sweep`: a tiny grid with one learning rate that must diverge; the
 * diverged runs are recorded with their step; a second invocation skips every finished run and a
 * run whose result.json is gone is run again; the summary CSV has the grid's rows. */
#include "check.h"
#include "sweep.h"
#include "tests.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char out[1 << 16];

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static double mtime(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (double)sb.st_mtim.tv_sec + 1e-9 * sb.st_mtim.tv_nsec : -1.0;
}

int test_sweep_resume(void) {
    int fails = 0;
    char dir[] = "/tmp/nl_sweep_XXXXXX", cmd[4096], sweep[2048], path[256];
    NL_ASSERT(mkdtemp(dir));
    snprintf(cmd, sizeof cmd,
             "awk 'BEGIN{srand(3); for(i=0;i<4000;i++) printf \"%%s \", (rand()<0.5?\"ab\":\"cde\")}' > %s/t.txt", dir);
    fails += NL_CHECK(system(cmd) == 0, "make text");
    snprintf(sweep, sizeof sweep,
             "%s sweep --norm pre,post --lr 1e-3,30 --seeds 2 --jobs 2 --out %s/sw --data %s/t.txt --layers 2 --dim 32 "
             "--heads 2 --seq-len 32 --batch 4 --steps 12 --warmup 0 --diverge-window 3 --eval-every 0 --threads 1 2>&1",
             nl_test_bin(), dir, dir);
    fails += NL_CHECK(nl_run_cmd(sweep, out, sizeof out) == 0, "sweep: %s", out);
    fails += NL_CHECK(strstr(out, "0 finished earlier") != NULL, "first sweep runs everything: %s", out);
    nl_sweep_result r;
    snprintf(path, sizeof path, "%s/sw/pre_lr30_s1338", dir);
    fails += NL_CHECK(nl_sweep_read_result(path, &r) == NL_OK && !strcmp(r.status, "diverged") && r.step >= 1 &&
                              r.step < 12 && r.seed == 1338 && r.lr == 30,
                      "lr 30 diverged early: %s at step %d", r.status, r.step);
    snprintf(path, sizeof path, "%s/sw/post_lr0.001_s1337", dir);
    fails += NL_CHECK(nl_sweep_read_result(path, &r) == NL_OK && !strcmp(r.status, "done") && r.step == 12 &&
                              isfinite(r.val_loss),
                      "lr 1e-3 finished: %s at step %d, val %g", r.status, r.step, r.val_loss);
    snprintf(cmd, sizeof cmd, "grep -c . %s/sw/summary.csv; grep '^pre,30,2,0,2,0' %s/sw/summary.csv", dir, dir);
    nl_run_cmd(cmd, out, sizeof out);
    fails += NL_CHECK(!strncmp(out, "5\npre,30,2,0,2,0", 16), "summary.csv: %s", out);
    /* resume: everything skipped; then a lost result is rerun, and only it */
    snprintf(path, sizeof path, "%s/sw/pre_lr0.001_s1337/metrics.jsonl", dir);
    const double t_kept = mtime(path);
    fails += NL_CHECK(nl_run_cmd(sweep, out, sizeof out) == 0 && strstr(out, "8 finished earlier") &&
                              !strstr(out, "[8/8]"),
                      "second sweep: %s", out);
    snprintf(cmd, sizeof cmd, "rm %s/sw/post_lr30_s1337/result.json", dir);
    fails += NL_CHECK(system(cmd) == 0, "rm result");
    fails += NL_CHECK(nl_run_cmd(sweep, out, sizeof out) == 0 && strstr(out, "7 finished earlier") &&
                              strstr(out, "[8/8] post lr 30 seed 1337: diverged"),
                      "third sweep reruns one: %s", out);
    fails += NL_CHECK(mtime(path) == t_kept, "a finished run was not touched");
    snprintf(path, sizeof path, "%s/sw/post_lr30_s1337", dir);
    fails += NL_CHECK(nl_sweep_read_result(path, &r) == NL_OK && !strcmp(r.status, "diverged"), "rerun recorded");
    /* errors are one line, exit 2 */
    snprintf(cmd, sizeof cmd, "%s sweep --norm pre,nope --lr 1e-3 2>&1 >/dev/null", nl_test_bin());
    fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 2 && strstr(out, "unknown placement 'nope'"), "bad norm: %s",
                      out);
    snprintf(cmd, sizeof cmd, "%s sweep --norm pre --lr 1e-3,abc 2>&1 >/dev/null", nl_test_bin());
    fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 2 && strstr(out, "'abc' is not a learning rate"),
                      "bad lr: %s", out);
    snprintf(cmd, sizeof cmd, "%s sweep --lr 1e-3 2>&1 >/dev/null", nl_test_bin());
    fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 2 && strstr(out, "--norm is required"), "no norm: %s", out);
    fails += nl_test_rmdir(dir);
    return fails;
}

/* The summary of one seed has its mean and n=1, no sd (a sample sd needs two); two seeds have both. */
int test_sweep_summary(void) {
    int fails = 0;
    nl_sweep_result r[3] = { { .placement = "pre", .status = "done", .lr = 1e-3, .val_loss = 2.5 },
                             { .placement = "post", .status = "done", .lr = 1e-3, .val_loss = 3.0 },
                             { .placement = "post", .status = "done", .lr = 1e-3, .val_loss = 4.0 } };
    char buf[2048];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    NL_ASSERT(f);
    nl_sweep_summary(r, 3, 0, f);
    nl_sweep_summary(r, 3, 1, f);
    fclose(f);
    fails += NL_CHECK(strstr(buf, "2.5000 (n=1)") && strstr(buf, "3.5000 +- 0.7071 (n=2)") && !strstr(buf, "+- 0.0000"),
                      "table: %s", buf);
    fails += NL_CHECK(strstr(buf, "\npre,0.001,1,1,0,0,2.500000,\n") &&
                              strstr(buf, "\npost,0.001,2,2,0,0,3.500000,0.707107\n"),
                      "csv: %s", buf);
    return fails;
}

/* --launcher slurm against stand-ins for sbatch and squeue on PATH (shell scripts that record their
 * arguments): the array, the passed options, the task script, what is resubmitted; and the one-line
 * errors when sbatch is missing or fails. The real cluster: test_cluster.c. */
int test_sweep_slurm_args(void) {
    int fails = 0;
    char dir[] = "/tmp/nl_sweep_sb_XXXXXX", cmd[4096], sweep[2048];
    NL_ASSERT(mkdtemp(dir));
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/bin && printf '#!/bin/sh\\necho \"$@\" >> %s/sbatch.args\\necho 4242\\n' > %s/bin/sbatch && "
             "printf '#!/bin/sh\\necho \"$@\" > %s/squeue.args\\ncat %s/queue 2>/dev/null; exit 0\\n' > %s/bin/squeue && chmod +x %s/bin/*",
             dir, dir, dir, dir, dir, dir, dir);
    fails += NL_CHECK(system(cmd) == 0, "stand-ins");
    snprintf(sweep, sizeof sweep,
             "PATH=%s/bin:$PATH %s sweep --launcher slurm --norm pre,post,peri --lr 1e-3,2e-3 --jobs 2 --partition gpu --time 1:00:00 "
             "--cpus-per-task 4 --out %s/sw --data nothing.txt --steps 5 2>&1",
             dir, nl_test_bin(), dir);
    fails += NL_CHECK(nl_run_cmd(sweep, out, sizeof out) == 0 &&
                              strstr(out, "0 finished, 0 queued or running, 6 submitted as Slurm job array 4242"),
                      "submit: %s", out);
    snprintf(cmd, sizeof cmd, "cat %s/sbatch.args; cat %s/sw/slurm/sweep.sh; cat %s/sw/slurm/jobs", dir, dir, dir);
    nl_run_cmd(cmd, out, sizeof out);
    fails += NL_CHECK(strstr(out, "--array=0-5%2 ") && strstr(out, "--partition=gpu") && strstr(out, "--time=1:00:00") &&
                              strstr(out, "--cpus-per-task=4") && strstr(out, "/sw/slurm/%A_%a.out"),
                      "sbatch arguments: %s", out);
    fails += NL_CHECK(strstr(out, "' 'sweep' ") == NULL && strstr(out, " sweep '--launcher' 'slurm'") &&
                              strstr(out, "--threads=4 --run-index=\"$SLURM_ARRAY_TASK_ID\"") && strstr(out, "\n4242\n"),
                      "task script and job record: %s", out);
    /* runs 1 and 4 still queued, run 2 finished: the other three are submitted again, as one array */
    snprintf(cmd, sizeof cmd,
             "printf '4242 1\\n4242 4\\n999 0\\n77 N/A\\n' > %s/queue && mkdir -p %s/sw/post_lr0.001_s1337 && printf '{\"norm\": \"post\", "
             "\"lr\": 0.001, \"seed\": 1337, \"status\": \"done\", \"reason\": \"\", \"step\": 5, \"val_loss\": 3}' > %s/sw/post_lr0.001_s1337/result.json",
             dir, dir, dir);
    fails += NL_CHECK(system(cmd) == 0, "queue and a finished run");
    fails += NL_CHECK(nl_run_cmd(sweep, out, sizeof out) == 0 &&
                              strstr(out, "1 finished, 2 queued or running, 3 submitted"),
                      "resubmit: %s", out);
    snprintf(cmd, sizeof cmd, "tail -n 1 %s/sbatch.args; cat %s/squeue.args", dir, dir);
    nl_run_cmd(cmd, out, sizeof out);
    fails += NL_CHECK(strstr(out, "--array=0,3,5%2 ") && strstr(out, "--me") && strstr(out, "--array"),
                      "second array and squeue: %s", out);
    /* errors: one line, exit 1 */
    snprintf(cmd, sizeof cmd,
             "printf '#!/bin/sh\\necho \"sbatch: error: invalid partition specified: gpu\" >&2\\nexit 1\\n' > %s/bin/sbatch; rm %s/queue",
             dir, dir);
    fails += NL_CHECK(system(cmd) == 0, "failing sbatch");
    fails += NL_CHECK(nl_run_cmd(sweep, out, sizeof out) == 1 &&
                              strstr(out, "sbatch failed (exit 1): sbatch: error: invalid partition specified: gpu") &&
                              count_lines(out) == 1,
                      "sbatch fails: %s", out);
    snprintf(sweep, sizeof sweep, "PATH=/nonexistent %s sweep --launcher slurm --norm pre --lr 1e-3 --out %s/sw2 2>&1",
             nl_test_bin(), dir);
    fails += NL_CHECK(nl_run_cmd(sweep, out, sizeof out) == 1 && strstr(out, "'sbatch' not found") &&
                              count_lines(out) == 1,
                      "no sbatch: %s", out);
    snprintf(sweep, sizeof sweep, "%s sweep --norm pre --lr 1e-3 --time 5 2>&1", nl_test_bin());
    fails += NL_CHECK(nl_run_cmd(sweep, out, sizeof out) == 2 && strstr(out, "need --launcher slurm"),
                      "--time without slurm: %s", out);
    snprintf(sweep, sizeof sweep, "%s sweep --norm pre --lr 1e-3 --launcher pbs 2>&1", nl_test_bin());
    fails += NL_CHECK(nl_run_cmd(sweep, out, sizeof out) == 2 && strstr(out, "--launcher: 'pbs' is not local|slurm"),
                      "bad launcher: %s", out);
    snprintf(sweep, sizeof sweep, "%s sweep --norm pre --lr 1e-3 --run-index 1 --out %s/sw3 2>&1", nl_test_bin(), dir);
    fails += NL_CHECK(nl_run_cmd(sweep, out, sizeof out) == 2 && strstr(out, "--run-index 1: the grid has 1 runs"),
                      "run index out of range: %s", out);
    fails += nl_test_rmdir(dir);
    return fails;
}
