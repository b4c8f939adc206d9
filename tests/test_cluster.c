/* test_cluster.c -- the communicator (src/comm.h) and sweeps beyond one process: mpirun-shared grids
 * (a `make USE_MPI=1` build: `make test-mpi`) and Slurm job arrays on a one-node cluster started by
 * scripts/slurm_local.sh (needs root, slurm-wlm and munge). A test for the other build (MPI) says so
 * and passes; one that the machine cannot run (no root, no Slurm) is skipped with a line saying why,
 * unless NORMLAB_REQUIRE_CLUSTER=1 (CI), which makes that a failure. */
#include "backend.h"
#include "check.h"
#include "comm.h"
#include "sweep.h"
#include "tests.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char out[1 << 16];

static int other_build(const char *why) {
    printf("    not in this build: %s\n", why);
    return 0;
}

static int skip(const char *why) {
    const char *req = getenv("NORMLAB_REQUIRE_CLUSTER");
    if (req && !strcmp(req, "1")) {
        printf("    check failed: %s (NORMLAB_REQUIRE_CLUSTER=1)\n", why);
        return 1;
    }
    printf("    skipped: %s\n", why);
    return 0;
}

static double mtime(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (double)sb.st_mtim.tv_sec + 1e-9 * sb.st_mtim.tv_nsec : -1.0;
}

/* ------------------------------------------------------------- the communicator */

