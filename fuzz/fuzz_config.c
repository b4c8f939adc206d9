/* fuzz_config.c -- the option parser on any command line (NUL- or newline-separated words) for
 * every command, then config.txt-style "key = value" lines, then validation and the memory check. */
#include "fuzz_common.h"
#include "config.h"
#include "train.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 8192) return 0;
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    char *argv[256];
    int argc = 0;
    for (size_t i = 0, start = 0; i <= size && argc < 256; i++)
        if (i == size || s[i] == 0 || s[i] == '\n') {
            s[i] = 0;
            argv[argc++] = s + start;
            start = i + 1;
        }
    static const int cmds[] = { NL_CMD_TRAIN, NL_CMD_EVAL, NL_CMD_SAMPLE, NL_CMD_EXPORT, NL_CMD_ANALYZE, NL_CMD_REPORT };
    static nl_args a;
    for (int c = 0; c < 6; c++) {
        int help;
        nl_args_defaults(&a);
        if (nl_args_parse(&a, cmds[c], argc, argv, &help) == NL_OK && a.cfg.vocab >= 0) {
            static const char *const ok[] = { "threads", NULL };
            (void)nl_args_given_except(&a, cmds[c], ok);
            if (a.cfg.vocab == 0) a.cfg.vocab = 256;
            if (nl_config_resolve(&a.cfg) == NL_OK) (void)nl_check_memory(&a.cfg, a.cfg.batch, a.cfg.seq_len, 1);
        }
    }
    /* key = value lines (the metadata and config.txt path) */
    nl_args_defaults(&a);
    for (int i = 0; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) continue;
        *eq = 0;
        (void)nl_args_set(&a, NL_CMD_TRAIN, argv[i], eq + 1);
    }
    a.cfg.vocab = a.cfg.vocab > 0 ? a.cfg.vocab : 256;
    if (nl_config_resolve(&a.cfg) == NL_OK) {
        nl_kv kv[64];
        (void)nl_config_to_kv(&a.cfg, kv, 64);
    }
    free(s);
    return 0;
}
