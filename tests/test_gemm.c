/* test_gemm.c -- nl_gemm (src/cpu/gemm.c) against a double-precision reference for every transpose
 * pair, with row strides wider than the matrices, alpha and beta; the columns past N of C untouched;
 * the same bits on a repeated call; correct inside an OpenMP parallel region; on oneDNN, asynchronous
 * signals blocked in OpenMP's worker threads and the caller's signal mask restored. It tests the library
 * NL_GEMM selects (default oneDNN): `NL_GEMM=openblas build/release/nl_tests gemm` tests the other. */
#include "check.h"
#include "cpu/gemm.h"
#include "tests.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SENTINEL 1234.5f

/* C = alpha op(A) op(B) + beta C for the given shape and transposes, strides 3 wider than needed */
static int check_case(nl_rng *r, int tA, int tB, int M, int N, int K, float alpha, float beta) {
    const int lda = (tA ? M : K) + 3, ldb = (tB ? K : N) + 3, ldc = N + 3;
    const size_t na = (size_t)(tA ? K : M) * lda, nb = (size_t)(tB ? N : K) * ldb, nc = (size_t)M * ldc;
    float *A = nl_xmalloc(na * sizeof(float)), *B = nl_xmalloc(nb * sizeof(float)), *C = nl_xmalloc(nc * sizeof(float));
    float *got = nl_xmalloc((size_t)M * N * sizeof(float));
    double *want = nl_xmalloc((size_t)M * N * sizeof(double));
    nl_fill(r, A, na, 1), nl_fill(r, B, nb, 1), nl_fill(r, C, nc, 1);
    for (int i = 0; i < M; i++)
        for (int j = N; j < ldc; j++) C[(size_t)i * ldc + j] = SENTINEL;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)(tA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
                     (tB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
            want[(size_t)i * N + j] = alpha * s + (beta != 0.0f ? beta * (double)C[(size_t)i * ldc + j] : 0.0);
        }
    nl_gemm(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    int pad_ok = 1;
    for (int i = 0; i < M; i++) {
        memcpy(got + (size_t)i * N, C + (size_t)i * ldc, N * sizeof(float));
        for (int j = N; j < ldc; j++) pad_ok &= C[(size_t)i * ldc + j] == SENTINEL;
    }
    char label[96];
    snprintf(label, sizeof label, "gemm t%d%d %dx%dx%d alpha %g beta %g", tA, tB, M, N, K, alpha, beta);
    int fails = nl_check_rel(label, got, want, (size_t)M * N, 1e-5);
    fails += NL_CHECK(pad_ok, "%s: wrote past column N", label);
    free(A), free(B), free(C), free(got), free(want);
    return fails;
}

int test_gemm(void) {
    nl_rng r;
    nl_rng_seed(&r, 16);
    int fails = 0;
    /* OpenMP's workers exist before the first product, with the signal mask of the main thread (as
     * after the model's first parallel loops) */
    int team = 0;
#pragma omp parallel reduction(+ : team)
    team += 1;
    NL_ASSERT(team >= 1);
    const char *lib = getenv("NL_GEMM");
    const char *info = nl_gemm_info();
    printf("    %s\n", info);
    fails += NL_CHECK(strstr(info, lib && !strcmp(lib, "openblas") ? "OpenBLAS " : "oneDNN ") != NULL, "info: %s", info);
    for (int t = 0; t < 4; t++) {
        fails += check_case(&r, t >> 1, t & 1, 7, 5, 3, 1.0f, 0.0f);
        fails += check_case(&r, t >> 1, t & 1, 67, 45, 130, 0.5f, 1.0f);
        fails += check_case(&r, t >> 1, t & 1, 300, 257, 96, 1.0f, -0.5f); /* big enough for 2 threads */
    }
    /* the same bits twice (the resume tests compare loss curves bit for bit) */
    enum { M = 512, N = 384, K = 1536 };
    float *A = nl_xmalloc(sizeof(float) * M * K), *B = nl_xmalloc(sizeof(float) * N * K);
    float *C1 = nl_xmalloc(sizeof(float) * M * N), *C2 = nl_xmalloc(sizeof(float) * M * N);
    nl_fill(&r, A, (size_t)M * K, 1), nl_fill(&r, B, (size_t)N * K, 1);
    nl_gemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C1, N);
    nl_gemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C2, N);
    fails += NL_CHECK(!memcmp(C1, C2, sizeof(float) * M * N), "gemm: two identical calls differ");
    /* inside a parallel region each thread runs its own product */
    enum { P = 4, S = 64 };
    float *Cp = nl_xmalloc(sizeof(float) * P * S * S);
    double *want = nl_xmalloc(sizeof(double) * S * S);
    for (int i = 0; i < S; i++)
        for (int j = 0; j < S; j++) {
            double s = 0;
            for (int k = 0; k < S; k++) s += (double)A[i * K + k] * B[j * K + k];
            want[i * S + j] = s;
        }
#pragma omp parallel for
    for (int p = 0; p < P; p++) nl_gemm(0, 1, S, S, S, 1.0f, A, K, B, K, 0.0f, Cp + p * S * S, S);
    for (int p = 0; p < P; p++) fails += nl_check_rel("gemm in a parallel region", Cp + p * S * S, want, S * S, 1e-5);
    free(A), free(B), free(C1), free(C2), free(Cp), free(want);
    /* oneDNN: the workers block SIGTERM (src/cpu/gemm.c, "Signals"), the caller has its mask back */
    if (!strncmp(info, "oneDNN", 6)) {
        sigset_t m;
        pthread_sigmask(SIG_SETMASK, NULL, &m);
        fails += NL_CHECK(!sigismember(&m, SIGTERM), "SIGTERM still blocked in the caller after nl_gemm");
        int unblocked = 0;
#pragma omp parallel reduction(+ : unblocked)
        {
            sigset_t w;
            pthread_sigmask(SIG_SETMASK, NULL, &w);
#ifdef _OPENMP
            unblocked += omp_get_thread_num() != 0 && !sigismember(&w, SIGTERM);
#endif
        }
        fails += NL_CHECK(unblocked == 0, "%d OpenMP worker(s) can take SIGTERM", unblocked);
    }
    return fails;
}
