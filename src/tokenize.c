/* tokenize.c -- see tokenize.h. */
#include "tokenize.h"

#include "common.h"

#include <string.h>

static nl_status need_bytes(const nl_config *c) {
    if (c->vocab < 256)
        return NL_FAIL(NL_ERR_ARG, "the model's vocabulary (%d) is smaller than 256: text cannot be encoded as bytes", c->vocab);
    if (c->vocab > 256)
        return NL_FAIL(NL_ERR_ARG, "the model's vocabulary (%d) is not byte-level and this build has no tokenizer for it", c->vocab);
    return NL_OK;
}

nl_status nl_encode(const nl_config *c, const char *text, int *out, int cap, int *n) {
    NL_TRY(need_bytes(c));
    size_t len = strlen(text);
    if (len > (size_t)cap) return NL_FAIL(NL_ERR_ARG, "text of %zu tokens exceeds the limit of %d", len, cap);
    for (size_t i = 0; i < len; i++) out[i] = (unsigned char)text[i];
    *n = (int)len;
    return NL_OK;
}

nl_status nl_encode_tail(const nl_config *c, const char *text, int *out, int cap, int *n) {
    NL_TRY(need_bytes(c));
    size_t len = strlen(text), skip = len > (size_t)cap ? len - (size_t)cap : 0;
    return nl_encode(c, text + skip, out, cap, n);
}

int nl_token_bytes(const nl_config *c, int tok) {
    (void)c, (void)tok;
    return 1;
}
