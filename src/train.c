/* train.c -- see train.h. */
#include "train.h"

#include "ckpt.h"
#include "comm.h"
#include "common.h"
#include "config.h"
#include "diag.h"
#include "dit.h"
#include "dp.h"
#include "loss_scaler.h"
#include "optim.h"
#include "placement.h"
#include "progress.h"
#include "sample.h"
#include "tboard.h"
#include "tokenize.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- paths */

nl_status nl_find_data(char *path, size_t cap) {
    if (path[0] || nl_find_shipped("tinyshakespeare.txt", path, cap)) return NL_OK;
    return NL_FAIL(NL_ERR_ARG, "--data not given and data/tinyshakespeare.txt not found in the working directory or the "
                               "repository. HINT: pass --data FILE (any text file)");
}

/* ---------------------------------------------------------------- memory */

nl_status nl_check_memory(const nl_config *c, int B, int T, int training) {
    /* parameters (x4 when training: grads and AdamW moments) and an upper estimate of the
     * activations: the per-block buffers of widths C, qkv and the MLP, the (B, H, T, T) attention maps,
     * the logits; the config is resolved */
    const double C = c->dim, L = c->layers, N = (double)B * T, Vp = c->vocab_padded, F = c->ffn_dim;
    const double QKV = C + 2.0 * C / c->heads * c->kv_heads, FW = c->arch != NL_ARCH_GPT2 ? 3.0 * F : 2.0 * F;
    const double params = nl_config_matrix_params(c) + L * (16.0 * C + 2.0 * F) + 4.0 * C;
    const double acts = N * (8.0 * C + L * (32.0 * C + 3.0 * QKV + 2.0 * FW)) +
                        2.0 * L * B * (double)c->heads * T * T * 2.0 + 2.0 * N * Vp;
    const double need = 4.0 * (params * (training ? 4.0 : 1.0) + acts);
    const long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    const double have = pages > 0 && psize > 0 ? (double)pages * (double)psize : 1e18;
    if (N > 1 << 30)
        return NL_FAIL(NL_ERR_ARG, "--batch %d x --seq-len %d is more than 2^30 tokens per micro-batch", B, T);
    /* on a GPU the numbers live in device memory: an allocation that does not fit fails with one line there */
    if (need > have && c->device == NL_DEVICE_CPU)
        return NL_FAIL(NL_ERR_ARG,
                       "this model and batch need about %.3g GB of memory, more than the machine's %.3g GB "
                       "(L=%d d=%d H=%d T=%d V=%d, batch %d): lower --batch, --seq-len, --dim or --layers",
                       need / 1e9, have / 1e9, c->layers, c->dim, c->heads, T, c->vocab, B);
    return NL_OK;
}

/* ---------------------------------------------------------------- evaluation */

nl_status nl_eval_stride(nl_model *m, const nl_tokens *t, int max_windows, int stride, int B, double *nll, size_t *ntok,
                         double *nbytes) {
    const int T = m->cfg.seq_len;
    if (stride <= 0) stride = T;
    if (stride > T) return NL_FAIL(NL_ERR_ARG, "--stride %d: must not exceed seq-len %d", stride, T);
    size_t W = t->n > (size_t)T ? (t->n - 1 - (size_t)T) / (size_t)stride + 1 : 0;
    if (max_windows > 0 && (size_t)max_windows < W) W = (size_t)max_windows;
    if (W == 0) return NL_FAIL(NL_ERR_ARG, "the data holds %zu tokens, fewer than seq-len + 1 = %d", t->n, T + 1);
    if (t->max_token >= m->cfg.vocab)
        return NL_FAIL(NL_ERR_ARG, "the data holds token id %d, outside the model's vocabulary of %d", t->max_token,
                       m->cfg.vocab);
    if ((size_t)B > W) B = (int)W;
    if (m->B < B || m->T < T) {
        NL_TRY(nl_check_memory(&m->cfg, B, T, 0));
        nl_model_alloc_acts(m, B, T);
    }
    int *buf = nl_xmalloc((size_t)B * (T + 1) * sizeof(int)), *inp = nl_xmalloc((size_t)B * T * sizeof(int)),
        *tgt = nl_xmalloc((size_t)B * T * sizeof(int));
    float *losses = nl_xmalloc((size_t)B * T * sizeof(float)); /* host copy of the token losses */
    double sum = 0.0, bytes = 0.0;
    size_t count = 0;
    for (size_t w0 = 0; w0 < W; w0 += (size_t)B) {
        const int nb = W - w0 < (size_t)B ? (int)(W - w0) : B;
        for (int b = 0; b < nb; b++) {
            nl_tokens_read(t, (w0 + (size_t)b) * (size_t)stride, (size_t)T + 1, buf + (size_t)b * (T + 1));
            memcpy(inp + (size_t)b * T, buf + (size_t)b * (T + 1), (size_t)T * sizeof(int));
            memcpy(tgt + (size_t)b * T, buf + (size_t)b * (T + 1) + 1, (size_t)T * sizeof(int));
        }
        nl_model_forward(m, inp, tgt, nb, T, 0.0f);
        m->be->to_host(losses, m->losses, (size_t)nb * T * sizeof(float));
        for (int b = 0; b < nb; b++) { /* the first window scores all T targets, later ones the new `stride` */
            const int first = w0 + (size_t)b == 0 ? 0 : T - stride;
            for (int k = first; k < T; k++) {
                sum += losses[(size_t)b * T + k];
                bytes += nl_token_bytes(&m->cfg, tgt[(size_t)b * T + k]);
            }
            count += (size_t)(T - first);
        }
    }
    free(buf);
    free(inp);
    free(tgt);
    free(losses);
    *nll = sum;
    *ntok = count;
    if (nbytes) *nbytes = bytes;
    return NL_OK;
}

nl_status nl_eval_windows(nl_model *m, const nl_tokens *t, int max_windows, int B, double *loss, size_t *ntok) {
    double nll;
    NL_TRY(nl_eval_stride(m, t, max_windows, 0, B, &nll, ntok, NULL));
    *loss = nll / (double)*ntok;
    return NL_OK;
}

/* ---------------------------------------------------------------- training */

