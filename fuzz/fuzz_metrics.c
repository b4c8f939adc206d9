/* fuzz_metrics.c -- the metrics.jsonl cut-back of --resume on any bytes: the result is a prefix-
 * free subset of complete lines, never longer than the input. */
#include "fuzz_common.h"
#include "train.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    int max_step = (int)((uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
                         (uint32_t)(data[3] & 0x7f) << 24);
    char *b = malloc(size - 4 + 1);
    if (!b) return 0;
    memcpy(b, data + 4, size - 4);
    size_t n = nl_metrics_keep(b, size - 4, max_step);
    if (n > size - 4 || (n && b[n - 1] != '\n')) abort();
    free(b);
    return 0;
}
