/* train.c -- see train.h. */
#include "train.h"

#include "ckpt.h"
#include "common.h"
#include "config.h"
#include "diag.h"
#include "norm.h"
#include "optim.h"
#include "ops.h"

#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- paths */

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

nl_status nl_find_data(char *path, size_t cap) {
    if (path[0]) return NL_OK;
    static const char *const rel[] = { "data/tinyshakespeare.txt", "../shared/data/tinyshakespeare.txt" };
    char exe[NL_PATH_MAX] = "", cand[2 * NL_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) exe[n] = 0;
    char *exedir = n > 0 ? dirname(exe) : NULL;
    for (int k = 0; k < 2; k++) {
        snprintf(cand, sizeof cand, "%s", rel[k]);
        if (file_exists(cand) && strlen(cand) < cap) return snprintf(path, cap, "%s", cand), NL_OK;
        if (!exedir) continue;
        /* the binary lives in build/<config>/ inside the repository */
        snprintf(cand, sizeof cand, "%s/../../%s", exedir, rel[k]);
        if (file_exists(cand) && strlen(cand) < cap) return snprintf(path, cap, "%s", cand), NL_OK;
    }
    return NL_FAIL(NL_ERR_ARG, "--data not given and tinyshakespeare.txt not found in data/ or ../shared/data/. "
                               "HINT: pass --data FILE (any text file), or put the corpus at data/tinyshakespeare.txt");
}

static nl_status mkdir_p(const char *dir) {
    char p[NL_PATH_MAX];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || !*s) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST) return NL_FAIL(NL_ERR_IO, "cannot create directory '%s': %s", p, strerror(errno));
            *s = c;
            if (!c) break;
        }
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return NL_FAIL(NL_ERR_IO, "'%s' is not a directory", dir);
    return NL_OK;
}

/* ---------------------------------------------------------------- evaluation */

nl_status nl_eval_windows(nl_model *m, const nl_tokens *t, int max_windows, int B, double *loss, size_t *ntok) {
    const int T = m->cfg.seq_len;
    size_t W = t->n > 0 ? (t->n - 1) / (size_t)T : 0;
    if (max_windows > 0 && (size_t)max_windows < W) W = (size_t)max_windows;
    if (W == 0) return NL_FAIL(NL_ERR_ARG, "the data holds %zu tokens, fewer than seq-len + 1 = %d", t->n, T + 1);
    if (t->max_token >= m->cfg.vocab) return NL_FAIL(NL_ERR_ARG, "the data holds token id %d, outside the model's vocabulary of %d", t->max_token, m->cfg.vocab);
    if ((size_t)B > W) B = (int)W;
    if (m->B < B || m->T < T) nl_model_alloc_acts(m, B, T);
    int *buf = nl_xmalloc((size_t)B * (T + 1) * sizeof(int)), *inp = nl_xmalloc((size_t)B * T * sizeof(int)),
        *tgt = nl_xmalloc((size_t)B * T * sizeof(int));
    double sum = 0.0;
    for (size_t w0 = 0; w0 < W; w0 += (size_t)B) {
        const int nb = W - w0 < (size_t)B ? (int)(W - w0) : B;
        for (int b = 0; b < nb; b++) {
            nl_tokens_read(t, (w0 + (size_t)b) * T, (size_t)T + 1, buf + (size_t)b * (T + 1));
            memcpy(inp + (size_t)b * T, buf + (size_t)b * (T + 1), (size_t)T * sizeof(int));
            memcpy(tgt + (size_t)b * T, buf + (size_t)b * (T + 1) + 1, (size_t)T * sizeof(int));
        }
        sum += (double)nl_model_forward(m, inp, tgt, nb, T, 0.0f) * nb * T;
    }
    free(buf);
    free(inp);
    free(tgt);
    *ntok = W * (size_t)T;
    *loss = sum / (double)*ntok;
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
    nl_kv kv[64];
    int n = nl_config_to_kv(c, kv, 64);
    FILE *f;
    NL_TRY(nl_write_atomic_begin(path, tmp, sizeof tmp, &f));
    fprintf(f, "# normlab train config (key = value); the resolved options of this run\n");
    for (int i = 0; i < n; i++) fprintf(f, "%s = %s\n", kv[i].key, kv[i].val);
    return nl_write_atomic_commit(path, tmp, f);
}

