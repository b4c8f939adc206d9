/* gemm.c -- nl_gemm on oneDNN (default) or OpenBLAS (NL_GEMM=openblas), and nl_gemm_bf16 on oneDNN's
 * bf16 matmul (the bf16 table's products where the CPU has bf16 instructions; NL_GEMM_BF16).
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
#include <stdint.h>
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

/* ---------------------------------------------------------------- bf16 x bf16 -> f32 on oneDNN's matmul
 * oneDNN has no public bf16 GEMM call, so nl_gemm_bf16 builds a matmul primitive (bf16 source and weights,
 * f32 destination, f32 accumulation; alpha as the output scale, beta as a sum post-op) whose strides say
 * the transposes. Building one costs 0.2-0.4 ms, about 30 ms a step of the byte shape, so the primitives
 * are kept in a small table keyed by everything that defines them (shape, strides, alpha, beta and the
 * thread count, which oneDNN fixes when it builds one). */

static int g_bf16_on;            /* the bf16 table's products run on nl_gemm_bf16 */
static char g_bf16_info[2][192]; /* nl_gemm_bf16_info: off, on */
static pthread_once_t g_bf16_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t g_engine;
static dnnl_stream_t g_stream;

/* oneDNN's bf16 matmul kernels for its ISA: with avx512_bf16 (VDPBF16PS) or AMX the products are native;
 * on plain avx512_core oneDNN emulates them (slower than the f32 path), below that it has only reference
 * code */
