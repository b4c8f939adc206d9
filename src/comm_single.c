/* comm_single.c -- comm.h for one process (the default build; `make USE_MPI=1` uses comm_mpi.c). */
#include "comm.h"

#include "common.h"

#include <stdio.h>
#include <stdlib.h>

nl_status nl_comm_init(int *argc, char ***argv) {
    (void)argc, (void)argv;
    return NL_OK;
}
void nl_comm_finalize(void) {}
const char *nl_comm_backend(void) { return "single"; }
int nl_comm_rank(void) { return 0; }
int nl_comm_size(void) { return 1; }
int nl_comm_local_size(void) { return 1; }
void nl_comm_set_timeout(double seconds) { (void)seconds; /* nothing to wait for */ }
nl_status nl_comm_use_device(int on) {
    (void)on; /* the sum over one rank touches no buffer */
    return NL_OK;
}
nl_status nl_comm_barrier(void) { return NL_OK; }
nl_status nl_comm_allreduce_sum(float *buf, size_t n) {
    (void)buf, (void)n; /* the sum over one rank */
    return NL_OK;
}
nl_status nl_comm_allreduce_sum_f64(double *buf, size_t n) {
    (void)buf, (void)n;
    return NL_OK;
}
nl_status nl_comm_reduce_scatter_sum(float *buf, size_t n) {
    (void)buf, (void)n; /* one shard: the whole buffer, summed over one rank */
    return NL_OK;
}
nl_status nl_comm_allgather(float *buf, size_t n) {
    (void)buf, (void)n;
    return NL_OK;
}
nl_status nl_comm_post(nl_comm_op op, float *buf, size_t n, size_t lo, size_t hi) {
    (void)op, (void)buf, (void)n;
    return lo <= hi && hi <= n && hi - lo <= NL_COMM_CHUNK
                   ? NL_OK
                   : NL_FAIL(NL_ERR_ARG, "nl_comm_post: bad range [%zu, %zu) of %zu", lo, hi, n);
}
nl_status nl_comm_wait(void) { return NL_OK; }
nl_status nl_comm_broadcast(void *buf, size_t bytes, int root) {
    (void)buf, (void)bytes;
    return root == 0 ? NL_OK : NL_FAIL(NL_ERR_ARG, "broadcast from rank %d: there is only rank 0", root);
}
_Noreturn void nl_comm_abort(const char *msg) {
    fprintf(stderr, "normlab: rank 0: %s\n", msg);
    fflush(stderr);
    exit(1);
}
