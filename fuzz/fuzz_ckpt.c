/* fuzz_ckpt.c -- the checkpoint loader (format, version, step, RNG state, skip list, config in the
 * metadata, tensor shapes) on any bytes; built with FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION so that
 * the checksum does not stop it at the door. Also the export reader (--init-from). */
#include "fuzz_common.h"
#include "ckpt.h"
#include "config.h"
#include "train.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = nl_fuzz_file(data, size, ".safetensors");
    nl_model m;
    nl_ckpt_info info;
    if (nl_ckpt_load_info(&m, path, &info) == NL_OK) {
        if (info.nskip < 0 || info.nskip > NL_MAX_ROLLBACKS) abort();
        (void)nl_check_memory(&m.cfg, 2, m.cfg.seq_len, 0);
        nl_model_free(&m);
    }
    nl_config c;
    nl_config_defaults(&c);
    if (nl_ckpt_read_config(path, &c) == NL_OK) (void)nl_config_resolve(&c);
    nl_config_defaults(&c);
    if (nl_read_model_config(path, &c) == NL_OK && nl_config_resolve(&c) == NL_OK && c.vocab > 0 &&
        nl_check_memory(&c, 1, 1, 1) == NL_OK) {
        /* an export: import into the model its metadata describes */
        const double params = (double)c.dim * (c.vocab_padded + c.seq_len) + 12.0 * c.layers * c.dim * c.dim;
        if (params * 4 <= (double)size && nl_model_init(&m, &c) == NL_OK) {
            (void)nl_import(&m, path);
            nl_model_free(&m);
        }
    }
    unlink(path);
    return 0;
}