/* What every rank checks; under mpirun each rank runs it (NL_COMM_CHILD=1). */
static int comm_checks(void) {
    int fails = 0;
    NL_ASSERT(nl_comm_init(NULL, NULL) == NL_OK);
    const int r = nl_comm_rank(), p = nl_comm_size();
    fails += NL_CHECK(p >= 1 && r >= 0 && r < p && nl_comm_local_size() >= 1 && nl_comm_local_size() <= p,
                      "rank %d of %d", r, p);
    /* allreduce: element i of rank q is q + 1 + i/4 (exact in float), the sum is p(p+1)/2 + p i/4; a
     * length past one message chunk boundary is not needed here, odd lengths are */
    enum { N = 1001 };
    static float x[N];
    for (int i = 0; i < N; i++) x[i] = (float)(r + 1) + 0.25f * (float)i;
    fails += NL_CHECK(nl_comm_allreduce_sum(x, N) == NL_OK, "allreduce: %s", nl_last_error());
    int bad = 0;
    for (int i = 0; i < N; i++) bad += x[i] != (float)(p * (p + 1) / 2) + 0.25f * (float)(p * i);
    fails += NL_CHECK(bad == 0, "rank %d: allreduce sum wrong in %d of %d elements (x[1] = %g)", r, bad, N, x[1]);
    /* the shards tile [0, N) in rank order, sizes differing by at most one */
    size_t lo, hi, next = 0, smin = N, smax = 0;
    for (int q = 0; q < p; q++) {
        nl_comm_shard(N, q, &lo, &hi);
        bad += lo != next;
        next = hi;
        smin = hi - lo < smin ? hi - lo : smin;
        smax = hi - lo > smax ? hi - lo : smax;
    }
    fails += NL_CHECK(bad == 0 && next == N && smax - smin <= 1,
                      "shards of %d over %d ranks: contiguous, sizes %zu..%zu", N, p, smin, smax);
    /* reduce-scatter: this rank's shard holds the sum; all-gather: every element its owner's value */
    for (int i = 0; i < N; i++) x[i] = (float)(r + 1) + 0.25f * (float)i;
    fails += NL_CHECK(nl_comm_reduce_scatter_sum(x, N) == NL_OK, "reduce-scatter: %s", nl_last_error());
    nl_comm_shard(N, r, &lo, &hi);
    for (size_t i = lo; i < hi; i++) bad += x[i] != (float)(p * (p + 1) / 2) + 0.25f * (float)(p * (int)i);
    fails += NL_CHECK(bad == 0, "rank %d: reduce-scatter wrong in %d elements of its shard [%zu, %zu)", r, bad, lo, hi);
    for (int i = 0; i < N; i++) x[i] = (size_t)i >= lo && (size_t)i < hi ? (float)(1000 * r + i) : -1.0f;
    fails += NL_CHECK(nl_comm_allgather(x, N) == NL_OK, "all-gather: %s", nl_last_error());
    for (int q = 0; q < p; q++) {
        size_t a, b;
        nl_comm_shard(N, q, &a, &b);
        for (size_t i = a; i < b; i++) bad += x[i] != (float)(1000 * q + (int)i);
    }
    fails += NL_CHECK(bad == 0, "rank %d: all-gather wrong in %d of %d elements", r, bad, N);
    /* posted (the communication thread): [100, 700) summed, [700, N) summed into each shard's owner;
     * [0, 100) untouched */
    for (int i = 0; i < N; i++) x[i] = (float)(r + 1) + 0.25f * (float)i;
    fails += NL_CHECK(nl_comm_post(NL_COMM_SUM, x, N, 100, 700) == NL_OK &&
                              nl_comm_post(NL_COMM_SUM_SHARD, x, N, 700, N) == NL_OK && nl_comm_wait() == NL_OK,
                      "posted collectives: %s", nl_last_error());
    for (int i = 0; i < N; i++) {
        const int summed = (i >= 100 && i < 700) || (i >= 700 && (size_t)i >= lo && (size_t)i < hi);
        if (i < 100 || summed)
            bad += x[i] !=
                   (summed ? (float)(p * (p + 1) / 2) + 0.25f * (float)(p * i) : (float)(r + 1) + 0.25f * (float)i);
    }
    fails += NL_CHECK(bad == 0, "rank %d: posted all-reduce / reduce-scatter wrong in %d elements", r, bad);
    fails += NL_CHECK(nl_comm_post(NL_COMM_SUM, x, N, 700, 100) == NL_ERR_ARG, "a post of a bad range is refused");
    double d[2] = { 0.1 * (r + 1), 1e-17 };
    fails += NL_CHECK(nl_comm_allreduce_sum_f64(d, 2) == NL_OK, "double all-reduce: %s", nl_last_error());
    fails += NL_CHECK(fabs(d[0] - 0.05 * p * (p + 1)) < 1e-15 && fabs(d[1] - p * 1e-17) < 1e-30,
                      "rank %d: double all-reduce %.17g %.3g", r, d[0], d[1]);
    /* broadcast from the last rank */
    char msg[64];
    snprintf(msg, sizeof msg, "from rank %d", r);
    fails += NL_CHECK(nl_comm_broadcast(msg, sizeof msg, p - 1) == NL_OK, "broadcast: %s", nl_last_error());
    char want[64];
    snprintf(want, sizeof want, "from rank %d", p - 1);
    fails += NL_CHECK(!strcmp(msg, want), "rank %d: broadcast gave '%s', want '%s'", r, msg, want);
    fails += NL_CHECK(nl_comm_broadcast(msg, 1, p) == NL_ERR_ARG, "broadcast from a rank that does not exist is refused");
    fails += NL_CHECK(nl_comm_barrier() == NL_OK, "barrier: %s", nl_last_error());
    nl_comm_finalize();
    if (!fails) printf("comm rank %d of %d ok\n", r, p);
    return fails;
}

