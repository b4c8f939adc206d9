/* tokenize.c -- see tokenize.h. */
#include "tokenize.h"

#include "bpe.h"
#include "common.h"

#include <stdlib.h>
#include <string.h>

/* The GPT-2 tokenizer of vocabulary-50257 models, loaded once from the default directory
 * (the shipped data/gpt2-bpe) and kept for the process. */
static nl_bpe *gpt2;

static nl_status need_tokenizer(const nl_config *c) {
    if (c->vocab == 256) return NL_OK;
    if (c->vocab == 50257) {
        if (!gpt2) NL_TRY(nl_bpe_load(&gpt2, ""));
        if (nl_bpe_vocab(gpt2) == c->vocab) return NL_OK;
    }
    if (c->vocab < 256)
        return NL_FAIL(NL_ERR_ARG, "the model's vocabulary (%d) is smaller than 256: text cannot be encoded as bytes",
                       c->vocab);
    return NL_FAIL(NL_ERR_ARG,
                   "the model's vocabulary (%d) is neither bytes (256) nor GPT-2's (50257): no tokenizer for it",
                   c->vocab);
}

nl_status nl_tokenizer_check(const nl_config *c) { return need_tokenizer(c); }

/* all tokens of text (GPT-2) in a new array */
static int *bpe_all(const char *text, size_t *n) {
    nl_ids ids = { 0 };
    nl_bpe_encode(gpt2, text, strlen(text), &ids);
    *n = ids.n;
    return ids.v;
}

nl_status nl_encode_doc(const nl_config *c, const void *text, size_t n, int **ids, size_t *ntok) {
    NL_TRY(need_tokenizer(c));
    if (c->vocab == 256) {
        *ids = nl_xmalloc(n * sizeof(int));
        for (size_t i = 0; i < n; i++) (*ids)[i] = ((const unsigned char *)text)[i];
        *ntok = n;
        return NL_OK;
    }
    nl_ids a = { 0 };
    nl_ids_push(&a, nl_bpe_eot(gpt2));
    nl_bpe_encode(gpt2, text, n, &a);
    *ids = a.v;
    *ntok = a.n;
    return NL_OK;
}

nl_status nl_encode(const nl_config *c, const char *text, int *out, int cap, int *n) {
    NL_TRY(need_tokenizer(c));
    if (c->vocab == 256) {
        size_t len = strlen(text);
        if (len > (size_t)cap) return NL_FAIL(NL_ERR_ARG, "text of %zu tokens exceeds the limit of %d", len, cap);
        for (size_t i = 0; i < len; i++) out[i] = (unsigned char)text[i];
        *n = (int)len;
        return NL_OK;
    }
    size_t len;
    int *ids = bpe_all(text, &len);
    if (len > (size_t)cap) {
        free(ids);
        return NL_FAIL(NL_ERR_ARG, "text of %zu tokens exceeds the limit of %d", len, cap);
    }
    if (len) memcpy(out, ids, len * sizeof(int));
    free(ids);
    *n = (int)len;
    return NL_OK;
}

nl_status nl_encode_tail(const nl_config *c, const char *text, int *out, int cap, int *n) {
    NL_TRY(need_tokenizer(c));
    if (c->vocab == 256) {
        size_t len = strlen(text), skip = len > (size_t)cap ? len - (size_t)cap : 0;
        return nl_encode(c, text + skip, out, cap, n);
    }
    size_t len;
    int *ids = bpe_all(text, &len); /* the whole text's tokens, then the last cap of them */
    const size_t skip = len > (size_t)cap ? len - (size_t)cap : 0;
    if (len - skip) memcpy(out, ids + skip, (len - skip) * sizeof(int));
    free(ids);
    *n = (int)(len - skip);
    return NL_OK;
}

int nl_token_bytes(const nl_config *c, int tok) {
    if (c->vocab != 50257 || !gpt2 || tok < 0 || tok >= nl_bpe_vocab(gpt2)) return 1;
    const unsigned char *p;
    return (int)nl_bpe_token(gpt2, tok, &p);
}

nl_status nl_tokens_encode(nl_tokens *t, const nl_config *model) {
    if (t->shards || model->vocab != 50257) return NL_OK;
    int *ids;
    size_t n;
    NL_TRY(nl_encode_doc(model, t->seg[0].p, t->seg[0].n, &ids, &n));
    nl_tokens_close(t);
    nl_tokens_from_ids(t, ids, n);
    free(ids);
    return NL_OK;
}
