/* sweep.c -- see sweep.h. */
#include "sweep.h"

#include "comm.h"
#include "common.h"
#include "config.h"
#include "images.h"
#include "json.h"
#include "placement.h"
#include "safetensors.h"
#include "sweep_slurm.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { MAX_LIST = 64, MAX_PASS = 256 };

typedef struct job {
    int placement;
    double lr;
    uint64_t seed;
    char dir[NL_PATH_MAX + 128];
    pid_t pid;
    double t0;
} job;

void nl_sweep_usage(void) {
    printf("usage: normlab sweep --norm A,B,... --lr X,Y,... [--seeds K] [--jobs N] [--out DIR] [--launcher local|slurm]\n"
           "                     [train options]\n\n"
           "Train every placement x learning rate x seed (seeds --seed, --seed+1, ...), one run directory each\n"
           "(DIR/<norm>_lr<lr>_s<seed>). Finished runs (their result.json) are skipped, so an interrupted sweep\n"
           "resumes where it stopped. A run is diverged when its loss or gradient is non-finite, or when after\n"
           "warmup the mean loss of the last --diverge-window steps (default 50 here) exceeds its first loss; it\n"
           "is stopped and recorded with the step. Prints the placement x LR table (final val loss: mean +- sd\n"
           "over the finished seeds and their count n; diverged count) and writes DIR/summary.csv and DIR/runs.csv.\n"
           "Other options go to every 'normlab train' (see 'normlab train --help'); --diag-every defaults to 100\n"
           "here. Exit status 1 if a run failed (neither finished nor diverged).\n\n"
           "--launcher local: --jobs train processes here at once; under 'mpirun -np R' (a 'make USE_MPI=1'\n"
           "build) the R ranks share the grid, each run trained by exactly one rank, and rank 0 writes the summary.\n"
           "--launcher slurm: submits the unfinished runs as one Slurm job array (sbatch --array) and returns at\n"
           "once; run the same command again to collect: finished runs are kept, runs whose task failed or was\n"
           "cancelled are submitted again, and the summary is written when every run has finished (docs/cluster.md).\n\n");
    nl_args_help(stdout, NL_CMD_SWEEP);
}

/* ---------------------------------------------------------------- results */

static void put_num(FILE *f, const char *key, double v) {
    fprintf(f, ", \"%s\": ", key);
    if (isfinite(v)) fprintf(f, "%.9g", v);
    else fputs("null", f);
}

static nl_status write_result(const job *j, const nl_sweep_result *r) {
    char path[NL_PATH_MAX + 160], tmp[NL_PATH_MAX + 220];
    snprintf(path, sizeof path, "%s/result.json", j->dir);
    FILE *f;
    NL_TRY(nl_write_atomic_begin(path, tmp, sizeof tmp, &f));
    fprintf(f, "{\"norm\": \"%s\", \"lr\": %.9g, \"seed\": %llu, \"status\": \"%s\", \"reason\": \"%s\", \"step\": %d",
            r->placement, r->lr, (unsigned long long)r->seed, r->status, r->reason, r->step);
    put_num(f, "val_loss", r->val_loss);
    put_num(f, "loss", r->loss);
    fprintf(f, ", \"spikes\": %d}\n", r->spikes);
    return nl_write_atomic_commit(path, tmp, f);
}

