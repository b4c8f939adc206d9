/* test_backend.c -- the backend boundary and the CPU backend's own pieces:
 *   backend_layering  the model-level files reach numbers only through nl_backend (a source scan);
 *   backend_kernels   nl_gemm in every transposition with strides, alpha and beta, and the kernels the
 *                     backend added (scale_shift, copy_cols, sum, sumsq, first_nonfinite, adamw);
 *   backend_fp_mode   flush-to-zero / denormals-are-zero hold in every thread that computes. */
#include "check.h"
#include "config.h"
#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "model.h"
#include "optim.h"
#include "tests.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---------------------------------------------------------------- layering */

/* The files that must reach numbers only through the backend table. */
static const char *const model_level[] = { "src/model.c", "src/optim.c",  "src/diag.c",   "src/analyze.c",
                                           "src/train.c", "src/evalmc.c", "src/sample.c", "src/api.c" };

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = nl_xmalloc((size_t)n + 1);
    const size_t got = fread(s, 1, (size_t)n, f);
    s[got] = 0;
    fclose(f);
    return s;
}

/* The repository root: this file is compiled as tests/test_backend.c from it. */
static void repo_path(char *out, size_t cap, const char *rel) {
    const char *me = __FILE__, *slash = strstr(me, "tests/test_backend.c");
    snprintf(out, cap, "%.*s%s", slash ? (int)(slash - me) : 0, me, rel);
}

/* Blanks comments and the contents of string and character literals (keeping line breaks), so that
 * only code is searched; #include lines are checked on the raw text. */
static void strip_code(char *s) {
    for (char *p = s; *p; p++) {
        if (p[0] == '/' && p[1] == '*') {
            char *e = strstr(p + 2, "*/");
            char *end = e ? e + 2 : p + strlen(p);
            for (; p < end; p++)
                if (*p != '\n') *p = ' ';
            p--;
        } else if (p[0] == '/' && p[1] == '/') {
            for (; *p && *p != '\n'; p++) *p = ' ';
            if (!*p) break;
        } else if (*p == '"' || *p == '\'') {
            const char q = *p;
            for (p++; *p && *p != q; p++) {
                if (*p == '\\' && p[1]) *p++ = ' ';
                if (*p != '\n') *p = ' ';
            }
            if (!*p) break;
        }
    }
}

static int is_ident(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* Identifier names declared as functions (name followed by '(') in a header, after stripping. */
static int header_functions(const char *rel, char names[][48], int cap) {
    char path[4096];
    repo_path(path, sizeof path, rel);
    char *s = slurp(path);
    if (!s) return -1;
    strip_code(s);
    int n = 0;
    for (char *p = s; (p = strstr(p, "nl_")) && n < cap; p++) {
        if (p > s && is_ident(p[-1])) continue;
        size_t k = 0;
        while (is_ident(p[k])) k++;
        size_t j = k;
        while (p[j] == ' ') j++;
        if (p[j] != '(' || k >= 48) continue;
        memcpy(names[n], p, k);
        names[n][k] = 0;
        n++;
    }
    free(s);
    return n;
}

/* Fields of nl_model and its structs that point into backend memory: "float *name" not followed by '['. */
static int backend_fields(char names[][48], int cap) {
    char path[4096];
    repo_path(path, sizeof path, "src/model.h");
    char *s = slurp(path);
    if (!s) return -1;
    strip_code(s);
    int n = 0;
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
        char *p = strstr(line, "float *");
        if (!p || strstr(line, "float **")) continue;
        for (p += 6; *p && n < cap;) { /* "*a, *b[3], *c;" */
            while (*p == ' ' || *p == ',' || *p == '*') p++;
            size_t k = 0;
            while (is_ident(p[k])) k++;
            if (!k) break;
            if (p[k] != '[' && k < 48) {
                memcpy(names[n], p, k);
                names[n++][k] = 0;
            }
            p += k;
            while (*p && *p != ',' && *p != ';') p++;
            if (*p != ',') break;
        }
    }
    free(s);
    return n;
}

#define VIOLATION(...) (printf("    violation: " __VA_ARGS__), printf("\n"), 1)

