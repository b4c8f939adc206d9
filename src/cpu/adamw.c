/* adamw.c -- the AdamW update on one parameter tensor (the schedule and clipping are in optim.c). */
#include "kernels.h"

#include <math.h>

void nl_adamw(float *p, float *m, float *v, const float *g, size_t n, const nl_adamw_hp *hp) {
    const float b1 = hp->beta1, b2 = hp->beta2, eps = hp->eps, ic1 = hp->ic1, ic2 = hp->ic2;
    const float flr = hp->lr, gs = hp->gscale, wd = hp->wd;
    float *restrict pp = p, *restrict mm = m, *restrict vv = v;
    const float *restrict gg = g;
#pragma omp parallel for simd schedule(static)
    for (size_t j = 0; j < n; j++) {
        const float gj = gg[j] * gs;
        mm[j] = b1 * mm[j] + (1.0f - b1) * gj;
        vv[j] = b2 * vv[j] + (1.0f - b2) * gj * gj;
        pp[j] -= flr * (wd * pp[j] + mm[j] * ic1 / (sqrtf(vv[j] * ic2) + eps));
    }
}
