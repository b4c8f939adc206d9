/* test_lowp.c -- the bf16/fp16 numerics of src/cpu/lowp.c and the fp16 loss scaler (docs/numerics.md).
 * lowp_convert: every conversion bit for bit against tests/lowp_ref.py (exact rational rounding, itself
 * checked against torch) on ~200k fp32 inputs (edge cases, near-ties at every exponent, random bits and
 * random normals) and on all 2^16 patterns for the widening conversions; the counters against counts taken
 * from the reference. lowp_paths: the array functions (AVX-512 where built for it) against the scalar
 * functions on a sweep of 2^20 patterns spread over all 2^32, also with FTZ/DAZ set in MXCSR. lowp_gemm:
 * the rounded-input matrix product within bounds (1) and (2) of docs/numerics.md §5.1. loss_scaler: the scales
 * of a scripted overflow pattern. */
#include "check.h"
#include "cpu/gemm.h"
#include "cpu/lowp.h"
#include "loss_scaler.h"
#include "tests.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#define SENTINEL_C 1234.5f

static uint32_t bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float from_bits(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static int is_inf16(uint16_t h, nl_dtype dt) { return (h & 0x7FFF) == (dt == NL_DTYPE_FP16 ? 0x7C00 : 0x7F80); }

/* What rounding x to dt counts, from the rounded result h (the reference's). */
static void count_ref(nl_lowp_counts *c, uint32_t x, uint16_t h, nl_dtype dt) {
    const uint32_t a = x & 0x7FFFFFFFu;
    if (a >= 0x7F800000u) return;
    c->overflow += is_inf16(h, dt);
    c->flushed += a != 0 && (h & 0x7FFF) == 0;
}

/* ---------------------------------------------------------------- inputs */

static size_t add(uint32_t *u, size_t n, uint32_t v) {
    u[n++] = v;
    u[n++] = v ^ 0x80000000u;
    return n;
}

/* Fills u (capacity cap) with the inputs of the conversion test; returns their number. */
static size_t make_inputs(uint32_t *u, size_t cap) {
    static const uint32_t edges[] = {
        0,          1,          0x007FFFFF, 0x00800000, 0x7F7FFFFF, 0x7F800000, /* fp32 ends */
        0x7F800001, 0x7FC00000, 0x7FFFFFFF, 0x7FA00000, 0x7F802000, 0x7F800FFF, /* NaNs */
        0x7F7F0000, 0x7F7F7FFF, 0x7F7F8000, 0x7F7F8001, 0x7F7E8000, 0x7F7E8001, /* bf16 top */
        0x00010000, 0x00007FFF, 0x00008000, 0x00008001, 0x00018000, 0x00028000, /* bf16 bottom */
        0x477FE000, 0x477FEFFF, 0x477FF000, 0x477FEFFF, 0x477FF001, 0x47800000, /* fp16 top */
        0x33000000, 0x32FFFFFF, 0x33000001, 0x33800000, 0x33C00000, 0x34200000, /* fp16 bottom */
        0x387FC000, 0x387FE000, 0x387FDFFF, 0x387FE001, 0x387FFFFF, 0x38800000, /* fp16 sub/normal */
        0x3F801000, 0x3F803000, 0x3F808000, 0x3F818000, 0x3F800FFF, 0x3F801001, /* ties at 1 */
    };
    static const uint32_t lows[] = { 0x0000, 0x0001, 0x0FFF, 0x1000, 0x1001, 0x1FFF, 0x2000, 0x2FFF,
                                     0x3000, 0x3001, 0x7FFF, 0x8000, 0x8001, 0xEFFF, 0xF000, 0xFFFF };
    nl_rng r;
    nl_rng_seed(&r, 16);
    size_t n = 0;
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) n = add(u, n, edges[i]);
    /* every exponent: the bits that decide bf16 rounding (below bit 16) and fp16's (below bit 13), both
     * parities of the kept last bit */
    for (uint32_t e = 0; e < 256; e++)
        for (int k = 0; k < 3; k++) {
            const uint32_t hi = (uint32_t)nl_rng_below(&r, 128) << 16;
            for (size_t j = 0; j < sizeof lows / sizeof lows[0]; j++) {
                n = add(u, n, e << 23 | hi | lows[j]);
                n = add(u, n, e << 23 | (hi ^ 0x10000u) | lows[j]);
            }
        }
    /* bf16's overflow and underflow boundaries: the top and bottom 2^17 patterns, sampled */
    for (int k = 0; k < 64; k++) {
        const uint32_t low = k < 32 ? lows[k % 16] | (uint32_t)(k / 16) << 16 : (uint32_t)nl_rng_below(&r, 1u << 17);
        n = add(u, n, 0x7F7E0000u | low);
        n = add(u, n, low);
    }
    /* fp16 subnormal results: near the tie of each shift */
    for (uint32_t e = 102; e <= 112; e++) {
        const uint32_t shift = 126 - e, half = 1u << (shift - 1);
        for (int k = 0; k < 64; k++) {
            const uint32_t m = (0x800000u | (uint32_t)nl_rng_below(&r, 1u << 23)) & ~((half << 1) - 1);
            for (int d = -1; d <= 1; d++) n = add(u, n, e << 23 | ((m + half + (uint32_t)d) & 0x7FFFFFu));
        }
    }
    while (n + 2 <= cap - 60000) n = add(u, n, (uint32_t)nl_rng_u64(&r)); /* random bit patterns */
    while (n + 2 <= cap) /* random normals over a wide range of scales */
        n = add(u, n, bits((float)(nl_rng_normal(&r) * ldexp(1.0, (int)nl_rng_below(&r, 60) - 40))));
    return n;
}

