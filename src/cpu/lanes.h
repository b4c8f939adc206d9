/* lanes.h -- float sums, dot products and maxima over a row in NL_LANES fixed lanes, for the kernels'
 * per-row reductions. Element i goes to lane i % NL_LANES (in index order within its lane), and the lanes
 * are added pairwise in a fixed tree, so the result depends only on the data and n: not on the ISA, the
 * vector width the compiler picks or the thread count (deterministic), and it needs no -ffast-math. The
 * compiler maps the lanes to vector registers (one zmm with AVX-512); a plain `s += x[i]` loop stays
 * scalar, one add latency per element, because reordering it would change the rounding.
 * Used by ops_norm.c, ops_attn.c and ops_misc.c; NL_COL_BLOCK also by ops_sphere.c. */
#ifndef NL_CPU_LANES_H
#define NL_CPU_LANES_H

#include <math.h>

enum { NL_LANES = 16 };

/* The column reductions (a per-channel parameter's gradient, summed over rows) run in blocks of NL_COL_BLOCK
 * columns, one OpenMP task a block, each column summed in row order: deterministic at any thread count. */
enum { NL_COL_BLOCK = 64 };

/* acc[0] + ... + acc[NL_LANES-1], pairwise */
static inline float nl_lanes_fold(float *acc) {
    for (int w = NL_LANES / 2; w > 0; w /= 2)
        for (int k = 0; k < w; k++) acc[k] += acc[k + w];
    return acc[0];
}

/* sum of x[0..n) */
static inline float nl_lanes_sum(const float *x, int n) {
    float acc[NL_LANES] = { 0 };
    int i = 0;
    for (; i + NL_LANES <= n; i += NL_LANES)
#pragma omp simd
        for (int k = 0; k < NL_LANES; k++) acc[k] += x[i + k];
    for (int k = 0; i + k < n; k++) acc[k] += x[i + k];
    return nl_lanes_fold(acc);
}

/* sum of (x[i] - m)^2 */
static inline float nl_lanes_sqdev(const float *x, float m, int n) {
    float acc[NL_LANES] = { 0 };
    int i = 0;
    for (; i + NL_LANES <= n; i += NL_LANES)
#pragma omp simd
        for (int k = 0; k < NL_LANES; k++) acc[k] += (x[i + k] - m) * (x[i + k] - m);
    for (int k = 0; i + k < n; k++) acc[k] += (x[i + k] - m) * (x[i + k] - m);
    return nl_lanes_fold(acc);
}

/* sum of x[i] * y[i] */
static inline float nl_lanes_dot(const float *x, const float *y, int n) {
    float acc[NL_LANES] = { 0 };
    int i = 0;
    for (; i + NL_LANES <= n; i += NL_LANES)
#pragma omp simd
        for (int k = 0; k < NL_LANES; k++) acc[k] += x[i + k] * y[i + k];
    for (int k = 0; i + k < n; k++) acc[k] += x[i + k] * y[i + k];
    return nl_lanes_fold(acc);
}

/* max of x[0..n) (-inf for n = 0; NaN elements are skipped, as `x > m ? x : m` skips them) */
static inline float nl_lanes_max(const float *x, int n) {
    float acc[NL_LANES];
    for (int k = 0; k < NL_LANES; k++) acc[k] = -INFINITY;
    int i = 0;
    for (; i + NL_LANES <= n; i += NL_LANES)
#pragma omp simd
        for (int k = 0; k < NL_LANES; k++) acc[k] = x[i + k] > acc[k] ? x[i + k] : acc[k];
    for (int k = 0; i + k < n; k++) acc[k] = x[i + k] > acc[k] ? x[i + k] : acc[k];
    for (int w = NL_LANES / 2; w > 0; w /= 2)
        for (int k = 0; k < w; k++) acc[k] = acc[k + w] > acc[k] ? acc[k + w] : acc[k];
    return acc[0];
}

#endif
