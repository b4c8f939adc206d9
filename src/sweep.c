/* sweep.c -- see sweep.h. */
#include "sweep.h"

#include "common.h"
#include "config.h"
#include "json.h"
#include "norm.h"
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { MAX_LIST = 64, MAX_PASS = 256 };

typedef struct job {
    int norm;
    double lr;
    uint64_t seed;
    char dir[NL_PATH_MAX + 128];
    pid_t pid;
    double t0;
} job;

void nl_sweep_usage(void) {
    printf("usage: normlab sweep --norm A,B,... --lr X,Y,... [--seeds K] [--jobs N] [--out DIR] [train options]\n\n"
           "Train every placement x learning rate x seed (seeds --seed, --seed+1, ...), one run directory each\n"
           "(DIR/<norm>_lr<lr>_s<seed>, DIR default runs/sweep), --jobs at once. Finished runs (their result.json)\n"
           "are skipped, so an interrupted sweep resumes where it stopped. A run is diverged when its loss or\n"
           "gradient is non-finite, or when after warmup the mean loss of the last --diverge-window steps (default\n"
           "50 here) exceeds its first loss; it is stopped and recorded with the step. Prints the placement x LR\n"
           "table (final val loss mean +- sd over finished seeds, diverged count) and writes DIR/summary.csv and\n"
           "DIR/runs.csv. Other options go to every 'normlab train' (see 'normlab train --help'); --diag-every\n"
           "defaults to 100 here. Exit status 1 if a run failed (neither finished nor diverged).\n");
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
            r->norm, r->lr, (unsigned long long)r->seed, r->status, r->reason, r->step);
    put_num(f, "val_loss", r->val_loss);
    put_num(f, "loss", r->loss);
    fprintf(f, ", \"spikes\": %d}\n", r->spikes);
    return nl_write_atomic_commit(path, tmp, f);
}

nl_status nl_sweep_read_result(const char *rundir, nl_sweep_result *r) {
    char path[NL_PATH_MAX + 32], *buf;
    size_t len;
    snprintf(path, sizeof path, "%s/result.json", rundir);
    NL_TRY(nl_read_file(path, 1 << 16, &buf, &len));
    nl_json_doc d;
    nl_status st = nl_json_parse(&d, buf, len, path);
    free(buf);
    NL_TRY(st);
    const nl_json *o = d.root;
    const char *norm = nl_json_str(nl_json_get(o, "norm")), *status = nl_json_str(nl_json_get(o, "status")),
               *reason = nl_json_str(nl_json_get(o, "reason"));
    const double lr = nl_json_num(nl_json_get(o, "lr")), seed = nl_json_num(nl_json_get(o, "seed")),
                 step = nl_json_num(nl_json_get(o, "step"));
    if (!norm || !status || !reason || !isfinite(lr) || !(seed >= 0) || !(step >= 0) || strlen(norm) >= sizeof r->norm ||
        strlen(status) >= sizeof r->status || strlen(reason) >= sizeof r->reason) {
        nl_json_free(&d);
        return NL_FAIL(NL_ERR_FORMAT, "%s: missing or invalid norm/lr/seed/status/step", path);
    }
    memset(r, 0, sizeof *r);
    snprintf(r->norm, sizeof r->norm, "%s", norm);
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
    snprintf(r->norm, sizeof r->norm, "%s", nl_placements[j->norm].name);
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
    else fprintf(f, "%-9s %-9s %4s %4s %8s %17s\n", "norm", "lr", "runs", "done", "diverged", "val loss (mean+-sd)");
    char *seen = nl_xcalloc((size_t)n + 1);
    for (int i = 0; i < n; i++) {
        if (seen[i]) continue;
        int runs = 0, done = 0, div = 0, failed = 0;
        double s1 = 0.0, s2 = 0.0;
        for (int k = i; k < n; k++) {
            if (seen[k] || strcmp(res[k].norm, res[i].norm) || res[k].lr != res[i].lr) continue;
            seen[k] = 1;
            runs++;
            if (!strcmp(res[k].status, "diverged")) div++;
            else if (!strcmp(res[k].status, "done") && isfinite(res[k].val_loss)) {
                done++;
                s1 += res[k].val_loss;
                s2 += res[k].val_loss * res[k].val_loss;
            } else failed++;
        }
        const double mean = done ? s1 / done : NAN;
        const double sd = done > 1 ? sqrt(fmax(0.0, (s2 - done * mean * mean) / (done - 1))) : done ? 0.0 : NAN;
        if (csv) {
            fprintf(f, "%s,%g,%d,%d,%d,%d,", res[i].norm, res[i].lr, runs, done, div, failed);
            if (done) fprintf(f, "%.6f,%.6f\n", mean, sd);
            else fprintf(f, ",\n");
        } else {
            char v[48] = "-";
            if (done) snprintf(v, sizeof v, "%.4f +- %.4f", mean, sd);
            fprintf(f, "%-9s %-9g %4d %4d %8d %17s%s\n", res[i].norm, res[i].lr, runs, done, div, v,
                    failed ? "  (failed runs: see train.log)" : "");
        }
    }
    free(seen);
}