/* ---------------------------------------------------------------- against the Python reference */

static int compare16(const char *what, const uint32_t *in, const uint16_t *got, const uint16_t *want, size_t n) {
    int shown = 0, bad = 0;
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            if (shown++ < 5)
                printf("    %s: input 0x%08x gives 0x%04x, reference 0x%04x\n", what, in[i], got[i], want[i]);
            bad = 1;
        }
    return bad;
}

static int compare32(const char *what, const float *got, const uint32_t *want, size_t n) {
    int shown = 0, bad = 0;
    for (size_t i = 0; i < n; i++)
        if (bits(got[i]) != want[i]) {
            if (shown++ < 5)
                printf("    %s: element %zu is 0x%08x, reference 0x%08x\n", what, i, bits(got[i]), want[i]);
            bad = 1;
        }
    return bad;
}

int test_lowp_convert(void) {
    enum { CAP = 200000, ALL = 65536 };
    uint32_t *in = nl_xmalloc(CAP * sizeof *in);
    const size_t n = make_inputs(in, CAP);
    char dir[] = "/tmp/nl_lowp_XXXXXX", inpath[64], outpath[64];
    NL_ASSERT(mkdtemp(dir));
    snprintf(inpath, sizeof inpath, "%s/in", dir);
    snprintf(outpath, sizeof outpath, "%s/out", dir);
    FILE *f = fopen(inpath, "wb");
    NL_ASSERT(f && fwrite(in, sizeof *in, n, f) == n && fclose(f) == 0);
    static char out[1 << 14];
    int rc = nl_run_fmt(out, sizeof out, "%s tests/lowp_ref.py %s %s 2>&1", nl_test_python(), inpath, outpath);
    if (rc != 0) {
        printf("    tests/lowp_ref.py failed (exit %d); HINT: apt-get install python3-torch\n%s\n", rc, out);
        free(in);
        return 1;
    }
    /* the reference: fp16 and bf16 of each input, then both widenings of every pattern */
    uint16_t *ref16 = nl_xmalloc(n * sizeof *ref16), *refb = nl_xmalloc(n * sizeof *refb);
    uint32_t *w16 = nl_xmalloc(ALL * sizeof *w16), *wb = nl_xmalloc(ALL * sizeof *wb);
    f = fopen(outpath, "rb");
    NL_ASSERT(f);
    NL_ASSERT(fread(ref16, 2, n, f) == n && fread(refb, 2, n, f) == n && fread(w16, 4, ALL, f) == ALL &&
              fread(wb, 4, ALL, f) == ALL && fgetc(f) == EOF);
    fclose(f);
    unlink(inpath), unlink(outpath), rmdir(dir);

    int fails = 0;
    uint16_t *h = nl_xmalloc(n * sizeof *h);
    float *x = nl_xmalloc(n * sizeof *x), *y = nl_xmalloc((n > ALL ? n : ALL) * sizeof *y);
    for (size_t i = 0; i < n; i++) x[i] = from_bits(in[i]);
    uint16_t *every = nl_xmalloc(ALL * sizeof *every);
    for (uint32_t i = 0; i < ALL; i++) every[i] = (uint16_t)i;
    const struct {
        nl_dtype dt;
        const char *name;
        uint16_t (*to)(float);
        float (*from)(uint16_t);
        const uint16_t *ref;
        const uint32_t *wide;
    } fm[] = { { NL_DTYPE_FP16, "fp16", nl_fp32_to_fp16, nl_fp16_to_fp32, ref16, w16 },
               { NL_DTYPE_BF16, "bf16", nl_fp32_to_bf16, nl_bf16_to_fp32, refb, wb } };
    for (int k = 0; k < 2; k++) {
        char what[64];
        nl_lowp_counts want = { 0, 0 }, got = { 0, 0 }, got2 = { 0, 0 };
        for (size_t i = 0; i < n; i++) h[i] = fm[k].to(x[i]), count_ref(&want, in[i], fm[k].ref[i], fm[k].dt);
        snprintf(what, sizeof what, "scalar fp32 -> %s", fm[k].name);
        fails += compare16(what, in, h, fm[k].ref, n);
        nl_lowp_pack(h, x, n, fm[k].dt, &got);
        snprintf(what, sizeof what, "nl_lowp_pack %s", fm[k].name);
        fails += compare16(what, in, h, fm[k].ref, n);
        /* rounding = narrowing then widening, both by the reference */
        uint32_t *rw = nl_xmalloc(n * sizeof *rw);
        for (size_t i = 0; i < n; i++) rw[i] = fm[k].wide[fm[k].ref[i]];
        nl_lowp_round(y, x, n, fm[k].dt, &got2);
        snprintf(what, sizeof what, "nl_lowp_round %s", fm[k].name);
        fails += compare32(what, y, rw, n);
        free(rw);
        fails += NL_CHECK(got.overflow == want.overflow && got.flushed == want.flushed &&
                                  got2.overflow == want.overflow && got2.flushed == want.flushed,
                          "%s counts: pack %llu overflowed %llu flushed, round %llu/%llu, reference %llu/%llu",
                          fm[k].name, (unsigned long long)got.overflow, (unsigned long long)got.flushed,
                          (unsigned long long)got2.overflow, (unsigned long long)got2.flushed,
                          (unsigned long long)want.overflow, (unsigned long long)want.flushed);
        /* the edge cases must really be in the set: overflows and flushes happen */
        printf("  %s: %zu inputs, %llu overflow to inf, %llu flush to zero\n", fm[k].name, n,
               (unsigned long long)want.overflow, (unsigned long long)want.flushed);
        fails += NL_CHECK(want.overflow >= 20 && want.flushed >= 20, "%s: too few overflow/flush cases", fm[k].name);
        for (uint32_t i = 0; i < ALL; i++) y[i] = fm[k].from((uint16_t)i);
        snprintf(what, sizeof what, "scalar %s -> fp32", fm[k].name);
        fails += compare32(what, y, fm[k].wide, ALL);
        nl_lowp_unpack(y, every, ALL, fm[k].dt);
        snprintf(what, sizeof what, "nl_lowp_unpack %s", fm[k].name);
        fails += compare32(what, y, fm[k].wide, ALL);
    }
    /* a few values written out, so the rule is visible here too */
    fails += NL_CHECK(nl_fp32_to_fp16(65519.996f) == 0x7BFF && nl_fp32_to_fp16(65520.0f) == 0x7C00 &&
                              nl_fp32_to_fp16(-0x1p-25f) == 0x8000 && nl_fp32_to_fp16(0x1.000002p-25f) == 0x0001 &&
                              nl_fp32_to_bf16(1.0f + 0x1p-8f) == 0x3F80 && nl_fp32_to_bf16(1.0f + 0x3p-8f) == 0x3F82 &&
                              nl_fp32_to_bf16(0x1p-133f) == 0x0001 && nl_fp32_to_bf16(-NAN) == 0xFFC0,
                      "hand-written cases");
    free(in), free(ref16), free(refb), free(w16), free(wb), free(h), free(x), free(y), free(every);
    return fails;
}

