/* test_fuzz_regress.c -- every libFuzzer harness (fuzz/) compiled into the suite and run once over
 * its seed corpus (fuzz/corpus/NAME) and past findings (fuzz/regress/NAME), with the normal build:
 * an input that once crashed a reader stays a test. A crash here kills the runner. */
#include "check.h"
#include "tests.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#define LLVMFuzzerTestOneInput nl_fuzz_safetensors
#include "../fuzz/fuzz_safetensors.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput nl_fuzz_ckpt
#include "../fuzz/fuzz_ckpt.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput nl_fuzz_shard
#include "../fuzz/fuzz_shard.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput nl_fuzz_config
#include "../fuzz/fuzz_config.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput nl_fuzz_metrics
#include "../fuzz/fuzz_metrics.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput nl_fuzz_tboard
#include "../fuzz/fuzz_tboard.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput nl_fuzz_idx
#include "../fuzz/fuzz_idx.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput nl_fuzz_png
#include "../fuzz/fuzz_png.c"
#undef LLVMFuzzerTestOneInput

/* runs fn over every file of dir; returns the count, -1 if dir is missing */
static int run_dir(const char *dir, int (*fn)(const uint8_t *, size_t)) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        FILE *f = fopen(p, "rb");
        if (!f) continue;
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        fseek(f, 0, SEEK_SET);
        uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
        size_t got = len > 0 ? fread(buf, 1, (size_t)len, f) : 0;
        fclose(f);
        fn(buf, got);
        free(buf);
        n++;
    }
    closedir(d);
    return n;
}

int test_fuzz_regress(void) {
    static const struct {
        const char *name;
        int (*fn)(const uint8_t *, size_t);
    } h[] = {
        { "safetensors", nl_fuzz_safetensors },
        { "ckpt", nl_fuzz_ckpt },
        { "shard", nl_fuzz_shard },
        { "config", nl_fuzz_config },
        { "metrics", nl_fuzz_metrics },
        { "tboard", nl_fuzz_tboard },
        { "idx", nl_fuzz_idx },
        { "png", nl_fuzz_png },
    };
    int fails = 0;
    for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) {
        char d[128];
        snprintf(d, sizeof d, "fuzz/corpus/%s", h[i].name);
        int seeds = run_dir(d, h[i].fn);
        snprintf(d, sizeof d, "fuzz/regress/%s", h[i].name);
        int reg = run_dir(d, h[i].fn);
        fails += NL_CHECK(seeds > 0, "fuzz/corpus/%s holds seeds (run from the repository root)", h[i].name);
        printf("    %-12s %d seeds, %d regression inputs\n", h[i].name, seeds, reg < 0 ? 0 : reg);
    }
    return fails;
}
