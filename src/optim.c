/* optim.c -- see optim.h. */
#include "optim.h"

#include <math.h>

double nl_lr_at(const nl_config *c, int step) {
    if (step < c->warmup) return c->lr * (double)(step + 1) / (double)c->warmup;
    const int total = c->lr_steps > 0 ? c->lr_steps : c->steps; /* after it: the floor (p clamps to 1) */
    int span = total - c->warmup > 1 ? total - c->warmup : 1;
    double p = (double)(step - c->warmup) / (double)span;
    p = p < 0 ? 0 : p > 1 ? 1 : p;
    return c->lr * (c->min_lr_frac + (1.0 - c->min_lr_frac) * 0.5 * (1.0 + cos(3.141592653589793 * p)));
}

/* Zeroes the gradients of frozen tensors: they take no part in the norm or the update. */
void nl_zero_frozen_grads(nl_model *m) {
    for (int i = 0; i < m->ntensors; i++)
        if (!m->tensors[i].trainable) m->be->zero(m->grads + m->tensors[i].offset, m->tensors[i].numel * sizeof(float));
}

double nl_grad_norm(nl_model *m) {
    nl_zero_frozen_grads(m);
    return sqrt(m->be->sumsq(m->grads, m->nparams));
}

double nl_clip_scale(double grad_norm, double clip) {
    if (clip <= 0) return 1.0;
    double s = clip / (grad_norm + 1e-6);
    return s < 1.0 ? s : 1.0;
}

void nl_adamw_step(nl_model *m, double lr, double gscale, int t) {
    nl_adamw_range(m, lr, gscale, t, 0, m->nparams);
    nl_model_project(m); /* ngpt: back onto the unit sphere (a no-op for the other placements) */
}

void nl_adamw_range(nl_model *m, double lr, double gscale, int t, size_t lo, size_t hi) {
    nl_adamw_hp hp = { .lr = (float)lr,
                       .beta1 = (float)NL_ADAM_BETA1,
                       .beta2 = (float)NL_ADAM_BETA2,
                       .eps = (float)NL_ADAM_EPS,
                       .gscale = (float)gscale,
                       .ic1 = (float)(1.0 / (1.0 - pow(NL_ADAM_BETA1, t))),
                       .ic2 = (float)(1.0 / (1.0 - pow(NL_ADAM_BETA2, t))) };
    m->be->enter();
    for (int i = 0; i < m->ntensors; i++) {
        const nl_tensor *tn = &m->tensors[i];
        const size_t a = tn->offset > lo ? tn->offset : lo, b = tn->offset + tn->numel < hi ? tn->offset + tn->numel : hi;
        if (!tn->trainable || a >= b) continue;
        hp.wd = tn->decay ? (float)m->cfg.weight_decay : 0.0f;
        m->be->adamw(m->params + a, m->m + (a - lo), m->v + (a - lo), m->grads + a, b - a, &hp);
    }
}