/* ---------------------------------------------------------------- array paths = scalar functions */

/* The array functions against the scalar ones on x (n values): pack, round (out of place and in place,
 * which must also be idempotent), unpack of the packed values, and the counts. Calls stay below the
 * size at which the loops go parallel when single_thread is set (MXCSR is per thread). */
static int paths_agree(const float *x, size_t n, int single_thread, const char *label) {
    int fails = 0;
    uint16_t *h = nl_xmalloc(n * sizeof *h);
    float *y = nl_xmalloc(n * sizeof *y), *z = nl_xmalloc(n * sizeof *z);
    const size_t chunk = single_thread ? 30000 : n;
    for (int k = 0; k < 2; k++) {
        const nl_dtype dt = k ? NL_DTYPE_BF16 : NL_DTYPE_FP16;
        uint16_t (*to)(float) = k ? nl_fp32_to_bf16 : nl_fp32_to_fp16;
        float (*from)(uint16_t) = k ? nl_bf16_to_fp32 : nl_fp16_to_fp32;
        nl_lowp_counts cp = { 0, 0 }, cr = { 0, 0 }, want = { 0, 0 };
        size_t bad_pack = 0, bad_round = 0, bad_inplace = 0, bad_unpack = 0, bad_idem = 0;
        for (size_t i = 0; i < n; i += chunk) {
            const size_t m = n - i < chunk ? n - i : chunk;
            nl_lowp_pack(h + i, x + i, m, dt, &cp);
            nl_lowp_round(y + i, x + i, m, dt, &cr);
            memcpy(z + i, x + i, m * sizeof *z);
            nl_lowp_round(z + i, z + i, m, dt, NULL);
        }
        for (size_t i = 0; i < n; i++) {
            const uint16_t s = to(x[i]);
            count_ref(&want, bits(x[i]), s, dt);
            bad_pack += h[i] != s;
            bad_round += bits(y[i]) != bits(from(s));
            bad_inplace += bits(z[i]) != bits(y[i]);
        }
        for (size_t i = 0; i < n; i += chunk) {
            const size_t m = n - i < chunk ? n - i : chunk;
            nl_lowp_unpack(z + i, h + i, m, dt);
        }
        for (size_t i = 0; i < n; i++) bad_unpack += bits(z[i]) != bits(from(h[i]));
        memcpy(z, y, n * sizeof *z);
        for (size_t i = 0; i < n; i += chunk) nl_lowp_round(z + i, z + i, n - i < chunk ? n - i : chunk, dt, NULL);
        for (size_t i = 0; i < n; i++) bad_idem += bits(z[i]) != bits(y[i]);
        fails += NL_CHECK(!bad_pack && !bad_round && !bad_inplace && !bad_unpack && !bad_idem,
                          "%s %s: array vs scalar mismatches: pack %zu, round %zu, in place %zu, unpack %zu, "
                          "round twice %zu (of %zu)",
                          label, k ? "bf16" : "fp16", bad_pack, bad_round, bad_inplace, bad_unpack, bad_idem, n);
        fails += NL_CHECK(cp.overflow == want.overflow && cp.flushed == want.flushed && cr.overflow == want.overflow &&
                                  cr.flushed == want.flushed,
                          "%s %s: counts differ from the scalar functions'", label, k ? "bf16" : "fp16");
    }
    free(h), free(y), free(z);
    return fails;
}

