/* allreduce_bench.c -- times the communicator's float all-reduce (src/comm.h) for message sizes
 * from 4 B to 64 MiB and fits t(bytes) = a + bytes / bw by least squares on the relative error (so
 * the small sizes fix the latency a, the large ones the bandwidth bw; docs/scaling.md).
 *   make bench-allreduce     (the MPI build; mpirun -np 2 build/mpi/allreduce_bench)
 * Prints one line per size: bytes, median seconds over the repetitions, algorithm bandwidth. */
#include "comm.h"
#include "common.h"

#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (nl_comm_init(&argc, &argv) != NL_OK) {
        fprintf(stderr, "allreduce_bench: %s\n", nl_last_error());
        return 1;
    }
    const int rank = nl_comm_rank(), P = nl_comm_size();
    enum { REPS = 21, NS = 9 };
    const size_t sizes[NS] = { 1, 256, 4096, 65536, 262144, 1u << 20, 4u << 20, 8u << 20, 16u << 20 }; /* floats */
    float *buf = nl_xmalloc(sizes[NS - 1] * sizeof(float));
    for (size_t i = 0; i < sizes[NS - 1]; i++) buf[i] = 1.0f;
    double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0; /* weighted by 1 / t^2 */
    if (rank == 0) printf("ranks %d\n%12s %12s %10s\n", P, "bytes", "median_s", "GB/s");
    for (int k = 0; k < NS; k++) {
        double t[REPS];
        for (int r = -2; r < REPS; r++) { /* two warm-up calls */
            nl_comm_barrier();
            const double t0 = nl_now();
            if (nl_comm_allreduce_sum(buf, sizes[k]) != NL_OK) nl_comm_abort(nl_last_error());
            if (r >= 0) t[r] = nl_now() - t0;
        }
        qsort(t, REPS, sizeof t[0], cmp);
        const double med = t[REPS / 2], bytes = (double)sizes[k] * sizeof(float);
        const double w = 1.0 / (med * med);
        sw += w, sx += w * bytes, sy += w * med, sxx += w * bytes * bytes, sxy += w * bytes * med;
        if (rank == 0) printf("%12.0f %12.3e %10.3f\n", bytes, med, bytes / med / 1e9);
    }
    const double slope = (sw * sxy - sx * sy) / (sw * sxx - sx * sx), a = (sy - slope * sx) / sw;
    if (rank == 0) printf("fit t = a + bytes/bw: a = %.3g s, bw = %.3g GB/s\n", a, 1.0 / slope / 1e9);
    free(buf);
    nl_comm_finalize();
    return 0;
}
