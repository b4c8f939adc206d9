/* lowp.c -- see lowp.h. The scalar conversions below are the definition; the AVX-512 loops compute the same
 * bits (tests/test_lowp.c compares them, and both against a Python reference). */
#include "lowp.h"

#include "common.h"
#include "gemm.h"

#include <string.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

/* Thresholds on |x|'s fp32 bits: at and above *_OVF a finite value rounds to inf (half an ulp above the
 * largest finite value, a tie that rounds to the even neighbour, inf); at and below *_FLUSH a value rounds
 * to zero (half the smallest subnormal, again a tie to the even neighbour, 0). */
#define BF16_OVF 0x7F7F8000u   /* 0x1.ffp127 */
#define BF16_FLUSH 0x00008000u /* 2^-134 */
#define FP16_OVF 0x477FF000u   /* 65520 */
#define FP16_FLUSH 0x33000000u /* 2^-25 */
#define ABS_MASK 0x7FFFFFFFu
#define INF_BITS 0x7F800000u

static inline uint32_t bits_of(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static inline float float_of(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static inline uint16_t bf16_from_bits(uint32_t u) {
    /* round to nearest even on the 16 dropped bits; a carry walks into the exponent (inf from the largest
     * values); the sign cannot change since |u| <= inf. A NaN is truncated and made quiet. Branch-free, so
     * that a compiler can vectorise the loops without AVX-512. */
    const uint32_t r = u + 0x7FFFu + ((u >> 16) & 1u), q = u | 0x400000u;
    return (uint16_t)(((u & ABS_MASK) > INF_BITS ? q : r) >> 16);
}

static inline uint16_t fp16_from_bits(uint32_t u) {
    const uint32_t sign = (u >> 16) & 0x8000u, a = u & ABS_MASK;
    if (a > INF_BITS) return (uint16_t)(sign | 0x7E00u | ((a >> 13) & 0x3FFu)); /* NaN: quiet */
    if (a >= FP16_OVF) return (uint16_t)(sign | 0x7C00u);
    if (a >= 0x38800000u) { /* normal fp16 (>= 2^-14): rebias the exponent by 127 - 15, round 13 bits */
        const uint32_t m = a - 0x38000000u;
        return (uint16_t)(sign | ((m + 0xFFFu + ((m >> 13) & 1u)) >> 13));
    }
    if (a <= FP16_FLUSH) return (uint16_t)sign;
    /* subnormal fp16: |x| / 2^-24 rounded to an integer (1024 carries into the smallest normal) */
    const uint32_t shift = 126u - (a >> 23), mant = (a & 0x7FFFFFu) | 0x800000u;
    const uint32_t half = 1u << (shift - 1), rem = mant & ((half << 1) - 1);
    uint32_t q = mant >> shift;
    q += rem > half || (rem == half && (q & 1u));
    return (uint16_t)(sign | q);
}

static inline uint32_t bits_from_bf16(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    return (u & ABS_MASK) > INF_BITS ? u | 0x400000u : u;
}

static inline uint32_t bits_from_fp16(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
    /* the three cases computed and selected with masks: branch-free, so the loops vectorise */
    const uint32_t special = INF_BITS | (m << 13) | ((uint32_t)(m != 0) << 22); /* inf, quiet NaN */
    const uint32_t normal = ((e + 112u) << 23) | (m << 13);
    const uint32_t small = bits_of((float)(int32_t)m * 0x1p-24f); /* subnormal or zero: exact, normal in fp32 */
    const uint32_t is_special = 0u - (uint32_t)(e == 0x1F), is_small = 0u - (uint32_t)(e == 0);
    return sign | (special & is_special) | (small & is_small) | (normal & ~(is_special | is_small));
}

uint16_t nl_fp32_to_bf16(float x) { return bf16_from_bits(bits_of(x)); }
uint16_t nl_fp32_to_fp16(float x) { return fp16_from_bits(bits_of(x)); }
float nl_bf16_to_fp32(uint16_t h) { return float_of(bits_from_bf16(h)); }
float nl_fp16_to_fp32(uint16_t h) { return float_of(bits_from_fp16(h)); }

/* ---------------------------------------------------------------- serial loops over one block */

static void count_block(const float *src, size_t n, uint32_t ovf, uint32_t flush, uint64_t *ov, uint64_t *fl) {
    uint64_t o = 0, f = 0;
    size_t i = 0;
#ifdef __AVX512F__
    const __m512i absm = _mm512_set1_epi32((int)ABS_MASK), inf = _mm512_set1_epi32((int)INF_BITS);
    const __m512i vo = _mm512_set1_epi32((int)ovf), vf = _mm512_set1_epi32((int)flush);
    for (; i + 16 <= n; i += 16) {
        const __m512i a = _mm512_and_si512(_mm512_loadu_si512(src + i), absm);
        o += (uint64_t)__builtin_popcount(_mm512_cmpge_epu32_mask(a, vo) & _mm512_cmplt_epu32_mask(a, inf));
        f += (uint64_t)__builtin_popcount(_mm512_test_epi32_mask(a, a) & _mm512_cmple_epu32_mask(a, vf));
    }
#endif
    for (; i < n; i++) {
        const uint32_t a = bits_of(src[i]) & ABS_MASK;
        o += a >= ovf && a < INF_BITS;
        f += a != 0 && a <= flush;
    }
    *ov += o;
    *fl += f;
}

static void pack_block(uint16_t *dst, const float *src, size_t n, nl_dtype dt) {
    size_t i = 0;
    if (dt == NL_DTYPE_BF16) {
#ifdef __AVX512F__
        const __m512i absm = _mm512_set1_epi32((int)ABS_MASK), inf = _mm512_set1_epi32((int)INF_BITS);
        const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7FFF), quiet = _mm512_set1_epi32(0x400000);
        for (; i + 16 <= n; i += 16) {
            const __m512i u = _mm512_loadu_si512(src + i);
            const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, absm), inf);
            const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
            __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, bias));
            r = _mm512_mask_or_epi32(r, nan, u, quiet);
            _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
        }
