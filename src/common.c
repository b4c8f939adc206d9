/* common.c -- see common.h. */
#include "common.h"

#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static _Thread_local char err_buf[1024];

const char *nl_last_error(void) { return err_buf; }

/* formats into a local buffer first: an argument may be nl_last_error() itself (a message wrapping
 * the previous one), and vsnprintf must not read the buffer it writes */
void nl_set_error(const char *fmt, ...) {
    char msg[sizeof err_buf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(err_buf, msg, sizeof err_buf);
}

_Noreturn void nl_abort_(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "normlab: internal error at %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

void *nl_xmalloc_(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) nl_abort_(file, line, "out of memory allocating %zu bytes", n);
    return p;
}

void *nl_xcalloc_(size_t n, const char *file, int line) {
    void *p = calloc(1, n ? n : 1);
    if (!p) nl_abort_(file, line, "out of memory allocating %zu bytes", n);
    return p;
}

void *nl_xresize_(void *p, size_t used, size_t cap, size_t elem, const char *file, int line) {
    NL_ASSERT(used <= cap);
    if (elem && cap > SIZE_MAX / elem) nl_abort_(file, line, "out of memory: %zu elements of %zu bytes", cap, elem);
    const size_t bytes = cap * elem;
    unsigned char *q = realloc(p, bytes ? bytes : 1);
    if (!q) nl_abort_(file, line, "out of memory allocating %zu bytes", bytes);
    memset(q + used * elem, 0, (cap - used) * elem);
    return q;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void nl_rng_seed(nl_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t nl_rng_u64(nl_rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double nl_rng_uniform(nl_rng *r) { return (double)(nl_rng_u64(r) >> 11) * 0x1.0p-53; }

uint64_t nl_rng_below(nl_rng *r, uint64_t n) {
    uint64_t lim = UINT64_MAX - UINT64_MAX % n, x;
    do x = nl_rng_u64(r);
    while (x >= lim);
    return x % n;
}

double nl_rng_normal(nl_rng *r) {
    /* Box-Muller; one draw per call keeps the stream position a simple function of the call count */
    double u1 = 1.0 - nl_rng_uniform(r), u2 = nl_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

double nl_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* table-driven reflected CRC-32 with polynomial poly (bit-reversed form) */
static uint32_t crc_reflected(uint32_t table[256], int *ready, uint32_t poly, uint32_t crc, const void *buf, size_t n) {
    if (!*ready) { /* benign race: every thread writes identical values */
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) ? poly ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        *ready = 1;
    }
    const unsigned char *p = buf;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

uint32_t nl_crc32(uint32_t crc, const void *buf, size_t n) {
    static uint32_t table[256];
    static int ready;
    return crc_reflected(table, &ready, 0xEDB88320u, crc, buf, n);
}

uint32_t nl_crc32c(uint32_t crc, const void *buf, size_t n) {
    static uint32_t table[256];
    static int ready;
    return crc_reflected(table, &ready, 0x82F63B78u, crc, buf, n);
}

nl_status nl_mkdir_p(const char *dir) {
    char p[NL_PATH_MAX + 128];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p)
        return NL_FAIL(NL_ERR_IO, "directory name too long: '%s'", dir);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || !*s) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST)
                return NL_FAIL(NL_ERR_IO, "cannot create directory '%s': %s", p, strerror(errno));
            *s = c;
            if (!c) break;
        }
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return NL_FAIL(NL_ERR_IO, "'%s' is not a directory", dir);
    return NL_OK;
}

int nl_find_shipped(const char *name, char *out, size_t cap) {
    char exe[NL_PATH_MAX] = "", cand[2 * NL_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) exe[n] = 0;
    const char *exedir = n > 0 ? dirname(exe) : NULL;
    for (int k = 0; k < 3; k++) {
        if (k == 0) snprintf(cand, sizeof cand, "data/%s", name);
        else if (!exedir) break;
        else if (k == 1) snprintf(cand, sizeof cand, "%s/../../data/%s", exedir, name);
        else snprintf(cand, sizeof cand, "%s/../share/normlab/%s", exedir, name);
        if (access(cand, R_OK) == 0 && strlen(cand) < cap) return snprintf(out, cap, "%s", cand), 1;
    }
    return 0;
}

static void swapf(float *a, float *b) {
    float t = *a;
    *a = *b;
    *b = t;
}

float nl_select_kth(float *a, size_t n, size_t k) {
    NL_ASSERT(k < n);
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        /* median of three as the pivot, Hoare partition */
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] < a[lo]) swapf(&a[mid], &a[lo]);
        if (a[hi] < a[lo]) swapf(&a[hi], &a[lo]);
        if (a[hi] < a[mid]) swapf(&a[hi], &a[mid]);
        const float p = a[mid];
        size_t i = lo, j = hi;
        for (;;) {
            while (a[i] < p) i++;
            while (p < a[j]) j--;
            if (i >= j) break;
            swapf(&a[i], &a[j]);
            i++;
            j--;
        }
        if (k <= j) hi = j;
        else lo = j + 1;
    }
    return a[k];
}