nl_status nl_sweep_read_result(const char *rundir, nl_sweep_result *r) {
    char path[NL_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/result.json", rundir);
    nl_json_doc d;
    NL_TRY(nl_json_load(&d, path, 1 << 16));
    const nl_json *o = d.root;
    const char *placement = nl_json_str(nl_json_get(o, "norm")), *status = nl_json_str(nl_json_get(o, "status")),
               *reason = nl_json_str(nl_json_get(o, "reason"));
    const double lr = nl_json_num(nl_json_get(o, "lr")), seed = nl_json_num(nl_json_get(o, "seed")),
                 step = nl_json_num(nl_json_get(o, "step"));
    if (!placement || !status || !reason || !isfinite(lr) || !(seed >= 0) || !(step >= 0) ||
        strlen(placement) >= sizeof r->placement || strlen(status) >= sizeof r->status ||
        strlen(reason) >= sizeof r->reason) {
        nl_json_free(&d);
        return NL_FAIL(NL_ERR_FORMAT, "%s: missing or invalid norm/lr/seed/status/step", path);
    }
    memset(r, 0, sizeof *r);
    snprintf(r->placement, sizeof r->placement, "%s", placement);
    snprintf(r->status, sizeof r->status, "%s", status);
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    r->lr = lr;
    r->seed = (uint64_t)seed;
    r->step = (int)step;
    r->val_loss = nl_json_num(nl_json_get(o, "val_loss"));
    r->loss = nl_json_num(nl_json_get(o, "loss"));
    const double sp = nl_json_num(nl_json_get(o, "spikes"));
    r->spikes = sp >= 0 ? (int)sp : 0;
    nl_json_free(&d);
    return NL_OK;
}

static int finished(const nl_sweep_result *r) { return !strcmp(r->status, "done") || !strcmp(r->status, "diverged"); }

/* Reads the run's metrics.jsonl after its process ended: last val_loss, loss and spike count, and a
 * "diverged" record if any. */
static void collect(const job *j, int exit_ok, nl_sweep_result *r) {
    memset(r, 0, sizeof *r);
    snprintf(r->placement, sizeof r->placement, "%s", nl_placements[j->placement].name);
    r->lr = j->lr;
    r->seed = j->seed;
    r->val_loss = r->loss = NAN;
    char path[NL_PATH_MAX + 160], line[1 << 16];
    snprintf(path, sizeof path, "%s/metrics.jsonl", j->dir);
    FILE *f = fopen(path, "r");
    int diverged = 0;
    while (f && fgets(line, sizeof line, f)) {
        nl_json_doc d;
        if (nl_json_parse(&d, line, strlen(line), path) != NL_OK) continue; /* a line cut by a kill */
        const nl_json *o = d.root;
        const double step = nl_json_num(nl_json_get(o, "step"));
        if (step >= 1) {
            r->step = (int)step;
            const char *why = nl_json_str(nl_json_get(o, "diverged"));
            if (why) {
                diverged = 1;
                snprintf(r->reason, sizeof r->reason, "%s", why);
            } else {
                r->loss = nl_json_num(nl_json_get(o, "loss"));
                const nl_json *v = nl_json_get(o, "val_loss"), *sp = nl_json_get(o, "spikes");
                if (v) r->val_loss = nl_json_num(v);
                if (sp) r->spikes = (int)nl_json_num(sp);
            }
        }
        nl_json_free(&d);
    }
    if (f) fclose(f);
    snprintf(r->status, sizeof r->status, "%s", diverged ? "diverged" : exit_ok ? "done" : "failed");
    if (diverged) r->val_loss = NAN; /* a diverged run has no final loss */
}

/* ---------------------------------------------------------------- summary */

void nl_sweep_summary(const nl_sweep_result *res, int n, int csv, FILE *f) {
    if (csv) fprintf(f, "norm,lr,runs,finished,diverged,failed,val_loss_mean,val_loss_sd\n");
    else
        fprintf(f, "%-9s %-9s %4s %4s %8s  %s\n", "norm", "lr", "runs", "done", "diverged",
                "val loss (mean +- sd, n finished)");
    char *seen = nl_xcalloc((size_t)n + 1);
    for (int i = 0; i < n; i++) {
        if (seen[i]) continue;
        int runs = 0, done = 0, div = 0, failed = 0;
        double s1 = 0.0, s2 = 0.0;
        for (int k = i; k < n; k++) {
            if (seen[k] || strcmp(res[k].placement, res[i].placement) || res[k].lr != res[i].lr) continue;
            seen[k] = 1;
            runs++;
            if (!strcmp(res[k].status, "diverged")) div++;
            else if (!strcmp(res[k].status, "done") && isfinite(res[k].val_loss)) {
                done++;
                s1 += res[k].val_loss;
                s2 += res[k].val_loss * res[k].val_loss;
            } else failed++;
        }
        /* a sample sd needs two finished seeds: with one there is none (not 0) */
        const double mean = done ? s1 / done : NAN;
        const double sd = done > 1 ? sqrt(fmax(0.0, (s2 - done * mean * mean) / (done - 1))) : NAN;
        if (csv) {
            fprintf(f, "%s,%g,%d,%d,%d,%d,", res[i].placement, res[i].lr, runs, done, div, failed);
            if (done) fprintf(f, "%.6f,", mean);
            else fprintf(f, ",");
            if (done > 1) fprintf(f, "%.6f\n", sd);
            else fprintf(f, "\n");
        } else {
            char v[64] = "-";
            if (done > 1) snprintf(v, sizeof v, "%.4f +- %.4f (n=%d)", mean, sd, done);
            else if (done) snprintf(v, sizeof v, "%.4f (n=1)", mean);
            fprintf(f, "%-9s %-9g %4d %4d %8d  %s%s\n", res[i].placement, res[i].lr, runs, done, div, v,
                    failed ? "  (failed runs: see train.log)" : "");
        }
    }
    free(seen);
}

/* ---------------------------------------------------------------- running */

extern char **environ;

/* The environment for a run's `normlab train`: without the MPI launcher's variables (OMPI_*, PMIX_*,
 * PMI_*), so that a train that initialises MPI itself is a process of its own, not a second copy of
 * this rank. Built before fork (the child only execs). */
static char **child_env(void) {
    size_t n = 0;
    while (environ[n]) n++;
    char **env = nl_xcalloc((n + 1) * sizeof *env);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "OMPI_", 5) && strncmp(environ[i], "PMIX_", 5) && strncmp(environ[i], "PMI_", 4))
            env[k++] = environ[i];
    return env;
}

