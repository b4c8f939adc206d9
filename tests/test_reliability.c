/* test_reliability.c -- nothing lost, nothing crashes (docs/reliability.md): a run killed with
 * SIGKILL (at a random moment, or half-way through a checkpoint write), stopped by SIGINT/SIGTERM, or
 * denied disk space resumes from its last complete checkpoint to the same loss curve, bit for bit, as
 * a run never interrupted; a NaN stops the run or rolls it back; no checkpoint ever holds a NaN.
 * Runs use one thread and tmpfs (/dev/shm when present; NL_TEST_DIR overrides) so that they take
 * milliseconds per step. NL_KILL_TRIALS sets the number of random kills (6). */
#define _GNU_SOURCE /* prlimit */
#include "check.h"
#include "ckpt.h"
#include "cpu/kernels.h"
#include "tests.h"
#include "train.h"

#include <dirent.h>
#include <math.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char out[1 << 16];

#define run(...) nl_run_fmt(out, sizeof out, __VA_ARGS__)

#define TINY                                                                                                           \
    "--layers 2 --dim 32 --heads 2 --seq-len 32 --batch 4 --threads 1 --lr 3e-3 --warmup 5 --eval-every 10 --eval-windows 8"

static char tmpdir[64], txt[96];

static void make_tmpdir(const char *tag) {
    struct stat sb;
    const char *base = stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) && access("/dev/shm", W_OK) == 0 ? "/dev/shm"
                                                                                                          : "/tmp";
    if (getenv("NL_TEST_DIR")) base = getenv("NL_TEST_DIR"); /* e.g. /tmp: a real disk, slow fsyncs */
    snprintf(tmpdir, sizeof tmpdir, "%s/nl_%s_XXXXXX", base, tag);
    NL_ASSERT(mkdtemp(tmpdir));
    snprintf(txt, sizeof txt, "%s/t.txt", tmpdir);
    static const char *const words[] = { "the ", "cat ", "sat ", "on ", "a ", "mat.\n", "and ", "dog ", "ran ", "far " };
    FILE *f = fopen(txt, "w");
    NL_ASSERT(f);
    nl_rng r;
    nl_rng_seed(&r, 5);
    for (int i = 0; i < 20000; i++) fputs(words[nl_rng_below(&r, 10)], f);
    fclose(f);
}

static void remove_tmpdir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    NL_ASSERT(system(cmd) == 0);
}

/* RUN_DIR/metrics.jsonl without the timing fields (nl_metrics_curve) */
static int curve(const char *run_dir, char *buf, size_t cap) {
    char p[256];
    snprintf(p, sizeof p, "%s/metrics.jsonl", run_dir);
    return nl_metrics_curve(p, buf, cap);
}

static int exists(const char *fmt, ...) {
    char p[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p, sizeof p, fmt, ap);
    va_end(ap);
    return access(p, F_OK) == 0;
}

/* files in dir whose name contains s */
static int count_files(const char *dir, const char *s) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) n += strstr(de->d_name, s) != NULL;
    closedir(d);
    return n;
}

/* every checkpoint in dir loads (checksum, shapes) and holds only finite numbers; returns failures */
static int ckpts_sound(const char *dir, int *count) {
    int *steps, n, fails = 0;
    if (nl_ckpt_list(dir, &steps, &n) != NL_OK) return 1;
    for (int i = 0; i < n; i++) {
        char p[512];
        nl_ckpt_path(p, sizeof p, dir, steps[i]);
        nl_model m;
        nl_ckpt_info info;
        if (nl_ckpt_load_info(&m, p, &info) != NL_OK) {
            printf("    %s does not load: %s\n", p, nl_last_error());
            fails++;
            continue;
        }
        size_t bad = nl_first_nonfinite(m.params, m.nparams) + nl_first_nonfinite(m.m, m.nparams) +
                     nl_first_nonfinite(m.v, m.nparams);
        fails += NL_CHECK(bad == 3 * m.nparams && info.step == steps[i], "%s: finite values and step %d", p, info.step);
        nl_model_free(&m);
    }
    free(steps);
    if (count) *count = n;
    return fails;
}