int test_lowp_paths(void) {
#ifdef __AVX512F__
    printf("  array path: AVX-512\n");
#else
    printf("  array path: scalar (this build has no AVX-512; the comparison is scalar against scalar)\n");
#endif
    /* 2^20 + 13 patterns (a tail after the vector blocks): every combination of the top 20 bits (sign,
     * exponent, 11 mantissa bits) with scrambled low bits; then every 16-bit pattern in both halves */
    const size_t n = (1u << 20) + 13 + 2 * 65536;
    float *x = nl_xmalloc(n * sizeof *x);
    size_t i = 0;
    for (; i < (1u << 20) + 13; i++) x[i] = from_bits((uint32_t)(i << 12) | (((uint32_t)i * 0x9E3779B1u) >> 20));
    for (uint32_t k = 0; k < 65536; k++) x[i++] = from_bits(k), x[i++] = from_bits(k << 16);
    int fails = paths_agree(x, n, 0, "default MXCSR");
#if defined(__SSE__)
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040); /* FTZ | DAZ */
    fails += paths_agree(x, n, 1, "FTZ+DAZ");
    _mm_setcsr(csr);
#endif
    free(x);
    return fails;
}

/* ---------------------------------------------------------------- rounded-input matrix product */

static double gamma_n(int n) {
    const double u = 0x1p-24;
    return n * u / (1 - n * u);
}

