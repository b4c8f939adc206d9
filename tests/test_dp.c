/* test_dp.c -- data-parallel training under mpirun (src/dp.h; `make test-mpi`, the MPI build):
 * equivalence with one process and gradient accumulation, ZeRO-1 against plain data parallel,
 * checkpoints across rank counts, a killed rank, SIGTERM to mpirun, bad launches. Every MPI run sets
 * NORMLAB_DP_CHECK=1: the ranks compare their parameters after every step. In the default build only
 * the single-process refusal of --zero 1 runs; the rest says "not in this build". */
#include "check.h"
#include "ckpt.h"
#include "comm.h"
#include "config.h"
#include "dp.h"
#include "placement.h"
#include "tests.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char out[1 << 16];

/* buckets of 5000 floats: the test models' gradients reduce in 3 (the last block and the head, the first
 * block, the embeddings), overlapped with the backward */
#define MPIRUN "NORMLAB_DP_CHECK=1 NORMLAB_DP_BUCKET=5000 mpirun --allow-run-as-root --oversubscribe"

static const char *model = "--layers 2 --dim 32 --heads 2 --seq-len 32 --warmup 2 --eval-every 0 --eval-windows 4 --threads 1 --seed 7";

static int mpi_build(void) {
    if (!strcmp(nl_comm_backend(), "mpi")) return 1;
    printf("    not in this build: data-parallel runs need the MPI build (make test-mpi)\n");
    return 0;
}

/* The largest |a - b| over the parameters and AdamW moments of two checkpoints (-1: one does not
 * load or they hold different models); *same: bit-identical. */
static double ckpt_diff(const char *pa, const char *pb, int *same) {
    nl_model a, b;
    int sa, sb;
    nl_rng ra, rb;
    *same = 0;
    if (nl_ckpt_load(&a, pa, &sa, &ra) != NL_OK) return printf("    %s: %s\n", pa, nl_last_error()), -1;
    if (nl_ckpt_load(&b, pb, &sb, &rb) != NL_OK)
        return printf("    %s: %s\n", pb, nl_last_error()), nl_model_free(&a), -1;
    double d = -1;
    if (a.nparams == b.nparams && sa == sb) {
        const float *x[3] = { a.params, a.m, a.v }, *y[3] = { b.params, b.m, b.v };
        d = 0;
        *same = !memcmp(&ra, &rb, sizeof ra);
        for (int k = 0; k < 3; k++)
            for (size_t i = 0; i < a.nparams; i++) {
                const double e = fabs((double)x[k][i] - (double)y[k][i]);
                d = e > d ? e : d;
                *same &= !memcmp(&x[k][i], &y[k][i], sizeof(float));
            }
    }
    nl_model_free(&a);
    nl_model_free(&b);
    return d;
}

/* the loss of metrics line `step` in dir */
static double loss_at(const char *dir, int step) {
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "grep '^{\"step\": %d, \"loss\"' %s/metrics.jsonl | sed 's/.*\"loss\": \\([^,]*\\),.*/\\1/'", step, dir);
    char buf[128];
    return nl_run_cmd(cmd, buf, sizeof buf) == 0 && buf[0] ? atof(buf) : NAN;
}

static int train(const char *launch, const char *dir, const char *extra, const char *data) {
    const int rc = nl_run_fmt(out, sizeof out, "%s %s train --data %s %s --out %s %s 2>&1", launch, nl_test_bin(), data,
                              model, dir, extra);
    if (rc && strstr(launch, "mpirun") && !strstr(extra, "global-batch 12 --steps 2"))
        printf("    '%s train ... %s' exited %d: %s\n", launch, extra, rc, out);
    return rc;
}