#endif
#pragma omp simd
        for (size_t j = i; j < n; j++) dst[j] = nl_fp32_to_bf16(src[j]);
    } else {
#ifdef __AVX512F__
        for (; i + 16 <= n; i += 16) /* VCVTPS2PH: round to nearest even whatever MXCSR says */
            _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtps_ph(_mm512_loadu_ps(src + i),
                                                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
#pragma omp simd
        for (size_t j = i; j < n; j++) dst[j] = nl_fp32_to_fp16(src[j]);
    }
}

static void unpack_block(float *dst, const uint16_t *src, size_t n, nl_dtype dt) {
    size_t i = 0;
    if (dt == NL_DTYPE_BF16) {
#ifdef __AVX512F__
        const __m512i absm = _mm512_set1_epi32((int)ABS_MASK), inf = _mm512_set1_epi32((int)INF_BITS);
        const __m512i quiet = _mm512_set1_epi32(0x400000);
        for (; i + 16 <= n; i += 16) {
            const __m512i u = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i))),
                                                16);
            const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, absm), inf);
            _mm512_storeu_si512(dst + i, _mm512_mask_or_epi32(u, nan, u, quiet));
        }
#endif
#pragma omp simd
        for (size_t j = i; j < n; j++) dst[j] = nl_bf16_to_fp32(src[j]);
    } else {
#ifdef __AVX512F__
        for (; i + 16 <= n; i += 16)
            _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
#endif
#pragma omp simd
        for (size_t j = i; j < n; j++) dst[j] = nl_fp16_to_fp32(src[j]);
    }
}

/* Elements per block: the unit of the OpenMP loops, and the 16-bit staging buffer of rounding. */
#define BLOCK 2048
/* Below this many elements the loops stay on one thread. */
#define PAR_MIN (1 << 16)