/* Violations in one file's text (raw: its original bytes); prints each. */
static int scan_file(const char *label, const char *raw, char kern[][48], int nkern, char fields[][48], int nfields) {
    static const char *const bad_includes[] = { "<cblas.h>",  "\"ops.h\"", "\"cpu/",   "\"kernels.h\"",
                                                "\"gemm.h\"", "<omp.h>",   "intrin.h>" };
    static const char *const bad_tokens[] = { "cblas_", "openblas_", "#pragma omp", "omp_get", "omp_set", "_mm_" };
    int fails = 0;
    for (const char *p = raw; (p = strstr(p, "#include")); p++) {
        const char *e = strchr(p, '\n');
        char line[256];
        snprintf(line, sizeof line, "%.*s", e ? (int)(e - p) : (int)strlen(p), p);
        for (size_t i = 0; i < sizeof bad_includes / sizeof *bad_includes; i++)
            if (strstr(line, bad_includes[i])) fails += VIOLATION("%s: includes a kernel header: %s", label, line);
    }
    char *s = nl_xmalloc(strlen(raw) + 1);
    strcpy(s, raw);
    strip_code(s);
    for (size_t i = 0; i < sizeof bad_tokens / sizeof *bad_tokens; i++)
        if (strstr(s, bad_tokens[i])) fails += VIOLATION("%s: uses '%s' (only src/cpu/ may)", label, bad_tokens[i]);
    for (char *p = s; *p; p++) {
        if (!is_ident(*p) || (p > s && is_ident(p[-1]))) continue;
        size_t k = 0;
        while (is_ident(p[k])) k++;
        const char *after = p + k;
        while (*after == ' ') after++;
        /* a kernel called directly (or its address taken) */
        for (int i = 0; i < nkern; i++)
            if (strlen(kern[i]) == k && !strncmp(p, kern[i], k) && (*after == '(' || *after == ',' || *after == ')'))
                fails += VIOLATION("%s: calls the CPU kernel %s directly (use the backend table)", label, kern[i]);
        /* an element of backend memory read or written on the host: ->field[ or .field[ */
        if (p > s && (p[-1] == '.' || (p > s + 1 && p[-1] == '>' && p[-2] == '-')) && *after == '[')
            for (int i = 0; i < nfields; i++)
                if (strlen(fields[i]) == k && !strncmp(p, fields[i], k))
                    fails += VIOLATION("%s: indexes backend memory '%.*s[' on the host", label, (int)k, p);
        p += k - 1;
    }
    free(s);
    return fails;
}

int test_backend_layering(void) {
    static char kern[256][48], fields[256][48];
    int nk = header_functions("src/cpu/kernels.h", kern, 200);
    const int ng = header_functions("src/cpu/gemm.h", kern + (nk > 0 ? nk : 0), 16);
    const int nf = backend_fields(fields, 256);
    int fails = NL_CHECK(nk > 30 && ng == 7 && nf > 50,
                         "could not read the headers from the source tree (%d kernels, %d gemm, %d fields)", nk, ng, nf);
    if (fails) return fails;
    nk += ng;
    /* the scanner finds what it must: each planted violation is caught, a clean snippet is not */
    static const char *const planted[] = { "#include <cblas.h>\n",
                                           "#include \"cpu/kernels.h\"\n",
                                           "void f(void) { cblas_sgemm(0); }\n",
                                           "void f(void) {\n#pragma omp parallel for\n}\n",
                                           "void f(float *x) { nl_gelu_forward(x, x, 1); }\n",
                                           "void f(float *x) { nl_gemm(0, 0, 1, 1, 1, 1, x, 1, x, 1, 0, x, 1); }\n",
                                           "double f(nl_model *m) { return m->grads[0]; }\n",
                                           "void f(nl_model *m) { for (int i = 0; i < 4; i++) m->losses[i] = 0; }\n",
                                           "float f(nl_normw p) { return p.w[0]; }\n" };
    for (size_t i = 0; i < sizeof planted / sizeof *planted; i++) {
        printf("    planted %zu (a violation is expected):\n", i);
        fails += NL_CHECK(scan_file("planted", planted[i], kern, nk, fields, nf) > 0, "planted violation not found: %s",
                          planted[i]);
    }
    fails += NL_CHECK(scan_file("clean",
                                "/* cblas_sgemm nl_gelu_forward( m->grads[0] */\nvoid f(nl_model *m) {\n"
                                "  const char *s = \"#pragma omp cblas_ m->losses[1]\";\n"
                                "  m->be->gelu_forward(m->emb, m->emb, 4); w->skip[0] = 0; (void)s;\n}\n",
                                kern, nk, fields, nf) == 0,
                      "a clean snippet was reported");
    for (size_t i = 0; i < sizeof model_level / sizeof *model_level; i++) {
        char path[4096];
        repo_path(path, sizeof path, model_level[i]);
        char *raw = slurp(path);
        fails += NL_CHECK(raw != NULL, "cannot read %s", path);
        if (raw) fails += scan_file(model_level[i], raw, kern, nk, fields, nf);
        free(raw);
    }
    /* BLAS is called in one place: src/cpu/gemm.c */
    char out[4096], root[4096];
    repo_path(root, sizeof root, "");
    const int st = nl_run_fmt(out, sizeof out,
                              "cd '%s.' && grep -rlE 'cblas_|<cblas.h>' src tools include examples bench | grep -v '^src/cpu/gemm.c$'",
                              root);
    fails += NL_CHECK(st != 0 && !out[0], "files other than src/cpu/gemm.c call BLAS:\n%s", out);
    return fails;
}