/* np ranks equal one process with --accum np; ZeRO-1 equals plain data parallel */
int test_dp_equiv(void) {
    if (!mpi_build()) return 0;
    int fails = 0, same;
    char dir[] = "/tmp/nl_dp_equiv_XXXXXX", data[600], a[700], b[700], launch[128];
    NL_ASSERT(mkdtemp(dir));
    snprintf(data, sizeof data, "%s/t.txt", dir);
    nl_make_text(data, 6000);
    for (int np = 2; np <= 3; np++) {
        char single[400], dp[400], zero[400], acc[64];
        snprintf(single, sizeof single, "%s/one%d", dir, np);
        snprintf(dp, sizeof dp, "%s/dp%d", dir, np);
        snprintf(zero, sizeof zero, "%s/zero%d", dir, np);
        snprintf(acc, sizeof acc, "--batch 3 --steps 6 --accum %d", np);
        fails += NL_CHECK(train("", single, acc, data) == 0, "one process, --accum %d", np);
        snprintf(launch, sizeof launch, MPIRUN " -np %d", np);
        fails += NL_CHECK(train(launch, dp, "--batch 3 --steps 6", data) == 0, "mpirun -np %d", np);
        fails += NL_CHECK(nl_count(out, "done: 6 steps") == 1 && nl_count(out, "normlab train: gpt2") == 1 &&
                                  strstr(out, "data parallel: "),
                          "-np %d: one log, from rank 0: %s", np, out);
        fails += NL_CHECK(train(launch, zero, "--batch 3 --steps 6 --zero 1", data) == 0, "mpirun -np %d --zero 1", np);
        /* the moments per rank: 2 floats x ceil(nparams / np) */
        const char *mb = strstr(out, "ZeRO-1: AdamW moments ");
        double per = 0, all = 0;
        fails += NL_CHECK(mb && sscanf(mb, "ZeRO-1: AdamW moments %lf MB per rank instead of %lf MB", &per, &all) == 2 &&
                                  all > 0 && fabs(per * np / all - 1) < 1e-2,
                          "-np %d: optimizer memory per rank falls by the rank count: %s", np, mb ? mb : out);
        if (mb) printf("    -np %d --zero 1: %.*s\n", np, (int)strcspn(mb, "\n"), mb);
        snprintf(a, sizeof a, "%s/ckpt-00000006.safetensors", single);
        snprintf(b, sizeof b, "%s/ckpt-00000006.safetensors", dp);
        double d = ckpt_diff(a, b, &same);
        printf("    -np %d vs one process --accum %d: max |diff| %.3g over params and moments (%s)\n", np, np, d,
               same ? "bit-identical" : "not bit-identical");
        fails += NL_CHECK(d >= 0 && d < 1e-5, "-np %d equals --accum %d within 1e-5: %g", np, np, d);
        for (int s = 1; s <= 6; s++) {
            const double l1 = loss_at(single, s), l2 = loss_at(dp, s);
            fails += NL_CHECK(fabs(l1 - l2) < 1e-5, "-np %d step %d loss %.6f vs one process %.6f", np, s, l2, l1);
        }
        snprintf(a, sizeof a, "%s/ckpt-00000006.safetensors", zero);
        d = ckpt_diff(a, b, &same);
        printf("    -np %d --zero 1 vs plain data parallel: max |diff| %.3g (%s)\n", np, d,
               same ? "bit-identical" : "not bit-identical");
        fails += NL_CHECK(d >= 0 && d < 1e-5 && (np != 2 || same),
                          "-np %d: ZeRO-1 equals data parallel (bit-identical on 2 ranks, within 1e-5): %g", np, d);
    }
    return fails + nl_test_rmdir(dir);
}

/* a checkpoint of 2 ranks with ZeRO-1 resumes on 1 and on 3 ranks, one of 1 process on 2 ranks with
 * ZeRO-1: each equals the uninterrupted run (--global-batch keeps the batch of every step) */