/* ---------------------------------------------------------------- running */

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
    argv[k++] = "--norm", argv[k++] = (char *)nl_placements[j->norm].name;
    argv[k++] = "--lr", argv[k++] = lr;
    argv[k++] = "--seed", argv[k++] = seed;
    argv[k++] = "--out", argv[k++] = j->dir, argv[k++] = "--overwrite"; /* an unfinished run starts afresh */
    if (threads > 0) argv[k++] = "--threads", argv[k++] = th;
    for (int i = 0; i < npass; i++) argv[k++] = pass[i];
    argv[k] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        return NL_FAIL(NL_ERR_IO, "fork failed: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
        execv(exe, argv);
        fprintf(stderr, "cannot run '%s': %s\n", exe, strerror(errno));
        _exit(127);
    }
    close(fd);
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
            int x = nl_norm_from_name(t);
            if (x < 0) return NL_FAIL(NL_ERR_ARG, "--norm: unknown placement '%s' (see 'normlab train --help')", t);
            out[(*n)++] = x;
        } else {
            char *end;
            errno = 0;
            double x = strtod(t, &end);
            if (end == t || *end || errno || !isfinite(x) || x < 0) return NL_FAIL(NL_ERR_ARG, "--lr: '%s' is not a learning rate >= 0", t);
            out[(*n)++] = x;
        }
    }
    if (*n == 0) return NL_FAIL(NL_ERR_ARG, "--%s: empty list", opt);
    return NL_OK;
}

static nl_status parse_int(const char *opt, const char *v, int lo, int *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > 100000) return NL_FAIL(NL_ERR_ARG, "--%s: '%s' must be an integer >= %d", opt, v, lo);
    *out = (int)x;
    return NL_OK;
}