/* ---------------------------------------------------------------- kernels */

static void gemm_ref(int tA, int tB, int M, int N, int K, double alpha, const float *A, int lda, const float *B,
                     int ldb, double beta, const float *C0, int ldc, double *out) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int k = 0; k < K; k++)
                s += (double)(tA ? A[k * lda + i] : A[i * lda + k]) * (double)(tB ? B[j * ldb + k] : B[k * ldb + j]);
            out[i * N + j] = alpha * s + beta * C0[i * ldc + j];
        }
}

int test_backend_kernels(void) {
    nl_rng r;
    nl_rng_seed(&r, 16);
    int fails = 0;
    enum { M = 7, N = 5, K = 9, PAD = 3 };
    for (int t = 0; t < 4; t++) {
        const int tA = t & 1, tB = t >> 1;
        const int lda = (tA ? M : K) + PAD, ldb = (tB ? K : N) + PAD, ldc = N + PAD;
        float A[(K + PAD) * (M + PAD)], B[(K + PAD) * (N + PAD)], C[M * ldc], C0[M * ldc];
        double want[M * N];
        nl_fill(&r, A, sizeof A / sizeof *A, 1), nl_fill(&r, B, sizeof B / sizeof *B, 1), nl_fill(&r, C0, M * ldc, 1);
        memcpy(C, C0, sizeof C);
        gemm_ref(tA, tB, M, N, K, 0.5, A, lda, B, ldb, -2.0, C0, ldc, want);
        nl_gemm(tA, tB, M, N, K, 0.5f, A, lda, B, ldb, -2.0f, C, ldc);
        float got[M * N];
        for (int i = 0; i < M; i++) memcpy(got + i * N, C + i * ldc, N * sizeof(float));
        char label[64];
        snprintf(label, sizeof label, "nl_gemm tA=%d tB=%d", tA, tB);
        fails += nl_check_rel(label, got, want, M * N, 1e-5);
        for (int i = 0; i < M; i++) /* the columns past N in each row of C are not touched */
            fails += NL_CHECK(!memcmp(C + i * ldc + N, C0 + i * ldc + N, PAD * sizeof(float)),
                              "%s wrote past N in row %d", label, i);
    }
    const char *info = nl_gemm_info();
    fails += NL_CHECK(info && strlen(info) > 3, "nl_gemm_info is empty");
    printf("    gemm: %s\n", info);

    /* scale_shift, copy_cols */
    float x[40], y[40];
    nl_fill(&r, x, 40, 1);
    nl_scale_shift(y, x, -3.0f, 0.25f, 40);
    int bad = 0;
    for (int i = 0; i < 40; i++) bad += y[i] != -3.0f * x[i] + 0.25f;
    fails += NL_CHECK(!bad, "scale_shift: %d wrong", bad);
    float dst[5 * 8];
    for (int i = 0; i < 40; i++) dst[i] = -1.0f;
    nl_copy_cols(dst + 2, 8, x + 1, 8, 5, 3); /* columns 1..3 of a (5, 8) array into columns 2..4 */
    bad = 0;
    for (int rr = 0; rr < 5; rr++)
        for (int c = 0; c < 8; c++) bad += dst[rr * 8 + c] != (c >= 2 && c < 5 ? x[rr * 8 + c - 1] : -1.0f);
    fails += NL_CHECK(!bad, "copy_cols: %d wrong", bad);

    /* sum, sumsq over more than one chunk and one block of chunks, first_nonfinite */
    const size_t n = (size_t)NL_SUMSQ_CHUNK * 300 + 17;
    float *big = nl_xmalloc(n * sizeof(float));
    nl_fill(&r, big, n, 1);
    double s = 0.0, ss = 0.0;
    for (size_t i = 0; i < n; i++) s += big[i], ss += (double)big[i] * big[i];
    fails += nl_check_scalar("sum", nl_sum(big, n), s, 1e-12);
    fails += nl_check_scalar("sumsq", nl_sumsq(big, n), ss, 1e-12);
#ifdef _OPENMP
    const int nt = omp_get_max_threads();
    const double s1 = nl_sumsq(big, n);
    omp_set_num_threads(3);
    fails += NL_CHECK(nl_sumsq(big, n) == s1, "sumsq depends on the thread count");
    omp_set_num_threads(nt);
#endif
    fails += NL_CHECK(nl_first_nonfinite(big, n) == n, "first_nonfinite on finite data");
    big[n - 5] = INFINITY;
    big[n - 2] = NAN;
    fails += NL_CHECK(nl_first_nonfinite(big, n) == n - 5, "first_nonfinite: %zu", nl_first_nonfinite(big, n));
    free(big);

    /* AdamW against the formula in double */
    enum { P = 33 };
    float p[P], m[P], v[P], g[P];
    double pd[P], md[P], vd[P];
    nl_fill(&r, p, P, 1), nl_fill(&r, g, P, 1), nl_fill(&r, m, P, 0.1);
    for (int i = 0; i < P; i++) v[i] = 0.01f * (float)(i + 1), pd[i] = p[i], md[i] = m[i], vd[i] = v[i];
    const nl_adamw_hp hp = {
        .lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .wd = 0.1f, .ic1 = 1.5f, .ic2 = 2.5f, .gscale = 0.5f
    };
    nl_adamw(p, m, v, g, P, &hp);
    for (int i = 0; i < P; i++) {
        const double gj = 0.5 * g[i];
        md[i] = 0.9 * md[i] + 0.1 * gj;
        vd[i] = 0.95 * vd[i] + 0.05 * gj * gj;
        pd[i] -= 1e-2 * (0.1 * pd[i] + md[i] * 1.5 / (sqrt(vd[i] * 2.5) + 1e-8));
    }
    fails += nl_check_rel("adamw p", p, pd, P, 1e-6);
    fails += nl_check_rel("adamw m", m, md, P, 1e-6);
    fails += nl_check_rel("adamw v", v, vd, P, 1e-6);
    return fails;
}

