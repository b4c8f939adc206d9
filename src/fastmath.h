/* fastmath.h -- branch-free expf and tanhf that the compiler can vectorise (libm's are scalar calls).
 * nl_expf: Cody-Waite range reduction x = n*ln2 + r, a degree-6 polynomial for e^r on
 * |r| <= ln2/2, and 2^n assembled in the exponent bits; relative error below 3e-7 (2.5 ulp) for x in
 * [-87, 88] (inputs outside are clamped, so large negative x gives ~1e-38, not 0).
 * nl_tanhf: 1 - 2/(e^(2x) + 1), absolute error below 3e-7. Checked against libm in test_ops. */
#ifndef NL_FASTMATH_H
#define NL_FASTMATH_H

#include <stdint.h>
#include <string.h>

static inline float nl_expf(float x) {
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round(x / ln2) */
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;            /* x - n*ln2, two parts */
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* NaN in: p is NaN and so is the result; the exponent must still come from a number, as a
     * float-to-int conversion of NaN is undefined behaviour */
    const int32_t bits = ((int32_t)(n == n ? n : 0.0f) + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float nl_tanhf(float x) { return 1.0f - 2.0f / (nl_expf(2.0f * x) + 1.0f); }

#endif
