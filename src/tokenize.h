/* tokenize.h -- text <-> tokens for a model's vocabulary. Byte-level models (vocab 256): one token
 * per byte. GPT-2-vocabulary models (50257): GPT-2's BPE (bpe.h), loaded once from the shipped
 * data/gpt2-bpe. Other vocabularies get an error. */
#ifndef NL_TOKENIZE_H
#define NL_TOKENIZE_H

#include "data.h"
#include "normlab.h"

/* Encodes text into at most cap tokens (*n = count); NL_ERR_ARG if it needs more. */
nl_status nl_encode(const nl_config *c, const char *text, int *out, int cap, int *n);
/* Encodes text keeping only its last cap tokens (left truncation). */
nl_status nl_encode_tail(const nl_config *c, const char *text, int *out, int cap, int *n);
/* Encodes a whole document of n bytes: bytes for byte-level models; for GPT-2 models <|endoftext|>
 * then the BPE tokens (as `normlab prepare` writes each file). *ids: malloc'd, *ntok tokens. */
nl_status nl_encode_doc(const nl_config *c, const void *text, size_t n, int **ids, size_t *ntok);
/* A text file opened as tokens (bytes) becomes the model's tokens: for a GPT-2-vocabulary model (50257)
 * the nl_encode_doc tokens replace the bytes; other vocabularies and token shards keep what they read.
 * train, eval and analyze read text through it, so a run is scored on the tokens it trained on. */
nl_status nl_tokens_encode(nl_tokens *t, const nl_config *model);
/* NL_OK if text can be encoded for c's vocabulary (loads the GPT-2 tokenizer when needed). */
nl_status nl_tokenizer_check(const nl_config *c);
/* UTF-8 bytes that token `tok` stands for (1 for byte-level models; GPT-2 models after a successful
 * nl_tokenizer_check or encode). */
int nl_token_bytes(const nl_config *c, int tok);

#endif
