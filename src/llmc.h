/* llmc.h -- reading llm.c's GPT-2 checkpoints (train --init-from FILE.bin).
 *
 * Format (llm.c, version 3 = fp32): a header of 256 little-endian int32 -- [0] magic 20240326,
 * [1] version 3, [2] maxT, [3] V, [4] L, [5] NH, [6] C, [7] Vp (padded vocabulary) -- then fp32
 * parameters, each tensor covering all layers, in this order and shape (PyTorch Linear layout,
 * out x in): wte (Vp, C), wpe (maxT, C), ln1w (L, C), ln1b (L, C), qkvw (L, 3C, C), qkvb (L, 3C),
 * attprojw (L, C, C), attprojb (L, C), ln2w (L, C), ln2b (L, C), fcw (L, 4C, C), fcb (L, 4C),
 * fcprojw (L, C, 4C), fcprojb (L, C), lnfw (C), lnfb (C). The model is Pre-LN with LayerNorm
 * (eps 1e-5), a final norm, no embedding norm, GELU (tanh), tied head: normlab's `--norm pre`. */
#ifndef NL_LLMC_H
#define NL_LLMC_H

#include "model.h"

#define NL_LLMC_MAGIC 20240326
#define NL_LLMC_VERSION 3

/* 1 if path starts with llm.c's model magic. */
int nl_llmc_is_model(const char *path);
/* Sets c's model options from the header (norm pre, layernorm, eps 1e-5, final norm on, embedding
 * norm off, seq_len = maxT, vocab = V); other fields are kept. Validates the header and file size. */
nl_status nl_llmc_read_config(const char *path, nl_config *c);
/* Loads the parameters into m, built from a config read by nl_llmc_read_config. */
nl_status nl_llmc_import(nl_model *m, const char *path);

#endif