static nl_status start(job *j, const char *exe, char **pass, int npass, int threads) {
    NL_TRY(nl_mkdir_p(j->dir));
    char log[NL_PATH_MAX + 160];
    snprintf(log, sizeof log, "%s/train.log", j->dir);
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return NL_FAIL(NL_ERR_IO, "cannot write '%s': %s", log, strerror(errno));
    char lr[64], seed[32], th[16];
    snprintf(lr, sizeof lr, "%.9g", j->lr);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)j->seed);
    snprintf(th, sizeof th, "%d", threads);
    char *argv[MAX_PASS + 16];
    int k = 0;
    argv[k++] = (char *)exe;
    argv[k++] = "train";
    argv[k++] = "--norm", argv[k++] = (char *)nl_placements[j->placement].name;
    argv[k++] = "--lr", argv[k++] = lr;
    argv[k++] = "--seed", argv[k++] = seed;
    argv[k++] = "--out", argv[k++] = j->dir, argv[k++] = "--overwrite"; /* an unfinished run starts afresh */
    if (threads > 0) argv[k++] = "--threads", argv[k++] = th;
    for (int i = 0; i < npass; i++) argv[k++] = pass[i];
    argv[k] = NULL;
    char **env = child_env();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        free(env);
        return NL_FAIL(NL_ERR_IO, "fork failed: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
        execve(exe, argv, env);
        fprintf(stderr, "cannot run '%s': %s\n", exe, strerror(errno));
        _exit(127);
    }
    close(fd);
    free(env);
    j->pid = pid;
    j->t0 = nl_now();
    return NL_OK;
}

