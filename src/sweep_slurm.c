/* sweep_slurm.c -- see sweep_slurm.h. */
#include "sweep_slurm.h"

#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { MAX_IDS = 1024, OUT_CAP = 1 << 20 };

/* Runs argv[0] (found on PATH) with stdout and stderr into out (cap bytes, NUL-terminated); returns its
 * exit status, 127 when it cannot be run, -1 when it was killed by a signal. */
static int run_capture(char *const argv[], char *out, size_t cap) {
    int fd[2];
    out[0] = 0;
    if (pipe(fd)) return 127;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return 127;
    }
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fd[1]);
    size_t len = 0;
    for (;;) {
        char buf[4096];
        ssize_t r = read(fd[0], buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        size_t k = (size_t)r < cap - 1 - len ? (size_t)r : cap - 1 - len;
        memcpy(out + len, buf, k);
        len += k;
    }
    out[len] = 0;
    close(fd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return 127;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* the first line of a tool's output, for a one-line message */
static const char *first_line(char *s) {
    s[strcspn(s, "\n")] = 0;
    return s[0] ? s : "no output";
}

static nl_status tool_fail(const char *tool, int rc, char *out) {
    if (rc == 127)
        return NL_FAIL(NL_ERR_IO,
                       "--launcher slurm: '%s' not found or not runnable (is Slurm installed here, and SLURM_CONF set if needed?)",
                       tool);
    return NL_FAIL(NL_ERR_IO, "--launcher slurm: %s failed (exit %d): %s", tool, rc, first_line(out));
}

/* the array job ids in <out>/slurm/jobs */
static int read_ids(const char *path, long *ids) {
    FILE *f = fopen(path, "r");
    int n = 0;
    long id;
    while (f && fscanf(f, "%ld", &id) == 1) { /* the newest MAX_IDS */
        if (n == MAX_IDS) memmove(ids, ids + 1, (MAX_IDS - 1) * sizeof *ids), n--;
        ids[n++] = id;
    }
    if (f) fclose(f);
    return n;
}

/* marks active[k] for the tasks of our array jobs that squeue lists (pending, running, completing) */
static nl_status queued(const long *ids, int nids, int n, unsigned char *active, char *out) {
    char *argv[] = { "squeue", "--me", "--noheader", "--array", "--format=%F %K", NULL };
    int rc = run_capture(argv, out, OUT_CAP);
    if (rc) return tool_fail("squeue", rc, out);
    for (char *save = NULL, *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        long job, task;
        char *end;
        job = strtol(line, &end, 10);
        if (end == line || *end != ' ')
            return NL_FAIL(NL_ERR_IO, "--launcher slurm: unexpected squeue output '%s'", line);
        if (!strcmp(end + 1, "N/A")) continue; /* not an array task: not ours */
        task = strtol(end + 1, &end, 10);
        if (*end) return NL_FAIL(NL_ERR_IO, "--launcher slurm: unexpected squeue output '%s'", line);
        for (int i = 0; i < nids; i++)
            if (ids[i] == job && task >= 0 && task < n) active[task] = 1;
    }
    return NL_OK;
}

/* appends s to f quoted for sh */
static void put_quoted(FILE *f, const char *s) {
    fputc('\'', f);
    for (; *s; s++)
        if (*s == '\'') fputs("'\\''", f);
        else fputc(*s, f);
    fputc('\'', f);
}

static nl_status write_script(const nl_sweep_slurm_job *s, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return NL_FAIL(NL_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    fprintf(f, "#!/bin/sh\n# written by 'normlab sweep --launcher slurm': array task K trains run K of the grid\nexec ");
    put_quoted(f, s->exe);
    fputs(" sweep", f);
    for (int i = 0; i < s->argc; i++) fputc(' ', f), put_quoted(f, s->argv[i]);
    if (s->threads > 0) fprintf(f, " --threads=%d", s->threads);
    fputs(" --run-index=\"$SLURM_ARRAY_TASK_ID\"\n", f);
    const int bad = ferror(f);
    if (fclose(f) || bad) return NL_FAIL(NL_ERR_IO, "cannot write '%s'", path);
    return NL_OK;
}

/* "0-3,5,7-9" from the runs to submit; NL_ERR_ARG if it does not fit */
static nl_status array_spec(const unsigned char *todo, int n, int jobs, char *spec, size_t cap) {
    size_t len = 0;
    spec[0] = 0;
    for (int i = 0; i < n;) {
        if (!todo[i]) {
            i++;
            continue;
        }
        int j = i;
        while (j + 1 < n && todo[j + 1]) j++;
        int w = j > i ? snprintf(spec + len, cap - len, "%s%d-%d", len ? "," : "", i, j)
                      : snprintf(spec + len, cap - len, "%s%d", len ? "," : "", i);
        if (w < 0 || (size_t)w >= cap - len)
            return NL_FAIL(NL_ERR_ARG, "--launcher slurm: the array of %d runs is too long for one sbatch --array", n);
        len += (size_t)w;
        i = j + 1;
    }
    if (jobs > 0 && snprintf(spec + len, cap - len, "%%%d", jobs) >= (int)(cap - len))
        return NL_FAIL(NL_ERR_ARG, "--launcher slurm: the array is too long for one sbatch --array");
    return NL_OK;
}

static nl_status submit(const nl_sweep_slurm_job *s, const char *dir, const unsigned char *todo, int n, char *jobid,
                        size_t cap, char *out) {
    char script[NL_PATH_MAX + 32], ids[NL_PATH_MAX + 32], spec[8192], a_array[8300], a_out[NL_PATH_MAX + 48],
            a_part[NL_PATH_MAX + 16], a_time[NL_PATH_MAX + 16], a_cpus[32];
    snprintf(script, sizeof script, "%s/sweep.sh", dir);
    NL_TRY(write_script(s, script));
    NL_TRY(array_spec(todo, n, s->jobs, spec, sizeof spec));
    snprintf(a_array, sizeof a_array, "--array=%s", spec);
    snprintf(a_out, sizeof a_out, "--output=%s/%%A_%%a.out", dir);
    char *argv[16];
    int k = 0;
    argv[k++] = "sbatch", argv[k++] = "--parsable", argv[k++] = "--job-name=normlab-sweep";
    argv[k++] = a_array, argv[k++] = a_out;
    if (s->partition[0]) snprintf(a_part, sizeof a_part, "--partition=%s", s->partition), argv[k++] = a_part;
    if (s->time[0]) snprintf(a_time, sizeof a_time, "--time=%s", s->time), argv[k++] = a_time;
    if (s->cpus_per_task > 0)
        snprintf(a_cpus, sizeof a_cpus, "--cpus-per-task=%d", s->cpus_per_task), argv[k++] = a_cpus;
    argv[k++] = script;
    argv[k] = NULL;
    int rc = run_capture(argv, out, OUT_CAP);
    if (rc) return tool_fail("sbatch", rc, out);
    /* --parsable prints "<jobid>" or "<jobid>;<cluster>", possibly after warnings: the last line */
    size_t len = strlen(out);
    while (len && out[len - 1] == '\n') out[--len] = 0;
    char *last = strrchr(out, '\n');
    last = last ? last + 1 : out;
    char *end;
    long id = strtol(last, &end, 10);
    if (end == last || id <= 0 || (*end && *end != ';'))
        return NL_FAIL(NL_ERR_IO, "--launcher slurm: sbatch printed no job id: %s", first_line(out));
    snprintf(jobid, cap, "%ld", id);
    snprintf(ids, sizeof ids, "%s/jobs", dir);
    FILE *f = fopen(ids, "a");
    if (!f) return NL_FAIL(NL_ERR_IO, "submitted job %ld but cannot record it in '%s': %s", id, ids, strerror(errno));
    fprintf(f, "%ld\n", id);
    if (fclose(f)) return NL_FAIL(NL_ERR_IO, "submitted job %ld but cannot record it in '%s'", id, ids);
    return NL_OK;
}

nl_status nl_sweep_slurm(const nl_sweep_slurm_job *s, int n, const unsigned char *finished, int *active, int *submitted,
                         char *jobid, size_t cap) {
    char dir[NL_PATH_MAX + 16], path[NL_PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/slurm", s->out);
    NL_TRY(nl_mkdir_p(dir));
    snprintf(path, sizeof path, "%s/jobs", dir);
    long ids[MAX_IDS];
    const int nids = read_ids(path, ids);
    unsigned char *act = nl_xcalloc((size_t)n), *todo = nl_xcalloc((size_t)n);
    char *out = nl_xmalloc(OUT_CAP);
    nl_status st = nids ? queued(ids, nids, n, act, out) : NL_OK;
    *active = *submitted = 0;
    for (int i = 0; i < n; i++) {
        *active += act[i] && !finished[i];
        todo[i] = !finished[i] && !act[i];
        *submitted += todo[i];
    }
    if (st == NL_OK && *submitted) st = submit(s, dir, todo, n, jobid, cap, out);
    if (st != NL_OK) *submitted = 0;
    free(act);
    free(todo);
    free(out);
    return st;
}