int test_dp_resume(void) {
    if (!mpi_build()) return 0;
    int fails = 0, same;
    char dir[] = "/tmp/nl_dp_resume_XXXXXX", data[600], ref[400], run[400], a[700], b[700];
    NL_ASSERT(mkdtemp(dir));
    snprintf(data, sizeof data, "%s/t.txt", dir);
    nl_make_text(data, 6000);
    const char *opts = "--batch 2 --global-batch 12 --steps 8 --lr-steps 8 --ckpt-every 4";
    snprintf(ref, sizeof ref, "%s/ref", dir);
    fails += NL_CHECK(train(MPIRUN " -np 2", ref, opts, data) == 0, "the uninterrupted run");
    snprintf(b, sizeof b, "%s/ckpt-00000008.safetensors", ref);
    static const struct {
        int np_first, zero_first, np_then, zero_then;
    } cases[] = { { 2, 1, 1, 0 }, { 2, 1, 3, 0 }, { 1, 0, 2, 1 }, { 3, 1, 2, 1 } };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(run, sizeof run, "%s/run%zu", dir, k);
        char first[256], then[256], o[256];
        if (cases[k].np_first > 1) snprintf(first, sizeof first, MPIRUN " -np %d", cases[k].np_first);
        else snprintf(first, sizeof first, " ");
        snprintf(o, sizeof o, "--batch 2 --global-batch 12 --steps 4 --lr-steps 8 --ckpt-every 4 %s",
                 cases[k].zero_first ? "--zero 1" : "");
        fails += NL_CHECK(train(first, run, o, data) == 0, "case %zu: the first 4 steps on %d rank(s)", k,
                          cases[k].np_first);
        if (cases[k].np_then > 1) snprintf(then, sizeof then, MPIRUN " -np %d", cases[k].np_then);
        else snprintf(then, sizeof then, " ");
        int rc = nl_run_fmt(out, sizeof out, "%s %s train --resume %s --steps 8 %s 2>&1", then, nl_test_bin(), run,
                            cases[k].zero_then ? "--zero 1" : "");
        fails += NL_CHECK(rc == 0 && strstr(out, "resuming from step 4 of 8"),
                          "case %zu: resumed on %d rank(s): exit %d: %s", k, cases[k].np_then, rc, out);
        snprintf(a, sizeof a, "%s/ckpt-00000008.safetensors", run);
        const double d = ckpt_diff(a, b, &same);
        printf("    %d rank(s)%s, resumed on %d%s: max |diff| %.3g from the uninterrupted run (%s)\n",
               cases[k].np_first, cases[k].zero_first ? " ZeRO-1" : "", cases[k].np_then,
               cases[k].zero_then ? " ZeRO-1" : "", d, same ? "bit-identical" : "not bit-identical");
        fails += NL_CHECK(d >= 0 && d < 1e-5, "case %zu: within 1e-5 of the uninterrupted run: %g", k, d);
        for (int s = 5; s <= 8; s++)
            fails += NL_CHECK(fabs(loss_at(run, s) - loss_at(ref, s)) < 1e-5, "case %zu step %d: loss %.6f vs %.6f", k,
                              s, loss_at(run, s), loss_at(ref, s));
    }
    return fails + nl_test_rmdir(dir);
}

/* the exit status of `cmd` started in the background, signalled with sig after `wait_for` appears in
 * file log (sig 0: none); -1 if it runs longer than secs */
static int run_signal(const char *cmd, const char *log, const char *wait_for, int sig, double secs, double *took) {
    const double t0 = nl_now();
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int status = -1, sent = sig == 0;
    while (nl_now() - t0 < secs) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            *took = nl_now() - t0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (!sent) {
            char buf[64];
            char grep[700];
            snprintf(grep, sizeof grep, "grep -c '%s' %s 2>/dev/null", wait_for, log);
            if (nl_run_cmd(grep, buf, sizeof buf) == 0 && atoi(buf) > 0) {
                kill(pid, sig); /* sh -c execs the last command: pid is mpirun */
                sent = 1;
            }
        }
        usleep(50000);
    }
    kill(-pid, SIGKILL);
    waitpid(pid, &status, 0);
    *took = nl_now() - t0;
    return -1;
}

/* a rank killed with SIGKILL ends the job (non-zero, naming the rank) and the checkpoints stay
 * valid; SIGTERM to mpirun checkpoints and stops every rank; bad launches: one line each */