/* One pass with AVX-512: count, round in the register (bf16: the rounding of pack_block with the low 16
 * bits cleared; fp16: VCVTPS2PH then VCVTPH2PS), store. The rest (and every element without AVX-512):
 * count, then pack to 16 bits and unpack. Both give the bits of the scalar conversions. */
static void round_serial(float *dst, const float *src, size_t n, nl_dtype dt, uint64_t *ov, uint64_t *fl) {
    const uint32_t ovf = dt == NL_DTYPE_BF16 ? BF16_OVF : FP16_OVF, flush = dt == NL_DTYPE_BF16 ? BF16_FLUSH : FP16_FLUSH;
#ifdef __AVX512F__
    size_t i = 0;
    const __m512i absm = _mm512_set1_epi32((int)ABS_MASK), inf = _mm512_set1_epi32((int)INF_BITS);
    const __m512i vo = _mm512_set1_epi32((int)ovf), vf = _mm512_set1_epi32((int)flush);
    const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7FFF), quiet = _mm512_set1_epi32(0x400000);
    const __m512i hi = _mm512_set1_epi32((int)0xFFFF0000u);
    uint64_t o = 0, f = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512i u = _mm512_loadu_si512(src + i), a = _mm512_and_si512(u, absm);
        o += (uint64_t)__builtin_popcount(_mm512_cmpge_epu32_mask(a, vo) & _mm512_cmplt_epu32_mask(a, inf));
        f += (uint64_t)__builtin_popcount(_mm512_test_epi32_mask(a, a) & _mm512_cmple_epu32_mask(a, vf));
        if (dt == NL_DTYPE_BF16) {
            const __mmask16 nan = _mm512_cmpgt_epu32_mask(a, inf);
            const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
            __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, bias));
            r = _mm512_mask_or_epi32(r, nan, u, quiet);
            _mm512_storeu_si512(dst + i, _mm512_and_si512(r, hi));
        } else {
            const __m256i h = _mm512_cvtps_ph(_mm512_castsi512_ps(u), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(h));
        }
    }
    *ov += o;
    *fl += f;
    dst += i, src += i, n -= i;
#endif
    uint16_t tmp[BLOCK];
    count_block(src, n, ovf, flush, ov, fl);
    for (size_t j = 0; j < n; j += BLOCK) {
        const size_t m = n - j < BLOCK ? n - j : BLOCK;
        pack_block(tmp, src + j, m, dt);
        unpack_block(dst + j, tmp, m, dt);
    }
}

static void check_dtype(nl_dtype dt) { NL_ASSERT(dt == NL_DTYPE_FP32 || dt == NL_DTYPE_BF16 || dt == NL_DTYPE_FP16); }

void nl_lowp_round(float *dst, const float *src, size_t n, nl_dtype dt, nl_lowp_counts *counts) {
    check_dtype(dt);
    if (dt == NL_DTYPE_FP32) {
        if (dst != src) memmove(dst, src, n * sizeof *dst);
        return;
    }
    uint64_t ov = 0, fl = 0;
    if (n < PAR_MIN) { /* no parallel region at all: attention rounds each row of P and dS from inside one */
        for (size_t i = 0; i < n; i += BLOCK)
            round_serial(dst + i, src + i, n - i < BLOCK ? n - i : BLOCK, dt, &ov, &fl);
    } else {
        const long nb = (long)((n + BLOCK - 1) / BLOCK);
#pragma omp parallel for schedule(static) reduction(+ : ov, fl)
        for (long b = 0; b < nb; b++) {
            const size_t i = (size_t)b * BLOCK;
            round_serial(dst + i, src + i, n - i < BLOCK ? n - i : BLOCK, dt, &ov, &fl);
        }
    }
    if (counts) counts->overflow += ov, counts->flushed += fl;
}

