/* common.h -- error reporting, checked allocation, the deterministic RNG and a wall clock.
 * Tier 1 (bugs): NL_ASSERT aborts with file:line. Tier 2 (environment, input): return an nl_status and
 * set a message with NL_FAIL; only tools/normlab.c turns it into an exit code. */
#ifndef NL_COMMON_H
#define NL_COMMON_H

#include "normlab.h"
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

_Noreturn void nl_abort_(const char *file, int line, const char *fmt, ...);
void nl_set_error(const char *fmt, ...);

#define NL_ASSERT(c) ((c) ? (void)0 : nl_abort_(__FILE__, __LINE__, "assertion failed: %s", #c))
#define NL_FAIL(st, ...) (nl_set_error(__VA_ARGS__), (st))
#define NL_TRY(expr)                                                                                                   \
    do {                                                                                                               \
        nl_status st_ = (expr);                                                                                        \
        if (st_ != NL_OK) return st_;                                                                                  \
    } while (0)

/* Never returns NULL: aborts with the size and call site on exhaustion. Free with free(). */
void *nl_xmalloc_(size_t n, const char *file, int line);
void *nl_xcalloc_(size_t n, const char *file, int line);
#define nl_xmalloc(n) nl_xmalloc_((n), __FILE__, __LINE__)
#define nl_xcalloc(n) nl_xcalloc_((n), __FILE__, __LINE__)
/* Resizes array p (NULL: none yet) to cap elements of elem bytes, keeping its first used ones and zeroing the
 * rest; returns the array to use from now on (p is freed). The one way arrays grow here. */
void *nl_xresize_(void *p, size_t used, size_t cap, size_t elem, const char *file, int line);
#define nl_xresize(p, used, cap, elem) nl_xresize_((p), (used), (cap), (elem), __FILE__, __LINE__)

/* splitmix64-seeded xoshiro256** generator: the only source of randomness (init, data, sampling). */
typedef struct nl_rng {
    uint64_t s[4];
} nl_rng;
void nl_rng_seed(nl_rng *r, uint64_t seed);
uint64_t nl_rng_u64(nl_rng *r);
double nl_rng_uniform(nl_rng *r);             /* [0, 1) */
uint64_t nl_rng_below(nl_rng *r, uint64_t n); /* [0, n), unbiased; n > 0 */
double nl_rng_normal(nl_rng *r);              /* N(0, 1) */

double nl_now(void); /* seconds, monotonic */
/* mkdir -p: creates dir and its missing parents (0755); NL_ERR_IO naming the path if it cannot, or if
 * dir exists and is not a directory. */
nl_status nl_mkdir_p(const char *dir);

/* Finds a file the repository ships under data/ (name relative to data/, e.g. "tinyshakespeare.txt"):
 * ./data/name, then beside the binary: <repo>/data/name for build/<config>/normlab, and
 * <prefix>/share/normlab/name for an installed <prefix>/bin/normlab. 1 and the path in out if found. */
int nl_find_shipped(const char *name, char *out, size_t cap);

/* CRC-32 (zlib's polynomial) and CRC-32C (Castagnoli, as in TFRecord/iSCSI) of buf, continuing from
 * crc (0 to start). */
uint32_t nl_crc32(uint32_t crc, const void *buf, size_t n);
uint32_t nl_crc32c(uint32_t crc, const void *buf, size_t n);

/* The k-th smallest (0-based) of a[0..n), reordering a; NaN must not occur. */
float nl_select_kth(float *a, size_t n, size_t k);

#endif