nl_status nl_sweep_main(int argc, char **argv, const char *exe) {
    double norms[MAX_LIST], lrs[MAX_LIST];
    int nnorm = 0, nlr = 0, seeds = 1, jobs = 1, has_threads = 0, has_diag = 0, has_div = 0, npass = 0;
    uint64_t seed0 = 1337;
    char out[NL_PATH_MAX] = "runs/sweep", *pass[MAX_PASS];
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (strncmp(s, "--", 2)) return NL_FAIL(NL_ERR_ARG, "unexpected argument '%s' (options start with --)", s);
        char key[64];
        const char *eq = strchr(s + 2, '=');
        size_t kl = eq ? (size_t)(eq - s - 2) : strlen(s + 2);
        if (kl >= sizeof key) return NL_FAIL(NL_ERR_ARG, "unknown option '%s'", s);
        memcpy(key, s + 2, kl);
        key[kl] = 0;
        const int own = !strcmp(key, "norm") || !strcmp(key, "lr") || !strcmp(key, "seeds") || !strcmp(key, "jobs") ||
                        !strcmp(key, "out") || !strcmp(key, "seed");
        const int tv = own ? 1 : nl_option_takes_value(NL_CMD_TRAIN, key);
        if (tv < 0 || strchr(key, '_')) return NL_FAIL(NL_ERR_ARG, "unknown option '--%s' (see 'normlab sweep --help')", key);
        const char *val = eq ? eq + 1 : NULL;
        if (tv && !val) {
            if (i + 1 >= argc) return NL_FAIL(NL_ERR_ARG, "--%s needs a value", key);
            val = argv[++i];
        }
        if (!strcmp(key, "norm")) NL_TRY(parse_list(key, val, 1, norms, &nnorm));
        else if (!strcmp(key, "lr")) NL_TRY(parse_list(key, val, 0, lrs, &nlr));
        else if (!strcmp(key, "seeds")) NL_TRY(parse_int(key, val, 1, &seeds));
        else if (!strcmp(key, "jobs")) NL_TRY(parse_int(key, val, 1, &jobs));
        else if (!strcmp(key, "out")) {
            if (strlen(val) + 64 >= sizeof out) return NL_FAIL(NL_ERR_ARG, "--out: path too long");
            snprintf(out, sizeof out, "%s", val);
        } else if (!strcmp(key, "seed")) {
            char *end;
            errno = 0;
            unsigned long long x = strtoull(val, &end, 10);
            if (end == val || *end || errno || *val == '-') return NL_FAIL(NL_ERR_ARG, "--seed: '%s' is not a non-negative integer", val);
            seed0 = x;
        } else {
            if (npass + 4 > MAX_PASS) return NL_FAIL(NL_ERR_ARG, "too many options");
            pass[npass++] = (char *)s;
            if (val && !eq) pass[npass++] = (char *)val;
            has_threads |= !strcmp(key, "threads");
            has_diag |= !strcmp(key, "diag-every");
            has_div |= !strcmp(key, "diverge-window");
        }
    }
    if (!nnorm) return NL_FAIL(NL_ERR_ARG, "--norm is required (a comma-separated list of placements)");
    if (!nlr) return NL_FAIL(NL_ERR_ARG, "--lr is required (a comma-separated list of learning rates)");
    /* the sweep's defaults, then validate the train options once here rather than in every run */
    static char diag[] = "--diag-every=100", div[] = "--diverge-window=50";
    if (!has_diag) pass[npass++] = diag;
    if (!has_div) pass[npass++] = div;
    static nl_args a;
    nl_args_defaults(&a);
    int help;
    NL_TRY(nl_args_parse(&a, NL_CMD_TRAIN, npass, pass, &help));
    a.cfg.vocab = a.cfg.vocab ? a.cfg.vocab : 256;
    NL_TRY(nl_config_resolve(&a.cfg));
    int threads = 0;
    if (!has_threads && jobs > 1) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        threads = nc > jobs ? (int)(nc / jobs) : 1;
    }
    NL_TRY(nl_mkdir_p(out));

    const int n = nnorm * nlr * seeds;
    job *js = nl_xcalloc((size_t)n * sizeof *js);
    nl_sweep_result *res = nl_xcalloc((size_t)n * sizeof *res);
    char *todo = nl_xcalloc((size_t)n);
    int k = 0, skipped = 0;
    for (int a1 = 0; a1 < nnorm; a1++)
        for (int b = 0; b < nlr; b++)
            for (int s = 0; s < seeds; s++, k++) {
                job *j = &js[k];
                j->norm = (int)norms[a1];
                j->lr = lrs[b];
                j->seed = seed0 + (uint64_t)s;
                snprintf(j->dir, sizeof j->dir, "%s/%s_lr%g_s%llu", out, nl_placements[j->norm].name, j->lr, (unsigned long long)j->seed);
                if (nl_sweep_read_result(j->dir, &res[k]) == NL_OK && finished(&res[k])) skipped++;
                else todo[k] = 1;
            }
    printf("normlab sweep: %d runs (%d placements x %d LRs x %d seeds) in %s; %d finished earlier, skipped; %d job%s at once\n",
           n, nnorm, nlr, seeds, out, skipped, jobs, jobs > 1 ? "s" : "");
    fflush(stdout);
    nl_status st = NL_OK;
    int next = 0, running = 0, done = skipped;
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
            st = NL_FAIL(NL_ERR_IO, "waitpid: %s", strerror(errno));
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
            printf("[%d/%d] %s lr %g seed %llu: %s", done, n, res[i].norm, res[i].lr, (unsigned long long)res[i].seed, res[i].status);
            if (!strcmp(res[i].status, "diverged")) printf(" (%s) at step %d", res[i].reason, res[i].step);
            else if (!strcmp(res[i].status, "done")) printf(", val loss %.4f", res[i].val_loss);
            else printf(" (exit %d; see %s/train.log)", WIFEXITED(wst) ? WEXITSTATUS(wst) : -1, js[i].dir);
            printf(", %.1fs\n", nl_now() - js[i].t0);
            fflush(stdout);
        }
    }
    int failed = 0;
    for (int i = 0; i < n; i++) failed += !finished(&res[i]);
    if (st == NL_OK) {
        printf("\n");
        nl_sweep_summary(res, n, 0, stdout);
        char path[NL_PATH_MAX + 32], tmp[NL_PATH_MAX + 96];
        FILE *f;
        snprintf(path, sizeof path, "%s/summary.csv", out);
        st = nl_write_atomic_begin(path, tmp, sizeof tmp, &f);
        if (st == NL_OK) {
            nl_sweep_summary(res, n, 1, f);
            st = nl_write_atomic_commit(path, tmp, f);
        }
        snprintf(path, sizeof path, "%s/runs.csv", out);
        if (st == NL_OK) st = nl_write_atomic_begin(path, tmp, sizeof tmp, &f);
        if (st == NL_OK) {
            fprintf(f, "norm,lr,seed,status,reason,step,val_loss,loss,spikes,dir\n");
            for (int i = 0; i < n; i++) {
                fprintf(f, "%s,%g,%llu,%s,%s,%d,", res[i].norm, res[i].lr, (unsigned long long)res[i].seed, res[i].status,
                        res[i].reason, res[i].step);
                fprintf(f, isfinite(res[i].val_loss) ? "%.6f," : ",", res[i].val_loss);
                fprintf(f, isfinite(res[i].loss) ? "%.6f," : ",", res[i].loss);
                fprintf(f, "%d,%s\n", res[i].spikes, js[i].dir);
            }
            st = nl_write_atomic_commit(path, tmp, f);
        }
        if (st == NL_OK) printf("wrote %s/summary.csv and %s/runs.csv\n", out, out);
    }
    free(js);
    free(res);
    free(todo);
    if (st == NL_OK && failed) st = NL_FAIL(NL_ERR_IO, "%d of %d runs failed (neither finished nor diverged); rerun the same command to retry them", failed, n);
    return st;
}