/* starts `normlab train ARGS` in the background (stdout/stderr to log), as its own pid */
static pid_t spawn(const char *log, const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "exec %s train %s >%s 2>&1", nl_test_bin(), args, log);
    pid_t pid = fork();
    NL_ASSERT(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void sleep_ms(double ms) {
    struct timespec ts = { (time_t)(ms / 1000), (long)(fmod(ms, 1000.0) * 1e6) };
    nanosleep(&ts, NULL);
}

static int wait_status(pid_t pid) {
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    return st;
}

/* the reference: 40 uninterrupted steps */
static char ref[1 << 15];

static int make_ref_with(const char *extra) {
    int rc = run("%s train " TINY " %s --steps 40 --ckpt-every 10 --data %s --out %s/ref 2>&1", nl_test_bin(), extra,
                 txt, tmpdir);
    char d[128];
    snprintf(d, sizeof d, "%s/ref", tmpdir);
    return NL_CHECK(rc == 0 && curve(d, ref, sizeof ref) == 40, "reference run: %s", out);
}

/* resumes run dir to the end; its curve must equal the reference */
static int resume_matches(const char *dir, const char *extra) {
    static char got[1 << 15];
    int rc = run("%s train --resume %s %s 2>&1", nl_test_bin(), dir, extra);
    int fails = NL_CHECK(rc == 0, "resume %s: exit %d: %s", dir, rc, out);
    curve(dir, got, sizeof got);
    fails += NL_CHECK(!strcmp(got, ref), "resumed curve of %s equals the uninterrupted one", dir);
    return fails;
}

/* the GPAS gates and SDD scale vectors (and their AdamW moments) survive a checkpoint: a run with both,
 * on gpt2 and on llama, resumed at step 20 ends bit for bit where the uninterrupted one does */
int test_resume_gpas_sdd(void) {
    int fails = 0;
    make_tmpdir("resume_gs");
    static const char *const extra[] = { "--norm peri --gpas --sdd", "--arch llama --norm pre --kv-heads 1 --gpas --sdd" };
    for (int i = 0; i < 2; i++) {
        fails += make_ref_with(extra[i]);
        char d[128];
        snprintf(d, sizeof d, "%s/gs%d", tmpdir, i);
        run("%s train " TINY " %s --steps 40 --ckpt-every 10 --data %s --out %s 2>&1", nl_test_bin(), extra[i], txt, d);
        run("rm %s/ckpt-00000030.safetensors %s/ckpt-00000040.safetensors", d, d);
        fails += resume_matches(d, "");
        run("rm -rf %s/ref", tmpdir);
    }
    remove_tmpdir();
    return fails;
}

int test_resume(void) {
    int fails = 0;
    make_tmpdir("resume");
    fails += make_ref_with("");
    char d[128], p[256];
    /* stop at step 20 (a shorter run keeps the same schedule only with the same --steps: use the
     * checkpoint of a full-length run), drop later checkpoints, resume */
    snprintf(d, sizeof d, "%s/a", tmpdir);
    run("%s train " TINY " --steps 40 --ckpt-every 10 --data %s --out %s 2>&1", nl_test_bin(), txt, d);
    run("rm %s/ckpt-00000030.safetensors %s/ckpt-00000040.safetensors", d, d);
    fails += resume_matches(d, "");
    /* the newest checkpoint corrupt: a warning, then the one before it */
    run("rm %s/ckpt-00000030.safetensors %s/ckpt-00000040.safetensors", d, d);
    snprintf(p, sizeof p, "%s/ckpt-00000020.safetensors", d);
    FILE *f = fopen(p, "r+b");
    NL_ASSERT(f);
    fseek(f, -100, SEEK_END);
    fputc(0x55, f);
    fclose(f);
    fails += resume_matches(d, "");
    fails += NL_CHECK(strstr(out, "warning: skipping") && strstr(out, "checksum mismatch") &&
                              strstr(out, "resuming from step 10"),
                      "corrupt newest checkpoint skipped: %s", out);
    /* a complete run: nothing to do */
    fails += NL_CHECK(run("%s train --resume %s 2>&1", nl_test_bin(), d) == 0 && strstr(out, "nothing to do"),
                      "complete run: %s", out);
    /* conflicting options and bad directories: one line, exit 2 (usage) or 1 */
    fails += NL_CHECK(run("%s train --resume %s --lr 1 2>&1", nl_test_bin(), d) == 2 &&
                              strstr(out, "--lr cannot be combined with --resume"),
                      "%s", out);
    fails += NL_CHECK(run("%s train --resume %s --layers 3 2>&1", nl_test_bin(), d) == 2 &&
                              strstr(out, "--layers cannot be combined"),
                      "%s", out);
    fails += NL_CHECK(run("%s train --resume= 2>&1", nl_test_bin()) == 2 && strstr(out, "--resume needs a run directory"),
                      "%s", out);
    fails += NL_CHECK(run("%s train --resume %s/nope 2>&1", nl_test_bin(), tmpdir) == 2 &&
                              strstr(out, "not a run directory"),
                      "%s", out);
    snprintf(p, sizeof p, "%s/empty", tmpdir);
    mkdir(p, 0755);
    fails += NL_CHECK(run("%s train --resume %s 2>&1", nl_test_bin(), p) == 1 && strstr(out, "holds no checkpoint"),
                      "%s", out);
    /* metrics.jsonl after the checkpoint (and a torn last line) is cut back on resume */
    snprintf(d, sizeof d, "%s/b", tmpdir);
    run("%s train " TINY " --steps 40 --ckpt-every 10 --data %s --out %s 2>&1", nl_test_bin(), txt, d);
    run("rm %s/ckpt-00000040.safetensors && printf '{\"step\": 41, \"lo' >> %s/metrics.jsonl", d, d);
    fails += resume_matches(d, "--log-every 5 --threads 1");
    /* one trainer per run directory */
    snprintf(p, sizeof p, "%s/.lock", d);
    int fd = open(p, O_RDWR);
    fails += NL_CHECK(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0, "lock the run directory");
    fails += NL_CHECK(run("%s train --resume %s 2>&1", nl_test_bin(), d) == 1 && strstr(out, "another normlab train"),
                      "second trainer refused: %s", out);
    if (fd >= 0) close(fd);
    /* hostile checkpoints (fuzz/regress/ckpt): one line, exit 1, never a crash or a huge allocation */
    static const char *const hostile[][2] = { { "huge-dims", "needs more than" },
                                              { "long-seq", "needs more than" },
                                              { "bad-rng", "all zero" },
                                              { "bad-step", "not a step count" },
                                              { "bad-skip", "bad skip_steps" } };
    for (int i = 0; i < 5; i++) {
        int rc = run("%s eval --ckpt fuzz/regress/ckpt/%s --data %s 2>&1 >/dev/null", nl_test_bin(), hostile[i][0], txt);
        int lines = 0;
        for (char *q = out; *q; q++) lines += *q == '\n';
        fails += NL_CHECK(rc == 1 && lines == 1 && strstr(out, hostile[i][1]), "eval of %s: exit %d: %s", hostile[i][0],
                          rc, out);
    }
    /* --keep-ckpts */
    snprintf(d, sizeof d, "%s/k", tmpdir);
    run("%s train " TINY " --steps 30 --ckpt-every 5 --keep-ckpts 2 --data %s --out %s 2>&1", nl_test_bin(), txt, d);
    fails += NL_CHECK(count_files(d, "ckpt-") == 2 && exists("%s/ckpt-00000025.safetensors", d) &&
                              exists("%s/ckpt-00000030.safetensors", d),
                      "--keep-ckpts 2 keeps ckpt 25 and 30");
    remove_tmpdir();
    return fails;
}

/* SIGKILL half-way through writing checkpoint 20 (NORMLAB_FAULT), then at random moments of a run
 * that checkpoints every step: the newest complete checkpoint always loads and the resumed curve
 * equals the uninterrupted one. */
int test_crash_kill(void) {
    int fails = 0;
    make_tmpdir("kill");
    fails += make_ref_with("");
    char d[128], log[160];
    snprintf(d, sizeof d, "%s/w", tmpdir);
    int rc = run("NORMLAB_FAULT=kill-in-ckpt:20 %s train " TINY " --steps 40 --ckpt-every 10 --data %s --out %s 2>&1",
                 nl_test_bin(), txt, d);
    fails += NL_CHECK(rc != 0 && !exists("%s/ckpt-00000020.safetensors", d) && count_files(d, ".tmp.") == 1,
                      "killed in the write of checkpoint 20: no ckpt-20, one partial temporary file (exit %d)", rc);
    int n = 0;
    fails += ckpts_sound(d, &n);
    fails += NL_CHECK(n == 1, "checkpoint 10 is there");
    fails += resume_matches(d, "");
    fails += NL_CHECK(count_files(d, ".tmp.") == 0, "the partial file is removed on resume");

    /* random moments: a seeded delay after the first checkpoint appears; checkpoints every step so
     * that many kills land inside a write */
    const int trials = getenv("NL_KILL_TRIALS") ? atoi(getenv("NL_KILL_TRIALS")) : 6;
    int in_write = 0, resumed = 0, killed = 0;
    nl_rng r;
    nl_rng_seed(&r, (uint64_t)time(NULL));
    for (int t = 0; t < trials; t++) {
        snprintf(d, sizeof d, "%s/r%d", tmpdir, t);
        snprintf(log, sizeof log, "%s/r%d.log", tmpdir, t);
        char args[1024];
        snprintf(args, sizeof args, TINY " --steps 40 --ckpt-every 1 --data %s --out %s", txt, d);
        pid_t pid = spawn(log, args);
        for (int w = 0; w < 120000 && !exists("%s/ckpt-00000001.safetensors", d); w++) sleep_ms(0.5);
        sleep_ms(nl_rng_uniform(&r) * 40.0);
        kill(pid, SIGKILL);
        int st = wait_status(pid);
        killed += WIFSIGNALED(st);
        in_write += count_files(d, ".tmp.") > 0;
        int nck = 0;
        fails += ckpts_sound(d, &nck);
        fails += NL_CHECK(nck >= 1, "trial %d: a checkpoint survives", t);
        fails += resume_matches(d, "");
        resumed++;
    }
    printf("    %d random kills (%d landed while the process lived, %d left a partial checkpoint write), %d resumes bit-identical\n",
           trials, killed, in_write, resumed);
    remove_tmpdir();
    return fails;
}

/* SIGINT and SIGTERM: the step finishes, a checkpoint is written, the message says how to resume,
 * the exit code is 128 + signal; the resumed curve equals the uninterrupted one. */
int test_signals(void) {
    int fails = 0;
    make_tmpdir("sig");
    fails += make_ref_with("");
    const int sigs[2] = { SIGINT, SIGTERM };
    for (int i = 0; i < 2; i++) {
        char d[128], log[160], args[1024];
        snprintf(d, sizeof d, "%s/s%d", tmpdir, i);
        snprintf(log, sizeof log, "%s/s%d.log", tmpdir, i);
        snprintf(args, sizeof args, TINY " --steps 40 --ckpt-every 10 --data %s --out %s", txt, d);
        pid_t pid = spawn(log, args);
        char mp[192];
        snprintf(mp, sizeof mp, "%s/metrics.jsonl", d);
        struct stat sb;
        for (int w = 0; w < 120000 && !(stat(mp, &sb) == 0 && sb.st_size > 0); w++) sleep_ms(0.5);
        kill(pid, sigs[i]);
        int st = wait_status(pid);
        FILE *f = fopen(log, "r");
        size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
        out[n] = 0;
        if (f) fclose(f);
        static char got[1 << 15];
        int lines = curve(d, got, sizeof got);
        int done = lines == 40; /* the signal came after the last step started: nothing to resume */
        fails += NL_CHECK(WIFEXITED(st) && (WEXITSTATUS(st) == 128 + sigs[i] || (done && WEXITSTATUS(st) == 0)),
                          "exit status %d", st);
        if (!done) {
            char want[256];
            snprintf(want, sizeof want, "Resume with: normlab train --resume %s", d);
            fails += NL_CHECK(strstr(out, want) && strstr(out, i ? "SIGTERM" : "SIGINT"), "message: %s", out);
            fails += NL_CHECK(exists("%s/ckpt-%08d.safetensors", d, lines), "checkpoint at the last logged step %d",
                              lines);
        }
        fails += resume_matches(d, "");
    }
    remove_tmpdir();
    return fails;
}

/* A full disk (RLIMIT_FSIZE, SIGXFSZ ignored) during a checkpoint write: a clear error, exit 1, the
 * previous checkpoint intact, no temporary file; an unwritable run directory: a clear error. */
int test_disk_full(void) {
    int fails = 0;
    make_tmpdir("disk");
    fails += make_ref_with("");
    char d[128], log[160], args[1024];
    snprintf(d, sizeof d, "%s/f", tmpdir);
    run("NORMLAB_FAULT=kill-in-ckpt:20 %s train " TINY " --steps 40 --ckpt-every 10 --data %s --out %s 2>&1",
        nl_test_bin(), txt, d);
    snprintf(log, sizeof log, "%s/f.log", tmpdir);
    snprintf(args, sizeof args, "--resume %s", d);
    /* the limit must be set in the child before exec: fork, limit, exec */
    pid_t pid = fork();
    NL_ASSERT(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = { 100000, 100000 }; /* config and metrics fit, a 431 kB checkpoint does not */
        setrlimit(RLIMIT_FSIZE, &rl);
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "exec %s train %s >%s 2>&1", nl_test_bin(), args, log);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int st = wait_status(pid);
    FILE *f = fopen(log, "r");
    size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
    out[n] = 0;
    if (f) fclose(f);
    fails += NL_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1 &&
                              strstr(out, "ckpt-00000020.safetensors' failed: File too large"),
                      "full disk: exit 1 and a clear error: %s", out);
    int nck = 0;
    fails += ckpts_sound(d, &nck);
    fails += NL_CHECK(nck == 1 && exists("%s/ckpt-00000010.safetensors", d) && count_files(d, ".tmp.") == 0,
                      "checkpoint 10 intact, no temporary file left");
    fails += resume_matches(d, "");
    /* a run directory that cannot be created: its parent is a regular file */
    fails += NL_CHECK(run("%s train " TINY " --steps 2 --data %s --out %s/sub 2>&1", nl_test_bin(), txt, txt) == 1 &&
                              strstr(out, "cannot create directory"),
                      "unwritable run directory: %s", out);
    remove_tmpdir();
    return fails;
}

