/* train.h -- the training run (data, model, AdamW loop, metrics, checkpoints), evaluation over
 * consecutive windows, and sampling. The CLI in tools/normlab.c is a thin layer over these. */
#ifndef NL_TRAIN_H
#define NL_TRAIN_H

#include "data.h"
#include "model.h"

#include <stdio.h>

/* Trains as configured; writes the run directory (config.txt, metrics.jsonl, checkpoints).
 * cfg is resolved in place (data-dependent vocab, default paths). */
nl_status nl_train(nl_config *cfg);

/* Finds the default corpus when path is empty: data/tinyshakespeare.txt or
 * ../shared/data/tinyshakespeare.txt, relative to the working directory or the executable's folder. */
nl_status nl_find_data(char *path, size_t cap);

/* Mean next-token cross-entropy over consecutive non-overlapping windows: window i holds tokens
 * [i*T, i*T+T]; inputs its first T, targets its last T (T = seq_len). At most max_windows (0: all).
 * Allocates the model's activations for up to B windows. */
nl_status nl_eval_windows(nl_model *m, const nl_tokens *t, int max_windows, int B, double *loss,
                          size_t *ntok);

/* Sliding-window evaluation: windows of seq_len tokens start every `stride` tokens (0: seq_len,
 * at most seq_len); the first window scores all its targets, each later one only its last `stride`
 * (so every target is scored once, with up to seq_len - stride tokens of context). Returns the summed
 * negative log-likelihood, the scored tokens and the bytes they stand for (nbytes may be NULL). */
nl_status nl_eval_stride(nl_model *m, const nl_tokens *t, int max_windows, int stride, int B, double *nll,
                         size_t *ntok, double *nbytes);

/* Writes ntok sampled bytes continuing prompt to out (byte-vocabulary models). */
nl_status nl_sample(nl_model *m, const char *prompt, int ntok, double temperature, int top_k,
                    uint64_t seed, FILE *out);

#endif
