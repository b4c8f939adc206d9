/* gemm_bench.c -- the matmul rate at a model's shapes, through nl_gemm (so through the library that
 * NL_GEMM selects, with OPENBLAS_CORETYPE honoured by OpenBLAS). The products are those of one training
 * step: for each linear layer (OC x IC) of a block the forward (N x IC)(OC x IC)^T, the input gradient
 * (N x OC)(OC x IC) and the weight gradient (N x OC)^T(N x IC) accumulated (beta 1), and the same three
 * for the head over the vocabulary (logits with row stride vocab-rows). Attention's per-head products
 * are not included. Each product is timed in 3 rounds of at least 0.1 s; its fastest round counts (the
 * least disturbed on a shared machine). Prints the library, then "rate R GFLOP/s": all products' FLOPs,
 * each counted `layers` times (the head once), over their summed times.
 * --cpu-time times by the process's CPU time instead of the wall clock: with --threads 1, the rate of
 * one core even on a machine whose other jobs take turns on it.
 * usage: gemm_bench --tokens N --dim D --ffn F --arch gpt2|llama --layers L --vocab V --vocab-rows VP
 *                   [--threads T] [--detail] [--cpu-time]  */
#include "cpu/gemm.h"
#include "backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static clockid_t g_clock = CLOCK_MONOTONIC;

static double now(void) {
    struct timespec ts;
    clock_gettime(g_clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* seconds per call of C = op(A) op(B) + beta C, the fastest of 3 rounds */
static double time_gemm(int tA, int tB, int M, int N, int K, int lda, int ldb, int ldc, float beta) {
    const size_t na = (size_t)(tA ? K : M) * lda, nb = (size_t)(tB ? N : K) * ldb, nc = (size_t)M * ldc;
    float *A = malloc(na * sizeof(float)), *B = malloc(nb * sizeof(float)), *C = calloc(nc, sizeof(float));
    if (!A || !B || !C) fprintf(stderr, "gemm_bench: out of memory\n"), exit(1);
    for (size_t i = 0; i < na; i++) A[i] = (float)((i * 7) % 13) * 0.01f - 0.06f;
    for (size_t i = 0; i < nb; i++) B[i] = (float)((i * 5) % 11) * 0.01f - 0.05f;
    nl_gemm(tA, tB, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc); /* warm-up (JIT, caches, threads) */
    double best = 1e30;
    for (int round = 0; round < 3; round++) {
        int reps = 0;
        double t0 = now(), t;
        do {
            nl_gemm(tA, tB, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
            reps++;
        } while ((t = now() - t0) < 0.1 || reps < 2);
        if (t / reps < best) best = t / reps;
    }
    free(A), free(B), free(C);
    return best;
}

static int arg_int(const char *name, const char *v) {
    char *end;
    long x = strtol(v ? v : "", &end, 10);
    if (!v || *end || x <= 0 || x > 1 << 30)
        fprintf(stderr, "gemm_bench: %s needs a positive integer\n", name), exit(2);
    return (int)x;
}

int main(int argc, char **argv) {
    int N = 0, D = 0, F = 0, L = 0, V = 0, VP = 0, threads = 2, detail = 0, llama = -1;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            puts("usage: gemm_bench --tokens N --dim D --ffn F --arch gpt2|llama --layers L --vocab V --vocab-rows VP\n"
                 "                  [--threads T] [--detail] [--cpu-time]\n"
                 "The matmul rate (GFLOP/s) of one training step's linear-layer and head products through nl_gemm\n"
                 "(NL_GEMM=onednn|openblas picks the library). --detail prints each product's rate; --cpu-time\n"
                 "times by the process's CPU time (with --threads 1: one core's rate on a loaded machine).");
            return 0;
        }
        if (!strcmp(o, "--detail")) {
            detail = 1;
            continue;
        }
        if (!strcmp(o, "--cpu-time")) {
            g_clock = CLOCK_PROCESS_CPUTIME_ID;
            continue;
        }
        if (!strcmp(o, "--arch")) {
            llama = v && !strcmp(v, "llama") ? 1 : v && !strcmp(v, "gpt2") ? 0 : -2;
            if (llama < 0) fprintf(stderr, "gemm_bench: --arch needs gpt2 or llama\n"), exit(2);
        } else if (!strcmp(o, "--tokens")) N = arg_int(o, v);
        else if (!strcmp(o, "--dim")) D = arg_int(o, v);
        else if (!strcmp(o, "--ffn")) F = arg_int(o, v);
        else if (!strcmp(o, "--layers")) L = arg_int(o, v);
        else if (!strcmp(o, "--vocab")) V = arg_int(o, v);
        else if (!strcmp(o, "--vocab-rows")) VP = arg_int(o, v);
        else if (!strcmp(o, "--threads")) threads = arg_int(o, v);
        else fprintf(stderr, "gemm_bench: unknown option '%s' (see --help)\n", o), exit(2);
        i++;
    }
    if (!N || !D || !F || !L || !V || !VP || llama < 0)
        fprintf(stderr, "gemm_bench: all of --tokens --dim --ffn --arch --layers --vocab --vocab-rows are needed\n"),
                exit(2);
    if (VP < V) fprintf(stderr, "gemm_bench: --vocab-rows %d is less than --vocab %d\n", VP, V), exit(2);
    nl_set_threads(threads);
    /* (OC, IC, count) of each linear layer; llama's gate and up projections are one product of width 2F */
    const int lin[][3] = { { 3 * D, D, L }, { D, D, L }, { llama ? 2 * F : F, D, L }, { D, F, L }, { V, D, 1 } };
    printf("%s, %d threads%s\n", nl_gemm_info(), threads, g_clock == CLOCK_MONOTONIC ? "" : ", CPU time");
    double flops = 0, secs = 0;
    for (size_t l = 0; l < sizeof lin / sizeof lin[0]; l++) {
        const int OC = lin[l][0], IC = lin[l][1], head = l == 4, ld = head ? VP : OC;
        /* forward, input gradient, weight gradient */
        const int p[3][9] = { { 0, 1, N, OC, IC, IC, IC, ld, 0 },
                              { 0, 0, N, IC, OC, ld, IC, IC, 0 },
                              { 1, 0, OC, IC, N, ld, IC, IC, 1 } };
        for (int k = 0; k < 3; k++) {
            const int *q = p[k];
            const double s = time_gemm(q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7], (float)q[8]);
            const double f = 2.0 * q[2] * q[3] * q[4];
            flops += f * lin[l][2], secs += s * lin[l][2];
            if (detail) printf("  t%d%d %6d x %6d x %6d  %7.1f GFLOP/s\n", q[0], q[1], q[2], q[3], q[4], f / s / 1e9);
        }
    }
    printf("rate %.1f GFLOP/s\n", flops / secs / 1e9);
    return 0;
}
