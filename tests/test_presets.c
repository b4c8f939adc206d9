/* test_presets.c -- every file in configs/ loads as a train config and resolves; the Peri-LN sizes
 * match their names, GPT-2 small has GPT-2's parameter count, and the small reproduction setups train. */
#include "check.h"
#include "config.h"
#include "model.h"
#include "tests.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the parameter count a preset's name states (periln-400m, periln-1.5b, ...), 0 if none */
static double named_size(const char *name) {
    double v;
    char unit;
    if (sscanf(name, "periln-%lf%c", &v, &unit) != 2) return 0;
    return unit == 'b' ? v * 1e9 : unit == 'm' ? v * 1e6 : 0;
}

int test_presets(void) {
    int fails = 0, files = 0, gpt2 = 0;
    DIR *d = opendir("configs");
    if (!d) {
        printf("    cannot open configs/ (run the tests from the repository root)\n");
        return 1;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        const size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".conf")) continue;
        char path[512];
        snprintf(path, sizeof path, "configs/%s", de->d_name);
        files++;
        static nl_args a;
        nl_args_defaults(&a);
        nl_status st = nl_args_load_file(&a, NL_CMD_TRAIN, path);
        fails += NL_CHECK(st == NL_OK, "%s: %s", path, nl_last_error());
        if (st != NL_OK) continue;
        nl_config c = a.cfg;
        if (c.vocab == 0) c.vocab = 256; /* from the data: bytes for the text presets */
        st = nl_config_resolve(&c);
        fails += NL_CHECK(st == NL_OK, "%s does not resolve: %s", path, nl_last_error());
        const double want = named_size(de->d_name), got = nl_config_matrix_params(&c);
        if (want > 0)
            fails += NL_CHECK(fabs(got / want - 1.0) < 0.05, "%s: %.4g parameters in its matrices, the name says %.3g",
                              path, got, want);
        if (!strcmp(de->d_name, "gpt2-124m.conf")) {
            gpt2 = 1;
            nl_model m;
            fails += NL_CHECK(nl_model_init(&m, &c) == NL_OK, "init %s", path);
            /* GPT-2 small: 124,439,808 (wte 50257 x 768, wpe 1024 x 768, 12 blocks, final LayerNorm) */
            fails += NL_CHECK(nl_model_trainable_count(&m) == 124439808u, "%s: %zu parameters", path,
                              nl_model_trainable_count(&m));
            nl_model_free(&m);
        }
    }
    closedir(d);
    fails += NL_CHECK(files >= 6 && gpt2, "%d preset files, gpt2-124m.conf %s", files, gpt2 ? "found" : "missing");

    /* the small setups train through the CLI; the run's config.txt holds the preset's shape */
    char dir[] = "/tmp/nl_presets_XXXXXX", txt[128], out[8192];
    NL_ASSERT(mkdtemp(dir));
    snprintf(txt, sizeof txt, "%s/t.txt", dir);
    nl_make_text(txt, 3000);
    const char *const small[] = { "repro-d128-gpt2", "repro-d128-llama" };
    for (int i = 0; i < 2; i++) {
        int rc = nl_run_fmt(out, sizeof out,
                            "%s train --config configs/%s.conf --steps 2 --threads 1 --data %s --out %s/%s 2>&1",
                            nl_test_bin(), small[i], txt, dir, small[i]);
        fails += NL_CHECK(rc == 0, "train --config configs/%s.conf: %s", small[i], out);
        rc = nl_run_fmt(out, sizeof out, "grep -c '^layers = 12$\\|^dim = 128$\\|^arch = %s$' %s/%s/config.txt",
                        i ? "llama" : "gpt2", dir, small[i]);
        fails += NL_CHECK(atoi(out) == 3, "%s: config.txt holds layers, dim and arch of the preset (%s)", small[i], out);
    }
    return fails + nl_test_rmdir(dir);
}
