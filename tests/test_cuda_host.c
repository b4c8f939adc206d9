/* test_cuda_host.c -- the CUDA backend's host side, run in every build (no GPU needed):
 *   cuda_host  launch geometry, the mapping of row-major products onto column-major ones (checked by
 *              running the mapped call through a naive column-major product against nl_gemm), and the
 *              matmul plan cache (src/cuda/plan.c);
 *   cuda_cli   --device: an unknown device is a usage error; --device cuda fails with one line where
 *              it cannot run (exit 2 in a build without CUDA, exit 1 without a usable GPU) and trains
 *              where it can; --init-from with --device cuda is refused. */
#include "check.h"
#include "cpu/gemm.h"
#include "cuda/plan.h"
#include "tests.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- geometry */

static int geometry(void) {
    int f = 0;
    f += NL_CHECK(nl_cu_blocks(0) == 1 && nl_cu_blocks(1) == 1, "blocks of 0 and 1 elements");
    f += NL_CHECK(nl_cu_blocks(NL_CU_THREADS) == 1 && nl_cu_blocks(NL_CU_THREADS + 1) == 2, "blocks at the edge");
    f += NL_CHECK(nl_cu_blocks((size_t)1 << 40) == NL_CU_MAX_GRID, "blocks clamped to the grid limit");
    f += NL_CHECK(nl_cu_row_threads(1) == 32 && nl_cu_row_threads(33) == 64 && nl_cu_row_threads(768) == 1024 &&
                          nl_cu_row_threads(5000) == 1024 && nl_cu_row_threads(512) == 512,
                  "row threads: power of two in [32, 1024] covering C");
    f += NL_CHECK(nl_cu_align(0) == 256 && nl_cu_align(4096 + 4) == 4 && nl_cu_align(4096 + 16) == 16 &&
                          nl_cu_align(3) == 1 && nl_cu_align(512) == 256,
                  "alignment of an address");
    f += NL_CHECK(nl_cu_col_chunks(0) == 1 && nl_cu_col_chunks(NL_CU_COL_ROWS) == 1 &&
                          nl_cu_col_chunks(NL_CU_COL_ROWS + 1) == 2,
                  "column-sum chunks");
    return f;
}

/* ---------------------------------------------------------------- row-major -> column-major products */

/* element (r, c) of a column-major array, transposed or not */
static float cm_at(const float *x, int ld, int trans, int r, int c) {
    return trans ? x[(size_t)r * ld + c] : x[(size_t)c * ld + r];
}

/* column-major C (m x n) = alpha op(a) op(b) + beta C, as cuBLAS defines it */
static void cm_gemm(const nl_cm_gemm *g, float alpha, const float *a, const float *b, float beta, float *c) {
    for (int j = 0; j < g->n; j++)
        for (int i = 0; i < g->m; i++) {
            double s = 0.0;
            for (int p = 0; p < g->k; p++)
                s += (double)cm_at(a, g->a.ld, g->transa, i, p) * cm_at(b, g->b.ld, g->transb, p, j);
            float *o = &c[(size_t)j * g->c.ld + i];
            *o = (float)(alpha * s + beta * *o);
        }
}

static int colmajor(void) {
    int f = 0;
    nl_rng r;
    nl_rng_seed(&r, 17);
    const int M = 7, N = 5, K = 9;
    for (int tA = 0; tA < 2; tA++)
        for (int tB = 0; tB < 2; tB++) {
            const int arows = tA ? K : M, acols = tA ? M : K, brows = tB ? N : K, bcols = tB ? K : N;
            const nl_gemm_key key = { tA, tB, M, N, K, acols + 3, bcols + 2, N + 4, 4 };
            nl_cm_gemm g;
            nl_gemm_colmajor(&key, &g);
            f += NL_CHECK(nl_gemm_key_valid(&key), "key tA=%d tB=%d valid", tA, tB);
            /* every layout must fit in its leading dimension (what cuBLASLt checks) */
            f += NL_CHECK(g.a.ld >= g.a.rows && g.b.ld >= g.b.rows && g.c.ld >= g.c.rows, "layouts fit tA=%d tB=%d", tA,
                          tB);
            f += NL_CHECK(g.m == N && g.n == M && g.k == K && g.c.rows == N && g.c.cols == M,
                          "result shape tA=%d tB=%d", tA, tB);
            float *A = malloc((size_t)arows * key.lda * sizeof(float)),
                  *B = malloc((size_t)brows * key.ldb * sizeof(float));
            float *C1 = malloc((size_t)M * key.ldc * sizeof(float)), *C2 = malloc((size_t)M * key.ldc * sizeof(float));
            nl_fill(&r, A, (size_t)arows * key.lda, 1.0);
            nl_fill(&r, B, (size_t)brows * key.ldb, 1.0);
            nl_fill(&r, C1, (size_t)M * key.ldc, 1.0);
            memcpy(C2, C1, (size_t)M * key.ldc * sizeof(float));
            nl_gemm(tA, tB, M, N, K, 0.7f, A, key.lda, B, key.ldb, 0.3f, C1, key.ldc);
            cm_gemm(&g, 0.7f, B, A, 0.3f, C2); /* the row-major B is the first operand */
            double *want = malloc((size_t)M * key.ldc * sizeof(double));
            nl_to_double(C1, want, (size_t)M * key.ldc);
            char label[64];
            snprintf(label, sizeof label, "mapped product tA=%d tB=%d", tA, tB);
            f += nl_check_rel(label, C2, want, (size_t)M * key.ldc, 1e-5);
            free(A), free(B), free(C1), free(C2), free(want);
        }
    const nl_gemm_key bad = { 0, 1, 4, 4, 8, 7, 8, 4, 4 }; /* lda 7 < K 8 */
    f += NL_CHECK(!nl_gemm_key_valid(&bad), "a leading dimension shorter than its row is rejected");
    const nl_gemm_key neg = { 0, 0, -1, 4, 8, 8, 4, 4, 4 };
    f += NL_CHECK(!nl_gemm_key_valid(&neg), "a negative size is rejected");
    return f;
}

