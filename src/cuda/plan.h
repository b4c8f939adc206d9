/* plan.h -- the host side of the CUDA backend in plain C: launch geometry, the mapping of a row-major
 * product onto cuBLASLt's column-major one, and the matmul plan cache. Compiled in every build (the CPU
 * build included) so that tests/test_cuda_host.c checks it in CI without a GPU. */
#ifndef NL_CUDA_PLAN_H
#define NL_CUDA_PLAN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- launch geometry */
enum {
    NL_CU_THREADS = 256,      /* threads of an elementwise block */
    NL_CU_MAX_GRID = 1 << 20, /* blocks of a grid-stride loop (x dimension, < 2^31) */
    NL_CU_COL_ROWS = 256
}; /* rows one block of a column reduction sums before the in-order pass */
/* Blocks of NL_CU_THREADS for n elements of a grid-stride loop: ceil(n / threads), at least 1, at most
 * NL_CU_MAX_GRID. */
unsigned nl_cu_blocks(size_t n);
/* Threads of a block that reduces one row of C values: the smallest power of two >= C, clamped to
 * [32, 1024] (a whole number of warps; the tree reduction needs a power of two). */
unsigned nl_cu_row_threads(int C);
/* Row chunks of a two-pass column reduction over N rows: ceil(N / NL_CU_COL_ROWS), at least 1. */
size_t nl_cu_col_chunks(size_t N);

/* ---- one row-major product as a column-major one. Row-major C = op(A) op(B) is column-major
 * C^T = op(B)^T op(A)^T: the operands swap, each keeps its transpose flag, and each array is read as
 * the column-major transpose of itself (same memory, rows and columns exchanged). */
typedef struct nl_gemm_key {
    int tA, tB, M, N, K, lda, ldb, ldc;
    int align; /* the smallest alignment of the three arrays (nl_cu_align): cuBLASLt picks kernels by it */
} nl_gemm_key;
/* The alignment in bytes of an address: the largest power of two <= 256 dividing it (at least 1). */
int nl_cu_align(size_t addr);
typedef struct nl_cm_layout {
    int rows, cols, ld; /* column-major: rows x cols, leading dimension ld >= rows */
} nl_cm_layout;
typedef struct nl_cm_gemm {
    int transa, transb;   /* of the column-major call's first (a) and second (b) operand */
    int m, n, k;          /* column-major m x n result, inner k */
    nl_cm_layout a, b, c; /* a is the row-major B, b the row-major A, c the row-major C */
} nl_cm_gemm;
void nl_gemm_colmajor(const nl_gemm_key *key, nl_cm_gemm *out);
/* 1 when a row-major product is well formed: sizes >= 0, every leading dimension covers its row. */
int nl_gemm_key_valid(const nl_gemm_key *key);

/* ---- plan cache: one matmul plan per distinct key (shapes, transposes, strides), found by hashing.
 * The payload is the device side's (descriptors and the chosen algorithm); the cache never looks in it. */
enum { NL_PLAN_SLOTS = 512 };
typedef struct nl_plan_entry {
    int used;
    nl_gemm_key key;
    void *payload;
} nl_plan_entry;
typedef struct nl_plan_cache {
    nl_plan_entry slot[NL_PLAN_SLOTS];
    size_t count;
} nl_plan_cache;
unsigned nl_gemm_key_hash(const nl_gemm_key *key);
/* The entry of key: found (used = 1), or a free slot now claimed for it (used = 1, payload NULL: the
 * caller fills it), or NULL when the cache is full (the caller builds a plan for this call only). */
nl_plan_entry *nl_plan_get(nl_plan_cache *c, const nl_gemm_key *key);

#ifdef __cplusplus
}
#endif

#endif