/* NaN in the gradients at step 15 (NORMLAB_FAULT) or a learning rate that blows up: --on-nan stop
 * stops with a message and exit 1; rollback restores checkpoint 10 and skips the batch; no
 * checkpoint ever holds a NaN. */
int test_divergence(void) {
    int fails = 0;
    make_tmpdir("nan");
    fails += make_ref_with("");
    char d[128];
    snprintf(d, sizeof d, "%s/stop", tmpdir);
    int rc = run("NORMLAB_FAULT=nan-at:15 %s train " TINY " --steps 40 --ckpt-every 10 --data %s --out %s 2>&1",
                 nl_test_bin(), txt, d);
    fails += NL_CHECK(rc == 1 && strstr(out, "training diverged at step 15") && strstr(out, "--on-nan stop"),
                      "stop: exit %d: %s", rc, out);
    int nck = 0;
    fails += ckpts_sound(d, &nck);
    fails += NL_CHECK(nck == 1, "only checkpoint 10");
    static char got[1 << 15];
    /* steps 1-14 as the reference, then the record of the diverged step */
    fails += NL_CHECK(curve(d, got, sizeof got) == 15, "14 steps and a divergence record logged");
    char *rec = strstr(got, "{\"step\": 15, \"diverged\": \"nonfinite\"");
    fails += NL_CHECK(rec && !strncmp(got, ref, (size_t)(rec - got)) && !strchr(rec, '|')[1],
                      "steps 1-14 as the reference, then the divergence record");

    snprintf(d, sizeof d, "%s/rb", tmpdir);
    rc = run("NORMLAB_FAULT=nan-at:15 %s train " TINY
             " --steps 40 --ckpt-every 10 --on-nan rollback --data %s --out %s 2>&1",
             nl_test_bin(), txt, d);
    fails += NL_CHECK(rc == 0 && strstr(out, "step 15 diverged") && strstr(out, "rolled back to step 10"),
                      "rollback: exit %d: %s", rc, out);
    int lines = curve(d, got, sizeof got);
    char *s15 = strstr(got, "{\"step\": 15,"), *r15 = strstr(ref, "{\"step\": 15,");
    fails += NL_CHECK(lines == 40 && s15 && r15 && s15 - got == r15 - ref && !strncmp(got, ref, (size_t)(s15 - got)),
                      "40 steps logged once each; steps 1-14 as the reference");
    fails += NL_CHECK(s15 && r15 && strncmp(s15, r15, 40) != 0, "step 15 trained on another batch");
    fails += ckpts_sound(d, NULL);
    /* interrupted after the rollback, resumed: the skipped batch is remembered by the checkpoint */
    static char full[1 << 15];
    strcpy(full, got);
    run("rm %s/ckpt-00000030.safetensors %s/ckpt-00000040.safetensors", d, d);
    rc = run("%s train --resume %s 2>&1", nl_test_bin(), d);
    curve(d, got, sizeof got);
    fails += NL_CHECK(rc == 0 && !strcmp(got, full), "resume after a rollback: the same curve");

    snprintf(d, sizeof d, "%s/max", tmpdir);
    rc = run("NORMLAB_FAULT=nan-at:15 %s train " TINY
             " --steps 40 --ckpt-every 10 --on-nan rollback --max-rollbacks 0 --data %s --out %s 2>&1",
             nl_test_bin(), txt, d);
    fails += NL_CHECK(rc == 1 && strstr(out, "after 0 rollbacks (--max-rollbacks 0)"), "--max-rollbacks 0: %s", out);
    /* a real blow-up: every step diverges, the rollbacks run out, nothing NaN is written */
    snprintf(d, sizeof d, "%s/lr", tmpdir);
    rc = run("%s train " TINY " --steps 40 --ckpt-every 1 --lr 1e30 --warmup 0 --on-nan rollback --data %s --out %s 2>&1",
             nl_test_bin(), txt, d);
    fails += NL_CHECK(rc == 1 && strstr(out, "after 3 rollbacks"), "--lr 1e30: exit %d: %s", rc, out);
    fails += ckpts_sound(d, &nck);
    fails += NL_CHECK(run("%s train " TINY " --on-nan maybe --data %s 2>&1", nl_test_bin(), txt) == 2 &&
                              strstr(out, "not stop|rollback"),
                      "%s", out);
    remove_tmpdir();
    return fails;
}

