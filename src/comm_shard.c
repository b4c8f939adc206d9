/* comm_shard.c -- the shard arithmetic of comm.h, shared by every communicator. */
#include "comm.h"

void nl_shard_of(size_t n, int P, int q, size_t *lo, size_t *hi) {
    const size_t p = (size_t)P, k = (size_t)q, base = n / p, r = n % p;
    *lo = k * base + (k < r ? k : r);
    *hi = *lo + base + (k < r);
}

void nl_comm_shard(size_t n, int rank, size_t *lo, size_t *hi) { nl_shard_of(n, nl_comm_size(), rank, lo, hi); }

int nl_shard_span(size_t n, int P, size_t lo, size_t hi, size_t *counts) {
    int first = -1;
    for (int q = 0; q < P; q++) {
        size_t a, b;
        nl_shard_of(n, P, q, &a, &b);
        a = a > lo ? a : lo;
        b = b < hi ? b : hi;
        counts[q] = b > a ? b - a : 0;
        if (counts[q] && first < 0) first = q;
    }
    return first;
}