static void fmt_time(char *b, size_t n, double s) {
    if (s < 60) snprintf(b, n, "%.0fs", s);
    else if (s < 3600) snprintf(b, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(b, n, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
}

static nl_status write_config(const nl_config *c, const char *dir) {
    char path[NL_PATH_MAX + 16], tmp[NL_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/config.txt", dir);
    nl_kv *kv = nl_xmalloc(NL_CONFIG_MAX_KV * sizeof *kv);
    const int n = nl_config_to_kv(c, kv, NL_CONFIG_MAX_KV);
    NL_ASSERT(n <= NL_CONFIG_MAX_KV);
    FILE *f;
    nl_status st = nl_write_atomic_begin(path, tmp, sizeof tmp, &f);
    if (st == NL_OK) {
        fprintf(f, "# normlab train config (key = value); the resolved options of this run\n");
        for (int i = 0; i < n; i++) fprintf(f, "%s = %s\n", kv[i].key, kv[i].val);
        st = nl_write_atomic_commit(path, tmp, f);
    }
    free(kv);
    return st;
}

/* ---------------------------------------------------------------- metrics.jsonl */

/* parses N of a line "<pre>N, ..." (pre: "{\"step\": " or "{\"diag\": ", the way train writes them);
 * -1 if not one */
static long long line_num(const char *s, size_t n, const char *pre) {
    const size_t np = strlen(pre);
    if (n <= np || memcmp(s, pre, np)) return -1;
    long long v = 0;
    size_t i = np, d = i;
    while (i < n && s[i] >= '0' && s[i] <= '9' && i - d < 10) v = v * 10 + (s[i++] - '0');
    if (i == d || i >= n || (s[i] != ',' && s[i] != '}') || s[n - 1] != '}') return -1;
    return v;
}

size_t nl_metrics_keep(char *buf, size_t n, int max_step) {
    size_t out = 0, i = 0;
    long long last = 0, last_diag = -1;
    while (i < n) {
        const char *nl = memchr(buf + i, '\n', n - i);
        if (!nl) break; /* a partial last line (killed mid-write) */
        size_t len = (size_t)(nl - (buf + i));
        long long s = line_num(buf + i, len, "{\"step\": "), d = s < 0 ? line_num(buf + i, len, "{\"diag\": ") : -1;
        if ((s > last && s <= max_step) || (d > last_diag && d < max_step)) {
            memmove(buf + out, buf + i, len + 1);
            out += len + 1;
            if (s >= 0) last = s;
            else last_diag = d;
        }
        i += len + 1;
    }
    return out;
}

/* the last "time_s" value in buf[0, n) (lines ending in '}' and '\n'), 0 if none */
static double last_time_s(const char *buf, size_t n) {
    static const char key[] = "\"time_s\": ";
    const size_t k = sizeof key - 1;
    for (size_t i = n >= k ? n - k + 1 : 0; i-- > 0;)
        if (!memcmp(buf + i, key, k)) return strtod(buf + i + k, NULL);
    return 0.0;
}

/* rewrites path (atomically) keeping the lines of steps 1..max_step; *time_s (if not NULL): the
 * time_s of the last line kept, where a resumed run's clock continues */
static nl_status metrics_truncate(const char *path, int max_step, double *time_s) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0;
    if (f) {
        size_t cap = 0, got;
        do {
            if (n == cap) {
                cap = cap ? 2 * cap : 1 << 16;
                buf = nl_xresize(buf, n, cap, 1);
            }
            got = fread(buf + n, 1, cap - n, f);
            n += got;
        } while (got > 0);
        int err = ferror(f);
        fclose(f);
        if (err) {
            free(buf);
            return NL_FAIL(NL_ERR_IO, "cannot read '%s'", path);
        }
    } else if (errno != ENOENT) {
        return NL_FAIL(NL_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
    }
    n = n ? nl_metrics_keep(buf, n, max_step) : 0;
    if (time_s) *time_s = last_time_s(buf, n);
    char tmp[NL_PATH_MAX + 64];
    nl_status st = nl_write_atomic_begin(path, tmp, sizeof tmp, &f);
    if (st == NL_OK) {
        if (n) fwrite(buf, 1, n, f);
        st = nl_write_atomic_commit(path, tmp, f);
    }
    free(buf);
    return st;
}

/* ---------------------------------------------------------------- the run */

typedef struct run {
    nl_config *c;
    const char *resume; /* checkpoint to continue from, or NULL */
    int overwrite;      /* a fresh run may replace the run files in its directory */
    nl_tokens all, train, val, valfile;
    const nl_tokens *v; /* validation stream or NULL */
    nl_model m;
    FILE *metrics;
    char metrics_path[NL_PATH_MAX + 32];
    int *buf, *inp, *tgt;
    int lock_fd;
    nl_ckpt_info info;              /* step, data RNG, rollbacks, skipped batches: the state beside the tensors */
    int saved_step;                 /* the step of the newest checkpoint on disk, -1: none */
    double time0;                   /* time_s at the resumed step: metrics.jsonl reads as one run */
    int fault_nan, fault_kill_ckpt; /* NORMLAB_FAULT (tests): steps, 0: none */
    nl_diag diag;                   /* --diag-every: statistics of the fixed batch dinp/dtgt */
    int *dinp, *dtgt, dB;
    nl_spikes spikes;
    nl_diverge diverge;
    nl_tb tb;                 /* TensorBoard event file */
    nl_progress prog;         /* the terminal progress line */
    nl_dp dp;                 /* the MPI ranks training this model (one in a single process) */
    int lead;                 /* rank 0: writes the run directory, metrics and logs */
    int check_every;          /* NORMLAB_DP_CHECK: compare the ranks' parameters every N steps (0: never) */
    int kill_rank, kill_step; /* NORMLAB_FAULT kill-rank:R:K: rank R SIGKILLs itself at step K */
    int stop_rank, stop_step; /* NORMLAB_FAULT stop-rank:R:K: rank R SIGSTOPs itself at step K (hangs) */
    int skew_rank, skew_step; /* NORMLAB_FAULT skew-rank:R:K: rank R changes a parameter after step K */
    nl_loss_scaler ls;        /* --dtype fp16: dynamic loss scaling (docs/numerics.md §4) */
    int fp16;
    /* --arch dit: images instead of token streams; a flow-matching batch (x_t, v, t, y) and the diagnostic one */
    int dit;
    nl_images itrain, ival;
    float *xt, *vv, *tt, *dxt, *dvv, *dtt;
    int *yy, *dyy;
} run;

static void run_free(run *r) {
    nl_dp_free(&r->dp);
    nl_model_free(&r->m);
    if (r->metrics) fclose(r->metrics);
    if (r->lock_fd > 0) close(r->lock_fd);
    nl_tokens_close(&r->train);
    nl_tokens_close(&r->val);
    nl_tokens_close(&r->valfile);
    nl_tokens_close(&r->all);
    free(r->buf);
    free(r->inp);
    free(r->tgt);
    nl_diag_free(&r->diag);
    free(r->dinp);
    free(r->dtgt);
    nl_diverge_free(&r->diverge);
    nl_tb_close(&r->tb);
    nl_images_free(&r->itrain);
    nl_images_free(&r->ival);
    free(r->xt), free(r->vv), free(r->tt), free(r->yy);
    free(r->dxt), free(r->dvv), free(r->dtt), free(r->dyy);
}

/* the seed of the held-out flow-matching batches (the same noise and t at every evaluation, for every run of a
 * data set: placements compare on the same numbers) */
#define DIT_EVAL_SEED 0x5EEDF10Bull

/* The diagnostic batch: the first B consecutive windows of the validation stream (of the training
 * stream when there is none), fixed for the whole run. */
static void diag_setup(run *r) {
    const nl_config *c = r->c;
    if (r->dit) { /* the first B held-out images (training images without a held-out set), fixed t and noise */
        const nl_images *im = r->ival.n ? &r->ival : &r->itrain;
        const size_t TP = (size_t)c->seq_len * r->m.P;
        r->dB = im->n < c->batch ? im->n : c->batch;
        r->dxt = nl_xmalloc((size_t)r->dB * TP * sizeof(float));
        r->dvv = nl_xmalloc((size_t)r->dB * TP * sizeof(float));
        r->dtt = nl_xmalloc((size_t)r->dB * sizeof(float));
        r->dyy = nl_xmalloc((size_t)r->dB * sizeof(int));
        int *idx = nl_xmalloc((size_t)r->dB * sizeof(int));
        for (int b = 0; b < r->dB; b++) idx[b] = b;
        nl_rng rng;
        nl_rng_seed(&rng, DIT_EVAL_SEED);
        nl_dit_fm_batch(c, im, &rng, idx, r->dB, 0.0, r->dxt, r->dvv, r->dtt, r->dyy);
        free(idx);
        nl_diag_init(&r->diag, &r->m);
        return;
    }
    const nl_tokens *t = r->v ? r->v : &r->train;
    const int T = c->seq_len;
    size_t W = (t->n - 1) / (size_t)T;
    r->dB = W < (size_t)c->batch ? (int)W : c->batch;
    r->dinp = nl_xmalloc((size_t)r->dB * (T + 1) * sizeof(int));
    r->dtgt = nl_xmalloc((size_t)r->dB * T * sizeof(int));
    for (int b = 0; b < r->dB; b++) {
        int *w = r->dinp + (size_t)b * T; /* read T+1 tokens in place, then move the targets out */
        nl_tokens_read(t, (size_t)b * T, (size_t)T + 1, w);
        memcpy(r->dtgt + (size_t)b * T, w + 1, (size_t)T * sizeof(int));
    }
    nl_diag_init(&r->diag, &r->m);
}

/* the scaler's state <-> the checkpoint's (fp16 only; loss_scale 0 leaves the scaler as it is) */
static void scaler_to_info(run *r) {
    if (!r->fp16) return;
    r->info.loss_scale = r->ls.scale;
    r->info.loss_scale_clean = r->ls.clean;
    r->info.skipped_steps = (long long)r->ls.skipped;
}
static void scaler_from_info(run *r, const nl_ckpt_info *info) {
    if (!r->fp16 || info->loss_scale <= 0) return;
    r->ls.scale = info->loss_scale;
    r->ls.clean = info->loss_scale_clean;
    r->ls.skipped = (uint64_t)info->skipped_steps;
}

static nl_status diag_step(run *r, int step) {
    r->diag.loss_scale = r->fp16 ? r->ls.scale : 1.0;
    if (r->dit) nl_diag_run_dit(&r->diag, &r->m, r->dxt, r->dtt, r->dyy, r->dvv, r->dB);
    else nl_diag_run(&r->diag, &r->m, r->dinp, r->dtgt, r->dB, r->c->seq_len);
    nl_diag_write_json(&r->diag, step, r->metrics);
    fflush(r->metrics);
    return nl_tb_diag(&r->tb, &r->diag, step);
}

/* A new event file in --tensorboard DIR or the run directory, the older ones cut back to a run
 * continued after `step` steps (-1: a fresh run, which refuses a --tensorboard DIR holding events). */
static nl_status open_tb(run *r, int step) {
    nl_tb_close(&r->tb);
    return nl_tb_open(&r->tb, r->c->tensorboard[0] ? r->c->tensorboard : r->c->out, step);
}

/* NORMLAB_FAULT=nan-at:K,kill-in-ckpt:K,kill-rank:R:K,stop-rank:R:K,skew-rank:R:K (fault injection for tests and drills);
 * NORMLAB_DP_CHECK=N: the ranks compare their parameters every N steps */
static nl_status parse_faults(run *r) {
    const char *e = getenv("NORMLAB_FAULT");
    r->kill_rank = r->stop_rank = r->skew_rank = -1;
    for (const char *p = e; p && *p;) {
        size_t n = strcspn(p, ",");
        int k = 0, q = 0, used = 0;
        if (sscanf(p, "nan-at:%d%n", &k, &used) == 1 && (size_t)used == n && k > 0) r->fault_nan = k;
        else if (sscanf(p, "kill-in-ckpt:%d%n", &k, &used) == 1 && (size_t)used == n && k >= 0) r->fault_kill_ckpt = k;
        else if (sscanf(p, "kill-rank:%d:%d%n", &q, &k, &used) == 2 && (size_t)used == n && q >= 0 && k > 0)
            r->kill_rank = q, r->kill_step = k;
        else if (sscanf(p, "stop-rank:%d:%d%n", &q, &k, &used) == 2 && (size_t)used == n && q >= 0 && k > 0)
            r->stop_rank = q, r->stop_step = k;
        else if (sscanf(p, "skew-rank:%d:%d%n", &q, &k, &used) == 2 && (size_t)used == n && q >= 0 && k > 0)
            r->skew_rank = q, r->skew_step = k;
        else
            return NL_FAIL(NL_ERR_ARG,
                           "NORMLAB_FAULT '%s': expected nan-at:STEP, kill-in-ckpt:STEP, kill-rank:RANK:STEP, stop-rank:RANK:STEP or skew-rank:RANK:STEP, "
                           "comma-separated",
                           e);
        p += n + (p[n] == ',');
    }
    const char *ck = getenv("NORMLAB_DP_CHECK");
    if (ck && *ck) {
        char *end;
        long v = strtol(ck, &end, 10);
        if (*end || v < 0 || v > 1000000)
            return NL_FAIL(NL_ERR_ARG, "NORMLAB_DP_CHECK '%s': expected a step count N >= 0", ck);
        r->check_every = (int)v;
    }
    return NL_OK;
}

/* one trainer per run directory: a second one (say, a resume while the first still runs) is refused */
static nl_status lock_dir(run *r) {
    char path[NL_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/.lock", r->c->out);
    r->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (r->lock_fd < 0) return NL_FAIL(NL_ERR_IO, "cannot write in '%s': %s", r->c->out, strerror(errno));
    if (flock(r->lock_fd, LOCK_EX | LOCK_NB) != 0)
        return NL_FAIL(NL_ERR_IO, "another normlab train is writing '%s' (it holds %s)", r->c->out, path);
    return NL_OK;
}

/* a run's own files: config.txt, metrics.jsonl, evals.jsonl (eval-mc), analyze.json (analyze),
 * ckpt-*.safetensors, and the <name>.tmp.<pid> files a killed writer leaves of them */
static int is_run_file(const char *name) {
    static const char *const fixed[] = { "config.txt", "metrics.jsonl", "evals.jsonl", "analyze.json", "samples.png" };
    const char *tmp = strstr(name, ".tmp.");
    const size_t n = tmp ? (size_t)(tmp - name) : strlen(name);
    for (int i = 0; i < 4; i++)
        if (n == strlen(fixed[i]) && !strncmp(name, fixed[i], n)) return 1;
    if (!strncmp(name, "events.out.tfevents.", 20)) return 1; /* tboard.c's event files */
    return !strncmp(name, "ckpt-", 5) && n > 17 && !strncmp(name + n - 12, ".safetensors", 12);
}

/* A fresh run's directory must not hold another run (its files would mix with the new ones):
 * refused, or with overwrite its run files removed (nothing else). */
static nl_status claim_run_dir(const char *dir, int overwrite) {
    DIR *d = opendir(dir);
    if (!d) return NL_FAIL(NL_ERR_IO, "cannot read '%s': %s", dir, strerror(errno));
    struct dirent *de;
    char p[NL_PATH_MAX + 300];
    nl_status st = NL_OK;
    while (st == NL_OK && (de = readdir(d))) {
        if (!is_run_file(de->d_name)) continue;
        if (!overwrite) {
            st = NL_FAIL(NL_ERR_ARG,
                         "--out '%s' holds a run (%s): continue it with 'normlab train --resume %s', replace it with "
                         "--overwrite, or choose another --out",
                         dir, de->d_name, dir);
            break;
        }
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (unlink(p) != 0) st = NL_FAIL(NL_ERR_IO, "--overwrite: cannot remove '%s': %s", p, strerror(errno));
    }
    closedir(d);
    return st;
}

/* removes what a killed writer left: <name>.tmp.<pid> files */
static void remove_stale_tmp(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char p[NL_PATH_MAX + 300];
    while ((de = readdir(d))) {
        const char *t = strstr(de->d_name, ".tmp.");
        if (t && (!strncmp(de->d_name, "ckpt-", 5) || !strncmp(de->d_name, "metrics.jsonl", 13) ||
                  !strncmp(de->d_name, "config.txt", 10))) {
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
    }
    closedir(d);
}

/* the language models: token streams, training and held-out */
static nl_status setup_tokens(run *r) {
    nl_config *c = r->c;
    NL_TRY(nl_find_data(c->data, sizeof c->data));
    NL_TRY(nl_tokens_open(&r->all, c->data));
    if (c->val_data[0]) NL_TRY(nl_tokens_open(&r->valfile, c->val_data));
    if (c->init_from[0] && c->device != NL_DEVICE_CPU)
        return NL_FAIL(NL_ERR_ARG,
                       "--init-from cannot be combined with --device cuda yet (the importers write host memory)");
    if (c->init_from[0] && !r->resume) NL_TRY(nl_read_model_config(c->init_from, c));
    if (c->vocab == 0) c->vocab = r->all.shards ? 50257 : 256;
    NL_TRY(nl_tokens_encode(&r->all, c)); /* text for a GPT-2-vocabulary model: BPE tokens */
    if (c->val_data[0]) {
        NL_TRY(nl_tokens_encode(&r->valfile, c));
        nl_tokens_split(&r->all, 0.0, &r->train, &r->val);
        r->v = &r->valfile;
    } else {
        nl_tokens_split(&r->all, c->val_frac, &r->train, &r->val);
        r->v = c->val_frac > 0 ? &r->val : NULL;
    }
    int maxtok = r->all.max_token > (r->v ? r->v->max_token : 0) ? r->all.max_token : r->v->max_token;
    if (maxtok >= c->vocab)
        return NL_FAIL(NL_ERR_ARG, "--data holds token id %d, outside the vocabulary of %d (set --vocab)", maxtok,
                       c->vocab);
    NL_TRY(nl_config_resolve(c));
    if (r->train.n < (size_t)c->seq_len + 1)
        return NL_FAIL(NL_ERR_ARG, "--seq-len %d is longer than the training data (%zu tokens)", c->seq_len, r->train.n);
    if (r->v && r->v->n < (size_t)c->seq_len + 1)
        return NL_FAIL(NL_ERR_ARG,
                       "the validation data has %zu tokens, fewer than --seq-len + 1 (raise --val-frac or lower --seq-len)",
                       r->v->n);
    return NL_OK;
}

/* --arch dit: the training images and the held-out ones (--val-data; Fashion-MNIST's test split; else the last
 * --val-frac of the folder); the image shape and classes go into the config */
static nl_status setup_images(run *r) {
    nl_config *c = r->c;
    if (!c->data[0])
        return NL_FAIL(NL_ERR_ARG,
                       "--arch dit: give --data fashion-mnist or --data DIR (a folder of same-size PNG images)");
    if (c->init_from[0]) return NL_FAIL(NL_ERR_ARG, "--init-from: not for --arch dit yet");
    NL_TRY(nl_images_open(&r->itrain, c->data, 0));
    if (c->val_data[0]) NL_TRY(nl_images_open(&r->ival, c->val_data, 1));
    else if (nl_images_is_fmnist(c->data)) NL_TRY(nl_images_open(&r->ival, c->data, 1));
    else nl_images_split(&r->itrain, (int)lround(c->val_frac * r->itrain.n), &r->ival);
    const nl_images *a = &r->itrain, *v = &r->ival;
    if (a->n < 1)
        return NL_FAIL(NL_ERR_ARG, "--data '%s': no training images left after holding out --val-frac %g", c->data,
                       c->val_frac);
    if (v->n && (v->h != a->h || v->w != a->w || v->ch != a->ch || v->nclass != a->nclass))
        return NL_FAIL(NL_ERR_ARG,
                       "--val-data '%s': images of %dx%dx%d (%d classes), the training images are %dx%dx%d (%d classes)",
                       c->val_data, v->w, v->h, v->ch, v->nclass, a->w, a->h, a->ch, a->nclass);
    if (r->resume && (c->img_h != a->h || c->img_w != a->w || c->img_ch != a->ch || c->classes != a->nclass))
        return NL_FAIL(NL_ERR_ARG,
                       "--resume: the run was trained on %dx%dx%d images with %d classes; '%s' holds %dx%dx%d with %d",
                       c->img_w, c->img_h, c->img_ch, c->classes, c->data, a->w, a->h, a->ch, a->nclass);
    c->img_h = a->h, c->img_w = a->w, c->img_ch = a->ch, c->classes = a->nclass;
    NL_TRY(nl_config_resolve(c));
    r->train.n = (size_t)a->n; /* counts images: the resume check and the start line */
    r->v = NULL;
    return NL_OK;
}

static nl_status setup(run *r) {
    nl_config *c = r->c;
    NL_TRY(parse_faults(r));
    NL_TRY(nl_dp_plan(&r->dp, c));
    r->lead = r->dp.rank == 0;
    r->dit = c->arch == NL_ARCH_DIT;
    if (r->dit) NL_TRY(setup_images(r));
    else NL_TRY(setup_tokens(r));
    NL_TRY(nl_check_memory(c, c->batch, c->seq_len, 1));
    memset(&r->info, 0, sizeof r->info);
    r->saved_step = -1;
    if (r->resume) {
        if (c->device != NL_DEVICE_CPU)
            return NL_FAIL(NL_ERR_ARG,
                           "--resume: the run was trained with --device cuda; resuming it is not supported yet (checkpoints load on the CPU)");
        NL_TRY(nl_ckpt_load_info(&r->m, r->resume, &r->info));
        nl_config keep = r->m.cfg;
        r->m.cfg = *c; /* the same model options (both from the checkpoint); the run's other options */
        if (keep.vocab != c->vocab || keep.dim != c->dim || keep.layers != c->layers || keep.seq_len != c->seq_len ||
            keep.dtype != c->dtype)
            return NL_FAIL(NL_ERR_ARG, "--resume: the model in '%s' does not match its config", r->resume);
        if (r->info.data_tokens >= 0 && (size_t)r->info.data_tokens != r->train.n)
            return NL_FAIL(NL_ERR_ARG,
                           "--resume: the training data '%s' now holds %zu tokens; the run was trained on %lld "
                           "(resuming needs the same data)",
                           c->data, r->train.n, r->info.data_tokens);
        if (r->info.step > c->steps)
            return NL_FAIL(NL_ERR_ARG, "--steps %d: the run in '%s' is already at step %d", c->steps, r->resume,
                           r->info.step);
        r->saved_step = r->info.step;
    } else {
        nl_rng_seed(&r->info.rng, c->seed ^ 0x5DEECE66Dull); /* data order: its own stream, independent of init */
        NL_TRY(nl_model_init(&r->m, c));
        if (c->init_from[0]) NL_TRY(nl_import(&r->m, c->init_from));
    }
    r->info.data_tokens = (long long)r->train.n;
    r->fp16 = c->dtype == NL_DTYPE_FP16;
    if (r->fp16) {
        NL_TRY(nl_loss_scaler_init(&r->ls, c->loss_scale, 2.0, 0.5, c->loss_scale_interval, NL_LOSS_SCALE_MIN,
                                   NL_LOSS_SCALE_MAX));
        scaler_from_info(r, &r->info); /* a resumed run continues its scale */
    }
    if (c->device == NL_DEVICE_CUDA) NL_TRY(nl_comm_use_device(1)); /* several ranks: NCCL */
    nl_dp_shard(&r->dp, &r->m);
    nl_model_alloc_acts(&r->m, c->batch, c->seq_len);
    const size_t BT = (size_t)c->batch * c->seq_len;
    r->buf = nl_xmalloc((BT + (size_t)c->batch) * sizeof(int));
    r->inp = nl_xmalloc(BT * sizeof(int));
    r->tgt = nl_xmalloc(BT * sizeof(int));
    if (r->dit) {
        const size_t n = BT * (size_t)r->m.P;
        r->xt = nl_xmalloc(n * sizeof(float));
        r->vv = nl_xmalloc(n * sizeof(float));
        r->tt = nl_xmalloc((size_t)c->batch * sizeof(float));
        r->yy = nl_xmalloc((size_t)c->batch * sizeof(int));
    }
    if (!r->lead) return NL_OK; /* the run directory is rank 0's */
    NL_TRY(nl_mkdir_p(c->out));
    NL_TRY(lock_dir(r));
    if (r->resume) remove_stale_tmp(c->out);
    else NL_TRY(claim_run_dir(c->out, r->overwrite));
    NL_TRY(write_config(c, c->out));
    snprintf(r->metrics_path, sizeof r->metrics_path, "%s/metrics.jsonl", c->out);
    const int cont = r->resume && r->info.step < c->steps; /* a resumed run that has steps to do */
    if (cont) NL_TRY(metrics_truncate(r->metrics_path, r->info.step, &r->time0));
    r->metrics = fopen(r->metrics_path, r->resume ? "a" : "w");
    if (!r->metrics) return NL_FAIL(NL_ERR_IO, "cannot write '%s': %s", r->metrics_path, strerror(errno));
    if (!r->resume || cont) NL_TRY(open_tb(r, r->resume ? r->info.step : c->tensorboard[0] ? -1 : 0));
    return NL_OK;
}

/* B random windows of T+1 tokens from the training stream; keep 0: only the RNG advances (the
 * micro-batch is another rank's) */
static void draw_batch(run *r, nl_rng *rng, int keep) {
    const int B = r->c->batch, T = r->c->seq_len;
    if (r->dit) { /* B random training images, t, labels (dropped with --cfg-drop) and noise: the same draws either way */
        nl_dit_fm_batch(r->c, &r->itrain, rng, NULL, B, r->c->cfg_drop, r->xt, r->vv, r->tt, r->yy);
        return;
    }
    for (int b = 0; b < B; b++) {
        size_t pos = (size_t)nl_rng_below(rng, r->train.n - (size_t)T);
        if (!keep) continue;
        int *w = r->buf + (size_t)b * (T + 1);
        nl_tokens_read(&r->train, pos, (size_t)T + 1, w);
        memcpy(r->inp + (size_t)b * T, w, (size_t)T * sizeof(int));
        memcpy(r->tgt + (size_t)b * T, w + 1, (size_t)T * sizeof(int));
    }
}

/* removes all but the newest keep checkpoints (keep 0: none removed) */
static void prune_ckpts(const char *dir, int keep) {
    int *steps, n;
    if (keep <= 0 || nl_ckpt_list(dir, &steps, &n) != NL_OK) return;
    char p[NL_PATH_MAX + 64];
    for (int i = 0; i + keep < n; i++) {
        nl_ckpt_path(p, sizeof p, dir, steps[i]);
        unlink(p);
    }
    free(steps);
}

static nl_status save_ckpt(run *r, char *path, size_t cap) {
    nl_ckpt_path(path, cap, r->c->out, r->info.step);
    scaler_to_info(r);
    float *mm, *vv, *own_m = r->m.m, *own_v = r->m.v;
    NL_TRY(nl_dp_full_moments(&r->dp, &r->m, &mm, &vv)); /* ZeRO-1: the shards gathered */
    nl_status st = NL_OK;
    if (r->lead) {
        if (r->fault_kill_ckpt && r->fault_kill_ckpt == r->info.step) nl_st_fault_die_mid_write();
        r->m.m = mm, r->m.v = vv;
        st = nl_ckpt_save_info(&r->m, path, &r->info);
        r->m.m = own_m, r->m.v = own_v;
        if (st == NL_OK) prune_ckpts(r->c->out, r->c->keep_ckpts);
    }
    nl_dp_free_moments(&r->dp, &r->m, mm, vv);
    NL_TRY(st);
    r->saved_step = r->info.step;
    return NL_OK;
}

static int skips_at(const run *r, int step) {
    int k = 0;
    for (int i = 0; i < r->info.nskip; i++) k += r->info.skip[i] == step;
    return k;
}

/* A NaN/Inf at `step` (1-based): stop, or restore the newest checkpoint that loads and remember to
 * skip that step's batch. */
static nl_status diverged(run *r, int step, const char *what) {
    const nl_config *c = r->c;
    if (c->on_nan == NL_ON_NAN_STOP)
        return NL_FAIL(NL_ERR_FORMAT,
                       "training diverged at step %d (%s); stopped (--on-nan stop), no checkpoint holds it. "
                       "HINT: lower --lr or raise --warmup, or resume with --on-nan rollback",
                       step, what);
    if (r->info.rollbacks >= c->max_rollbacks || r->info.nskip >= NL_MAX_ROLLBACKS)
        return NL_FAIL(NL_ERR_FORMAT,
                       "training diverged at step %d (%s) after %d rollbacks (--max-rollbacks %d); stopped. "
                       "HINT: lower --lr or raise --warmup",
                       step, what, r->info.rollbacks, c->max_rollbacks);
    int *steps, n;
    NL_TRY(nl_ckpt_list(c->out, &steps, &n));
    nl_status st = NL_FAIL(NL_ERR_IO, "training diverged at step %d (%s) and '%s' holds no checkpoint to roll back to",
                           step, what, c->out);
    char path[NL_PATH_MAX + 64];
    nl_model t;
    nl_ckpt_info ti;
    for (int i = n - 1; i >= 0; i--) {
        if (steps[i] >= step) continue;
        nl_ckpt_path(path, sizeof path, c->out, steps[i]);
        st = nl_ckpt_load_info(&t, path, &ti);
        if (st == NL_OK && t.nparams != r->m.nparams) {
            st = NL_FAIL(NL_ERR_FORMAT, "'%s' holds another model", path);
            nl_model_free(&t);
        }
        if (st == NL_OK) break;
        fprintf(stderr, "normlab train: warning: cannot roll back to %s: %s\n", path, nl_last_error());
    }
    free(steps);
    NL_TRY(st);
    /* t is loaded on the host (CPU backend); the run's backend may be another */
    r->m.be->from_host(r->m.params, t.params, t.nparams * sizeof(float));
    nl_dp_set_moments(&r->dp, &r->m, t.m, t.v);
    nl_model_free(&t);
    r->info.step = ti.step;
    r->info.rng = ti.rng;
    r->info.rollbacks++;
    r->info.skip[r->info.nskip++] = step;
    scaler_from_info(r, &ti);
    if (!r->lead) return NL_OK;
    fclose(r->metrics);
    r->metrics = NULL;
    NL_TRY(metrics_truncate(r->metrics_path, ti.step, NULL));
    r->metrics = fopen(r->metrics_path, "a");
    if (!r->metrics) return NL_FAIL(NL_ERR_IO, "cannot write '%s': %s", r->metrics_path, strerror(errno));
    NL_TRY(open_tb(r, ti.step));
    fprintf(stderr,
            "normlab train: step %d diverged (%s); rolled back to step %d (%s), skipping that batch (rollback %d of at most %d)\n",
            step, what, ti.step, path, r->info.rollbacks, c->max_rollbacks);
    return NL_OK;
}

static volatile sig_atomic_t got_signal;
static int stopped_by;

static void on_signal(int sig) { got_signal = sig; }

int nl_train_interrupted(void) { return stopped_by; }

static nl_status train_loop(run *r) {
    nl_config *c = r->c;
    nl_model *m = &r->m;
    const int tty = isatty(STDERR_FILENO) && r->lead, P = r->dp.size;
    const double tok_step = (double)c->batch * c->seq_len * c->accum * P; /* over all ranks */
    const float dscale = (float)(1.0 / tok_step);
    char kv[32] = "";
    if (c->kv_heads != c->heads) snprintf(kv, sizeof kv, " KV=%d", c->kv_heads);
    if (c->dtype != NL_DTYPE_FP32) snprintf(kv + strlen(kv), sizeof kv - strlen(kv), " %s", nl_dtype_names[c->dtype]);
    if (r->dit)
        printf("normlab train: dit %s (%s), L=%d d=%d H=%d%s F=%d, %dx%dx%d images in %d patches of %dx%d, %d classes, %.2fM params; "
               "%d train / %d val images; run dir %s\n",
               nl_placements[c->placement].name, nl_norm_type_names[c->norm_type], c->layers, c->dim, c->heads, kv,
               c->ffn_dim, c->img_w, c->img_h, c->img_ch, c->seq_len, c->patch, c->patch, c->classes,
               (double)nl_model_trainable_count(m) / 1e6, r->itrain.n, r->ival.n, c->out);
    else
        printf("normlab train: %s %s (%s), L=%d d=%d H=%d%s F=%d T=%d V=%d, %.2fM params; %zu train / %zu val tokens; run dir %s\n",
               nl_arch_names[c->arch], nl_placements[c->placement].name, nl_norm_type_names[c->norm_type], c->layers,
               c->dim, c->heads, kv, c->ffn_dim, c->seq_len, c->vocab, (double)nl_model_trainable_count(m) / 1e6,
               r->train.n, r->v ? r->v->n : 0, c->out);
    if (P > 1) {
        printf("data parallel: %d ranks x batch %d x accum %d = %d sequences per step", P, c->batch, c->accum,
               P * c->batch * c->accum);
        if (r->dp.zero) /* rank 0's shard is the largest (sizes differ by at most one element) */
            printf("; ZeRO-1: AdamW moments %.4g MB per rank instead of %.4g MB",
                   8.0 * (double)(r->dp.hi - r->dp.lo) / 1e6, 8.0 * (double)m->nparams / 1e6);
        printf("\n");
    }
    if (r->resume) printf("resuming from step %d of %d (%s)\n", r->info.step, c->steps, r->resume);
    const int span = c->lr_steps > 0 ? c->lr_steps : c->steps;
    if (c->warmup > span && c->steps > 0 && !r->resume && r->lead)
        fprintf(stderr,
                "normlab train: warning: --warmup %d is longer than the %d-step schedule: the LR stops at %.3g, never reaching --lr %g\n",
                c->warmup, span, nl_lr_at(c, span - 1), c->lr);
    fflush(stdout);
    double t_start = nl_now() - r->time0, val = NAN, train_time = 0.0;
    char ckpt[NL_PATH_MAX + 64] = "";
    if (r->resume) snprintf(ckpt, sizeof ckpt, "%s", r->resume);
    if (r->resume && r->info.step >= c->steps) {
        printf("nothing to do: the run in %s is complete (step %d of %d)\n", c->out, r->info.step, c->steps);
        return NL_OK;
    }
    /* rollback needs a checkpoint to return to */
    if (c->on_nan == NL_ON_NAN_ROLLBACK && r->saved_step < 0 && c->steps > 0) NL_TRY(save_ckpt(r, ckpt, sizeof ckpt));
    if (c->diag_every) diag_setup(r);
    nl_spikes_init(&r->spikes, c->spike_k);
    nl_progress_init(&r->prog, c->log_every);
    nl_diverge_init(&r->diverge, c->diverge_window, c->warmup);
    int fault_nan_fired = 0, steps_run = 0;
    for (int step = r->info.step; step < c->steps; step = r->info.step) {
        if (c->diag_every && step % c->diag_every == 0 && r->lead) NL_TRY(diag_step(r, step));
        if (r->kill_rank == r->dp.rank && r->kill_step == step + 1) raise(SIGKILL); /* NORMLAB_FAULT kill-rank */
        if (r->stop_rank == r->dp.rank && r->stop_step == step + 1) raise(SIGSTOP); /* NORMLAB_FAULT stop-rank */
        double t0 = nl_now(), loss = 0.0;
        const double S = r->fp16 ? r->ls.scale : 1.0; /* the loss scale of this step */
        nl_model_zero_grad(m);
        /* the step's P x accum micro-batches come from one stream: rank q trains numbers q*accum ..
         * q*accum + accum-1, so P ranks see the batches of one process with P x accum */
        for (int k = skips_at(r, step + 1) * c->accum * P; k > 0; k--)
            draw_batch(r, &r->info.rng, 0); /* the batch that diverged */
        for (int j = 0; j < P * c->accum; j++) {
            const int mine = j / c->accum == r->dp.rank;
            draw_batch(r, &r->info.rng, mine);
            if (!mine) continue;
            if (r->dit) /* its loss is a mean already: the gradient of the mean over the step's micro-batches */
                loss += nl_dit_forward(m, r->xt, r->tt, r->yy, r->vv, c->batch, (float)(S / (c->accum * P))) / c->accum;
            else loss += nl_model_forward(m, r->inp, r->tgt, c->batch, c->seq_len, (float)(dscale * S)) / c->accum;
            if (j % c->accum == c->accum - 1)
                nl_dp_overlap(&r->dp); /* the last micro-step: reduce during its backward */
            nl_model_backward(m);
        }
        double dp_wait = 0.0; /* seconds the gradient reduction kept this rank waiting after the backward */
        if (P > 1) {          /* the gradients and the mean loss over the ranks */
            const double tw = nl_now();
            NL_TRY(nl_dp_reduce_grads(&r->dp, m));
            dp_wait = nl_now() - tw;
            NL_TRY(nl_comm_allreduce_sum_f64(&loss, 1));
            loss /= P;
        }
        if (r->fault_nan == step + 1 && !fault_nan_fired) {
            fault_nan_fired = 1;
            const float nan = NAN;
            m->be->from_host(m->grads + m->nparams / 2, &nan, sizeof nan);
        }
        double gn_scaled;
        NL_TRY(nl_dp_grad_norm(&r->dp, m, &gn_scaled));
        const double gn = gn_scaled / S, lr = nl_lr_at(c, step);
        /* fp16: a gradient overflowed -> skip the step and halve the scale (the same on every rank: loss
         * and gradient norm are global) */
        const int skipped = r->fp16 && nl_loss_scaler_skips(&r->ls, loss, gn_scaled);
        const char *why = skipped ? NULL : nl_diverge_push(&r->diverge, step + 1, loss, gn);
        if (why && r->lead) {
            if (tty) fputc('\n', stderr);
            /* a "diverged" record (non-finite values as null: JSON has no NaN) for sweeps and reports */
            fprintf(r->metrics, "{\"step\": %d, \"diverged\": \"%s\", \"loss\": ", step + 1, why);
            fprintf(r->metrics, isfinite(loss) ? "%.6f" : "null", loss);
            fprintf(r->metrics, ", \"grad_norm\": ");
            fprintf(r->metrics, isfinite(gn) ? "%.6g" : "null", gn);
            fprintf(r->metrics, "}\n");
            fflush(r->metrics);
        }
        if (why) {
            if (!strcmp(why, "loss"))
                return NL_FAIL(NL_ERR_FORMAT,
                               "training diverged at step %d: the mean loss of the last %d steps is above the first step's "
                               "loss %g. HINT: lower --lr or raise --warmup",
                               step + 1, c->diverge_window, r->diverge.first);
            char what[96];
            snprintf(what, sizeof what, "loss %g, grad norm %g", loss, gn);
            NL_TRY(diverged(r, step + 1, what));
            continue;
        }
        int spike = 0;
        if (skipped) {
            nl_loss_scaler_update(&r->ls, 0);
        } else {
            spike = nl_spikes_push(&r->spikes, gn);
            /* gradients unscaled inside the update; AdamW's step count leaves out skipped steps */
            NL_TRY(nl_dp_adamw(&r->dp, m, lr, nl_clip_scale(gn, c->clip) / S, step + 1 - (int)r->ls.skipped));
            if (r->fp16) nl_loss_scaler_update(&r->ls, 1);
        }
        r->info.step = step + 1;
        steps_run++;
        const double dt = nl_now() - t0;
        train_time += dt;
        const int last = step + 1 == c->steps;
        int sig = got_signal;                 /* read once: a signal after this line is handled after the next step */
        if (P > 1) NL_TRY(nl_dp_agree(&sig)); /* every rank stops after the same step */
        if (r->skew_rank == r->dp.rank && r->skew_step == step + 1) { /* NORMLAB_FAULT skew-rank: one parameter moves */
            float p0;
            m->be->to_host(&p0, m->params, sizeof p0);
            p0 += 1e-3f;
            m->be->from_host(m->params, &p0, sizeof p0);
        }
        if (r->check_every && (step + 1) % r->check_every == 0) NL_TRY(nl_dp_check_params(&r->dp, m, step + 1));
        const int want_ckpt = (c->ckpt_every && (step + 1) % c->ckpt_every == 0) || last || sig;
        int bad = 0;
        if (want_ckpt) NL_TRY(nl_dp_nonfinite(&r->dp, m, &bad));
        if (bad) {
            /* finite gradients, but the update overflowed: never checkpoint it */
            if (tty) fputc('\n', stderr);
            NL_TRY(diverged(r, step + 1, "a parameter became NaN/Inf in the update"));
            continue;
        }
        int did_eval = 0;
        if (!r->lead) { /* the other ranks write nothing (with ZeRO-1 they send their moment shards) */
            if (want_ckpt) NL_TRY(save_ckpt(r, ckpt, sizeof ckpt));
            if (sig && !last) { /* exit (128 + sig) only once rank 0 has written the checkpoint: mpirun ends the job then */
                NL_TRY(nl_comm_barrier());
                return stopped_by = sig, NL_OK;
            }
            continue;
        }
        const int eval_now = (c->eval_every && (step + 1) % c->eval_every == 0) || last;
        if (r->v && eval_now) {
            size_t nt;
            NL_TRY(nl_eval_windows(m, r->v, c->eval_windows, c->batch, &val, &nt));
            did_eval = 1;
        } else if (r->dit && r->ival.n && eval_now) { /* held-out flow-matching loss on eval-windows x batch images */
            val = nl_dit_eval(m, &r->ival, c->eval_windows * c->batch, DIT_EVAL_SEED);
            did_eval = 1;
        }
        fprintf(r->metrics, "{\"step\": %d, \"loss\": %.6f", step + 1, loss);
        if (did_eval) fprintf(r->metrics, ", \"val_loss\": %.6f", val);
        if (spike) fprintf(r->metrics, ", \"spike\": 1");
        if (c->spike_k > 0) fprintf(r->metrics, ", \"spikes\": %d", r->spikes.count);
        fprintf(r->metrics, ", \"lr\": %.6g, \"grad_norm\": ", lr);
        fprintf(r->metrics, isfinite(gn) ? "%.6g" : "null", gn);
        if (r->fp16) fprintf(r->metrics, ", \"loss_scale\": %.17g%s", S, skipped ? ", \"skipped\": 1" : "");
        if (P > 1) fprintf(r->metrics, ", \"dp_wait_ms\": %.2f", 1e3 * dp_wait);
        fprintf(r->metrics, ", \"tok_per_s\": %.1f, \"time_s\": %.3f}\n", tok_step / dt, nl_now() - t_start);
        if (fflush(r->metrics) != 0 || ferror(r->metrics))
            return NL_FAIL(NL_ERR_IO, "writing '%s' failed: %s", r->metrics_path, strerror(errno));
        NL_TRY(nl_tb_step(&r->tb, step + 1, loss, did_eval ? val : NAN, lr, gn, tok_step / dt));
        char eta[32];
        fmt_time(eta, sizeof eta, train_time / steps_run * (c->steps - step - 1));
        nl_progress_loss(&r->prog, loss);
        if (did_eval) nl_progress_val(&r->prog, val);
        if (tty) {
            char line[512];
            nl_progress_format(&r->prog, step + 1, c->steps, loss, tok_step / dt, eta, 100, line, sizeof line);
            fprintf(stderr, "\r\033[K%s", line);
            if (last) fputc('\n', stderr);
        } else if ((step + 1) % c->log_every == 0 || last || did_eval) {
            printf("step %d/%d loss %.4f lr %.3g grad_norm %.3f %.0f tok/s ETA %s", step + 1, c->steps, loss, lr, gn,
                   tok_step / dt, eta);
            if (did_eval) printf(" val_loss %.4f", val);
            printf("\n");
            fflush(stdout);
        }
        if (want_ckpt)
            NL_TRY(save_ckpt(r, ckpt, sizeof ckpt)); /* after the step's metrics line, which a resume keeps */
        if (sig && !last) {
            if (P > 1) NL_TRY(nl_comm_barrier()); /* the other ranks wait for this checkpoint before they exit */
            stopped_by = sig;
            if (tty) fputc('\n', stderr);
            fprintf(stderr,
                    "normlab train: stopped by %s after step %d of %d; checkpoint %s written. Resume with: normlab train --resume %s\n",
                    sig == SIGINT ? "SIGINT" : "SIGTERM", step + 1, c->steps, ckpt, c->out);
            return NL_OK;
        }
    }
    if (c->steps == 0) NL_TRY(save_ckpt(r, ckpt, sizeof ckpt));
    if (c->diag_every && r->lead) NL_TRY(diag_step(r, c->steps));
    if (r->dit && r->lead && c->steps > 0) { /* RUN/samples.png: 4 x 8 samples, row r of class r (Heun, 16 steps, cfg 2) */
        enum { ROWS = 4, COLS = 8 };
        int y[ROWS * COLS];
        for (int i = 0; i < ROWS * COLS; i++) y[i] = c->classes ? i / COLS % c->classes : 0;
        float *img = nl_xmalloc((size_t)ROWS * COLS * c->img_h * c->img_w * c->img_ch * sizeof(float));
        char path[NL_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/samples.png", c->out);
        nl_dit_sample(m, ROWS * COLS, y, 2.0, 16, 1, c->seed, img);
        nl_status st = nl_dit_grid_png(path, img, ROWS, COLS, c->img_h, c->img_w, c->img_ch);
        free(img);
        NL_TRY(st);
    }
    if (r->v || (r->dit && r->ival.n))
        printf("done: %d steps in %.1fs, val loss %.4f, checkpoint %s\n", c->steps, nl_now() - t_start, val, ckpt);
    else printf("done: %d steps in %.1fs (no validation data), checkpoint %s\n", c->steps, nl_now() - t_start, ckpt);
    return NL_OK;
}

static nl_status train(nl_config *cfg, const char *resume, int overwrite) {
    run r;
    memset(&r, 0, sizeof r);
    r.c = cfg;
    r.resume = resume;
    r.overwrite = overwrite;
    r.lock_fd = -1;
    NL_TRY(nl_comm_init(NULL, NULL)); /* under mpirun: this process is one rank of the job */
    nl_comm_set_timeout(cfg->dp_timeout);
    const int P = nl_comm_size(), rank = nl_comm_rank();
    if (cfg->threads > 0) nl_set_threads(cfg->threads);
    else if (nl_comm_local_size() > 1) { /* the ranks on this machine share its cores */
        const long nc = sysconf(_SC_NPROCESSORS_ONLN) / nl_comm_local_size();
        nl_set_threads(nc > 1 ? (int)nc : 1);
    }
    if (rank > 0 && !freopen("/dev/null", "w", stdout))
        return NL_FAIL(NL_ERR_IO, "rank %d: cannot silence its output", rank);
    if (!cfg->out[0]) { /* the default run directory: rank 0's clock names it */
        char stamp[32];
        time_t now = time(NULL);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
        snprintf(cfg->out, sizeof cfg->out, "runs/%s-%s", nl_placements[cfg->placement].name, stamp);
        if (P > 1) NL_TRY(nl_comm_broadcast(cfg->out, sizeof cfg->out, 0));
    }
    /* SIGINT/SIGTERM: finish the step, checkpoint, exit; a second signal acts at once (SA_RESETHAND) */
    struct sigaction sa, old_int, old_term, old_pipe;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    got_signal = 0;
    stopped_by = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    /* under mpirun a signal also stops mpirun relaying the ranks' output: a progress line must not
     * kill rank 0 (SIGPIPE) before it has written the checkpoint */
    struct sigaction ign = sa;
    ign.sa_handler = SIG_IGN;
    ign.sa_flags = 0;
    sigaction(SIGPIPE, P > 1 ? &ign : NULL, &old_pipe);
    nl_status st = setup(&r);
    if (P > 1) { /* a launch error is every rank's (the same options): each returns it; one rank's own
                  * error (a file it cannot read) ends the job, naming the rank */
        int bad = st != NL_OK, mine = bad;
        if (nl_dp_agree(&bad) != NL_OK) nl_comm_abort(nl_last_error());
        if (bad && !mine) st = NL_FAIL(NL_ERR_IO, "rank %d: another rank failed to start (its message says why)", rank);
    }
    if (st == NL_OK) {
        st = train_loop(&r);
        if (st != NL_OK && P > 1) nl_comm_abort(nl_last_error()); /* never leave the other ranks waiting */
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    run_free(&r);
    return st;
}

nl_status nl_train(nl_config *cfg) { return train(cfg, NULL, 0); }

nl_status nl_train_overwrite(nl_config *cfg) { return train(cfg, NULL, 1); }

nl_status nl_train_resume(nl_config *cfg, const char *ckpt) { return train(cfg, ckpt, 0); }

nl_status nl_resume_find(const char *dir, char *path, size_t cap, nl_config *cfg) {
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return NL_FAIL(NL_ERR_ARG, "--resume '%s': not a run directory", dir);
    int *steps, n;
    NL_TRY(nl_ckpt_list(dir, &steps, &n));
    nl_status st = NL_FAIL(NL_ERR_IO,
                           "--resume '%s': the directory holds no checkpoint (ckpt-*.safetensors) to resume from", dir);
    for (int i = n - 1; i >= 0; i--) {
        if (strlen(dir) + 32 >= cap) {
            st = NL_FAIL(NL_ERR_ARG, "--resume '%s': path too long", dir);
            break;
        }
        nl_ckpt_path(path, cap, dir, steps[i]);
        nl_model t;
        nl_ckpt_info info;
        st = nl_ckpt_read_config(path, cfg);
        if (st == NL_OK) st = nl_ckpt_load_info(&t, path, &info);
        if (st == NL_OK) {
            nl_model_free(&t);
            break;
        }
        fprintf(stderr, "normlab train: warning: skipping %s: %s\n", path, nl_last_error());
        st = NL_FAIL(NL_ERR_IO, "--resume '%s': no checkpoint in it loads (the last error: %s)", dir, nl_last_error());
    }
    free(steps);
    return st;
}

/* ---------------------------------------------------------------- sampling */

static void emit_byte(int token, void *out) {
    fputc(token, out);
    fflush(out);
}

nl_status nl_sample(nl_model *m, const char *prompt, int ntok, double temperature, int top_k, uint64_t seed, FILE *out) {
    const nl_config *c = &m->cfg;
    if (c->vocab > 256)
        return NL_FAIL(NL_ERR_ARG,
                       "sample: this model's vocabulary (%d) is not bytes; only byte-level models can be sampled",
                       c->vocab);
    NL_TRY(nl_check_memory(c, 1, c->seq_len, 0));
    const size_t n = strlen(prompt);
    int *ids = nl_xmalloc((n + 1) * sizeof(int)), len = 0;
    for (const unsigned char *s = (const unsigned char *)prompt; *s; s++) ids[len++] = *s < c->vocab ? *s : 0;
    if (len == 0) ids[len++] = '\n';
    nl_generate(m, ids, len, ntok, temperature, top_k, seed, emit_byte, out);
    free(ids);
    return NL_OK;
}
