/* loss_scaler.c -- see loss_scaler.h. */
#include "loss_scaler.h"

#include "common.h"

#include <math.h>

nl_status nl_loss_scaler_init(nl_loss_scaler *s, double init, double growth, double backoff, int interval,
                              double min_scale, double max_scale) {
    if (!(isfinite(min_scale) && isfinite(max_scale) && min_scale > 0 && min_scale <= max_scale))
        return NL_FAIL(NL_ERR_ARG, "loss scale: the range [%g, %g] must be finite with 0 < min <= max", min_scale,
                       max_scale);
    if (!(init >= min_scale && init <= max_scale))
        return NL_FAIL(NL_ERR_ARG, "loss scale: the initial scale %g is outside [%g, %g]", init, min_scale, max_scale);
    if (!(growth > 1 && isfinite(growth)))
        return NL_FAIL(NL_ERR_ARG, "loss scale: the growth factor %g must be finite and above 1", growth);
    if (!(backoff > 0 && backoff < 1))
        return NL_FAIL(NL_ERR_ARG, "loss scale: the back-off factor %g must be in (0, 1)", backoff);
    if (interval < 1) return NL_FAIL(NL_ERR_ARG, "loss scale: the growth interval %d must be at least 1", interval);
    *s = (nl_loss_scaler){
        .scale = init, .growth = growth, .backoff = backoff, .min_scale = min_scale, .max_scale = max_scale, .interval = interval
    };
    return NL_OK;
}

int nl_loss_scaler_update(nl_loss_scaler *s, int finite) {
    if (!finite) {
        s->scale = fmax(s->scale * s->backoff, s->min_scale);
        s->clean = 0;
        s->skipped++;
        return 0;
    }
    if (++s->clean >= s->interval) {
        s->scale = fmin(s->scale * s->growth, s->max_scale);
        s->clean = 0;
    }
    return 1;
}

int nl_loss_scaler_skips(const nl_loss_scaler *s, double loss, double scaled_grad_norm) {
    return !isfinite(scaled_grad_norm) && isfinite(loss) && s->scale > s->min_scale;
}
