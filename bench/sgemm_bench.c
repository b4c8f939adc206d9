/* sgemm_bench.c -- measures this machine's single-precision GEMM rate through nl_gemm (the one matrix
 * product normlab uses), the ceiling the training benchmark compares against. Prints the library and
 * kernel ISA, one line per shape and a final "peak" line.
 * usage: sgemm_bench [threads] */
#include "backend.h"
#include "cpu/gemm.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    nl_set_threads(threads);
    printf("gemm: %s\n", nl_gemm_info());
    /* square, and the model's shapes: (tokens x 4d x d) at d=384 with 2048 tokens */
    const int shapes[][3] = { { 1024, 1024, 1024 }, { 2048, 2048, 2048 }, { 2048, 1536, 384 }, { 2048, 384, 1536 } };
    double peak = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N), *c = malloc(sizeof(float) * M * N);
        for (long i = 0; i < (long)M * K; i++) a[i] = (float)(i % 7) * 0.1f;
        for (long i = 0; i < (long)K * N; i++) b[i] = (float)(i % 5) * 0.1f;
        nl_gemm(0, 0, M, N, K, 1, a, K, b, N, 0, c, N);
        int reps = 0;
        double t0 = now(), t;
        do {
            nl_gemm(0, 0, M, N, K, 1, a, K, b, N, 0, c, N);
            reps++;
        } while ((t = now() - t0) < 1.0);
        double gf = 2.0 * M * N * K * reps / t / 1e9;
        if (gf > peak) peak = gf;
        printf("sgemm %5d x %5d x %5d  %7.1f GFLOP/s\n", M, N, K, gf);
        free(a), free(b), free(c);
    }
    printf("peak %.1f GFLOP/s (%d threads)\n", peak, threads);
    return 0;
}