int test_dp_faults(void) {
    int fails = 0;
    char dir[] = "/tmp/nl_dp_faults_XXXXXX", data[600], run[600], cmd[2048], log[700], a[700];
    NL_ASSERT(mkdtemp(dir));
    snprintf(data, sizeof data, "%s/t.txt", dir);
    nl_make_text(data, 6000);
    snprintf(run, sizeof run, "%s/z", dir);
    int rc = train("", run, "--batch 2 --steps 2 --zero 1", data);
    fails += NL_CHECK(rc == 2 &&
                              strstr(out,
                                     "--zero 1 shards the AdamW moments across MPI ranks, but this run has one rank") &&
                              nl_count(out, "\n") == 1,
                      "--zero 1 on one process: exit 2, one line: %s", out);
    if (!mpi_build()) return fails;
    rc = train(MPIRUN " -np 2", run, "--batch 4 --global-batch 12 --steps 2", data);
    fails += NL_CHECK(rc != 0 && nl_count(out, "is not a multiple of ranks x --batch = 2 x 4 = 8") == 1 &&
                              nl_count(out, "normlab train") == 1,
                      "--global-batch that 2 x batch does not divide: exit %d, one error line: %s", rc, out);
    /* rank 1 SIGKILLs itself at step 11; checkpoints every 4 steps */
    snprintf(log, sizeof log, "%s/kill.log", dir);
    snprintf(cmd, sizeof cmd,
             "NORMLAB_FAULT=kill-rank:1:11 " MPIRUN
             " -np 2 %s train --data %s %s --out %s/k --batch 2 --steps 40 --ckpt-every 4 --zero 1 > %s 2>&1",
             nl_test_bin(), data, model, dir, log);
    double took;
    rc = run_signal(cmd, log, "", 0, 90, &took);
    nl_run_fmt(out, sizeof out, "cat %s", log);
    fails += NL_CHECK(rc > 0 && took < 60 && strstr(out, "process rank 1") && strstr(out, "signal 9"),
                      "a killed rank ends the job within 60 s naming it: exit %d after %.1fs: %s", rc, took, out);
    snprintf(a, sizeof a, "%s/k/ckpt-00000008.safetensors", dir);
    int same;
    fails += NL_CHECK(ckpt_diff(a, a, &same) == 0, "the last checkpoint before the kill loads");
    nl_run_fmt(out, sizeof out, "ls %s/k", dir);
    fails += NL_CHECK(!strstr(out, "ckpt-00000012") && !strstr(out, ".tmp."), "no later or partial checkpoint: %s", out);
    rc = nl_run_fmt(out, sizeof out, MPIRUN " -np 2 %s train --resume %s/k --steps 12 2>&1", nl_test_bin(), dir);
    fails += NL_CHECK(rc == 0 && strstr(out, "resuming from step 8 of 12") && strstr(out, "done: 12 steps"),
                      "resumed after the kill: %s", out);
    /* a NaN gradient at step 5 under ZeRO-1: every rank rolls back to the step-4 checkpoint together */
    rc = nl_run_fmt(out, sizeof out,
                    "NORMLAB_FAULT=nan-at:5 " MPIRUN
                    " -np 2 %s train --data %s %s --out %s/n --batch 2 --steps 8 --ckpt-every 2 "
                    "--on-nan rollback --zero 1 2>&1",
                    nl_test_bin(), data, model, dir);
    fails += NL_CHECK(rc == 0 && nl_count(out, "rolled back to step 4") == 1 && strstr(out, "done: 8 steps"),
                      "rollback on 2 ranks: exit %d: %s", rc, out);
    /* the parameter check notices a rank that drifted (one parameter of rank 2 moved after step 3) */
    rc = nl_run_fmt(out, sizeof out,
                    "NORMLAB_FAULT=skew-rank:2:3 " MPIRUN
                    " -np 3 %s train --data %s %s --out %s/s --batch 2 --steps 6 2>&1",
                    nl_test_bin(), data, model, dir);
    fails += NL_CHECK(rc != 0 && strstr(out, "after step 3 the parameters of 1 rank(s) (2) differ from rank 0's"),
                      "a drifted rank is caught: exit %d: %s", rc, out);
    /* SIGTERM to mpirun: every rank stops after the same step, rank 0 checkpoints it */
    snprintf(log, sizeof log, "%s/term.log", dir);
    /* mpirun SIGKILLs the ranks odls_base_sigkill_timeout seconds (default 1) after forwarding SIGTERM, and
     * stops reading their output (a rank that logs every step can block on a full pipe): the grace is
     * raised, the log is sparse, and the evidence is the run directory: a checkpoint of the last step in
     * metrics.jsonl */
    snprintf(cmd, sizeof cmd,
             "export NORMLAB_DP_CHECK=1; exec mpirun --allow-run-as-root --oversubscribe --mca odls_base_sigkill_timeout 20 -np 2 "
             "%s train --data %s %s --out %s/t --batch 2 --steps 100000 --log-every 50 > %s 2>&1",
             nl_test_bin(), data, model, dir, log);
    rc = run_signal(cmd, log, "step 50/", SIGTERM, 60, &took);
    nl_run_fmt(out, sizeof out, "ls %s/t | grep '^ckpt-' | tail -1; tail -1 %s/t/metrics.jsonl | cut -d, -f1", dir, dir);
    int ck_step = -1, last_step = -2;
    const char *cp = strstr(out, "ckpt-"), *sp = strstr(out, "{\"step\": ");
    if (cp) ck_step = atoi(cp + 5);
    if (sp) last_step = atoi(sp + 9);
    fails += NL_CHECK(rc > 0 && took < 60 && ck_step >= 50 && ck_step == last_step,
                      "SIGTERM to mpirun: exit %d after %.1fs; checkpoint of step %d, last metrics step %d: %s", rc,
                      took, ck_step, last_step, out);
    const char *ck = strstr(out, "ckpt-0");
    if (ck) {
        snprintf(a, sizeof a, "%s/t/%.25s", dir, ck);
        fails += NL_CHECK(ckpt_diff(a, a, &same) == 0, "%s loads", a);
    }
    return fails + nl_test_rmdir(dir);
}

