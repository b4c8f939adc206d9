/* comm.h -- the communicator: how the processes of one job (MPI ranks) find each other and exchange
 * data. Two implementations, chosen at build time: comm_single.c (the default build: one process,
 * rank 0 of 1, every collective a copy or no-op; no MPI needed) and comm_mpi.c (`make USE_MPI=1`:
 * MPI_COMM_WORLD through Debian's OpenMPI). A CUDA build will add NCCL behind the same calls.
 *
 * One world communicator per process: nl_comm_init once before any other call (it is idempotent),
 * nl_comm_finalize once at the end. Collectives must be called by every rank in the same order. */
#ifndef NL_COMM_H
#define NL_COMM_H

#include "normlab.h"

#include <stddef.h>

/* argc/argv may be NULL. NL_ERR_IO with a message if the launcher's environment is unusable. */
nl_status nl_comm_init(int *argc, char ***argv);
void nl_comm_finalize(void);
const char *nl_comm_backend(void); /* "single" or "mpi" */
int nl_comm_rank(void);            /* 0 .. size-1 */
int nl_comm_size(void);
int nl_comm_local_size(void);      /* ranks on this machine (to share its cores) */
nl_status nl_comm_barrier(void);
/* buf[0..n) := the sum over the ranks of their buf[0..n), on every rank */
nl_status nl_comm_allreduce_sum(float *buf, size_t n);
/* buf[0..n) := the sum over the ranks of their buf[0..n), on every rank, in double precision */
nl_status nl_comm_allreduce_sum_f64(double *buf, size_t n);
/* The shard [*lo, *hi) of n elements that `rank` owns: contiguous, in rank order, sizes differing
 * by at most one (ZeRO-1 partitions parameters and AdamW moments this way). */
void nl_comm_shard(size_t n, int rank, size_t *lo, size_t *hi);
/* Reduce-scatter: buf[lo..hi) of this rank's shard := the sum over the ranks of their buf[lo..hi);
 * the rest of buf is left unspecified. n < 2^31 per shard. */
nl_status nl_comm_reduce_scatter_sum(float *buf, size_t n);
/* All-gather: every rank's buf[lo_q..hi_q) := rank q's, for every rank q (n < 2^31). */
nl_status nl_comm_allgather(float *buf, size_t n);
/* every rank's buf[0..bytes) := root's */
nl_status nl_comm_broadcast(void *buf, size_t bytes, int root);
/* Prints "normlab: rank R: msg" to stderr and ends every rank of the job with exit status 1. */
_Noreturn void nl_comm_abort(const char *msg);

#endif
