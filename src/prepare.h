/* prepare.h -- text files to llm.c token shards (normlab prepare).
 *
 * The input files are tokenized in order into one stream (GPT-2 BPE: each file starts with
 * <|endoftext|>, as llm.c's data scripts do; bytes: one token per byte, no separator). The last
 * val_frac of the stream's tokens is validation, the rest training, as `normlab train` splits a text
 * file. Each part is written as shards of at most shard_tokens tokens, out/train_000000.bin, ... and
 * out/val_000000.bin, ... (256 x int32 header: 20240520, 1, count; then uint16 tokens), each written
 * atomically. The token stream is held in memory (2 bytes per token). */
#ifndef NL_PREPARE_H
#define NL_PREPARE_H

#include "normlab.h"

#include <stddef.h>

typedef struct nl_prepare_opts {
    const char *tokenizer; /* "gpt2" or "byte" */
    const char *const *in; /* files or glob patterns, expanded in order (each glob sorted) */
    int nin;
    const char *out;     /* directory, created if missing */
    double val_frac;     /* [0, 1) */
    int shard_tokens;    /* > 0 */
    const char *bpe_dir; /* "" : nl_bpe_find_dir */
    int progress;        /* 1: a progress bar on stderr */
} nl_prepare_opts;

typedef struct nl_prepare_stats {
    size_t bytes, train_tokens, val_tokens;
    int files, train_shards, val_shards, vocab;
    double seconds;
} nl_prepare_stats;

nl_status nl_prepare(const nl_prepare_opts *o, nl_prepare_stats *s);

#endif