int test_lowp_gemm(void) {
    enum { M = 37, N = 29, K = 67, PAD = 3 };
    int fails = 0;
    nl_rng r;
    nl_rng_seed(&r, 7);
    const float alpha = 1.5f, beta = 0.5f;
    float *a = nl_xmalloc(K * (M + PAD) * sizeof *a), *b = nl_xmalloc(K * (N + PAD) * sizeof *b);
    float *c0 = nl_xmalloc(M * N * sizeof *c0), *c = nl_xmalloc(M * N * sizeof *c);
    float *scratch = nl_xmalloc((M * K + K * N) * sizeof *scratch);
    float *ra = nl_xmalloc(K * (M + PAD) * sizeof *ra), *rb = nl_xmalloc(K * (N + PAD) * sizeof *rb);
    /* N(0,1) entries, raised to at least 2^-10 in magnitude: no input is subnormal in fp16, so relative
     * rounding errors of at most u hold (docs/numerics.md) */
    nl_fill(&r, a, K * (M + PAD), 1.0);
    nl_fill(&r, b, K * (N + PAD), 1.0);
    for (int i = 0; i < K * (M + PAD); i++) a[i] = fabsf(a[i]) < 0x1p-10f ? copysignf(0x1p-10f, a[i]) : a[i];
    for (int i = 0; i < K * (N + PAD); i++) b[i] = fabsf(b[i]) < 0x1p-10f ? copysignf(0x1p-10f, b[i]) : b[i];
    nl_fill(&r, c0, M * N, 1.0);
    for (int d = 1; d <= 2; d++) {
        const nl_dtype dt = d == 1 ? NL_DTYPE_BF16 : NL_DTYPE_FP16;
        const double u = dt == NL_DTYPE_BF16 ? 0x1p-8 : 0x1p-11, g = gamma_n(K + 2);
        uint16_t (*to)(float) = dt == NL_DTYPE_BF16 ? nl_fp32_to_bf16 : nl_fp32_to_fp16;
        float (*from)(uint16_t) = dt == NL_DTYPE_BF16 ? nl_bf16_to_fp32 : nl_fp16_to_fp32;
        for (int i = 0; i < K * (M + PAD); i++) ra[i] = from(to(a[i]));
        for (int i = 0; i < K * (N + PAD); i++) rb[i] = from(to(b[i]));
        double most1 = 0, most2 = 0, least_control = INFINITY;
        for (int t = 0; t < 4; t++) {
            const int tA = t & 1, tB = t >> 1;
            const int lda = (tA ? M : K) + PAD, ldb = (tB ? K : N) + PAD;
            memcpy(c, c0, M * N * sizeof *c);
            nl_lowp_counts cnt = { 0, 0 };
            nl_lowp_gemm(dt, tA, tB, M, N, K, alpha, a, lda, b, ldb, beta, c, N, scratch, &cnt);
            /* the same product of the unrounded inputs in fp32: the negative control */
            float *plain = nl_xmalloc(M * N * sizeof *plain);
            memcpy(plain, c0, M * N * sizeof *plain);
            nl_lowp_gemm(NL_DTYPE_FP32, tA, tB, M, N, K, alpha, a, lda, b, ldb, beta, plain, N, NULL, NULL);
            double worst1 = 0, worst2 = 0, control = 0;
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double dr = 0, abr = 0, de = 0, abe = 0;
                    for (int k = 0; k < K; k++) {
                        const size_t ia = tA ? (size_t)k * lda + i : (size_t)i * lda + k;
                        const size_t ib = tB ? (size_t)j * ldb + k : (size_t)k * ldb + j;
                        dr += (double)ra[ia] * rb[ib], abr += fabs((double)ra[ia] * rb[ib]);
                        de += (double)a[ia] * b[ib], abe += fabs((double)a[ia] * b[ib]);
                    }
                    const double cz = beta * (double)c0[i * N + j], got = c[i * N + j];
                    const double bound1 = g * (alpha * abr + fabs(cz));
                    const double bound2 = (2 * u + u * u + g * (1 + u) * (1 + u)) * (alpha * abe + fabs(cz));
                    worst1 = fmax(worst1, fabs(got - (alpha * dr + cz)) / bound1);
                    worst2 = fmax(worst2, fabs(got - (alpha * de + cz)) / bound2);
                    control = fmax(control, fabs(plain[i * N + j] - (alpha * dr + cz)) / bound1);
                }
            free(plain);
            const char *name = dt == NL_DTYPE_BF16 ? "bf16" : "fp16";
            fails += NL_CHECK(worst1 <= 1,
                              "%s tA %d tB %d: error against the rounded inputs' exact product is %.3g x "
                              "the fp32 accumulation bound",
                              name, tA, tB, worst1);
            fails += NL_CHECK(worst2 <= 1, "%s tA %d tB %d: error against the exact product is %.3g x the bound", name,
                              tA, tB, worst2);
            fails += NL_CHECK(control > 1,
                              "%s tA %d tB %d: unrounded inputs also meet the fp32 bound (%.3g): the "
                              "check cannot tell rounding happened",
                              name, tA, tB, control);
            fails += NL_CHECK(cnt.overflow == 0 && cnt.flushed == 0, "%s: counts on ordinary inputs", name);
            most1 = fmax(most1, worst1), most2 = fmax(most2, worst2), least_control = fmin(least_control, control);
        }
        printf("  %s, 4 transpose cases: worst error / bound %.3f for (1) (rounded inputs, fp32 accumulation), %.3f "
               "for (2) (exact product); unrounded inputs exceed (1) at least %.0fx\n",
               d == 1 ? "bf16" : "fp16", most1, most2, least_control);
    }
    /* the counters see both inputs: one value overflows fp16 in A, one underflows in B */
    float a1[4] = { 1e6f, 1, 1, 1 }, b1[4] = { 1e-9f, 1, 1, 1 }, c1[4], s1[8];
    nl_lowp_counts cnt = { 0, 0 }, cntb = { 0, 0 };
    nl_lowp_gemm(NL_DTYPE_FP16, 0, 0, 2, 2, 2, 1, a1, 2, b1, 2, 0, c1, 2, s1, &cnt);
    fails += NL_CHECK(cnt.overflow == 1 && cnt.flushed == 1 && !isfinite(c1[0]), "fp16 counts %llu/%llu, c[0] %g",
                      (unsigned long long)cnt.overflow, (unsigned long long)cnt.flushed, (double)c1[0]);
    nl_lowp_gemm(NL_DTYPE_BF16, 0, 0, 2, 2, 2, 1, a1, 2, b1, 2, 0, c1, 2, s1, &cntb);
    fails += NL_CHECK(cntb.overflow == 0 && cntb.flushed == 0 && isfinite(c1[0]), "bf16 counts on the same inputs");
    free(a), free(b), free(c0), free(c), free(scratch), free(ra), free(rb);
    return fails;
}

