/* train.h -- the training run (data, model, AdamW loop, metrics, checkpoints), evaluation over
 * consecutive windows, and sampling. The CLI in tools/normlab.c is a thin layer over these. */
#ifndef NL_TRAIN_H
#define NL_TRAIN_H

#include "data.h"
#include "model.h"

#include <stdio.h>

/* Trains as configured; writes the run directory (config.txt, metrics.jsonl, checkpoints).
 * cfg is resolved in place (data-dependent vocab, default paths). A directory that already holds a
 * run's files (config.txt, metrics.jsonl, evals.jsonl, analyze.json, ckpt-*.safetensors) is refused
 * (NL_ERR_ARG); nl_train_overwrite removes those files first (nothing else in the directory). */
nl_status nl_train(nl_config *cfg);
nl_status nl_train_overwrite(nl_config *cfg);

/* Resuming (train --resume DIR): nl_resume_find picks the newest checkpoint in dir that loads (a
 * warning names each one skipped) and reads its config into cfg; the caller may then change the
 * options that do not alter the trajectory; nl_train_resume continues from that checkpoint: the
 * params, AdamW moments, step, data RNG and skipped batches are restored, metrics.jsonl is cut back
 * to the checkpoint's step and appended to. */
nl_status nl_resume_find(const char *dir, char *path, size_t cap, nl_config *cfg);
nl_status nl_train_resume(nl_config *cfg, const char *ckpt);
/* SIGINT/SIGTERM during nl_train/nl_train_resume finish the step, write a checkpoint and return
 * NL_OK; this is then the signal number (0 when the run ended normally). */
int nl_train_interrupted(void);
/* Keeps the complete lines of a metrics.jsonl buffer whose step is in 1..max_step and above the
 * previous kept step line's, and the diagnostic lines ("diag": D) with D < max_step above the
 * previous kept one's (the pass at max_step is repeated by the continued run), in place; returns the
 * new length. */
size_t nl_metrics_keep(char *buf, size_t n, int max_step);

/* NL_ERR_ARG naming the options when a model of config c with B x T activations (training: with
 * gradients and AdamW moments) clearly cannot fit in this machine's memory. */
nl_status nl_check_memory(const nl_config *c, int B, int T, int training);

/* Finds the default corpus when path is empty: the data/tinyshakespeare.txt the repository ships
 * (nl_find_shipped). */
nl_status nl_find_data(char *path, size_t cap);

/* Mean next-token cross-entropy over consecutive non-overlapping windows: window i holds tokens
 * [i*T, i*T+T]; inputs its first T, targets its last T (T = seq_len). At most max_windows (0: all).
 * Allocates the model's activations for up to B windows. */
nl_status nl_eval_windows(nl_model *m, const nl_tokens *t, int max_windows, int B, double *loss, size_t *ntok);

/* Sliding-window evaluation: windows of seq_len tokens start every `stride` tokens (0: seq_len,
 * at most seq_len); the first window scores all its targets, each later one only its last `stride`
 * (so every target is scored once, with up to seq_len - stride tokens of context). Returns the summed
 * negative log-likelihood, the scored tokens and the bytes they stand for (nbytes may be NULL). */
nl_status nl_eval_stride(nl_model *m, const nl_tokens *t, int max_windows, int stride, int B, double *nll, size_t *ntok,
                         double *nbytes);

/* Writes ntok sampled bytes continuing prompt to out (byte-vocabulary models). */
nl_status nl_sample(nl_model *m, const char *prompt, int ntok, double temperature, int top_k, uint64_t seed, FILE *out);

#endif
