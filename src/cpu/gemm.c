/* gemm.c -- nl_gemm on oneDNN (default) or OpenBLAS (NL_GEMM=openblas).
 * oneDNN's sgemm picks its JIT kernels from the CPUID feature bits (AVX-512, AVX2, ...), so a CPU model
 * it has never seen still gets the kernels its features allow. Debian's OpenBLAS 0.3.21 picks by CPU
 * model and falls back to its slowest (Prescott) kernels on a model it does not know: 4x slower on the
 * project's Intel machine unless OPENBLAS_CORETYPE is set. docs/benchmarks.md has the measurements.
 * Both libraries are Debian's OpenMP builds: their threads are the program's OpenMP pool, sized by
 * omp_set_num_threads (nl_set_threads), and a call made inside a parallel region runs on the caller.
 * With a fixed thread count both give the same bits run to run (tests/test_gemm.c).
 *
 * Signals: oneDNN 2.6's JIT sgemm kernels point rsp into a heap buffer while they run (oneDNN issue
 * #4845, fixed in 3.11), so a signal handler that runs then (normlab's SIGINT/SIGTERM checkpointing)
 * writes its frame over the heap. No thread may take an asynchronous signal inside one: OpenMP's worker
 * threads block them for good, the calling thread for the call; a signal sent meanwhile waits and is
 * taken by the calling thread right after (tests/test_reliability.c sends them mid-step). */
#include "cpu/gemm.h"

#include "common.h"

#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum { GEMM_ONEDNN, GEMM_OPENBLAS } g_lib;
static char g_info[128];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static sigset_t g_async; /* every signal but the synchronous (fault) ones */

/* the f32 kernel family oneDNN's sgemm dispatches to for the ISA it detected (or was capped at with
 * DNNL_MAX_CPU_ISA, as scripts/valgrind.sh does) */
static const char *onednn_sgemm_isa(void) {
    const unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    const struct {
        unsigned bits;
        const char *name;
    } k[] = {
        { dnnl_cpu_isa_avx512_core, "avx512_core" },
        { dnnl_cpu_isa_avx2, "avx2" },
        { dnnl_cpu_isa_avx, "avx" },
        { dnnl_cpu_isa_sse41, "sse41" },
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if ((isa & k[i].bits) == k[i].bits) return k[i].name;
    return "reference C";
}

static void gemm_init(void) {
    sigfillset(&g_async);
    const int sync[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT };
    for (size_t i = 0; i < sizeof sync / sizeof sync[0]; i++) sigdelset(&g_async, sync[i]);
    const char *e = getenv("NL_GEMM");
    if (!e || !*e || !strcmp(e, "onednn")) {
        g_lib = GEMM_ONEDNN;
        const dnnl_version_t *v = dnnl_version();
        snprintf(g_info, sizeof g_info, "oneDNN %d.%d.%d (%s)", v->major, v->minor, v->patch, onednn_sgemm_isa());
    } else if (!strcmp(e, "openblas")) {
        g_lib = GEMM_OPENBLAS;
        char ver[32] = "?";
        sscanf(openblas_get_config(), "OpenBLAS %31s", ver);
        snprintf(g_info, sizeof g_info, "OpenBLAS %s (%s)", ver, openblas_get_corename());
    } else {
        fprintf(stderr, "normlab: NL_GEMM=%s: expected onednn or openblas\n", e);
        exit(2);
    }
}

/* makes every worker thread of the OpenMP team block g_async. The runtime keeps a team's threads from
 * one parallel region to the next; it replaces them when the team size changes (libgomp ends the
 * surplus threads of a smaller team and starts new ones for a larger), so the pass reruns whenever the
 * size differs from the last pass's. Running it on every call would cost a fork/join per product:
 * measured 57-65 against 78-119 GFLOP/s on 2 threads of a loaded machine. Not covered: a size changed
 * and changed back between two calls while other parallel code ran (normlab sets it once per run). */
static _Thread_local int t_blocked;
static int g_team; /* the team size of the last pass */
static void block_workers(void) {
#ifdef _OPENMP
    const int n = omp_get_max_threads();
    if (omp_in_parallel() || n == __atomic_load_n(&g_team, __ATOMIC_ACQUIRE)) return;
#pragma omp parallel num_threads(n)
    if (omp_get_thread_num() != 0 && !t_blocked) pthread_sigmask(SIG_BLOCK, &g_async, NULL), t_blocked = 1;
    __atomic_store_n(&g_team, n, __ATOMIC_RELEASE);
#endif
}

void nl_gemm(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc) {
    pthread_once(&g_once, gemm_init);
    if (g_lib == GEMM_OPENBLAS) {
        cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
                    lda, B, ldb, beta, C, ldc);
        return;
    }
    block_workers();
    sigset_t old;
    pthread_sigmask(SIG_BLOCK, &g_async, &old);
    const dnnl_status_t st = dnnl_sgemm(tA ? 'T' : 'N', tB ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    NL_ASSERT(st == dnnl_success);
}

const char *nl_gemm_info(void) {
    pthread_once(&g_once, gemm_init);
    return g_info;
}