/* nl_gemm_bf16 (oneDNN's bf16 x bf16 -> f32 matmul) on inputs packed by nl_lowp_pack_matrix: the packing of
 * representable values is a truncation and of the others the rounding of nl_lowp_gemm; the product within
 * bound (1) of the exact product of the rounded inputs and within twice that of nl_lowp_gemm's (the same
 * products, another summation order); beta 0 ignores C (NaN there), columns past N untouched, the same bits
 * twice; the bf16 table's gemm on either path (nl_gemm_bf16_use) within the bound. */
static int gemm_bf16_case(nl_rng *r, int tA, int tB, int M, int N, int K, float alpha, float beta, double *worst) {
    enum { PAD = 3 };
    const int lda = (tA ? M : K) + PAD, ldb = (tB ? K : N) + PAD, ldc = N + PAD;
    const int arows = tA ? K : M, acols = tA ? M : K, brows = tB ? N : K, bcols = tB ? K : N;
    const size_t na = (size_t)arows * lda, nb = (size_t)brows * ldb, nc = (size_t)M * ldc;
    float *a = nl_xmalloc(na * sizeof *a), *b = nl_xmalloc(nb * sizeof *b), *ra = nl_xmalloc(na * sizeof *ra);
    float *rb = nl_xmalloc(nb * sizeof *rb), *c0 = nl_xmalloc(nc * sizeof *c0), *c = nl_xmalloc(nc * sizeof *c);
    float *c2 = nl_xmalloc(nc * sizeof *c2), *emu = nl_xmalloc(nc * sizeof *emu);
    float *scratch = nl_xmalloc(((size_t)M * K + (size_t)K * N) * sizeof *scratch);
    uint16_t *pa = nl_xmalloc((size_t)M * K * sizeof *pa), *pb = nl_xmalloc((size_t)K * N * sizeof *pb);
    uint16_t *qa = nl_xmalloc((size_t)M * K * sizeof *qa);
    nl_fill(r, a, na, 1.0), nl_fill(r, b, nb, 1.0), nl_fill(r, c0, nc, 1.0);
    nl_lowp_round(ra, a, na, NL_DTYPE_BF16, NULL);
    nl_lowp_round(rb, b, nb, NL_DTYPE_BF16, NULL);
    for (int i = 0; i < M; i++)
        for (int j = N; j < ldc; j++) c0[(size_t)i * ldc + j] = SENTINEL_C;
    if (beta == 0.0f)
        for (int i = 0; i < M; i++) c0[(size_t)i * ldc] = NAN;
    int fails = 0;
    /* packing: representable values lose 16 zero bits; unrounded ones round as nl_lowp_round does */
    nl_lowp_pack_matrix(pa, ra, arows, acols, lda, NL_DTYPE_BF16);
    nl_lowp_pack_matrix(qa, a, arows, acols, lda, NL_DTYPE_BF16);
    int trunc = 1;
    for (int i = 0; i < arows; i++)
        for (int k = 0; k < acols; k++) {
            const size_t p = (size_t)i * acols + k;
            trunc &= pa[p] == bits(ra[(size_t)i * lda + k]) >> 16 && (bits(ra[(size_t)i * lda + k]) & 0xFFFFu) == 0 &&
                     qa[p] == pa[p];
        }
    fails += NL_CHECK(trunc,
                      "t%d%d: packing a representable value is not a truncation, or packing differs from "
                      "rounding",
                      tA, tB);
    nl_lowp_pack_matrix(pb, b, brows, bcols, ldb, NL_DTYPE_BF16);
    memcpy(c, c0, nc * sizeof *c), memcpy(c2, c0, nc * sizeof *c2), memcpy(emu, c0, nc * sizeof *emu);
    nl_gemm_bf16(tA, tB, M, N, K, alpha, pa, acols, pb, bcols, beta, c, ldc);
    nl_gemm_bf16(tA, tB, M, N, K, alpha, pa, acols, pb, bcols, beta, c2, ldc);
    nl_lowp_gemm(NL_DTYPE_BF16, tA, tB, M, N, K, alpha, a, lda, b, ldb, beta, emu, ldc, scratch, NULL);
    fails += NL_CHECK(!memcmp(c, c2, nc * sizeof *c), "t%d%d %dx%dx%d: two calls differ", tA, tB, M, N, K);
    const double g = gamma_n(K + 2);
    double w_exact = 0, w_emu = 0;
    int pad_ok = 1;
    for (int i = 0; i < M; i++) {
        for (int j = N; j < ldc; j++) pad_ok &= c[(size_t)i * ldc + j] == SENTINEL_C;
        for (int j = 0; j < N; j++) {
            double d = 0, ab = 0;
            for (int k = 0; k < K; k++) {
                const double p = (double)(tA ? ra[(size_t)k * lda + i] : ra[(size_t)i * lda + k]) *
                                 (tB ? rb[(size_t)j * ldb + k] : rb[(size_t)k * ldb + j]);
                d += p, ab += fabs(p);
            }
            const double cz = beta != 0.0f ? beta * (double)c0[(size_t)i * ldc + j] : 0.0;
            const double bound = g * (fabs(alpha) * ab + fabs(cz)), got = c[(size_t)i * ldc + j];
            w_exact = fmax(w_exact, isfinite(got) ? fabs(got - (alpha * d + cz)) / bound : INFINITY);
            w_emu = fmax(w_emu, fabs(got - emu[(size_t)i * ldc + j]) / (2 * bound));
        }
    }
    fails += NL_CHECK(w_exact <= 1 && w_emu <= 1,
                      "t%d%d %dx%dx%d alpha %g beta %g: error / bound %.3g against the exact product, %.3g against "
                      "nl_lowp_gemm",
                      tA, tB, M, N, K, alpha, beta, w_exact, w_emu);
    fails += NL_CHECK(pad_ok, "t%d%d: wrote past column N", tA, tB);
    *worst = fmax(*worst, fmax(w_exact, w_emu));
    free(a), free(b), free(ra), free(rb), free(c0), free(c), free(c2), free(emu), free(scratch), free(pa), free(pb),
            free(qa);
    return fails;
}