/* ------------------------------------------------------------- overlap, chunks, watchdog */

/* what the backward reported: each range, and its gradients at the moment of the report */
typedef struct seen {
    const nl_model *m;
    int n, bad_order;
    size_t next_hi; /* the next range must end here */
    size_t lo[64], hi[64];
    float *snap; /* nparams: the gradients of each range when reported */
} seen;

static void record(void *arg, size_t lo, size_t hi) {
    seen *s = arg;
    s->bad_order += hi != s->next_hi || lo >= hi || s->n == 64;
    if (s->n < 64) s->lo[s->n] = lo, s->hi[s->n++] = hi;
    s->next_hi = lo;
    s->m->be->to_host(s->snap + lo, s->m->grads + lo, (hi - lo) * sizeof(float));
}

/* model.h's grad_ready: the ranges tile the parameters from the last to the first, each reported once
 * its gradients are final (they do not change after the report, and they are not all zero), for
 * placements whose backward differs (post norms, ResiDual's second stream, B2T, normformer), a tied
 * and an untied head */
int test_dp_hook(void) {
    int fails = 0;
    static const char *const placements[] = { "pre", "post", "peri", "residual", "b2t", "normformer" };
    for (size_t k = 0; k < sizeof placements / sizeof placements[0] * 2; k++) {
        nl_config c;
        nl_config_defaults(&c);
        c.vocab = 61, c.layers = 3, c.dim = 16, c.heads = 2, c.seq_len = 8, c.seed = 3 + k;
        c.placement = nl_placement_from_name(placements[k / 2]);
        if (k % 2) c.arch = NL_ARCH_LLAMA; /* untied head, no biases */
        nl_model m;
        NL_ASSERT(nl_model_init(&m, &c) == NL_OK);
        nl_model_alloc_acts(&m, 2, 8);
        int inp[16], tgt[16];
        for (int i = 0; i < 16; i++) inp[i] = (7 * i + (int)k) % 61, tgt[i] = (5 * i + 3) % 61;
        seen s = { .m = &m, .next_hi = m.nparams, .snap = nl_xcalloc(m.nparams * sizeof(float)) };
        nl_model_zero_grad(&m);
        nl_model_forward(&m, inp, tgt, 2, 8, 1.0f);
        m.grad_ready = record, m.grad_ready_arg = &s;
        nl_model_backward(&m);
        m.grad_ready = NULL;
        int changed = 0, zero_ranges = 0;
        for (int i = 0; i < s.n; i++) {
            double a = 0;
            for (size_t j = s.lo[i]; j < s.hi[i]; j++) {
                changed += memcmp(&s.snap[j], &m.grads[j], sizeof(float)) != 0;
                a += fabs(m.grads[j]);
            }
            zero_ranges += a == 0;
        }
        fails += NL_CHECK(s.bad_order == 0 && s.next_hi == 0 && s.n >= c.layers + 1 && s.n <= c.layers + 2,
                          "%s %s: %d ranges, descending and tiling [0, %zu): %d out of order, the last ends at %zu",
                          placements[k / 2], nl_arch_names[c.arch], s.n, m.nparams, s.bad_order, s.next_hi);
        fails += NL_CHECK(changed == 0 && zero_ranges == 0,
                          "%s %s: %d gradients changed after their range was reported, %d ranges all zero",
                          placements[k / 2], nl_arch_names[c.arch], changed, zero_ranges);
        free(s.snap);
        nl_model_free(&m);
    }
    return fails;
}