/* metrics.jsonl on resume: complete lines of steps 1..k in rising order survive, nothing else */
int test_metrics_keep(void) {
    int fails = 0;
    char b[512];
    strcpy(b,
           "{\"step\": 1, \"loss\": 5}\n{\"step\": 2, \"loss\": 4}\ngarbage\n{\"step\": 2, \"loss\": 9}\n{\"step\": 3}\n{\"step\": 4, \"lo");
    size_t n = nl_metrics_keep(b, strlen(b), 3);
    b[n] = 0;
    fails += NL_CHECK(!strcmp(b, "{\"step\": 1, \"loss\": 5}\n{\"step\": 2, \"loss\": 4}\n{\"step\": 3}\n"), "kept: %s",
                      b);
    strcpy(b, "{\"step\": 1}\n{\"step\": 2}\n");
    n = nl_metrics_keep(b, strlen(b), 1);
    fails += NL_CHECK(n == 12, "cut at step 1");
    strcpy(b, "{\"step\": 99999999999999}\n{\"step\": -1}\n{\"step\": }\n\n");
    fails += NL_CHECK(nl_metrics_keep(b, strlen(b), 2147483647) == 0, "no bad line kept");
    /* diagnostic records: those of passes before the cut stay, the pass at the cut is redone */
    strcpy(b,
           "{\"diag\": 0, \"loss\": 5}\n{\"step\": 1}\n{\"step\": 2}\n{\"diag\": 2, \"loss\": 4}\n{\"step\": 3}\n{\"diag\": 1}\n{\"diag\": x}\n");
    n = nl_metrics_keep(b, strlen(b), 2);
    b[n] = 0;
    fails += NL_CHECK(!strcmp(b, "{\"diag\": 0, \"loss\": 5}\n{\"step\": 1}\n{\"step\": 2}\n{\"diag\": 1}\n"),
                      "diag lines kept: %s", b);
    return fails;
}