int test_lowp_gemm_bf16(void) {
    if (!nl_gemm_bf16_can()) {
        printf("    skipped: oneDNN has no bf16 matmul on this CPU (%s)\n", nl_gemm_bf16_info());
        return 0;
    }
    printf("    bf16 table's matmuls: %s\n", nl_gemm_bf16_info());
    nl_rng r;
    nl_rng_seed(&r, 19);
    int fails = 0;
    double worst = 0;
    for (int t = 0; t < 4; t++) {
        fails += gemm_bf16_case(&r, t & 1, t >> 1, 37, 29, 67, 1.5f, 0.5f, &worst);
        fails += gemm_bf16_case(&r, t & 1, t >> 1, 200, 96, 160, 1.0f, 0.0f, &worst); /* the brgemm kernels */
        fails += gemm_bf16_case(&r, t & 1, t >> 1, 64, 50, 33, 1.0f, 1.0f, &worst);
    }
    printf("    12 cases: worst error / bound %.3f\n", worst);
    /* the bf16 table's gemm on both paths: the same product up to the summation order */
    enum { M = 48, N = 40, K = 64 };
    float *a = nl_xmalloc(M * K * sizeof *a), *b = nl_xmalloc(K * N * sizeof *b), *c[2];
    nl_fill(&r, a, M * K, 1.0), nl_fill(&r, b, K * N, 1.0);
    const nl_backend *be = nl_backend_cpu_dtype(NL_DTYPE_BF16);
    const int was = nl_gemm_bf16_use(0);
    for (int on = 0; on < 2; on++) {
        nl_gemm_bf16_use(on);
        c[on] = nl_xmalloc(M * N * sizeof *c[on]);
        be->gemm(0, 0, M, N, K, 1.0f, a, K, b, N, 0.0f, c[on], N);
    }
    nl_gemm_bf16_use(was);
    double most = 0; /* the difference over the bound on two fp32 summation orders of the rounded products */
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double ab = 0;
            for (int k = 0; k < K; k++)
                ab += fabs((double)nl_bf16_to_fp32(nl_fp32_to_bf16(a[i * K + k])) *
                           nl_bf16_to_fp32(nl_fp32_to_bf16(b[k * N + j])));
            most = fmax(most, fabs((double)c[0][i * N + j] - c[1][i * N + j]) / (2 * gamma_n(K) * ab));
        }
    fails += NL_CHECK(most <= 1, "the bf16 table's gemm: the paths differ by %.3g x the bound", most);
    free(a), free(b), free(c[0]), free(c[1]);
    return fails;
}

