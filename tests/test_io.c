/* test_io.c -- safetensors reading/writing and llm.c shard reading, including malformed files. */
#include "check.h"
#include "data.h"
#include "safetensors.h"
#include "tests.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    NL_ASSERT(f);
    fwrite(p, 1, n, f);
    fclose(f);
}

static int expect_read_error(const char *path, const char *header, const char *want) {
    unsigned char buf[512] = { 0 };
    size_t hl = strlen(header);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    write_bytes(path, buf, 8 + hl + 16); /* 16 data bytes */
    nl_st_file f;
    nl_status st = nl_st_read(path, &f);
    int bad = st == NL_OK || !strstr(nl_last_error(), want);
    if (st == NL_OK) nl_st_free(&f);
    return NL_CHECK(!bad, "header %s: expected an error containing '%s', got '%s'", header, want,
                    st == NL_OK ? "success" : nl_last_error());
}

int test_safetensors_io(void) {
    int fails = 0;
    const char *path = "/tmp/nl_test_io.safetensors";
    float a[6] = { 1, 2, 3, 4, 5, 6 };
    int32_t b[3] = { -1, 0, 7 };
    nl_st_entry e[2] = { { "w \"quoted\"", NL_ST_F32, 2, { 2, 3 }, a }, { "ids", NL_ST_I32, 1, { 3 }, b } };
    const char *k[] = { "path" }, *v[] = { "a\\b\n\"c\"" };
    fails += NL_CHECK(nl_st_write(path, e, 2, k, v, 1) == NL_OK, "write: %s", nl_last_error());
    nl_st_file f;
    fails += NL_CHECK(nl_st_read(path, &f) == NL_OK, "read: %s", nl_last_error());
    if (!fails) {
        const nl_st_tensor *t = nl_st_find(&f, "w \"quoted\"");
        fails += NL_CHECK(t && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && !memcmp(t->data, a, sizeof a),
                          "tensor round trip");
        t = nl_st_find(&f, "ids");
        fails += NL_CHECK(t && t->dtype == NL_ST_I32 && !memcmp(t->data, b, sizeof b), "int tensor round trip");
        fails += NL_CHECK(nl_st_get_meta(&f, "path") && !strcmp(nl_st_get_meta(&f, "path"), v[0]),
                          "escaped metadata round trip");
        nl_st_free(&f);
    }
    /* malformed files: each rejected with a message saying why */
    fails += expect_read_error(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[0,20]}}", "do not fit");
    fails += expect_read_error(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,4]}}", "do not fit");
    fails += expect_read_error(path, "{\"x\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                               "unsupported dtype");
    fails += expect_read_error(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1]}}", "lacks");
    fails += expect_read_error(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", "malformed");
    fails += expect_read_error(path, "[1,2]", "malformed");
    fails += expect_read_error(path,
                               "{\"x\":{\"dtype\":\"F32\",\"shape\":[99999999999999,99999999999],\"data_offsets\":[0,4]}}",
                               "absurd");
    unsigned char big[16] = { 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0 };
    write_bytes(path, big, sizeof big);
    fails += NL_CHECK(nl_st_read(path, &f) == NL_ERR_FORMAT && strstr(nl_last_error(), "exceeds the file"),
                      "header length beyond the file");
    write_bytes(path, big, 3);
    fails += NL_CHECK(nl_st_read(path, &f) == NL_ERR_FORMAT && strstr(nl_last_error(), "too short"), "3-byte file");
    fails += NL_CHECK(nl_st_read("/nonexistent/x.safetensors", &f) == NL_ERR_IO, "missing file");
    unlink(path);
    return fails;
}

static void write_shard(const char *path, int32_t magic, int32_t version, int32_t count, const uint16_t *tok,
                        size_t ntok) {
    int32_t h[256] = { 0 };
    h[0] = magic, h[1] = version, h[2] = count;
    FILE *f = fopen(path, "wb");
    NL_ASSERT(f);
    fwrite(h, 4, 256, f);
    fwrite(tok, 2, ntok, f);
    fclose(f);
}

int test_shards(void) {
    int fails = 0;
    char dir[] = "/tmp/nl_shards_XXXXXX", p[96], glob[96];
    NL_ASSERT(mkdtemp(dir));
    uint16_t t0[5] = { 1, 2, 3, 4, 5 }, t1[3] = { 50000, 7, 8 };
    snprintf(p, sizeof p, "%s/s_000.bin", dir);
    write_shard(p, 20240520, 1, 5, t0, 5);
    snprintf(p, sizeof p, "%s/s_001.bin", dir);
    write_shard(p, 20240520, 1, 3, t1, 3);
    snprintf(glob, sizeof glob, "%s/s_*.bin", dir);
    nl_tokens t, tr, va;
    fails += NL_CHECK(nl_tokens_open(&t, glob) == NL_OK, "open glob: %s", nl_last_error());
    if (!fails) {
        int out[8];
        nl_tokens_read(&t, 0, 8, out);
        const int want[8] = { 1, 2, 3, 4, 5, 50000, 7, 8 };
        fails += NL_CHECK(t.n == 8 && t.shards && t.max_token == 50000 && !memcmp(out, want, sizeof want),
                          "two shards concatenated in order");
        nl_tokens_split(&t, 0.25, &tr, &va);
        int v[2];
        nl_tokens_read(&va, 0, 2, v);
        fails += NL_CHECK(tr.n == 6 && va.n == 2 && v[0] == 7 && v[1] == 8,
                          "split keeps the last quarter for validation");
        nl_tokens_close(&tr);
        nl_tokens_close(&va);
        nl_tokens_close(&t);
    }
    snprintf(p, sizeof p, "%s/bad.bin", dir);
    write_shard(p, 12345, 1, 5, t0, 5);
    fails += NL_CHECK(nl_tokens_open(&t, p) == NL_ERR_FORMAT && strstr(nl_last_error(), "bad magic"), "bad magic: %s",
                      nl_last_error());
    write_shard(p, 20240520, 2, 5, t0, 5);
    fails += NL_CHECK(nl_tokens_open(&t, p) == NL_ERR_FORMAT && strstr(nl_last_error(), "version"), "bad version");
    write_shard(p, 20240520, 1, 9, t0, 5);
    fails += NL_CHECK(nl_tokens_open(&t, p) == NL_ERR_FORMAT && strstr(nl_last_error(), "truncated"), "truncated shard");
    write_shard(p, 20240520, 1, -3, t0, 0);
    fails += NL_CHECK(nl_tokens_open(&t, p) == NL_ERR_FORMAT, "negative count");
    write_bytes(p, "abc", 3);
    fails += NL_CHECK(nl_tokens_open(&t, p) == NL_ERR_FORMAT && strstr(nl_last_error(), "shorter"), "short header");
    snprintf(p, sizeof p, "%s/none_*.bin", dir);
    fails += NL_CHECK(nl_tokens_open(&t, p) == NL_ERR_IO && strstr(nl_last_error(), "no file matches"), "empty glob");
    snprintf(p, sizeof p, "%s/empty.txt", dir);
    write_bytes(p, "", 0);
    fails += NL_CHECK(nl_tokens_open(&t, p) == NL_ERR_FORMAT && strstr(nl_last_error(), "empty"), "empty text file");
    write_bytes(p, "hello", 5);
    fails += NL_CHECK(nl_tokens_open(&t, p) == NL_OK && t.n == 5 && !t.shards && t.max_token == 'o',
                      "text file as bytes");
    nl_tokens_close(&t);
    fails += nl_test_rmdir(dir);
    return fails;
}
