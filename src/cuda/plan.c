/* plan.c -- launch geometry, the column-major mapping of row-major products, and the plan cache of
 * the CUDA backend (plan.h); no CUDA here, so the CPU build compiles and tests it. */
#include "cuda/plan.h"

#include <string.h>

unsigned nl_cu_blocks(size_t n) {
    const size_t b = (n + NL_CU_THREADS - 1) / NL_CU_THREADS;
    return b < 1 ? 1u : b > NL_CU_MAX_GRID ? (unsigned)NL_CU_MAX_GRID : (unsigned)b;
}

unsigned nl_cu_row_threads(int C) {
    unsigned t = 32;
    while (t < 1024 && (int)t < C) t *= 2;
    return t;
}

size_t nl_cu_col_chunks(size_t N) {
    const size_t k = (N + NL_CU_COL_ROWS - 1) / NL_CU_COL_ROWS;
    return k < 1 ? 1 : k;
}

void nl_gemm_colmajor(const nl_gemm_key *k, nl_cm_gemm *o) {
    o->transa = k->tB;
    o->transb = k->tA;
    o->m = k->N;
    o->n = k->M;
    o->k = k->K;
    /* row-major B is K x N (tB = 0) or N x K (tB = 1); read column-major it is the transpose */
    o->a.rows = k->tB ? k->K : k->N;
    o->a.cols = k->tB ? k->N : k->K;
    o->a.ld = k->ldb;
    o->b.rows = k->tA ? k->M : k->K;
    o->b.cols = k->tA ? k->K : k->M;
    o->b.ld = k->lda;
    o->c.rows = k->N;
    o->c.cols = k->M;
    o->c.ld = k->ldc;
}

int nl_cu_align(size_t addr) {
    int a = 256;
    while (a > 1 && addr % (size_t)a) a /= 2;
    return a;
}

int nl_gemm_key_valid(const nl_gemm_key *k) {
    if (k->M < 0 || k->N < 0 || k->K < 0) return 0;
    const int acols = k->tA ? k->M : k->K, bcols = k->tB ? k->K : k->N;
    return k->lda >= (acols > 1 ? acols : 1) && k->ldb >= (bcols > 1 ? bcols : 1) && k->ldc >= (k->N > 1 ? k->N : 1);
}

unsigned nl_gemm_key_hash(const nl_gemm_key *key) {
    const int f[9] = { key->tA, key->tB, key->M, key->N, key->K, key->lda, key->ldb, key->ldc, key->align };
    unsigned h = 2166136261u; /* FNV-1a over the fields' bytes */
    const unsigned char *p = (const unsigned char *)f;
    for (size_t i = 0; i < sizeof f; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

static int key_eq(const nl_gemm_key *a, const nl_gemm_key *b) {
    return a->tA == b->tA && a->tB == b->tB && a->M == b->M && a->N == b->N && a->K == b->K && a->lda == b->lda &&
           a->ldb == b->ldb && a->ldc == b->ldc && a->align == b->align;
}

nl_plan_entry *nl_plan_get(nl_plan_cache *c, const nl_gemm_key *key) {
    const unsigned h = nl_gemm_key_hash(key);
    for (unsigned i = 0; i < NL_PLAN_SLOTS; i++) { /* linear probing; nothing is ever removed */
        nl_plan_entry *e = &c->slot[(h + i) % NL_PLAN_SLOTS];
        if (e->used && key_eq(&e->key, key)) return e;
        if (!e->used) {
            if (c->count + 1 >= NL_PLAN_SLOTS) return NULL; /* keep one slot free: probes end */
            e->used = 1;
            e->key = *key;
            e->payload = NULL;
            c->count++;
            return e;
        }
    }
    return NULL;
}