/* ---------------------------------------------------------------- flush-to-zero / denormals-are-zero */

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
static int mode_bits(void) { return (_mm_getcsr() & 0x8040) == 0x8040; } /* FTZ | DAZ */
static void mode_clear(void) { _mm_setcsr(_mm_getcsr() & ~0x8040u); }
#define HAVE_FLUSH 1
#elif defined(__aarch64__)
static uint64_t fpcr(void) {
    uint64_t r;
    __asm__ volatile("mrs %0, fpcr" : "=r"(r));
    return r;
}
static int mode_bits(void) { return (int)((fpcr() >> 24) & 1); }
static void mode_clear(void) {
    const uint64_t r = fpcr() & ~((uint64_t)1 << 24);
    __asm__ volatile("msr fpcr, %0" : : "r"(r));
}
#define HAVE_FLUSH 1
#else
static int mode_bits(void) { return 1; } /* no flush mode: a documented no-op */
static void mode_clear(void) {}
#define HAVE_FLUSH 0
#endif

/* 1 if this thread flushes: a subnormal product becomes 0 (FTZ) and a subnormal operand reads as 0 (DAZ) */
static int flushes(void) {
#if HAVE_FLUSH
    volatile float tiny = 1e-30f, small = 1e-10f, big = 1073741824.0f; /* 2^30 */
    const uint32_t one = 1;                                            /* the smallest subnormal, 2^-149 */
    volatile float sub;
    memcpy((void *)&sub, &one, sizeof sub);
    return tiny * small == 0.0f && sub * big == 0.0f;
#else
    return 1;
#endif
}