/* the shard and bucket arithmetic far beyond 2^31 elements (nothing allocated): every piece an MPI call
 * gets is at most NL_COMM_CHUNK < INT_MAX, the pieces tile the range */
int test_dp_chunks(void) {
    int fails = 0;
    const size_t n = 5000000011ull; /* 5e9: > 2^32 */
    for (int P = 1; P <= 7; P += 3) {
        size_t next = 0, lo, hi, smin = n, smax = 0;
        for (int q = 0; q < P; q++) {
            nl_shard_of(n, P, q, &lo, &hi);
            fails += NL_CHECK(lo == next, "P %d: shard %d starts at %zu, not %zu", P, q, lo, next);
            next = hi;
            smin = hi - lo < smin ? hi - lo : smin, smax = hi - lo > smax ? hi - lo : smax;
        }
        fails += NL_CHECK(next == n && smax - smin <= 1, "P %d: shards of %zu tile it, sizes %zu..%zu", P, n, smin, smax);
        /* a bucket across shard boundaries: its pieces in rank order tile it */
        size_t counts[7], a = n / 3 - 12345, b = a + 2 * (n / P) + 99, sum = 0;
        if (b > n) b = n;
        const int first = nl_shard_span(n, P, a, b, counts);
        nl_shard_of(n, P, first, &lo, &hi);
        for (int q = 0; q < P; q++) sum += counts[q];
        fails += NL_CHECK(sum == b - a && lo <= a && a < hi,
                          "P %d: the pieces of [%zu, %zu) sum to %zu, the first in rank %d's shard", P, a, b, sum, first);
    }
    /* buckets of a 6.4e9-parameter backward: a head of 10, two blocks of 3e9 (longer than one MPI call: 2
     * pieces of 2^30 and the rest each), one block of 10, the embeddings of 4e8 */
    const size_t at[] = { 6400000020ull, 6400000010ull, 3400000010ull, 400000010ull, 400000000ull, 0 };
    size_t cut[6 + 6400000020ull / NL_COMM_CHUNK + 1];
    const int nb = nl_dp_buckets(at, 6, 4u << 20, NL_COMM_CHUNK, cut);
    int ok = cut[0] == at[0] && cut[nb] == 0, big = 0;
    for (int k = 0; k < nb; k++) {
        ok &= cut[k + 1] < cut[k] && cut[k] - cut[k + 1] <= NL_COMM_CHUNK;
        big += cut[k] - cut[k + 1] == NL_COMM_CHUNK;
    }
    /* every finish point ends a bucket but the ends of the 10-element ranges (they join the next range) */
    int ends = 0;
    for (int i = 0; i < 6; i++)
        for (int k = 0; k <= nb; k++) ends += cut[k] == at[i];
    fails += NL_CHECK(ok && ends == 4 && big == 4 && nb == 7,
                      "buckets of 6.4e9 floats: %d, each at most 2^30 (%d of 2^30), %d cut at finish points", nb, big,
                      ends);
    /* small: one bucket per finish point once the target is reached */
    const size_t sm[] = { 100, 90, 50, 45, 0 };
    const int ns = nl_dp_buckets(sm, 5, 40, 1000, cut);
    fails += NL_CHECK(ns == 2 && cut[1] == 50 && cut[2] == 0,
                      "buckets of 40 over finish points 100 90 50 45 0: %d (cuts %zu %zu)", ns, cut[1], cut[2]);
    return fails;
}

/* --overlap on equals --overlap off bit for bit (the same buckets and calls, only earlier), with and
 * without ZeRO-1 and with --accum 2, on 2 and 3 ranks */