typedef struct run {
    nl_config *c;
    nl_tokens all, train, val, valfile;
    const nl_tokens *v; /* validation stream or NULL */
    nl_model m;
    FILE *metrics;
    int *buf, *inp, *tgt;
    nl_diag diag;              /* --diag-every: statistics of the fixed batch dinp/dtgt */
    int *dinp, *dtgt, dB;
    nl_spikes spikes;
    nl_diverge diverge;
} run;

static void run_free(run *r) {
    nl_model_free(&r->m);
    if (r->metrics) fclose(r->metrics);
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
}

/* The diagnostic batch: the first B consecutive windows of the validation stream (of the training
 * stream when there is none), fixed for the whole run. */
static void diag_setup(run *r) {
    const nl_config *c = r->c;
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

static void diag_step(run *r, int step) {
    nl_diag_run(&r->diag, &r->m, r->dinp, r->dtgt, r->dB, r->c->seq_len);
    nl_diag_write_json(&r->diag, step, r->metrics);
    fflush(r->metrics);
}

static nl_status setup(run *r) {
    nl_config *c = r->c;
    NL_TRY(nl_find_data(c->data, sizeof c->data));
    NL_TRY(nl_tokens_open(&r->all, c->data));
    if (c->val_data[0]) {
        NL_TRY(nl_tokens_open(&r->valfile, c->val_data));
        nl_tokens_split(&r->all, 0.0, &r->train, &r->val);
        r->v = &r->valfile;
    } else {
        nl_tokens_split(&r->all, c->val_frac, &r->train, &r->val);
        r->v = c->val_frac > 0 ? &r->val : NULL;
    }
    if (c->init_from[0]) NL_TRY(nl_read_model_config(c->init_from, c));
    if (c->vocab == 0) c->vocab = r->all.shards ? 50257 : 256;
    int maxtok = r->all.max_token > (r->v ? r->v->max_token : 0) ? r->all.max_token : r->v->max_token;
    if (maxtok >= c->vocab)
        return NL_FAIL(NL_ERR_ARG, "--data holds token id %d, outside the vocabulary of %d (set --vocab)", maxtok, c->vocab);
    NL_TRY(nl_config_resolve(c));
    if (r->train.n < (size_t)c->seq_len + 1)
        return NL_FAIL(NL_ERR_ARG, "--seq-len %d is longer than the training data (%zu tokens)", c->seq_len, r->train.n);
    if (r->v && r->v->n < (size_t)c->seq_len + 1)
        return NL_FAIL(NL_ERR_ARG, "the validation data has %zu tokens, fewer than --seq-len + 1 (raise --val-frac or lower --seq-len)", r->v->n);
    NL_TRY(nl_model_init(&r->m, c));
    if (c->init_from[0]) NL_TRY(nl_import(&r->m, c->init_from));
    if (!c->out[0]) {
        char stamp[32];
        time_t now = time(NULL);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
        snprintf(c->out, sizeof c->out, "runs/%s-%s", nl_placements[c->norm].name, stamp);
    }
    NL_TRY(mkdir_p(c->out));
    NL_TRY(write_config(c, c->out));
    char path[NL_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/metrics.jsonl", c->out);
    r->metrics = fopen(path, "w");
    if (!r->metrics) return NL_FAIL(NL_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    nl_model_alloc_acts(&r->m, c->batch, c->seq_len);
    const size_t BT = (size_t)c->batch * c->seq_len;
    r->buf = nl_xmalloc((BT + (size_t)c->batch) * sizeof(int));
    r->inp = nl_xmalloc(BT * sizeof(int));
    r->tgt = nl_xmalloc(BT * sizeof(int));
    return NL_OK;
}

/* B random windows of T+1 tokens from the training stream */
static void draw_batch(run *r, nl_rng *rng) {
    const int B = r->c->batch, T = r->c->seq_len;
    for (int b = 0; b < B; b++) {
        size_t pos = (size_t)nl_rng_below(rng, r->train.n - (size_t)T);
        int *w = r->buf + (size_t)b * (T + 1);
        nl_tokens_read(&r->train, pos, (size_t)T + 1, w);
        memcpy(r->inp + (size_t)b * T, w, (size_t)T * sizeof(int));
        memcpy(r->tgt + (size_t)b * T, w + 1, (size_t)T * sizeof(int));
    }
}

static nl_status save_ckpt(run *r, int step, const nl_rng *rng, char *path, size_t cap) {
    snprintf(path, cap, "%s/ckpt-%08d.safetensors", r->c->out, step);
    return nl_ckpt_save(&r->m, path, step, rng);
}

static nl_status train_loop(run *r) {
    nl_config *c = r->c;
    nl_model *m = &r->m;
    nl_rng rng;
    nl_rng_seed(&rng, c->seed ^ 0x5DEECE66Dull); /* data order: its own stream, independent of init */
    const int tty = isatty(STDERR_FILENO);
    const double tok_step = (double)c->batch * c->seq_len * c->accum;
    const float dscale = (float)(1.0 / tok_step);
    printf("normlab train: %s (%s), L=%d d=%d H=%d T=%d V=%d, %.2fM params; %zu train / %zu val tokens; run dir %s\n",
           nl_placements[c->norm].name, nl_norm_type_names[c->norm_type], c->layers, c->dim, c->heads, c->seq_len,
           c->vocab, (double)nl_model_trainable_count(m) / 1e6, r->train.n, r->v ? r->v->n : 0, c->out);
    fflush(stdout);
    double t_start = nl_now(), val = NAN, train_time = 0.0;
    char ckpt[NL_PATH_MAX + 64] = "";
    if (c->diag_every) diag_setup(r);
    nl_spikes_init(&r->spikes, c->spike_k);
    nl_diverge_init(&r->diverge, c->diverge_window, c->warmup);
    for (int step = 0; step < c->steps; step++) {
        if (c->diag_every && step % c->diag_every == 0) diag_step(r, step);
        double t0 = nl_now(), loss = 0.0;
        nl_model_zero_grad(m);
        for (int a = 0; a < c->accum; a++) {
            draw_batch(r, &rng);
            loss += nl_model_forward(m, r->inp, r->tgt, c->batch, c->seq_len, dscale) / c->accum;
            nl_model_backward(m);
        }
        const double gn = nl_grad_norm(m), lr = nl_lr_at(c, step);
        const char *why = nl_diverge_push(&r->diverge, step + 1, loss, gn);
        if (why) {
            if (tty) fputc('\n', stderr);
            /* non-finite values as null (JSON has no NaN) */
            fprintf(r->metrics, "{\"step\": %d, \"diverged\": \"%s\", \"loss\": ", step + 1, why);
            fprintf(r->metrics, isfinite(loss) ? "%.6f" : "null", loss);
            fprintf(r->metrics, ", \"grad_norm\": ");
            fprintf(r->metrics, isfinite(gn) ? "%.6g" : "null", gn);
            fprintf(r->metrics, "}\n");
            fflush(r->metrics);
            if (!strcmp(why, "loss"))
                return NL_FAIL(NL_ERR_FORMAT, "training diverged at step %d: the mean loss of the last %d steps is above the first step's "
                                              "loss %g. HINT: lower --lr or raise --warmup", step + 1, c->diverge_window, r->diverge.first);
            return NL_FAIL(NL_ERR_FORMAT, "training diverged at step %d (loss %g, grad norm %g); no checkpoint written for it. "
                                          "HINT: lower --lr or raise --warmup", step + 1, loss, gn);
        }
        const int spike = nl_spikes_push(&r->spikes, gn);
        nl_adamw_step(m, lr, nl_clip_scale(gn, c->clip), step + 1);
        const double dt = nl_now() - t0;
        train_time += dt;
        const int last = step + 1 == c->steps;
        int did_eval = 0;
        if (r->v && ((c->eval_every && (step + 1) % c->eval_every == 0) || last)) {
            size_t nt;
            NL_TRY(nl_eval_windows(m, r->v, c->eval_windows, c->batch, &val, &nt));
            did_eval = 1;
        }
        fprintf(r->metrics, "{\"step\": %d, \"loss\": %.6f", step + 1, loss);
        if (did_eval) fprintf(r->metrics, ", \"val_loss\": %.6f", val);
        if (spike) fprintf(r->metrics, ", \"spike\": 1");
        if (c->spike_k > 0) fprintf(r->metrics, ", \"spikes\": %d", r->spikes.count);
        fprintf(r->metrics, ", \"lr\": %.6g, \"grad_norm\": %.6g, \"tok_per_s\": %.1f, \"time_s\": %.3f}\n", lr, gn,
                tok_step / dt, nl_now() - t_start);
        fflush(r->metrics);
        char eta[32];
        fmt_time(eta, sizeof eta, train_time / (step + 1) * (c->steps - step - 1));
        if (tty) {
            fprintf(stderr, "\r\033[Kstep %d/%d | loss %.4f", step + 1, c->steps, loss);
            if (!isnan(val)) fprintf(stderr, " | val %.4f", val);
            fprintf(stderr, " | %.0f tok/s | ETA %s", tok_step / dt, eta);
            if (last) fputc('\n', stderr);
        } else if ((step + 1) % c->log_every == 0 || last || did_eval) {
            printf("step %d/%d loss %.4f lr %.3g grad_norm %.3f %.0f tok/s ETA %s", step + 1, c->steps, loss, lr, gn,
                   tok_step / dt, eta);
            if (did_eval) printf(" val_loss %.4f", val);
            printf("\n");
            fflush(stdout);
        }
        if ((c->ckpt_every && (step + 1) % c->ckpt_every == 0) || last) NL_TRY(save_ckpt(r, step + 1, &rng, ckpt, sizeof ckpt));
    }
    if (c->steps == 0) NL_TRY(save_ckpt(r, 0, &rng, ckpt, sizeof ckpt));
    if (c->diag_every) diag_step(r, c->steps);
    if (r->v) printf("done: %d steps in %.1fs, val loss %.4f, checkpoint %s\n", c->steps, nl_now() - t_start, val, ckpt);
    else printf("done: %d steps in %.1fs (no validation data), checkpoint %s\n", c->steps, nl_now() - t_start, ckpt);
    return NL_OK;
}

nl_status nl_train(nl_config *cfg) {
    run r;
    memset(&r, 0, sizeof r);
    r.c = cfg;
    if (cfg->threads > 0) nl_set_threads(cfg->threads);
    nl_status st = setup(&r);
    if (st == NL_OK) st = train_loop(&r);
    run_free(&r);
    return st;
}

/* ---------------------------------------------------------------- sampling */

nl_status nl_sample(nl_model *m, const char *prompt, int ntok, double temperature, int top_k, uint64_t seed, FILE *out) {
    const nl_config *c = &m->cfg;
    if (c->vocab > 256) return NL_FAIL(NL_ERR_ARG, "sample: this model's vocabulary (%d) is not bytes; only byte-level models can be sampled", c->vocab);
    const int T = c->seq_len, V = c->vocab;
    int *ctx = nl_xmalloc((size_t)T * sizeof(int)), len = 0;
    float *p = nl_xmalloc((size_t)V * sizeof(float));
    for (const unsigned char *s = (const unsigned char *)prompt; *s; s++) {
        if (len == T) memmove(ctx, ctx + 1, (size_t)(T - 1) * sizeof(int)), len--;
        ctx[len++] = *s < V ? *s : 0;
    }
    if (len == 0) ctx[len++] = '\n';
    nl_model_alloc_acts(m, 1, T);
    nl_rng rng;
    nl_rng_seed(&rng, seed);
    for (int i = 0; i < ntok; i++) {
        nl_model_forward(m, ctx, NULL, 1, len, 0.0f);
        const float *z = m->logits + (size_t)(len - 1) * c->vocab_padded;
        int next = 0;
        if (temperature <= 0) {
            for (int v = 1; v < V; v++) if (z[v] > z[next]) next = v;
        } else {
            /* keep the top_k logits (ties at the threshold kept), softmax at the temperature */
            float thr = -INFINITY;
            if (top_k > 0 && top_k < V) {
                for (int v = 0; v < V; v++) p[v] = z[v];
                for (int k = 0; k < top_k; k++) { /* k-th largest by selection; V <= 256 */
                    int best = -1;
                    for (int v = 0; v < V; v++) if (p[v] != -INFINITY && (best < 0 || p[v] > p[best])) best = v;
                    thr = p[best];
                    p[best] = -INFINITY;
                }
            }
            float mx = -INFINITY;
            for (int v = 0; v < V; v++) if (z[v] > mx) mx = z[v];
            double sum = 0.0;
            for (int v = 0; v < V; v++) {
                p[v] = z[v] >= thr ? (float)exp((z[v] - mx) / temperature) : 0.0f;
                sum += p[v];
            }
            double u = nl_rng_uniform(&rng) * sum, acc = 0.0;
            next = V - 1;
            for (int v = 0; v < V; v++) {
                acc += p[v];
                if (u < acc) { next = v; break; }
            }
        }
        fputc(next, out);
        fflush(out);
        if (len == T) memmove(ctx, ctx + 1, (size_t)(T - 1) * sizeof(int)), len--;
        ctx[len++] = next;
    }
    free(ctx);
    free(p);
    return NL_OK;
}