int test_comm(void) {
    if (getenv("NL_COMM_CHILD")) return comm_checks();
    int fails = 0;
    if (!strcmp(nl_comm_backend(), "single")) {
        fails += comm_checks();
        fails += NL_CHECK(nl_comm_size() == 1 && nl_comm_rank() == 0, "single process: rank 0 of 1");
        return fails + other_build("2 and 3 ranks need the MPI build (make test-mpi)");
    }
    char self[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    NL_ASSERT(n > 0);
    self[n] = 0;
    for (int np = 2; np <= 3; np++) {
        const int rc = nl_run_fmt(out, sizeof out,
                                  "NL_COMM_CHILD=1 mpirun --allow-run-as-root --oversubscribe -np %d %s comm 2>&1", np,
                                  self);
        int ok = 0;
        for (int r = 0; r < np; r++) {
            char line[64];
            snprintf(line, sizeof line, "comm rank %d of %d ok", r, np);
            ok += strstr(out, line) != NULL;
        }
        fails += NL_CHECK(rc == 0 && ok == np, "mpirun -np %d: exit %d, %d ranks ok: %s", np, rc, ok, out);
    }
    return fails;
}

/* The float collectives on the CUDA backend's memory (NCCL, make USE_CUDA=1 USE_MPI=1), on every rank
 * under mpirun (NL_COMM_CHILD=1): the same sums as comm_checks, read back to the host. */
static int comm_device_checks(void) {
    int fails = 0;
    const nl_backend *be;
    NL_ASSERT(nl_comm_init(NULL, NULL) == NL_OK);
    if (nl_backend_cuda(&be) != NL_OK) return printf("    %s\n", nl_last_error()), 1;
    fails += NL_CHECK(nl_comm_use_device(1) == NL_OK, "NCCL: %s", nl_last_error());
    const int r = nl_comm_rank(), p = nl_comm_size();
    enum { N = 100003 };
    static float h[N];
    float *x = be->alloc(N * sizeof(float));
    size_t lo, hi;
    nl_comm_shard(N, r, &lo, &hi);
    for (int i = 0; i < N; i++) h[i] = (float)(r + 1) + 0.25f * (float)(i % 1000);
    be->from_host(x, h, sizeof h);
    fails += NL_CHECK(nl_comm_allreduce_sum(x, N) == NL_OK, "all-reduce: %s", nl_last_error());
    be->to_host(h, x, sizeof h);
    int bad = 0;
    for (int i = 0; i < N; i++) bad += h[i] != (float)(p * (p + 1) / 2) + 0.25f * (float)(p * (i % 1000));
    fails += NL_CHECK(bad == 0, "rank %d: device all-reduce wrong in %d of %d elements", r, bad, N);
    /* posted: [100, 70000) summed, [70000, N) into the shards' owners, while a kernel-free wait */
    for (int i = 0; i < N; i++) h[i] = (float)(r + 1) + 0.25f * (float)(i % 1000);
    be->from_host(x, h, sizeof h);
    fails += NL_CHECK(nl_comm_post(NL_COMM_SUM, x, N, 100, 70000) == NL_OK &&
                              nl_comm_post(NL_COMM_SUM_SHARD, x, N, 70000, N) == NL_OK && nl_comm_wait() == NL_OK,
                      "posted: %s", nl_last_error());
    be->to_host(h, x, sizeof h);
    for (int i = 0; i < N; i++) {
        const int summed = (i >= 100 && i < 70000) || (i >= 70000 && (size_t)i >= lo && (size_t)i < hi);
        if (i < 100 || summed)
            bad += h[i] != (summed ? (float)(p * (p + 1) / 2) + 0.25f * (float)(p * (i % 1000))
                                   : (float)(r + 1) + 0.25f * (float)(i % 1000));
    }
    fails += NL_CHECK(bad == 0, "rank %d: device posted all-reduce / reduce-scatter wrong in %d elements", r, bad);
    /* all-gather: every element its owner's value */
    for (int i = 0; i < N; i++) h[i] = (size_t)i >= lo && (size_t)i < hi ? (float)(1000 * r + i % 1000) : -1.0f;
    be->from_host(x, h, sizeof h);
    fails += NL_CHECK(nl_comm_reduce_scatter_sum(x, N) == NL_OK && nl_comm_allgather(x, N) == NL_OK,
                      "reduce-scatter, all-gather: %s", nl_last_error());
    be->to_host(h, x, sizeof h);
    for (int q = 0; q < p; q++) {
        size_t a, b;
        nl_comm_shard(N, q, &a, &b);
        /* the owner's shard after a reduce-scatter holds the sum: its own value plus -1 from each other rank */
        for (size_t i = a; i < b; i++) bad += h[i] != (float)(1000 * q + (int)(i % 1000)) - (float)(p - 1);
    }
    fails += NL_CHECK(bad == 0, "rank %d: device reduce-scatter + all-gather wrong in %d of %d elements", r, bad, N);
    be->free(x);
    nl_comm_finalize();
    if (!fails) printf("comm_device rank %d of %d ok (NCCL)\n", r, p);
    return fails;
}

/* the device collectives under mpirun -np NL_COMM_DEVICE_RANKS (default 1: one GPU) where there is a
 * GPU and a make USE_CUDA=1 USE_MPI=1 build; bench/device_check.sh runs it */
int test_comm_device(void) {
    if (getenv("NL_COMM_CHILD")) return comm_device_checks();
    if (strcmp(nl_comm_backend(), "mpi")) return other_build("NCCL needs the build make USE_CUDA=1 USE_MPI=1");
    const nl_backend *be;
    if (nl_backend_cuda(&be) != NL_OK) {
        printf("    skipped: no GPU here (%s)\n", nl_last_error());
        return 0;
    }
    char self[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    NL_ASSERT(n > 0);
    self[n] = 0;
    const char *np = getenv("NL_COMM_DEVICE_RANKS");
    const int rc = nl_run_fmt(out, sizeof out,
                              "NL_COMM_CHILD=1 mpirun --allow-run-as-root --oversubscribe -np %s %s comm_device 2>&1",
                              np ? np : "1", self);
    printf("%s", out);
    return NL_CHECK(rc == 0 && strstr(out, "comm_device rank 0 of"), "mpirun -np %s comm_device: exit %d",
                    np ? np : "1", rc);
}

/* ------------------------------------------------------------- mpirun sweep */

static const char *tiny = "--layers 2 --dim 32 --heads 2 --seq-len 32 --batch 4 --steps 12 --warmup 0 --eval-every 0 --threads 1";

int test_sweep_mpi(void) {
    if (strcmp(nl_comm_backend(), "mpi")) return other_build("mpirun sweeps need the MPI build (make test-mpi)");
    int fails = 0;
    char dir[] = "/tmp/nl_sweep_mpi_XXXXXX", path[512];
    NL_ASSERT(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.txt", dir);
    nl_make_text(path, 4000);
    /* 2 ranks on 3 runs, 3 ranks on 4 runs: uneven shares both ways */
    static const char *const placements[2] = { "pre,post,peri", "pre,post" }, *const lrs[2] = { "1e-3", "1e-3,2e-3" };
    for (int np = 2; np <= 3; np++) {
        const int n = np == 2 ? 3 : 4;
        char sweep[2048];
        snprintf(sweep, sizeof sweep,
                 "mpirun --allow-run-as-root --oversubscribe -np %d %s sweep --norm %s --lr %s --out %s/np%d --data %s %s 2>&1",
                 np, nl_test_bin(), placements[np - 2], lrs[np - 2], dir, np, path, tiny);
        int rc = nl_run_cmd(sweep, out, sizeof out);
        char want[64];
        snprintf(want, sizeof want, "on each of %d ranks", np);
        fails += NL_CHECK(rc == 0 && strstr(out, want) && strstr(out, "0 finished earlier"),
                          "mpirun -np %d sweep: exit %d: %s", np, rc, out);
        /* every run trained once, by some rank; only rank 0 prints the header and writes the summary */
        fails += NL_CHECK(nl_count(out, ": done, val loss") == n, "np %d: %d runs done, want %d: %s", np,
                          nl_count(out, ": done, val loss"), n, out);
        fails += NL_CHECK(nl_count(out, "normlab sweep:") == 1 && nl_count(out, "wrote ") == 1,
                          "np %d: one header, one summary: %s", np, out);
        for (int r = 0; r < np; r++) {
            char tag[32];
            snprintf(tag, sizeof tag, "rank %d: [1/", r);
            fails += NL_CHECK(strstr(out, tag) != NULL, "np %d: rank %d trained a run: %s", np, r, out);
        }
        const char *nn[3] = { "pre", "post", "peri" };
        for (int k = 0; k < n; k++) {
            char run[64], rd[600];
            snprintf(run, sizeof run, " %s lr %s seed 1337:", nn[np == 2 ? k : k / 2],
                     np == 2 ? "0.001"
                     : k % 2 ? "0.002"
                             : "0.001");
            fails += NL_CHECK(nl_count(out, run) == 1, "np %d: '%s' trained once: %s", np, run, out);
            snprintf(rd, sizeof rd, "%s/np%d/%s_lr%s_s1337", dir, np, nn[np == 2 ? k : k / 2],
                     np == 2 ? "0.001"
                     : k % 2 ? "0.002"
                             : "0.001");
            nl_sweep_result r;
            fails += NL_CHECK(nl_sweep_read_result(rd, &r) == NL_OK && !strcmp(r.status, "done"), "%s recorded as done",
                              rd);
        }
        nl_run_fmt(out, sizeof out, "grep -c . %s/np%d/summary.csv", dir, np);
        fails += NL_CHECK(atoi(out) == 1 + (np == 2 ? 3 : 2 * 2), "np %d summary.csv rows: %s", np, out);
        /* again: nothing left to run */
        rc = nl_run_cmd(sweep, out, sizeof out);
        snprintf(want, sizeof want, "%d finished earlier", n);
        fails += NL_CHECK(rc == 0 && strstr(out, want) && !strstr(out, "rank 0: [") && nl_count(out, "wrote ") == 1,
                          "np %d rerun: %s", np, out);
    }
    return fails + nl_test_rmdir(dir);
}

/* ------------------------------------------------------------- Slurm */

static int have(const char *tool) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
    return system(cmd) == 0;
}

/* Calls the sweep until its output has `want` or `secs` pass; returns 1 if it appeared. */
static int poll_sweep(const char *sweep, const char *want, double secs, int *submits) {
    for (double t = 0; t < secs; t += 0.5) {
        int rc = nl_run_cmd(sweep, out, sizeof out);
        if (rc != 0) return 0;
        if (strstr(out, "submitted as Slurm job array")) ++*submits;
        if (strstr(out, want)) return 1;
        usleep(500000);
    }
    return 0;
}

int test_sweep_slurm(void) {
    if (geteuid() != 0) return skip("the one-node Slurm cluster needs root");
    if (!have("slurmctld") || !have("slurmd") || !have("munged") || !have("sbatch"))
        return skip("slurm-wlm or munge is not installed (scripts/deps.sh slurm-wlm munge)");
    int fails = 0;
    char dir[] = "/tmp/nl_sweep_slurm_XXXXXX", path[512], sweep[2048], conf[600];
    NL_ASSERT(mkdtemp(dir));
    int rc = nl_run_fmt(out, sizeof out, "bash scripts/slurm_local.sh start %s/cluster 2>&1", dir);
    fails += NL_CHECK(rc == 0 && strstr(out, "export SLURM_CONF="), "slurm_local.sh start: exit %d: %s", rc, out);
    if (fails) {
        nl_run_fmt(out, sizeof out, "bash scripts/slurm_local.sh stop %s/cluster; rm -rf %s", dir, dir);
        return fails;
    }
    snprintf(conf, sizeof conf, "%s/cluster/slurm.conf", dir);
    setenv("SLURM_CONF", conf, 1);
    snprintf(path, sizeof path, "%s/t.txt", dir);
    nl_make_text(path, 4000);
    /* 4 runs, one at a time (--jobs 1: the array's %1), so that run 3 is still pending when cancelled */
    snprintf(sweep, sizeof sweep,
             "%s sweep --launcher slurm --partition debug --time 5 --cpus-per-task 1 --jobs 1 --norm pre,post --lr 1e-3 --seeds 2 "
             "--out %s/sw --data %s %s 2>&1",
             nl_test_bin(), dir, path, tiny);
    const double t0 = nl_now();
    rc = nl_run_cmd(sweep, out, sizeof out);
    const double t_submit = nl_now() - t0;
    fails += NL_CHECK(rc == 0 && strstr(out, "0 finished, 0 queued or running, 4 submitted as Slurm job array"),
                      "submit: exit %d: %s", rc, out);
    fails += NL_CHECK(t_submit < 5, "submitting returns at once (%.1fs)", t_submit);
    const char *id = strstr(out, "job array ");
    const long job = id ? atol(id + 10) : 0;
    fails += NL_CHECK(job > 0, "a job id: %s", out);
    rc = nl_run_fmt(out, sizeof out, "scancel %ld_3 2>&1", job);
    fails += NL_CHECK(rc == 0, "scancel %ld_3: %s", job, out);
    /* collect until the summary is written: the cancelled run must have been submitted again */
    int submits = 0;
    fails += NL_CHECK(poll_sweep(sweep, "wrote ", 120, &submits), "the array finished within 120 s: %s", out);
    fails += NL_CHECK(strstr(out, "4 finished, 0 queued or running") && strstr(out, "(n=2)"), "collected: %s", out);
    fails += NL_CHECK(submits == 1, "the cancelled run was submitted again, once (%d submissions)", submits);
    nl_sweep_result r;
    snprintf(path, sizeof path, "%s/sw/post_lr0.001_s1338", dir);
    fails += NL_CHECK(nl_sweep_read_result(path, &r) == NL_OK && !strcmp(r.status, "done"),
                      "the cancelled run finished in the second array");
    nl_run_fmt(out, sizeof out, "grep -c . %s/sw/slurm/jobs", dir);
    fails += NL_CHECK(atoi(out) == 2, "two arrays recorded: %s", out);
    /* a run whose task failed is submitted again; the finished ones are kept untouched */
    snprintf(path, sizeof path, "%s/sw/pre_lr0.001_s1337/metrics.jsonl", dir);
    const double t_kept = mtime(path);
    nl_run_fmt(out, sizeof out, "sed -i 's/\"done\"/\"failed\"/' %s/sw/post_lr0.001_s1337/result.json", dir);
    submits = 0;
    fails += NL_CHECK(poll_sweep(sweep, "wrote ", 120, &submits) && submits == 1,
                      "the failed run ran again (%d submissions): %s", submits, out);
    snprintf(path, sizeof path, "%s/sw/post_lr0.001_s1337", dir);
    fails += NL_CHECK(nl_sweep_read_result(path, &r) == NL_OK && !strcmp(r.status, "done"), "the failed run is done now");
    snprintf(path, sizeof path, "%s/sw/pre_lr0.001_s1337/metrics.jsonl", dir);
    fails += NL_CHECK(mtime(path) == t_kept, "a finished run was not run again");
    nl_run_fmt(out, sizeof out, "grep -c '' %s/sw/slurm/*_*.out", dir);
    fails += NL_CHECK(strstr(out, "_3.out") != NULL, "task outputs in sw/slurm: %s", out);
    rc = nl_run_fmt(out, sizeof out, "bash scripts/slurm_local.sh stop %s/cluster 2>&1", dir);
    fails += NL_CHECK(rc == 0, "slurm_local.sh stop: %s", out);
    unsetenv("SLURM_CONF");
    return fails + nl_test_rmdir(dir);
}