int test_dp_overlap(void) {
    if (!mpi_build()) return 0;
    int fails = 0, same;
    char dir[] = "/tmp/nl_dp_overlap_XXXXXX", data[600], a[700], b[700], launch[128];
    NL_ASSERT(mkdtemp(dir));
    snprintf(data, sizeof data, "%s/t.txt", dir);
    nl_make_text(data, 6000);
    static const char *const extra[] = { "", "--zero 1", "--accum 2" };
    for (int np = 2; np <= 3; np++)
        for (int e = 0; e < 3; e++) {
            if (np == 2 && e == 2) continue;
            snprintf(launch, sizeof launch, MPIRUN " -np %d", np);
            for (int on = 0; on < 2; on++) {
                char run[700], o[128];
                snprintf(run, sizeof run, "%s/r%d%d%d", dir, np, e, on);
                snprintf(o, sizeof o, "--batch 2 --steps 4 --overlap %s %s", on ? "on" : "off", extra[e]);
                fails += NL_CHECK(train(launch, run, o, data) == 0, "-np %d %s", np, o);
            }
            snprintf(a, sizeof a, "%s/r%d%d0/ckpt-00000004.safetensors", dir, np, e);
            snprintf(b, sizeof b, "%s/r%d%d1/ckpt-00000004.safetensors", dir, np, e);
            const double d = ckpt_diff(a, b, &same);
            printf("    -np %d %s: --overlap on vs off: max |diff| %.3g (%s)\n", np, extra[e], d,
                   same ? "bit-identical" : "not bit-identical");
            fails += NL_CHECK(d == 0 && same, "-np %d %s: --overlap on is bit-identical to off", np, extra[e]);
        }
    return fails + nl_test_rmdir(dir);
}

/* a rank that stops (SIGSTOP) without dying: the others give up after --dp-timeout, naming it, the
 * job exits non-zero, the last checkpoint loads and resumes */
int test_dp_watchdog(void) {
    int fails = 0, same;
    char dir[] = "/tmp/nl_dp_watchdog_XXXXXX", data[600], cmd[2048], log[700], a[700];
    NL_ASSERT(mkdtemp(dir));
    snprintf(data, sizeof data, "%s/t.txt", dir);
    nl_make_text(data, 6000);
    int rc = train("", dir, "--steps 1 --dp-timeout -1", data);
    fails += NL_CHECK(rc == 2 && strstr(out, "--dp-timeout -1: must be in 0..1e6 seconds") && nl_count(out, "\n") == 1,
                      "--dp-timeout -1: exit 2, one line: %s", out);
    if (!mpi_build()) return fails;
    snprintf(log, sizeof log, "%s/stop.log", dir);
    const double timeout = 4;
    snprintf(cmd, sizeof cmd,
             "NORMLAB_FAULT=stop-rank:1:11 " MPIRUN
             " -np 3 %s train --data %s %s --out %s/s --batch 2 --steps 40 --ckpt-every 4 "
             "--zero 1 --dp-timeout %g > %s 2>&1",
             nl_test_bin(), data, model, dir, timeout, log);
    double took;
    rc = run_signal(cmd, log, "", 0, 90, &took);
    nl_run_fmt(out, sizeof out, "cat %s", log);
    /* the steps before the stop take a few seconds: the whole job ends within the timeout after them */
    fails += NL_CHECK(rc > 0 && took < 20 && strstr(out, "for rank(s) 1, which did not arrive") &&
                              strstr(out, "(--dp-timeout 4)") && !strstr(out, "for rank(s) 0") &&
                              !strstr(out, "for rank(s) 2"),
                      "a stopped rank ends the job within the timeout, naming it (and only it): exit %d after %.1fs: %s",
                      rc, took, out);
    nl_run_fmt(out, sizeof out, "pgrep -f -- '[-]-out %s/s' | wc -l", dir);
    fails += NL_CHECK(atoi(out) == 0, "no rank is left behind (stopped or running): %s", out);
    snprintf(a, sizeof a, "%s/s/ckpt-00000008.safetensors", dir);
    fails += NL_CHECK(ckpt_diff(a, a, &same) == 0, "the last checkpoint before the stop loads");
    nl_run_fmt(out, sizeof out, "ls %s/s", dir);
    fails += NL_CHECK(!strstr(out, "ckpt-00000012") && !strstr(out, ".tmp."), "no later or partial checkpoint: %s", out);
    rc = nl_run_fmt(out, sizeof out, MPIRUN " -np 2 %s train --resume %s/s --steps 12 2>&1", nl_test_bin(), dir);
    fails += NL_CHECK(rc == 0 && strstr(out, "resuming from step 8 of 12") && strstr(out, "done: 12 steps"),
                      "resumed after the stop: %s", out);
    return fails + nl_test_rmdir(dir);
}
