/* sample.h -- autoregressive sampling from a model, on token ids (any vocabulary). The byte-level
 * nl_sample (train.h) and the GPT-2 path of `normlab sample` both run nl_generate. */
#ifndef NL_SAMPLE_H
#define NL_SAMPLE_H

#include "model.h"

#include <stdint.h>

/* Continues the n prompt tokens (n >= 1; the last seq_len are kept as context) by ntok tokens,
 * calling emit(token, ctx) for each. temperature 0: greedy; top_k > 0: sample among the k most
 * likely (ties at the threshold kept). Only the first V logits exist for sampling: padding rows of
 * the embedding are never drawn. */
void nl_generate(nl_model *m, const int *prompt, int n, int ntok, double temperature, int top_k, uint64_t seed,
                 void (*emit)(int token, void *ctx), void *ctx);

#endif
