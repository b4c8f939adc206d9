/* optim.c -- see optim.h. */
#include "optim.h"

#include <math.h>
#include <string.h>

double nl_lr_at(const nl_config *c, int step) {
    if (step < c->warmup) return c->lr * (double)(step + 1) / (double)c->warmup;
    const int total = c->lr_steps > 0 ? c->lr_steps : c->steps; /* after it: the floor (p clamps to 1) */
    int span = total - c->warmup > 1 ? total - c->warmup : 1;
    double p = (double)(step - c->warmup) / (double)span;
    p = p < 0 ? 0 : p > 1 ? 1 : p;
    return c->lr * (c->min_lr_frac + (1.0 - c->min_lr_frac) * 0.5 * (1.0 + cos(3.141592653589793 * p)));
}

double nl_grad_norm(nl_model *m) {
    for (int i = 0; i < m->ntensors; i++) /* frozen tensors take no part in norm or update */
        if (!m->tensors[i].trainable) memset(m->grads + m->tensors[i].offset, 0, m->tensors[i].numel * sizeof(float));
    /* per-chunk partial sums over fixed chunks, added in order: the result does not depend on the
     * thread count */
    double *part = m->norm_part;
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < m->norm_nchunk; k++) {
        const size_t a = k * NL_NORM_CHUNK, b = a + NL_NORM_CHUNK < m->nparams ? a + NL_NORM_CHUNK : m->nparams;
        double s = 0.0;
        for (size_t j = a; j < b; j++) s += (double)m->grads[j] * m->grads[j];
        part[k] = s;
    }
    double total = 0.0;
    for (size_t k = 0; k < m->norm_nchunk; k++) total += part[k];
    return sqrt(total);
}

double nl_clip_scale(double norm, double clip) {
    if (clip <= 0) return 1.0;
    double s = clip / (norm + 1e-6);
    return s < 1.0 ? s : 1.0;
}

void nl_adamw_step(nl_model *m, double lr, double gscale, int t) {
    const float b1 = (float)NL_ADAM_BETA1, b2 = (float)NL_ADAM_BETA2, eps = (float)NL_ADAM_EPS;
    const float ic1 = (float)(1.0 / (1.0 - pow(NL_ADAM_BETA1, t))), ic2 = (float)(1.0 / (1.0 - pow(NL_ADAM_BETA2, t)));
    const float flr = (float)lr, gs = (float)gscale;
    for (int i = 0; i < m->ntensors; i++) {
        const nl_tensor *tn = &m->tensors[i];
        if (!tn->trainable) continue;
        const float wd = tn->decay ? (float)m->cfg.weight_decay : 0.0f;
        float *restrict p = m->params + tn->offset, *restrict mm = m->m + tn->offset, *restrict vv = m->v + tn->offset;
        const float *restrict g = m->grads + tn->offset;
#pragma omp parallel for simd schedule(static)
        for (size_t j = 0; j < tn->numel; j++) {
            const float gj = g[j] * gs;
            mm[j] = b1 * mm[j] + (1.0f - b1) * gj;
            vv[j] = b2 * vv[j] + (1.0f - b2) * gj * gj;
            p[j] -= flr * (wd * p[j] + mm[j] * ic1 / (sqrtf(vv[j] * ic2) + eps));
        }
    }
}