/* every thread of a parallel region of the current size has the mode bits and flushes */
static int all_threads_flush(int *team) {
    int ok = 0, n = 0;
#pragma omp parallel reduction(+ : ok, n)
    {
        n += 1;
        ok += mode_bits() && flushes();
    }
    *team = n;
    return ok == n;
}

static nl_config tiny_config(void) {
    nl_config c;
    nl_config_defaults(&c);
    c.layers = 2, c.dim = 32, c.heads = 2, c.seq_len = 16, c.vocab = 64, c.batch = 2;
    return c;
}

static void train_step(nl_model *m, const int *inp, const int *tgt) {
    nl_model_zero_grad(m);
    nl_model_forward(m, inp, tgt, 2, 16, 1.0f / 32);
    nl_model_backward(m);
    nl_adamw_step(m, 1e-3, nl_clip_scale(nl_grad_norm(m), 1.0), 1);
}

typedef struct {
    nl_model *m;
    const int *inp, *tgt;
    int ok, team;
} thread_job;

static void *thread_main(void *p) {
    thread_job *j = p;
    train_step(j->m, j->inp, j->tgt);
    j->ok = all_threads_flush(&j->team);
    return NULL;
}

int test_backend_fp_mode(void) {
    int fails = 0, team;
#ifdef _OPENMP
    const int saved = omp_get_max_threads();
#endif
    /* start from threads without the mode: the pool exists before the backend is first used */
    nl_set_threads(2);
#pragma omp parallel
    mode_clear();
    mode_clear();
    fails += NL_CHECK(!HAVE_FLUSH || !flushes(), "the mode could not be cleared for the test");

    nl_config c = tiny_config();
    nl_model m;
    fails += NL_CHECK(nl_model_init(&m, &c) == NL_OK, "init: %s", nl_last_error());
    nl_model_alloc_acts(&m, 2, 16);
    int inp[32], tgt[32];
    for (int i = 0; i < 32; i++) inp[i] = (i * 7) % 64, tgt[i] = (i * 5 + 3) % 64;
    train_step(&m, inp, tgt);
    fails += NL_CHECK(all_threads_flush(&team), "after a training step: not every one of %d threads flushes", team);
    nl_set_threads(4);
    train_step(&m, inp, tgt);
    fails += NL_CHECK(all_threads_flush(&team) && team == 4,
                      "after nl_set_threads(4): not every one of %d threads flushes", team);
#ifdef _OPENMP
    omp_set_num_threads(6); /* the pool grows outside nl_set_threads: new workers inherit the mode */
    train_step(&m, inp, tgt);
    fails += NL_CHECK(all_threads_flush(&team) && team == 6,
                      "after omp_set_num_threads(6): not every one of %d threads flushes", team);
#endif
    /* a thread of the caller's own, started without the mode, computing with the model */
    mode_clear();
    thread_job j = { &m, inp, tgt, 0, 0 };
    pthread_t th;
    fails += NL_CHECK(pthread_create(&th, NULL, thread_main, &j) == 0, "pthread_create");
    pthread_join(th, NULL);
    fails += NL_CHECK(j.ok, "on a new caller thread: not every one of %d threads flushes", j.team);
    train_step(&m, inp, tgt); /* the main thread, cleared above, is set again on entry */
    fails += NL_CHECK(mode_bits() && flushes(), "the main thread does not flush after a step");
    nl_model_free(&m);
#ifdef _OPENMP
    nl_set_threads(saved);
#endif
    return fails;
}
