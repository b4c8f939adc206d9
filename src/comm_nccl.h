/* comm_nccl.h -- inside the MPI communicator (comm_mpi.c): the float collectives on device memory
 * through NCCL (comm_nccl.c, built by make USE_CUDA=1 USE_MPI=1, which defines NL_NCCL), and the two
 * calls of comm_mpi.c it uses for the watchdog. Not part of the communicator's interface (comm.h). */
#ifndef NL_COMM_NCCL_H
#define NL_COMM_NCCL_H

#include "comm.h"
#include "common.h"

#include <stdatomic.h>

/* comm_mpi.c: numbers the next collective (the watchdog's question is "which one are you in?") */
long long nl_comm_enter(void);
/* comm_mpi.c: polls done(arg, &st) until it returns non-zero, answering the watchdog's questions; past
 * the timeout ends the job naming the ranks that did not arrive. gentle (may be NULL): while *gentle,
 * sleep between polls. Returns the status done left in st. */
nl_status nl_comm_await(int (*done)(void *arg, nl_status *st), void *arg, const char *what, const atomic_int *gentle);

enum { NL_NCCL_GATHER = NL_COMM_SUM_SHARD + 1 }; /* every rank's [lo, hi) ∩ shard q := rank q's */

#ifdef NL_NCCL
enum { NL_HAVE_NCCL = 1 };
/* One NCCL communicator over the MPI ranks (its id broadcast from rank 0), a stream of its own. */
nl_status nl_nccl_init(int rank, int size);
void nl_nccl_finalize(void);
/* Starts op (nl_comm_op or NL_NCCL_GATHER) on buf[lo..hi) of a device vector of n floats on the NCCL
 * stream, after the work queued so far on the backend's stream. */
nl_status nl_nccl_post(int op, float *buf, size_t n, size_t lo, size_t hi);
/* Waits (with the watchdog) until every started op is done. */
nl_status nl_nccl_wait(void);
#else
enum { NL_HAVE_NCCL = 0 };
static inline nl_status nl_nccl_init(int rank, int size) {
    (void)rank;
    return NL_FAIL(NL_ERR_ARG, "device memory on %d MPI ranks needs NCCL: build with make USE_CUDA=1 USE_MPI=1", size);
}
static inline void nl_nccl_finalize(void) {}
/* unreachable: nl_comm_use_device fails first, so the device path is never on */
static inline nl_status nl_nccl_post(int op, float *buf, size_t n, size_t lo, size_t hi) {
    (void)op, (void)buf, (void)n, (void)lo, (void)hi;
    return NL_FAIL(NL_ERR_ARG, "no NCCL in this build");
}
static inline nl_status nl_nccl_wait(void) { return NL_OK; }
#endif

/* a synchronous NCCL collective */
static inline nl_status nl_nccl_run(int op, float *buf, size_t n, size_t lo, size_t hi) {
    NL_TRY(nl_nccl_post(op, buf, n, lo, hi));
    return nl_nccl_wait();
}

#endif
