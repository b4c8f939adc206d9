/* bpe_bench.c -- GPT-2 tokenizer throughput on one core: loads the tokenizer (timed separately), then
 * encodes each file given once with a fresh piece cache and prints MB/s (1 MB = 1e6 bytes) by wall
 * clock and by the thread's CPU time (the latter does not count time the core spent on other jobs).
 * usage: build/release/bpe_bench FILE... (bench/bpe_bench.sh runs it) */
#include "bpe.h"
#include "common.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

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
        double t = nl_now(), c = cpu_now();
        nl_bpe_encode(b, text, n, &ids);
        t = nl_now() - t;
        c = cpu_now() - c;
        printf("%-36s %6.2f MB %8zu tokens  wall %6.3f s %6.1f MB/s  cpu %6.3f s %6.1f MB/s\n", argv[a], n / 1e6, ids.n,
               t, n / 1e6 / t, c, n / 1e6 / c);
        nl_ids_free(&ids);
        free(text);
    }
    nl_bpe_free(b);
    return 0;
}
