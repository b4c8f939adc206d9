/* bpe.h -- GPT-2's byte-level BPE tokenizer, read from the standard encoder.json + vocab.bpe.
 *
 * Encoding = GPT-2's reference encoder: the text is split by the pre-tokenisation regex
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * (implemented as a hand-written matcher with the regex's leftmost-alternative semantics, \s as in
 * ECMAScript, \p{L}/\p{N} from the generated table in unicode_classes.c), then each piece's UTF-8
 * bytes are merged by the ranked merges of vocab.bpe (the lowest-ranked adjacent pair first, all its
 * occurrences left to right).
 *
 * Invalid UTF-8: each maximal invalid subpart (the Unicode / WHATWG rule) is one character of the
 * class "other" (neither \s, \p{L} nor \p{N}: the class of U+FFFD) and keeps its raw bytes, which
 * byte-level BPE encodes like any byte. The split into pieces is therefore the one the reference gives
 * for the same bytes decoded with replacement characters, and decode(encode(x)) == x for every byte
 * string x. */
#ifndef NL_BPE_H
#define NL_BPE_H

#include "normlab.h"

#include <stddef.h>
#include <stdint.h>

typedef struct nl_bpe nl_bpe;

/* Unicode classes of the pre-tokeniser (the table is generated: scripts/gen_unicode_classes.py). */
enum { NL_UC_OTHER = 0, NL_UC_LETTER = 1, NL_UC_NUMBER = 2, NL_UC_SPACE = 3 };
typedef struct nl_urange {
    uint32_t lo, hi, cls;
} nl_urange;
extern const nl_urange nl_uclass_ranges[];
extern const int nl_uclass_count;
extern const char nl_unicode_version[];
/* Class of code point cp (NL_UC_*); an invalid sequence is passed as 0xFFFFFFFF (other). */
int nl_uclass(uint32_t cp);
/* Decodes the UTF-8 character at s[0..n) (n > 0): returns its length and sets *cp, or for invalid
 * input returns the length of the maximal invalid subpart (>= 1) and sets *cp = 0xFFFFFFFF. */
size_t nl_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);
/* End (exclusive) of the pre-token that starts at s[i], i < n. */
size_t nl_pretok_next(const unsigned char *s, size_t n, size_t i);

/* Finds the directory holding encoder.json and vocab.bpe when dir is empty: the data/gpt2-bpe the
 * repository ships (nl_find_shipped). */
nl_status nl_bpe_find_dir(char *dir, size_t cap);
/* Loads dir/encoder.json and dir/vocab.bpe (dir "" : nl_bpe_find_dir). NL_ERR_IO / NL_ERR_FORMAT
 * naming the file and line on failure. Free with nl_bpe_free. */
nl_status nl_bpe_load(nl_bpe **out, const char *dir);
void nl_bpe_free(nl_bpe *b);
int nl_bpe_vocab(const nl_bpe *b); /* 50257 for GPT-2 */
int nl_bpe_eot(const nl_bpe *b);   /* id of "<|endoftext|>", -1 if absent */

/* A growable array of token ids. */
typedef struct nl_ids {
    int *v;
    size_t n, cap;
} nl_ids;
void nl_ids_push(nl_ids *a, int id);
void nl_ids_free(nl_ids *a);

/* Appends the tokens of text[0..n) to out. Not thread-safe (a per-tokenizer cache of pieces). */
void nl_bpe_encode(nl_bpe *b, const void *text, size_t n, nl_ids *out);
/* The bytes of token id (0 <= id < vocab): returns their count and sets *p. */
size_t nl_bpe_token(const nl_bpe *b, int id, const unsigned char **p);
/* Writes the bytes of ids to a new NUL-terminated heap buffer; *len its length (without the NUL).
 * NL_ERR_ARG naming the id if one is outside the vocabulary. */
nl_status nl_bpe_decode(const nl_bpe *b, const int *ids, size_t n, char **text, size_t *len);

/* Test hook: 1 = merge with GPT-2's reference loop (lowest-ranked pair, all occurrences, repeat)
 * instead of the heap; both give the same tokens (see bpe.c). Clears the piece cache. */
void nl_bpe_set_reference_merge(nl_bpe *b, int on);
/* 1 if the vocabulary has the property the heap merge needs (then it is used), 0 if not. */
int nl_bpe_heap_ok(const nl_bpe *b);

#endif
