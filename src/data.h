/* data.h -- token streams: a text file read as bytes (vocab 256) or llm.c token shards (256 x int32
 * header: magic 20240520, version 1, token count; then uint16 tokens), by file or glob. Shards are
 * concatenated in sorted name order into one stream. Files are memory-mapped, never copied. */
#ifndef NL_DATA_H
#define NL_DATA_H

#include "normlab.h"

#define NL_SHARD_MAGIC 20240520
#define NL_SHARD_VERSION 1

typedef struct nl_seg {
    const unsigned char *p; /* first token */
    size_t n;               /* tokens */
    int u16;                /* 1: uint16 tokens (shard), 0: bytes (text) */
    void *map;              /* mapping to release, NULL for views */
    size_t map_len;
} nl_seg;

typedef struct nl_tokens {
    nl_seg *seg;
    int nseg;
    size_t n;      /* total tokens */
    int max_token; /* largest token id present */
    int shards;    /* 1: llm.c shards */
    int owner;     /* 1: nl_tokens_close unmaps */
} nl_tokens;

/* Opens a text file, or a shard file/glob (a name ending in .bin or containing * ? [).
 * NL_ERR_IO / NL_ERR_FORMAT naming the file on failure (missing, empty, malformed header, size). */
nl_status nl_tokens_open(nl_tokens *t, const char *spec);
void nl_tokens_close(nl_tokens *t);
/* A stream of n tokens (each in 0..65535) held in memory, as a one-shard stream. */
void nl_tokens_from_ids(nl_tokens *t, const int *ids, size_t n);
/* Views of [0, n_train) and [n_train, n): n_train = n - round(val_frac * n). Free with close. */
void nl_tokens_split(const nl_tokens *all, double val_frac, nl_tokens *train, nl_tokens *val);
/* Copies n tokens starting at pos (pos + n <= t->n) into out. */
void nl_tokens_read(const nl_tokens *t, size_t pos, size_t n, int *out);

#endif