static nl_status parse_list(const char *opt, const char *v, int isnorm, double *out, int *n) {
    char buf[4096];
    if (strlen(v) >= sizeof buf) return NL_FAIL(NL_ERR_ARG, "--%s: list too long", opt);
    snprintf(buf, sizeof buf, "%s", v);
    *n = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (*n == MAX_LIST) return NL_FAIL(NL_ERR_ARG, "--%s: more than %d values", opt, MAX_LIST);
        if (isnorm) {
            int x = nl_placement_from_name(t);
            if (x < 0) return NL_FAIL(NL_ERR_ARG, "--norm: unknown placement '%s' (see 'normlab train --help')", t);
            out[(*n)++] = x;
        } else {
            char *end;
            errno = 0;
            double x = strtod(t, &end);
            if (end == t || *end || errno || !isfinite(x) || x < 0)
                return NL_FAIL(NL_ERR_ARG, "--lr: '%s' is not a learning rate >= 0", t);
            out[(*n)++] = x;
        }
    }
    if (*n == 0) return NL_FAIL(NL_ERR_ARG, "--%s: empty list", opt);
    return NL_OK;
}

/* The parsed command line: sweep's own options (the table's NL_CMD_SWEEP rows) and the train options
 * passed to every run (checked here once as train's). */
typedef struct sweep_cli {
    nl_args a; /* sweep's options; a.cfg.seed is the first seed */
    double placements[MAX_LIST], lrs[MAX_LIST];
    int nplacement, nlr, npass, has_threads;
    char *pass[MAX_PASS];
} sweep_cli;

