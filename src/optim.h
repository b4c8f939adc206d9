/* optim.h -- AdamW with decoupled weight decay, global gradient-norm clipping and the learning-rate
 * schedule (linear warmup, then cosine decay to min_lr_frac * lr). */
#ifndef NL_OPTIM_H
#define NL_OPTIM_H

#include "model.h"

/* Learning rate of optimizer step `step` (0-based):
 *   step < warmup:  lr * (step + 1) / warmup
 *   after:          lr * (f + (1 - f) * (1 + cos(pi * p)) / 2),  p = (step - warmup) / max(1, S - warmup)
 * with f = min_lr_frac, p clamped to [0, 1] and S = lr_steps, or steps when lr_steps is 0: steps
 * beyond S (a run extended by --resume --steps) run at the floor f * lr. */
double nl_lr_at(const nl_config *c, int step);
/* Zeroes the gradients of frozen tensors (out_gain frozen): they have none. */
void nl_zero_frozen_grads(nl_model *m);
/* L2 norm of the gradients of all trainable tensors, summed in a fixed order. Zeroes the gradients
 * of frozen tensors first. */
double nl_grad_norm(nl_model *m);
/* One AdamW update of every trainable tensor with gradients multiplied by gscale (clipping);
 * t is the 1-based step count for bias correction. Weight decay only on tensors with decay set.
 * Then ngpt's projection of the weights onto the unit sphere (nl_model_project). */
void nl_adamw_step(nl_model *m, double lr, double gscale, int t);
/* The same update of the parameters [lo, hi) only (no projection: rows span shards), whose moments are m->m[0 .. hi-lo) and
 * m->v[0 .. hi-lo) (a ZeRO-1 shard; nl_adamw_step is the range [0, nparams)). */
void nl_adamw_range(nl_model *m, double lr, double gscale, int t, size_t lo, size_t hi);
/* The factor clip / (norm + 1e-6) when it is below 1 and clip > 0, else 1 (as torch's clip_grad_norm_). */
double nl_clip_scale(double grad_norm, double clip);

#endif
