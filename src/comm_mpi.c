/* comm_mpi.c -- comm.h over MPI_COMM_WORLD (`make USE_MPI=1`, compiled with mpicc). Errors are
 * returned (MPI_ERRORS_RETURN) so a failed collective becomes an nl_status with MPI's message. */
#include "comm.h"

#include "common.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_rank, g_size = 1, g_local = 1, g_inited;

static nl_status mpi_fail(int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return NL_FAIL(NL_ERR_IO, "MPI %s failed on rank %d: %.*s", what, g_rank, len, msg);
}

nl_status nl_comm_init(int *argc, char ***argv) {
    if (g_inited) return NL_OK;
    int rc = MPI_Init(argc, argv);
    if (rc != MPI_SUCCESS) return NL_FAIL(NL_ERR_IO, "MPI_Init failed (error %d)", rc);
    g_inited = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm node;
    if ((rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node)) != MPI_SUCCESS)
        return mpi_fail(rc, "Comm_split_type");
    MPI_Comm_size(node, &g_local);
    MPI_Comm_free(&node);
    return NL_OK;
}

void nl_comm_finalize(void) {
    if (g_inited) MPI_Finalize();
    g_inited = 0;
}

const char *nl_comm_backend(void) { return "mpi"; }
int nl_comm_rank(void) { return g_rank; }
int nl_comm_size(void) { return g_size; }
int nl_comm_local_size(void) { return g_local; }

nl_status nl_comm_barrier(void) {
    int rc = MPI_Barrier(MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? NL_OK : mpi_fail(rc, "Barrier");
}

/* MPI counts are int: large buffers go in chunks */
enum { CHUNK = 1 << 30 };

/* in-place sum over the ranks of n elements of elem bytes (MPI type t) */
static nl_status allreduce_sum(void *buf, size_t n, size_t elem, MPI_Datatype t) {
    for (size_t i = 0; i < n; i += CHUNK) {
        const int c = (int)(n - i < CHUNK ? n - i : CHUNK);
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + i * elem, c, t, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "Allreduce");
    }
    return NL_OK;
}

nl_status nl_comm_allreduce_sum(float *buf, size_t n) { return allreduce_sum(buf, n, sizeof *buf, MPI_FLOAT); }

nl_status nl_comm_allreduce_sum_f64(double *buf, size_t n) { return allreduce_sum(buf, n, sizeof *buf, MPI_DOUBLE); }

void nl_comm_shard(size_t n, int rank, size_t *lo, size_t *hi) {
    const size_t q = n / (size_t)g_size, r = n % (size_t)g_size, k = (size_t)rank;
    *lo = k * q + (k < r ? k : r);
    *hi = *lo + q + (k < r);
}

/* the shard sizes and offsets as MPI's int counts; NL_ERR_ARG when n is too large for them */
static nl_status shard_counts(size_t n, int **counts, int **displs) {
    if (n > INT_MAX) return NL_FAIL(NL_ERR_ARG, "MPI sharding of %zu elements: at most %d are supported", n, INT_MAX);
    *counts = nl_xmalloc((size_t)g_size * sizeof(int));
    *displs = nl_xmalloc((size_t)g_size * sizeof(int));
    for (int q = 0; q < g_size; q++) {
        size_t lo, hi;
        nl_comm_shard(n, q, &lo, &hi);
        (*counts)[q] = (int)(hi - lo);
        (*displs)[q] = (int)lo;
    }
    return NL_OK;
}

nl_status nl_comm_reduce_scatter_sum(float *buf, size_t n) {
    int *counts, *displs;
    NL_TRY(shard_counts(n, &counts, &displs));
    const int mine = counts[g_rank], at = displs[g_rank];
    float *part = nl_xmalloc(((size_t)mine + 1) * sizeof(float)); /* send and receive buffers may not overlap */
    int rc = MPI_Reduce_scatter(buf, part, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    if (rc == MPI_SUCCESS) memcpy(buf + at, part, (size_t)mine * sizeof(float));
    free(part);
    free(counts);
    free(displs);
    return rc == MPI_SUCCESS ? NL_OK : mpi_fail(rc, "Reduce_scatter");
}

nl_status nl_comm_allgather(float *buf, size_t n) {
    int *counts, *displs;
    NL_TRY(shard_counts(n, &counts, &displs));
    int rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
    free(counts);
    free(displs);
    return rc == MPI_SUCCESS ? NL_OK : mpi_fail(rc, "Allgatherv");
}

nl_status nl_comm_broadcast(void *buf, size_t bytes, int root) {
    if (root < 0 || root >= g_size) return NL_FAIL(NL_ERR_ARG, "broadcast from rank %d: ranks are 0..%d", root, g_size - 1);
    for (size_t i = 0; i < bytes; i += CHUNK) {
        const int c = (int)(bytes - i < CHUNK ? bytes - i : CHUNK);
        int rc = MPI_Bcast((char *)buf + i, c, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "Bcast");
    }
    return NL_OK;
}

_Noreturn void nl_comm_abort(const char *msg) {
    fprintf(stderr, "normlab: rank %d: %s\n", g_rank, msg);
    fflush(stderr);
    if (g_inited) MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}