static const char *onednn_bf16_isa(void) {
    const unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    if ((isa & dnnl_cpu_isa_avx512_core_amx) == dnnl_cpu_isa_avx512_core_amx) return "avx512_core_amx";
    if ((isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16) return "avx512_core_bf16";
    return NULL;
}

/* oneDNN 2.6 has bf16 matmuls from avx512_core up (emulated there), none below */
static int bf16_can(void) {
    const unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    return (isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core;
}

static void bf16_init(void) {
    pthread_once(&g_once, gemm_init);
    const char *isa = onednn_bf16_isa(), *e = getenv("NL_GEMM_BF16");
    if (!e || !*e) {
        g_bf16_on = isa != NULL;
    } else if (!strcmp(e, "f32")) {
        g_bf16_on = 0;
    } else if (!strcmp(e, "onednn")) {
        if (!bf16_can()) {
            fprintf(stderr, "normlab: NL_GEMM_BF16=onednn: oneDNN has no bf16 matmul on this CPU (it needs AVX-512)\n");
            exit(2);
        }
        g_bf16_on = 1;
    } else {
        fprintf(stderr, "normlab: NL_GEMM_BF16=%s: expected onednn or f32\n", e);
        exit(2);
    }
    const dnnl_version_t *v = dnnl_version();
    snprintf(g_bf16_info[0], sizeof g_bf16_info[0], "%s on operands rounded to bf16 (NL_GEMM_BF16=f32)", g_info);
    snprintf(g_bf16_info[1], sizeof g_bf16_info[1], "oneDNN %d.%d.%d bf16 x bf16 -> f32 (%s)", v->major, v->minor,
             v->patch, isa ? isa : "no bf16 instructions: emulated by oneDNN");
    NL_ASSERT(dnnl_engine_create(&g_engine, dnnl_cpu, 0) == dnnl_success);
    NL_ASSERT(dnnl_stream_create(&g_stream, g_engine, dnnl_stream_default_flags) == dnnl_success);
}

int nl_gemm_bf16_on(void) {
    pthread_once(&g_bf16_once, bf16_init);
    return g_bf16_on;
}

int nl_gemm_bf16_can(void) { return bf16_can(); }

int nl_gemm_bf16_use(int on) {
    const int old = nl_gemm_bf16_on();
    NL_ASSERT(!on || bf16_can());
    g_bf16_on = on != 0;
    return old;
}

const char *nl_gemm_bf16_info(void) {
    pthread_once(&g_bf16_once, bf16_init);
    return g_bf16_info[g_bf16_on];
}

typedef struct {
    int tA, tB, M, N, K, lda, ldb, ldc, threads;
    float alpha, beta;
} mm_key;

enum { MM_CACHE = 64 }; /* a model uses about 4 per distinct linear shape, 30 for the llama shape */
static struct {
    mm_key key;
    dnnl_primitive_t prim;
    dnnl_memory_desc_t a, b, c;
} g_mm[MM_CACHE];
static int g_mm_n, g_mm_next; /* entries in use; the next to replace when full */
/* one caller at a time: a replaced entry's primitive is destroyed, so no other thread may be running it
 * (the library's users may train two models on two host threads) */
static pthread_mutex_t g_mm_lock = PTHREAD_MUTEX_INITIALIZER;

/* the memory descriptor of a rows x cols matrix stored row-major with row stride ld, or (t) its transpose */
static dnnl_memory_desc_t md_of(int rows, int cols, int ld, int t, dnnl_data_type_t type) {
    dnnl_memory_desc_t d;
    const dnnl_dims_t dims = { rows, cols }, strides = { t ? 1 : ld, t ? ld : 1 };
    NL_ASSERT(dnnl_memory_desc_init_by_strides(&d, 2, dims, type, strides) == dnnl_success);
    return d;
}

static int mm_find(const mm_key *k) {
    for (int i = 0; i < g_mm_n; i++)
        if (!memcmp(&g_mm[i].key, k, sizeof *k)) return i;
    const int i = g_mm_n < MM_CACHE ? g_mm_n++ : g_mm_next;
    g_mm_next = (i + 1) % MM_CACHE;
    if (g_mm[i].prim) dnnl_primitive_destroy(g_mm[i].prim);
    g_mm[i].key = *k;
    g_mm[i].a = md_of(k->M, k->K, k->lda, k->tA, dnnl_bf16);
    g_mm[i].b = md_of(k->K, k->N, k->ldb, k->tB, dnnl_bf16);
    g_mm[i].c = md_of(k->M, k->N, k->ldc, 0, dnnl_f32);
    dnnl_matmul_desc_t md;
    NL_ASSERT(dnnl_matmul_desc_init(&md, &g_mm[i].a, &g_mm[i].b, NULL, &g_mm[i].c) == dnnl_success);
    dnnl_primitive_attr_t attr;
    NL_ASSERT(dnnl_primitive_attr_create(&attr) == dnnl_success);
    if (k->alpha != 1.0f) NL_ASSERT(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &k->alpha) == dnnl_success);
    if (k->beta != 0.0f) {
        dnnl_post_ops_t po;
        NL_ASSERT(dnnl_post_ops_create(&po) == dnnl_success);
        NL_ASSERT(dnnl_post_ops_append_sum(po, k->beta) == dnnl_success);
        NL_ASSERT(dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success);
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t pd;
    NL_ASSERT(dnnl_primitive_desc_create(&pd, &md, attr, g_engine, NULL) == dnnl_success);
    NL_ASSERT(dnnl_primitive_create(&g_mm[i].prim, pd) == dnnl_success);
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_attr_destroy(attr);
    return i;
}

void nl_gemm_bf16(int tA, int tB, int M, int N, int K, float alpha, const uint16_t *A, int lda, const uint16_t *B,
                  int ldb, float beta, float *C, int ldc) {
    pthread_once(&g_bf16_once, bf16_init);
    NL_ASSERT(M >= 0 && N >= 0 && K >= 0);
    if (M == 0 || N == 0) return;
    if (K == 0) { /* no product: C = beta C, as the f32 path gives */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta != 0.0f ? beta * C[(size_t)i * ldc + j] : 0.0f;
        return;
    }
#ifdef _OPENMP
    NL_ASSERT(!omp_in_parallel());
    const int threads = omp_get_max_threads();
#else
    const int threads = 1;
#endif
    const mm_key key = { tA != 0, tB != 0, M, N, K, lda, ldb, ldc, threads, alpha, beta };
    pthread_mutex_lock(&g_mm_lock);
    const int i = mm_find(&key);
    dnnl_memory_t ma, mb, mc;
    NL_ASSERT(dnnl_memory_create(&ma, &g_mm[i].a, g_engine, (void *)A) == dnnl_success);
    NL_ASSERT(dnnl_memory_create(&mb, &g_mm[i].b, g_engine, (void *)B) == dnnl_success);
    NL_ASSERT(dnnl_memory_create(&mc, &g_mm[i].c, g_engine, C) == dnnl_success);
    const dnnl_exec_arg_t args[] = { { DNNL_ARG_SRC, ma }, { DNNL_ARG_WEIGHTS, mb }, { DNNL_ARG_DST, mc } };
    block_workers();
    sigset_t old;
    pthread_sigmask(SIG_BLOCK, &g_async, &old);
    const dnnl_status_t st = dnnl_primitive_execute(g_mm[i].prim, g_stream, 3, args);
    const dnnl_status_t sw = dnnl_stream_wait(g_stream);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    dnnl_memory_destroy(ma), dnnl_memory_destroy(mb), dnnl_memory_destroy(mc);
    pthread_mutex_unlock(&g_mm_lock);
    NL_ASSERT(st == dnnl_success && sw == dnnl_success);
}
