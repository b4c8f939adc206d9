/* comm.h -- the communicator: how the processes of one job (MPI ranks) find each other and exchange
 * data. Two implementations, chosen at build time: comm_single.c (the default build: one process,
 * rank 0 of 1, every collective a copy or no-op; no MPI needed) and comm_mpi.c (`make USE_MPI=1`:
 * MPI_COMM_WORLD through Debian's OpenMPI; with `make USE_CUDA=1 USE_MPI=1` the float collectives on
 * device memory go through NCCL, comm_nccl.c). The shard and chunk arithmetic is comm_shard.c.
 *
 * One world communicator per process: nl_comm_init once before any other call (it is idempotent),
 * nl_comm_finalize once at the end. Collectives must be called by every rank in the same order.
 * Every collective waits at most the timeout (nl_comm_set_timeout): past it the rank prints one line
 * naming the ranks that did not arrive and ends the job (exit status 1). */
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
int nl_comm_local_size(void); /* ranks on this machine (to share its cores) */
/* The watchdog: seconds a rank waits in one collective before it ends the job (0, the default:
 * forever; training sets --dp-timeout, sweeps leave it off since their ranks' shares take different
 * times). */
void nl_comm_set_timeout(double seconds);
/* on != 0: the float buffers of the collectives below are device memory of the CUDA backend (NCCL);
 * NL_ERR_ARG in a build that cannot do that with more than one rank. */
nl_status nl_comm_use_device(int on);
nl_status nl_comm_barrier(void);
/* buf[0..n) := the sum over the ranks of their buf[0..n), on every rank */
nl_status nl_comm_allreduce_sum(float *buf, size_t n);
/* buf[0..n) := the sum over the ranks of their buf[0..n), on every rank, in double precision (host) */
nl_status nl_comm_allreduce_sum_f64(double *buf, size_t n);
/* The shard [*lo, *hi) of n elements that `rank` owns: contiguous, in rank order, sizes differing
 * by at most one (ZeRO-1 partitions parameters and AdamW moments this way). */
void nl_comm_shard(size_t n, int rank, size_t *lo, size_t *hi);
/* Reduce-scatter: buf[lo..hi) of this rank's shard := the sum over the ranks of their buf[lo..hi);
 * the rest of buf is left unspecified. */
nl_status nl_comm_reduce_scatter_sum(float *buf, size_t n);
/* All-gather: every rank's buf[lo_q..hi_q) := rank q's, for every rank q. */
nl_status nl_comm_allgather(float *buf, size_t n);
/* every rank's buf[0..bytes) := root's (host memory) */
nl_status nl_comm_broadcast(void *buf, size_t bytes, int root);
/* Prints "normlab: rank R: msg" to stderr and ends every rank of the job with exit status 1. */
_Noreturn void nl_comm_abort(const char *msg);

/* ---- collectives that run while the caller computes (gradient buckets overlapped with the backward).
 * nl_comm_post queues the reduction of the part [lo, hi) of a vector buf[0..n): NL_COMM_SUM sums
 * buf[lo..hi) over the ranks; NL_COMM_SUM_SHARD sums only buf[lo..hi) ∩ this rank's shard of n (the
 * rest of [lo, hi) is left unspecified). A communication thread (MPI; on the device: the NCCL stream)
 * starts them at once, in the order posted. nl_comm_wait returns when every posted one is done, with
 * the first error. Between a post and nl_comm_wait the caller makes no other comm call and leaves
 * buf[lo..hi) alone. hi - lo <= NL_COMM_CHUNK. */
typedef enum nl_comm_op { NL_COMM_SUM, NL_COMM_SUM_SHARD } nl_comm_op;
nl_status nl_comm_post(nl_comm_op op, float *buf, size_t n, size_t lo, size_t hi);
nl_status nl_comm_wait(void);

/* ---- arithmetic (comm_shard.c, every build): counts are size_t end to end; an MPI or NCCL call
 * takes at most NL_COMM_CHUNK elements (their counts are int). */
enum { NL_COMM_CHUNK = 1 << 30 };
/* the shard [*lo, *hi) of n elements that rank q of P owns */
void nl_shard_of(size_t n, int P, int q, size_t *lo, size_t *hi);
/* counts[q] := the size of [lo, hi) ∩ shard q of n over P ranks, q < P (in rank order the pieces
 * tile [lo, hi)); returns the first rank with a non-empty piece */
int nl_shard_span(size_t n, int P, size_t lo, size_t hi, size_t *counts);

#endif
