/* fuzz_safetensors.c -- the safetensors reader (header length, JSON header, offsets) on any bytes:
 * it must return an error or a file whose every tensor lies inside the data section. */
#include "fuzz_common.h"
#include "safetensors.h"
#include "common.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    unsigned char *buf = malloc(size + 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    nl_st_file f;
    if (nl_st_parse(buf, size, "fuzz", &f) != NL_OK) return 0;
    uint32_t crc = 0;
    for (int i = 0; i < f.nt; i++) { /* touch every byte a tensor claims: ASan checks the bounds */
        if (f.t[i].data < f.data || f.t[i].data + f.t[i].nbytes > f.data + f.data_len) abort();
        crc = nl_crc32(crc, f.t[i].data, f.t[i].nbytes);
        (void)nl_st_find(&f, f.t[i].name);
    }
    for (int i = 0; i < f.nmeta; i++) (void)nl_st_get_meta(&f, f.meta[i].key);
    nl_st_free(&f);
    return (int)(crc & 0);
}
