/* api.c -- the library API of include/normlab.h over the internal modules. */
#include "bpe.h"
#include "ckpt.h"
#include "common.h"
#include "config.h"
#include "loss_scaler.h"
#include "model.h"
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct nl_trainer {
    nl_model m;
    int step;
    int *inp, *tgt;
    nl_loss_scaler ls; /* dtype fp16: dynamic loss scaling, as in normlab train */
};

nl_status nl_config_set(nl_config *c, const char *key, const char *value) {
    nl_args a;
    nl_args_defaults(&a);
    a.cfg = *c;
    if (nl_config_key_kind(key) == 0) return NL_FAIL(NL_ERR_ARG, "unknown option '%s'", key);
    NL_TRY(nl_args_set(&a, NL_CMD_TRAIN, key, value));
    *c = a.cfg;
    return NL_OK;
}

nl_status nl_trainer_create(nl_trainer **out, const nl_config *c) {
    *out = NULL;
    nl_trainer *t = nl_xcalloc(sizeof *t);
    nl_status st = nl_model_init(&t->m, c);
    if (st != NL_OK) {
        nl_model_free(&t->m);
        free(t);
        return st;
    }
    const nl_config *r = &t->m.cfg;
    if (r->dtype == NL_DTYPE_FP16)
        st = nl_loss_scaler_init(&t->ls, r->loss_scale, 2.0, 0.5, r->loss_scale_interval, NL_LOSS_SCALE_MIN,
                                 NL_LOSS_SCALE_MAX);
    if (st != NL_OK) {
        nl_trainer_free(t);
        return st;
    }
    if (r->threads > 0) nl_set_threads(r->threads);
    nl_model_alloc_acts(&t->m, r->batch, r->seq_len);
    t->inp = nl_xmalloc((size_t)r->batch * r->seq_len * sizeof(int));
    t->tgt = nl_xmalloc((size_t)r->batch * r->seq_len * sizeof(int));
    *out = t;
    return NL_OK;
}

void nl_trainer_free(nl_trainer *t) {
    if (!t) return;
    nl_model_free(&t->m);
    free(t->inp);
    free(t->tgt);
    free(t);
}

const nl_config *nl_trainer_config(const nl_trainer *t) { return &t->m.cfg; }

/* splits n windows of T + 1 tokens into inputs and targets, checking the ids */
static nl_status split(nl_trainer *t, const int *w, int n) {
    const int T = t->m.cfg.seq_len, V = t->m.cfg.vocab;
    for (int b = 0; b < n; b++)
        for (int k = 0; k <= T; k++) {
            const int id = w[(size_t)b * (T + 1) + k];
            if (id < 0 || id >= V)
                return NL_FAIL(NL_ERR_ARG, "token id %d (window %d, position %d) is outside the vocabulary of %d", id,
                               b, k, V);
            if (k < T) t->inp[(size_t)b * T + k] = id;
            if (k > 0) t->tgt[(size_t)b * T + k - 1] = id;
        }
    return NL_OK;
}

nl_status nl_trainer_step(nl_trainer *t, const int *windows, double *loss) {
    nl_model *m = &t->m;
    const nl_config *c = &m->cfg;
    NL_TRY(split(t, windows, c->batch));
    const int fp16 = c->dtype == NL_DTYPE_FP16;
    const double S = fp16 ? t->ls.scale : 1.0;
    nl_model_zero_grad(m);
    const float dscale = 1.0f / ((float)c->batch * c->seq_len);
    const double l = nl_model_forward(m, t->inp, t->tgt, c->batch, c->seq_len, (float)(dscale * S)); /* S: a power of two */
    nl_model_backward(m);
    const double gs = nl_grad_norm(m), gn = gs / S;
    if (loss) *loss = l;
    if (fp16 && nl_loss_scaler_skips(&t->ls, l, gs)) { /* a gradient overflowed: no update, half the scale */
        nl_loss_scaler_update(&t->ls, 0);
        t->step++;
        return NL_OK;
    }
    if (!isfinite(l) || !isfinite(gn))
        return NL_FAIL(NL_ERR_FORMAT, "training diverged at step %d (loss %g, grad norm %g)", t->step + 1, l, gn);
    nl_adamw_step(m, nl_lr_at(c, t->step), nl_clip_scale(gn, c->clip) / S, t->step + 1 - (int)t->ls.skipped);
    if (fp16) nl_loss_scaler_update(&t->ls, 1);
    t->step++;
    return NL_OK;
}

nl_status nl_trainer_eval(nl_trainer *t, const int *windows, int n, double *loss) {
    const int B = t->m.cfg.batch, T = t->m.cfg.seq_len;
    if (n < 1) return NL_FAIL(NL_ERR_ARG, "nl_trainer_eval: %d windows", n);
    double sum = 0.0;
    for (int w0 = 0; w0 < n; w0 += B) {
        const int nb = n - w0 < B ? n - w0 : B;
        NL_TRY(split(t, windows + (size_t)w0 * (T + 1), nb));
        sum += (double)nl_model_forward(&t->m, t->inp, t->tgt, nb, T, 0.0f) * nb;
    }
    *loss = sum / n;
    return NL_OK;
}

nl_status nl_trainer_export(const nl_trainer *t, const char *path) { return nl_export(&t->m, path); }

int *nl_bpe_tokenize(nl_bpe *b, const char *text, size_t n, size_t *ntok) {
    nl_ids ids = { 0 };
    nl_bpe_encode(b, text, n, &ids);
    *ntok = ids.n;
    if (!ids.v) ids.v = nl_xmalloc(sizeof(int));
    return ids.v;
}
