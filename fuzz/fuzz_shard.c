/* fuzz_shard.c -- the token stream reader: llm.c shards (header magic, version, count, file size)
 * and text; every token of an accepted stream is read back and split as training would. */
#include "fuzz_common.h"
#include "data.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int text = data[0] & 1; /* first byte: text file or shard */
    const char *path = nl_fuzz_file(data + 1, size - 1, text ? ".txt" : ".bin");
    nl_tokens t;
    if (nl_tokens_open(&t, path) == NL_OK) {
        int buf[64];
        for (size_t pos = 0; pos < t.n; pos += 64) {
            size_t n = t.n - pos < 64 ? t.n - pos : 64;
            nl_tokens_read(&t, pos, n, buf);
            for (size_t i = 0; i < n; i++)
                if (buf[i] < 0 || buf[i] > t.max_token) abort();
        }
        nl_tokens tr, va;
        nl_tokens_split(&t, (data[0] >> 1) / 128.0 * 0.99, &tr, &va);
        if (tr.n + va.n != t.n) abort();
        nl_tokens_close(&tr);
        nl_tokens_close(&va);
        nl_tokens_close(&t);
    }
    unlink(path);
    return 0;
}