static nl_status parse_cli(sweep_cli *c, int argc, char **argv) {
    char *own[MAX_PASS];
    int nown = 0, has_diag = 0, has_div = 0;
    c->npass = c->has_threads = 0;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (strncmp(s, "--", 2)) return NL_FAIL(NL_ERR_ARG, "unexpected argument '%s' (options start with --)", s);
        char key[64];
        const char *eq = strchr(s + 2, '=');
        size_t kl = eq ? (size_t)(eq - s - 2) : strlen(s + 2);
        if (kl >= sizeof key) return NL_FAIL(NL_ERR_ARG, "unknown option '%s'", s);
        memcpy(key, s + 2, kl);
        key[kl] = 0;
        const int mine = nl_option_takes_value(NL_CMD_SWEEP, key) >= 0;
        const int tv = nl_option_takes_value(mine ? NL_CMD_SWEEP : NL_CMD_TRAIN, key);
        if (tv < 0 || strchr(key, '_'))
            return NL_FAIL(NL_ERR_ARG, "unknown option '--%s' (see 'normlab sweep --help')", key);
        const int two = tv && !eq; /* the value is the next word */
        if (two && i + 1 >= argc) return NL_FAIL(NL_ERR_ARG, "--%s needs a value", key);
        char **dst = mine ? own : c->pass;
        int *nd = mine ? &nown : &c->npass;
        if (*nd + 4 > MAX_PASS) return NL_FAIL(NL_ERR_ARG, "too many options");
        dst[(*nd)++] = (char *)s;
        if (two) dst[(*nd)++] = argv[++i];
        if (!mine) {
            c->has_threads |= !strcmp(key, "threads");
            has_diag |= !strcmp(key, "diag-every");
            has_div |= !strcmp(key, "diverge-window");
        }
    }
    nl_args_defaults(&c->a);
    int help;
    NL_TRY(nl_args_parse(&c->a, NL_CMD_SWEEP, nown, own, &help));
    const nl_args *a = &c->a;
    if (!a->sweep.placements[0])
        return NL_FAIL(NL_ERR_ARG, "--norm is required (a comma-separated list of placements)");
    if (!a->sweep.lrs[0]) return NL_FAIL(NL_ERR_ARG, "--lr is required (a comma-separated list of learning rates)");
    NL_TRY(parse_list("norm", a->sweep.placements, 1, c->placements, &c->nplacement));
    NL_TRY(parse_list("lr", a->sweep.lrs, 0, c->lrs, &c->nlr));
    if (a->sweep.seeds < 1 || a->sweep.seeds > 100000)
        return NL_FAIL(NL_ERR_ARG, "--seeds %d: must be in 1..100000", a->sweep.seeds);
    if (a->sweep.jobs < 1 || a->sweep.jobs > 100000)
        return NL_FAIL(NL_ERR_ARG, "--jobs %d: must be in 1..100000", a->sweep.jobs);
    if (strlen(a->sweep.out) + 64 >= NL_PATH_MAX) return NL_FAIL(NL_ERR_ARG, "--out: path too long");
    const int slurm = !strcmp(a->sweep.launcher, "slurm");
    if (!slurm && strcmp(a->sweep.launcher, "local"))
        return NL_FAIL(NL_ERR_ARG, "--launcher: '%s' is not local|slurm", a->sweep.launcher);
    if (a->sweep.cpus_per_task < 0 || a->sweep.cpus_per_task > 100000)
        return NL_FAIL(NL_ERR_ARG, "--cpus-per-task %d: must be in 0..100000 (0: the cluster's default)",
                       a->sweep.cpus_per_task);
    if (!slurm && a->sweep.run_index < 0 && (a->sweep.partition[0] || a->sweep.time[0] || a->sweep.cpus_per_task))
        return NL_FAIL(NL_ERR_ARG, "--partition, --time and --cpus-per-task need --launcher slurm");
    for (const char *p = a->sweep.partition; *p; p++)
        if (*p <= ' ' || *p == '\'')
            return NL_FAIL(NL_ERR_ARG, "--partition '%s': spaces and quotes are not allowed", a->sweep.partition);
    for (const char *p = a->sweep.time; *p; p++)
        if (!strchr("0123456789:-", *p))
            return NL_FAIL(NL_ERR_ARG, "--time '%s': not a Slurm time (minutes, MM:SS, HH:MM:SS, D-HH[:MM[:SS]])",
                           a->sweep.time);
    if (a->sweep.run_index < -1)
        return NL_FAIL(NL_ERR_ARG, "--run-index %d: must be >= 0 (-1: every run)", a->sweep.run_index);
    /* the sweep's defaults, then validate the train options once here rather than in every run */
    static char diag[] = "--diag-every=100", div[] = "--diverge-window=50";
    if (!has_diag) c->pass[c->npass++] = diag;
    if (!has_div) c->pass[c->npass++] = div;
    static nl_args t;
    nl_args_defaults(&t);
    NL_TRY(nl_args_parse(&t, NL_CMD_TRAIN, c->npass, c->pass, &help));
    t.cfg.vocab = t.cfg.vocab ? t.cfg.vocab : 256;
    if (t.cfg.arch == NL_ARCH_DIT) { /* the image shape and classes come from --data, as in 'normlab train' */
        if (!t.cfg.data[0])
            return NL_FAIL(NL_ERR_ARG,
                           "--arch dit: give --data fashion-mnist or --data DIR (a folder of same-size PNG images)");
        nl_images im;
        NL_TRY(nl_images_open(&im, t.cfg.data, 0));
        t.cfg.img_h = im.h, t.cfg.img_w = im.w, t.cfg.img_ch = im.ch, t.cfg.classes = im.nclass;
        nl_images_free(&im);
    }
    return nl_config_resolve(&t.cfg);
}

/* the grid, placement-major, then LR, then seed: run k's index is the same in every process */
static job *make_grid(const sweep_cli *c, int *n) {
    const int seeds = c->a.sweep.seeds;
    *n = c->nplacement * c->nlr * seeds;
    job *js = nl_xcalloc((size_t)*n * sizeof *js);
    int k = 0;
    for (int a = 0; a < c->nplacement; a++)
        for (int b = 0; b < c->nlr; b++)
            for (int s = 0; s < seeds; s++, k++) {
                job *j = &js[k];
                j->placement = (int)c->placements[a];
                j->lr = c->lrs[b];
                j->seed = c->a.cfg.seed + (uint64_t)s;
                snprintf(j->dir, sizeof j->dir, "%s/%s_lr%g_s%llu", c->a.sweep.out, nl_placements[j->placement].name,
                         j->lr, (unsigned long long)j->seed);
            }
    return js;
}

