/* loss_scaler.h -- dynamic loss scaling for fp16 training (docs/numerics.md, "Loss scaling"). The loss is
 * multiplied by `scale` before the backward, so that small gradients stay above fp16's underflow, and the
 * optimizer sees the gradients divided by it. After each backward the trainer says whether every gradient
 * was finite: an overflow skips the step (no update, AdamW moments and step count untouched) and multiplies
 * the scale by `backoff`; `interval` clean steps in a row multiply it by `growth`. The scale stays within
 * [min_scale, max_scale]. With powers of two for all of these, scaling and unscaling are exact. */
#ifndef NL_LOSS_SCALER_H
#define NL_LOSS_SCALER_H

#include "normlab.h"

#include <stdint.h>

/* The range of the scale --dtype fp16 trains with (--loss-scale sets the start). */
#define NL_LOSS_SCALE_MIN 1.0
#define NL_LOSS_SCALE_MAX 4294967296.0 /* 2^32 */

typedef struct nl_loss_scaler {
    double scale;           /* the current loss scale */
    double growth, backoff; /* growth > 1, 0 < backoff < 1 */
    double min_scale, max_scale;
    int interval;     /* clean steps in a row that grow the scale */
    int clean;        /* clean steps since the last overflow or growth */
    uint64_t skipped; /* steps skipped so far */
} nl_loss_scaler;

/* NL_ERR_ARG naming the bad value unless 0 < min_scale <= init <= max_scale (all finite), growth > 1,
 * 0 < backoff < 1 and interval >= 1. */
nl_status nl_loss_scaler_init(nl_loss_scaler *s, double init, double growth, double backoff, int interval,
                              double min_scale, double max_scale);

/* The step's verdict: finite != 0 when every gradient of the scaled loss was finite. Returns 1 when the
 * optimizer step goes ahead (with gradients divided by the scale the backward used, read before this call),
 * 0 when it is skipped; updates the scale for the next step. */
int nl_loss_scaler_update(nl_loss_scaler *s, int finite);

/* The training loop's test (docs/numerics.md §4): 1 when this step is skipped for an overflow, i.e. the
 * gradient norm of the scaled loss is not finite while the loss is, and the scale can still back off
 * (above min_scale). Otherwise a non-finite loss or norm is a divergence, as without scaling. */
int nl_loss_scaler_skips(const nl_loss_scaler *s, double loss, double scaled_grad_norm);

#endif
