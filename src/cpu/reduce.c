/* reduce.c -- reductions that return scalars to the host: sums, the gradient norm's sum of squares,
 * the non-finite scan, and the residual-stream statistics of the diagnostics. All accumulate in double
 * in an order that does not depend on the thread count. */
#include "common.h"
#include "kernels.h"
#include "lanes.h"

#include <math.h>

double nl_sum(const float *x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s;
}

double nl_sumsq(const float *x, size_t n) {
    /* chunk partial sums in parallel, a block of chunks at a time (no allocation), added in order */
    enum { BLOCK = 256 };
    double total = 0.0;
    const size_t nchunk = (n + NL_SUMSQ_CHUNK - 1) / NL_SUMSQ_CHUNK;
    for (size_t k0 = 0; k0 < nchunk; k0 += BLOCK) {
        const size_t k1 = k0 + BLOCK < nchunk ? k0 + BLOCK : nchunk;
        double part[BLOCK];
#pragma omp parallel for schedule(static)
        for (size_t k = k0; k < k1; k++) {
            const size_t a = k * NL_SUMSQ_CHUNK, b = a + NL_SUMSQ_CHUNK < n ? a + NL_SUMSQ_CHUNK : n;
            double acc[NL_LANES] = { 0 }; /* element j in lane (j - a) % NL_LANES, lanes added pairwise */
            for (size_t j0 = a; j0 < b; j0 += NL_LANES) {
                const int nl = b - j0 < NL_LANES ? (int)(b - j0) : NL_LANES;
#pragma omp simd
                for (int l = 0; l < nl; l++) acc[l] += (double)x[j0 + l] * x[j0 + l];
            }
            for (int w = NL_LANES / 2; w > 0; w /= 2)
                for (int l = 0; l < w; l++) acc[l] += acc[l + w];
            part[k - k0] = acc[0];
        }
        for (size_t k = k0; k < k1; k++) total += part[k - k0];
    }
    return total;
}

size_t nl_first_nonfinite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return n;
}

void nl_stream_stats(const float *x, size_t N, int C, float *scratch, nl_stream_stat *out) {
    double var = 0.0, rms = 0.0, s1 = 0.0, s2 = 0.0, mx = 0.0;
    for (size_t n = 0; n < N; n++) {
        const float *r = x + n * (size_t)C;
        double a = 0.0, b = 0.0;
        for (int c = 0; c < C; c++) {
            const double v = r[c], av = fabs(v);
            a += v;
            b += v * v;
            if (!(av <= mx)) mx = isnan(av) ? INFINITY : av;
            scratch[n * (size_t)C + (size_t)c] = isnan(av) ? INFINITY : (float)av;
        }
        const double mean = a / C, ms = b / C;
        var += ms - mean * mean;
        rms += sqrt(ms);
        s1 += a;
        s2 += b;
    }
    const double NC = (double)N * C, gmean = s1 / NC;
    out->var = var / (double)N;
    out->rms = rms / (double)N;
    out->gvar = s2 / NC - gmean * gmean;
    out->maxabs = mx;
    const size_t n = N * (size_t)C, k = n / 2;
    double med = nl_select_kth(scratch, n, k);
    if (n % 2 == 0) {
        /* the other middle value: the largest of the k elements left of position k */
        float lo = scratch[0];
        for (size_t i = 1; i < k; i++)
            if (scratch[i] > lo) lo = scratch[i];
        med = 0.5 * (med + lo);
    }
    out->median = med;
}