/* Runs todo[i] != 0 of js[0..n), up to jobs at once, recording each in res[i] and its result.json.
 * Progress lines "<tag>[done/total]" count from done0. Waits for every started run, even after an error. */
static nl_status run_local(job *js, nl_sweep_result *res, const char *todo, int n, int jobs, const char *exe,
                           char **pass, int npass, int threads, const char *tag, int done0, int total) {
    nl_status st = NL_OK;
    int next = 0, running = 0, done = done0;
    for (;;) {
        while (st == NL_OK && running < jobs) {
            while (next < n && !todo[next]) next++;
            if (next == n) break;
            st = start(&js[next], exe, pass, npass, threads);
            if (st == NL_OK) running++;
            next++;
        }
        if (running == 0) break;
        int wst;
        pid_t pid = waitpid(-1, &wst, 0);
        if (pid < 0) {
            if (errno == EINTR) continue;
            if (st == NL_OK) st = NL_FAIL(NL_ERR_IO, "waitpid: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            if (js[i].pid != pid) continue;
            js[i].pid = 0;
            running--;
            done++;
            collect(&js[i], WIFEXITED(wst) && WEXITSTATUS(wst) == 0, &res[i]);
            nl_status ws = write_result(&js[i], &res[i]);
            if (ws != NL_OK && st == NL_OK) st = ws;
            printf("%s[%d/%d] %s lr %g seed %llu: %s", tag, done, total, res[i].placement, res[i].lr,
                   (unsigned long long)res[i].seed, res[i].status);
            if (!strcmp(res[i].status, "diverged")) printf(" (%s) at step %d", res[i].reason, res[i].step);
            else if (!strcmp(res[i].status, "done")) printf(", val loss %.4f", res[i].val_loss);
            else printf(" (exit %d; see %s/train.log)", WIFEXITED(wst) ? WEXITSTATUS(wst) : -1, js[i].dir);
            printf(", %.1fs\n", nl_now() - js[i].t0);
            fflush(stdout);
        }
    }
    return st;
}

/* summary table on stdout, DIR/summary.csv and DIR/runs.csv */
static nl_status write_summary(const char *out, const job *js, const nl_sweep_result *res, int n) {
    printf("\n");
    nl_sweep_summary(res, n, 0, stdout);
    char path[NL_PATH_MAX + 32], tmp[NL_PATH_MAX + 96];
    FILE *f;
    snprintf(path, sizeof path, "%s/summary.csv", out);
    NL_TRY(nl_write_atomic_begin(path, tmp, sizeof tmp, &f));
    nl_sweep_summary(res, n, 1, f);
    NL_TRY(nl_write_atomic_commit(path, tmp, f));
    snprintf(path, sizeof path, "%s/runs.csv", out);
    NL_TRY(nl_write_atomic_begin(path, tmp, sizeof tmp, &f));
    fprintf(f, "norm,lr,seed,status,reason,step,val_loss,loss,spikes,dir\n");
    for (int i = 0; i < n; i++) {
        fprintf(f, "%s,%g,%llu,%s,%s,%d,", res[i].placement, res[i].lr, (unsigned long long)res[i].seed, res[i].status,
                res[i].reason, res[i].step);
        fprintf(f, isfinite(res[i].val_loss) ? "%.6f," : ",", res[i].val_loss);
        fprintf(f, isfinite(res[i].loss) ? "%.6f," : ",", res[i].loss);
        fprintf(f, "%d,%s\n", res[i].spikes, js[i].dir);
    }
    NL_TRY(nl_write_atomic_commit(path, tmp, f));
    printf("wrote %s/summary.csv and %s/runs.csv\n", out, out);
    return NL_OK;
}

/* a run's result from its result.json, or a "failed" record if it has none */
static int read_or_failed(const job *j, nl_sweep_result *r) {
    if (nl_sweep_read_result(j->dir, r) == NL_OK) return finished(r);
    memset(r, 0, sizeof *r);
    snprintf(r->placement, sizeof r->placement, "%s", nl_placements[j->placement].name);
    snprintf(r->status, sizeof r->status, "failed");
    r->lr = j->lr;
    r->seed = j->seed;
    r->val_loss = r->loss = NAN;
    return 0;
}

static const char *plural(int k) { return k == 1 ? "" : "s"; }

/* --run-index K: one run in the foreground (a Slurm array task); exit status 1 unless it finished */
static nl_status run_one(sweep_cli *c, job *js, nl_sweep_result *res, int n, const char *exe) {
    const int k = c->a.sweep.run_index;
    if (k >= n) return NL_FAIL(NL_ERR_ARG, "--run-index %d: the grid has %d runs (0..%d)", k, n, n - 1);
    if (read_or_failed(&js[k], &res[k])) {
        printf("normlab sweep: run %d (%s) finished earlier (%s), kept\n", k, js[k].dir, res[k].status);
        return NL_OK;
    }
    char *todo = nl_xcalloc((size_t)n);
    todo[k] = 1;
    nl_status st = run_local(js, res, todo, n, 1, exe, c->pass, c->npass, 0, "", 0, 1);
    free(todo);
    NL_TRY(st);
    return finished(&res[k]) ? NL_OK
                             : NL_FAIL(NL_ERR_IO, "run %d (%s) failed; see %s/train.log", k, js[k].dir, js[k].dir);
}

/* --launcher slurm: submit what is neither finished nor queued; the summary once all have finished */
static nl_status run_slurm(sweep_cli *c, job *js, nl_sweep_result *res, int n, const char *exe, int argc, char **argv) {
    const nl_args *a = &c->a;
    unsigned char *fin = nl_xcalloc((size_t)n);
    int nfin = 0;
    for (int i = 0; i < n; i++) nfin += fin[i] = (unsigned char)read_or_failed(&js[i], &res[i]);
    nl_sweep_slurm_job sj = { .exe = exe,
                              .argc = argc,
                              .argv = argv,
                              .out = a->sweep.out,
                              .partition = a->sweep.partition,
                              .time = a->sweep.time,
                              .cpus_per_task = a->sweep.cpus_per_task,
                              .jobs = 0,
                              .threads = c->has_threads ? 0 : a->sweep.cpus_per_task };
    for (int i = 0; i < argc; i++) /* a limit of running tasks only when asked for */
        if (!strcmp(argv[i], "--jobs") || !strncmp(argv[i], "--jobs=", 7)) sj.jobs = a->sweep.jobs;
    int active = 0, submitted = 0;
    char jobid[64] = "";
    nl_status st = nl_sweep_slurm(&sj, n, fin, &active, &submitted, jobid, sizeof jobid);
    free(fin);
    NL_TRY(st);
    printf("normlab sweep: %d run%s (%d placement%s x %d LR%s x %d seed%s) in %s: %d finished, %d queued or running", n,
           plural(n), c->nplacement, plural(c->nplacement), c->nlr, plural(c->nlr), a->sweep.seeds,
           plural(a->sweep.seeds), a->sweep.out, nfin, active);
    if (submitted) printf(", %d submitted as Slurm job array %s", submitted, jobid);
    printf("\n");
    if (active || submitted) {
        printf("run the same command again to collect (and to resubmit runs that fail or are cancelled)\n");
        return NL_OK;
    }
    NL_TRY(write_summary(a->sweep.out, js, res, n));
    int failed = n - nfin;
    return failed ? NL_FAIL(NL_ERR_IO, "%d of %d runs failed", failed, n) : NL_OK;
}

/* --launcher local, under mpirun or not: rank 0 decides what is left to run and broadcasts it; the
 * i-th unfinished run (in grid order) is trained by rank i mod size; rank 0 collects after a barrier. */
static nl_status run_ranks(sweep_cli *c, job *js, nl_sweep_result *res, int n, const char *exe) {
    const nl_args *a = &c->a;
    const int rank = nl_comm_rank(), size = nl_comm_size();
    char *todo = nl_xcalloc((size_t)n), *mine = nl_xcalloc((size_t)n);
    int skipped = 0;
    if (rank == 0)
        for (int i = 0; i < n; i++) {
            if (read_or_failed(&js[i], &res[i])) skipped++;
            else todo[i] = 1;
        }
    nl_status st = nl_comm_broadcast(todo, (size_t)n, 0);
    if (st != NL_OK) nl_comm_abort(nl_last_error()); /* the ranks can no longer agree: end them all */
    int nmine = 0;
    for (int i = 0, t = 0; i < n; i++)
        if (todo[i]) nmine += mine[i] = t++ % size == rank;
    const int jobs = a->sweep.jobs;
    int threads = 0;
    if (!c->has_threads && (jobs > 1 || nl_comm_local_size() > 1)) {
        const long nc = sysconf(_SC_NPROCESSORS_ONLN), share = (long)jobs * nl_comm_local_size();
        threads = nc > share ? (int)(nc / share) : 1;
    }
    if (rank == 0) {
        printf("normlab sweep: %d run%s (%d placement%s x %d LR%s x %d seed%s) in %s; %d finished earlier, skipped; %d job%s at once",
               n, plural(n), c->nplacement, plural(c->nplacement), c->nlr, plural(c->nlr), a->sweep.seeds,
               plural(a->sweep.seeds), a->sweep.out, skipped, jobs, plural(jobs));
        if (size > 1) printf(" on each of %d ranks", size);
        printf("\n");
        fflush(stdout);
    }
    char tag[32] = "";
    if (size > 1) snprintf(tag, sizeof tag, "rank %d: ", rank); /* and counts of its own runs */
    st = nl_mkdir_p(a->sweep.out);
    if (st == NL_OK)
        st = run_local(js, res, mine, n, jobs, exe, c->pass, c->npass, threads, tag, size > 1 ? 0 : skipped,
                       size > 1 ? nmine : n);
    /* every rank gets here, also after an error, so that none waits forever */
    float bad = st != NL_OK;
    if (nl_comm_allreduce_sum(&bad, 1) != NL_OK) nl_comm_abort(nl_last_error());
    int failed = 0;
    if (rank == 0 && bad == 0) {
        for (int i = 0; i < n; i++) {
            if (todo[i] && !mine[i]) read_or_failed(&js[i], &res[i]); /* another rank's run */
            failed += !finished(&res[i]);
        }
        st = write_summary(a->sweep.out, js, res, n);
    }
    if (nl_comm_broadcast(&failed, sizeof failed, 0) != NL_OK) nl_comm_abort(nl_last_error());
    free(todo);
    free(mine);
    if (st == NL_OK && bad > 0)
        st = NL_FAIL(NL_ERR_IO, "%.0f rank%s stopped with an error (see above)", bad, bad == 1 ? "" : "s");
    if (st == NL_OK && failed)
        st = NL_FAIL(NL_ERR_IO,
                     "%d of %d runs failed (neither finished nor diverged); rerun the same command to retry them",
                     failed, n);
    return st;
}

nl_status nl_sweep_main(int argc, char **argv, const char *exe) {
    static sweep_cli c;
    NL_TRY(parse_cli(&c, argc, argv));
    int n;
    job *js = make_grid(&c, &n);
    nl_sweep_result *res = nl_xcalloc((size_t)n * sizeof *res);
    nl_status st;
    if (c.a.sweep.run_index >= 0) st = run_one(&c, js, res, n, exe);
    else if (!strcmp(c.a.sweep.launcher, "slurm")) st = run_slurm(&c, js, res, n, exe, argc, argv);
    else {
        st = nl_comm_init(NULL, NULL);
        if (st == NL_OK) st = run_ranks(&c, js, res, n, exe);
        nl_comm_finalize();
    }
    free(js);
    free(res);
    return st;
}
