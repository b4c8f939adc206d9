/* bpe_bench.c -- GPT-2 tokenizer throughput on one core: loads the tokenizer (timed separately), then
 * encodes each file given once with a fresh piece cache and prints MB/s (1 MB = 1e6 bytes).
 * usage: build/release/bpe_bench FILE... (bench/bpe_bench.sh runs it) */
#include "bpe.h"
#include "common.h"

#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    double t0 = nl_now();
    nl_bpe *b;
    if (nl_bpe_load(&b, "") != NL_OK) return fprintf(stderr, "bpe_bench: %s\n", nl_last_error()), 1;
    printf("load encoder.json + vocab.bpe: %.3f s\n", nl_now() - t0);
    for (int a = 1; a < argc; a++) {
        FILE *f = fopen(argv[a], "rb");
        if (!f) return fprintf(stderr, "bpe_bench: cannot open %s\n", argv[a]), 1;
        fseek(f, 0, SEEK_END);
        size_t n = (size_t)ftell(f);
        fseek(f, 0, SEEK_SET);
        char *text = nl_xmalloc(n);
        if (fread(text, 1, n, f) != n) return fprintf(stderr, "bpe_bench: short read %s\n", argv[a]), 1;
        fclose(f);
        nl_bpe_set_reference_merge(b, 0); /* clears the piece cache: every file starts cold */
        nl_ids ids = { 0 };
        double t = nl_now();
        nl_bpe_encode(b, text, n, &ids);
        t = nl_now() - t;
        printf("%-40s %9.2f MB %8zu tokens %7.3f s %7.1f MB/s\n", argv[a], n / 1e6, ids.n, t, n / 1e6 / t);
        nl_ids_free(&ids);
        free(text);
    }
    nl_bpe_free(b);
    return 0;
}