void nl_lowp_pack(uint16_t *dst, const float *src, size_t n, nl_dtype dt, nl_lowp_counts *counts) {
    NL_ASSERT(dt == NL_DTYPE_BF16 || dt == NL_DTYPE_FP16);
    uint64_t ov = 0, fl = 0;
    const long nb = (long)((n + BLOCK - 1) / BLOCK);
#pragma omp parallel for schedule(static) reduction(+ : ov, fl) if (n >= PAR_MIN)
    for (long b = 0; b < nb; b++) {
        const size_t i = (size_t)b * BLOCK, m = n - i < BLOCK ? n - i : BLOCK;
        if (dt == NL_DTYPE_BF16) count_block(src + i, m, BF16_OVF, BF16_FLUSH, &ov, &fl);
        else count_block(src + i, m, FP16_OVF, FP16_FLUSH, &ov, &fl);
        pack_block(dst + i, src + i, m, dt);
    }
    if (counts) counts->overflow += ov, counts->flushed += fl;
}

void nl_lowp_unpack(float *dst, const uint16_t *src, size_t n, nl_dtype dt) {
    NL_ASSERT(dt == NL_DTYPE_BF16 || dt == NL_DTYPE_FP16);
    const long nb = (long)((n + BLOCK - 1) / BLOCK);
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (long b = 0; b < nb; b++) {
        const size_t i = (size_t)b * BLOCK;
        unpack_block(dst + i, src + i, n - i < BLOCK ? n - i : BLOCK, dt);
    }
}

/* ---------------------------------------------------------------- matrix product of rounded inputs */

/* dst (rows x cols, packed) = src (row stride ld) rounded to dt. */
static void round_matrix(float *dst, const float *src, int rows, int cols, int ld, nl_dtype dt, nl_lowp_counts *counts) {
    if (ld == cols) {
        nl_lowp_round(dst, src, (size_t)rows * (size_t)cols, dt, counts);
        return;
    }
    uint64_t ov = 0, fl = 0;
#pragma omp parallel for schedule(static) reduction(+ : ov, fl) if ((size_t)rows * (size_t)cols >= PAR_MIN)
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c += BLOCK)
            round_serial(dst + (size_t)r * (size_t)cols + (size_t)c, src + (size_t)r * (size_t)ld + (size_t)c,
                         (size_t)(cols - c < BLOCK ? cols - c : BLOCK), dt, &ov, &fl);
    if (counts) counts->overflow += ov, counts->flushed += fl;
}

void nl_lowp_pack_matrix(uint16_t *dst, const float *src, int rows, int cols, int ld, nl_dtype dt) {
    NL_ASSERT(dt == NL_DTYPE_BF16 || dt == NL_DTYPE_FP16);
    if (ld == cols) {
        nl_lowp_pack(dst, src, (size_t)rows * (size_t)cols, dt, NULL);
        return;
    }
#pragma omp parallel for schedule(static) if ((size_t)rows * (size_t)cols >= PAR_MIN)
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c += BLOCK)
            pack_block(dst + (size_t)r * (size_t)cols + (size_t)c, src + (size_t)r * (size_t)ld + (size_t)c,
                       (size_t)(cols - c < BLOCK ? cols - c : BLOCK), dt);
}

void nl_lowp_gemm(nl_dtype dt, int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc, float *scratch, nl_lowp_counts *counts) {
    check_dtype(dt);
    NL_ASSERT(M >= 0 && N >= 0 && K >= 0);
    const int arows = tA ? K : M, acols = tA ? M : K, brows = tB ? N : K, bcols = tB ? K : N;
    NL_ASSERT(lda >= acols && ldb >= bcols && ldc >= N);
    if (dt != NL_DTYPE_FP32) {
        float *sa = scratch, *sb = scratch + (size_t)M * (size_t)K;
        round_matrix(sa, A, arows, acols, lda, dt, counts);
        round_matrix(sb, B, brows, bcols, ldb, dt, counts);
        A = sa, lda = acols > 0 ? acols : 1;
        B = sb, ldb = bcols > 0 ? bcols : 1;
    }
    nl_gemm(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