/* ---------------------------------------------------------------- dynamic loss scaling */

int test_loss_scaler(void) {
    int fails = 0;
    nl_loss_scaler s;
    fails += NL_CHECK(nl_loss_scaler_init(&s, 16, 2, 0.5, 3, 1, 64) == NL_OK, "init");
    /* 1 = clean step, 0 = a gradient overflowed; the scale after each step, by the rule in loss_scaler.h */
    static const int pattern[] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 1, 1 };
    static const double scales[] = { 16, 16, 32, 32, 32, 64, 64, 64, 64, 32, 32, 16, 8, 4, 2, 1, 1, 1, 1, 1, 1, 1, 2 };
    int steps = 0;
    for (size_t i = 0; i < sizeof pattern / sizeof pattern[0]; i++) {
        const int go = nl_loss_scaler_update(&s, pattern[i]);
        steps += go;
        fails += NL_CHECK(go == pattern[i] && s.scale == scales[i], "step %zu: update gave %d, scale %g; want %d, %g",
                          i, go, s.scale, pattern[i], scales[i]);
    }
    fails += NL_CHECK(s.skipped == 8 && steps == 15, "skipped %llu, applied %d", (unsigned long long)s.skipped, steps);
    /* bad settings are refused with a message naming the value */
    const struct {
        double init, growth, backoff, lo, hi;
        int interval;
        const char *word;
    } bad[] = { { 0.5, 2, 0.5, 1, 64, 3, "initial" }, { 16, 1, 0.5, 1, 64, 3, "growth" },
                { 16, 2, 1, 1, 64, 3, "back-off" },   { 16, 2, 0.5, 1, 64, 0, "interval" },
                { 16, 2, 0.5, 0, 64, 3, "range" },    { 16, 2, 0.5, 1, INFINITY, 3, "range" },
                { NAN, 2, 0.5, 1, 64, 3, "initial" } };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const nl_status st = nl_loss_scaler_init(&s, bad[i].init, bad[i].growth, bad[i].backoff, bad[i].interval,
                                                 bad[i].lo, bad[i].hi);
        fails += NL_CHECK(st == NL_ERR_ARG && strstr(nl_last_error(), bad[i].word), "bad setting %zu: status %d, '%s'",
                          i, st, nl_last_error());
    }
    return fails;
}
