/* tokenize.h -- text <-> tokens for a model's vocabulary. Byte-level models (vocab <= 256): one
 * token per byte. Other vocabularies need a tokenizer this build does not have yet and get an error. */
#ifndef NL_TOKENIZE_H
#define NL_TOKENIZE_H

#include "normlab.h"

/* Encodes text into at most cap tokens (*n = count); NL_ERR_ARG if it needs more. */
nl_status nl_encode(const nl_config *c, const char *text, int *out, int cap, int *n);
/* Encodes text keeping only its last cap tokens (left truncation). */
nl_status nl_encode_tail(const nl_config *c, const char *text, int *out, int cap, int *n);
/* UTF-8 bytes that token `tok` stands for (1 for byte-level models). */
int nl_token_bytes(const nl_config *c, int tok);

#endif