/* ---------------------------------------------------------------- plan cache */

static int plan_cache(void) {
    int f = 0;
    nl_plan_cache *c = calloc(1, sizeof *c);
    static int payload[64];
    for (int i = 0; i < 64; i++) {
        const nl_gemm_key k = { i & 1, (i >> 1) & 1, 16 + i, 32, 64, 64, 64, 32, 256 };
        nl_plan_entry *e = nl_plan_get(c, &k);
        f += NL_CHECK(e && e->used && !e->payload, "new key %d gets a fresh entry", i);
        if (e) e->payload = &payload[i];
    }
    f += NL_CHECK(c->count == 64, "64 distinct keys, 64 entries (%zu)", c->count);
    for (int i = 0; i < 64; i++) {
        const nl_gemm_key k = { i & 1, (i >> 1) & 1, 16 + i, 32, 64, 64, 64, 32, 256 };
        nl_plan_entry *e = nl_plan_get(c, &k);
        f += NL_CHECK(e && e->payload == &payload[i], "key %d finds its plan", i);
    }
    f += NL_CHECK(c->count == 64, "lookups add nothing");

    const nl_gemm_key a = { 0, 1, 8, 16, 8, 8, 8, 16, 256 }, b = { 1, 0, 8, 16, 8, 8, 8, 16, 256 },
                      a4 = { 0, 1, 8, 16, 8, 8, 8, 16, 4 };
    f += NL_CHECK(nl_gemm_key_hash(&a) != nl_gemm_key_hash(&b), "transposes change the hash");
    nl_plan_entry *ea = nl_plan_get(c, &a), *ea4 = nl_plan_get(c, &a4);
    f += NL_CHECK(ea && ea4 && ea != ea4, "another alignment is another plan");
    int full = 0;
    for (int i = 0; i < 2 * NL_PLAN_SLOTS && !full; i++) {
        const nl_gemm_key k = { 0, 0, 1000 + i, 7, 7, 7, 7, 7, 4 };
        full = nl_plan_get(c, &k) == NULL;
    }
    f += NL_CHECK(full && c->count == NL_PLAN_SLOTS - 1, "a full cache answers NULL (count %zu)", c->count);
    const nl_gemm_key k0 = { 0, 0, 16, 32, 64, 64, 64, 32, 256 };
    f += NL_CHECK(nl_plan_get(c, &k0) && nl_plan_get(c, &k0)->payload == &payload[0],
                  "a full cache still finds its keys");
    free(c);
    return f;
}

int test_cuda_host(void) { return geometry() + colmajor() + plan_cache(); }

/* ---------------------------------------------------------------- --device on the command line */

static int one_line(const char *s) {
    const char *nl = strchr(s, '\n');
    return nl && !nl[1];
}

int test_cuda_cli(void) {
    int f = 0;
    char out[4096], dir[] = "/tmp/nl_cuda_cli_XXXXXX";
    NL_ASSERT(mkdtemp(dir));
    const char *bin = nl_test_bin();
    int rc = nl_run_fmt(out, sizeof out,
                        "%s train --device gpu --data data/tinyshakespeare.txt --steps 1 --out %s/a 2>&1", bin, dir);
    f += NL_CHECK(rc == 2 && strstr(out, "--device: unknown device 'gpu'") && one_line(out),
                  "unknown device: rc %d, '%s'", rc, out);
    rc = nl_run_fmt(out, sizeof out,
                    "%s train --device cuda --init-from %s/none.safetensors --data data/tinyshakespeare.txt --steps 1 --out %s/b 2>&1",
                    bin, dir, dir);
    f += NL_CHECK(rc == 2 && strstr(out, "--init-from cannot be combined with --device cuda") && one_line(out),
                  "init-from: rc %d, '%s'", rc, out);
    rc = nl_run_fmt(out, sizeof out,
                    "%s train --device cuda --data data/tinyshakespeare.txt --layers 1 --dim 16 --heads 2 --seq-len 16 "
                    "--batch 2 --steps 2 --out %s/c 2>&1",
                    bin, dir);
    if (strstr(out, "built without CUDA"))
        f += NL_CHECK(rc == 2 && one_line(out), "without CUDA: rc %d, '%s'", rc, out);
    else if (strstr(out, "no usable CUDA GPU"))
        f += NL_CHECK(rc == 1 && one_line(out), "without a GPU: rc %d, '%s'", rc, out);
    else f += NL_CHECK(rc == 0, "--device cuda on a GPU trains: rc %d, '%s'", rc, out);
    return f + nl_test_rmdir(dir);
}
