/* fuzz_tboard.c -- the TensorBoard event-file cut-back of --resume (nl_tb_keep) on any bytes: the kept
 * records are whole, valid records, never more than the input, and cutting them again keeps them all. */
#include "fuzz_common.h"
#include "tboard.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    const long long step = (long long)((uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
                                       (uint32_t)(data[3] & 0x7f) << 24);
    unsigned char *b = malloc(size - 4 + 1);
    if (!b) return 0;
    memcpy(b, data + 4, size - 4);
    int s1, s2;
    const size_t n = nl_tb_keep(b, size - 4, step, &s1);
    if (n > size - 4 || nl_tb_keep(b, n, step, &s2) != n || s1 != s2) abort();
    free(b);
    return 0;
}
