/* comm_nccl.c -- see comm_nccl.h: the float collectives of comm.h on the CUDA backend's device memory
 * through NCCL (make USE_CUDA=1 USE_MPI=1). The backend computes on the legacy default stream; each op
 * waits for the work queued there so far (an event), then runs on a non-blocking stream of its own, so
 * the gradient buckets reduce while the backward goes on. The uneven pieces of the ZeRO-1 shards are
 * grouped ncclReduce / ncclBroadcast calls (ncclReduceScatter and ncclAllGather need equal counts). */
#include "comm_nccl.h"

#include <cuda_runtime_api.h>
#include <nccl.h>
#include <stdlib.h>

static struct {
    int on, rank, size;
    ncclComm_t comm;
    cudaStream_t stream;
    cudaEvent_t ready;
} g;

static nl_status cu_fail(cudaError_t e, const char *what) {
    return NL_FAIL(NL_ERR_IO, "rank %d: %s: %s", g.rank, what, cudaGetErrorString(e));
}
static nl_status nccl_fail(ncclResult_t r, const char *what) {
    return NL_FAIL(NL_ERR_IO, "rank %d: NCCL %s: %s", g.rank, what, ncclGetErrorString(r));
}
#define CU(x, what)                                                                                                    \
    do {                                                                                                               \
        cudaError_t e_ = (x);                                                                                          \
        if (e_ != cudaSuccess) return cu_fail(e_, what);                                                               \
    } while (0)
#define NC(x, what)                                                                                                    \
    do {                                                                                                               \
        ncclResult_t r_ = (x);                                                                                         \
        if (r_ != ncclSuccess) return nccl_fail(r_, what);                                                             \
    } while (0)

nl_status nl_nccl_init(int rank, int size) {
    if (g.on) return NL_OK;
    g.rank = rank, g.size = size;
    ncclUniqueId id;
    if (rank == 0) NC(ncclGetUniqueId(&id), "GetUniqueId");
    NL_TRY(nl_comm_broadcast(&id, sizeof id, 0));
    CU(cudaSetDevice(0), "cudaSetDevice"); /* the CUDA backend's device (one GPU per rank: CUDA_VISIBLE_DEVICES) */
    NC(ncclCommInitRank(&g.comm, size, id, rank), "CommInitRank");
    CU(cudaStreamCreateWithFlags(&g.stream, cudaStreamNonBlocking), "cudaStreamCreate");
    CU(cudaEventCreateWithFlags(&g.ready, cudaEventDisableTiming), "cudaEventCreate");
    g.on = 1;
    return NL_OK;
}

void nl_nccl_finalize(void) {
    if (!g.on) return;
    cudaStreamSynchronize(g.stream);
    ncclCommDestroy(g.comm);
    cudaEventDestroy(g.ready);
    cudaStreamDestroy(g.stream);
    g.on = 0;
}

nl_status nl_nccl_post(int op, float *buf, size_t n, size_t lo, size_t hi) {
    CU(cudaEventRecord(g.ready, 0), "cudaEventRecord"); /* the backward's kernels so far */
    CU(cudaStreamWaitEvent(g.stream, g.ready, 0), "cudaStreamWaitEvent");
    nl_comm_enter();
    if (op == NL_COMM_SUM) {
        NC(ncclAllReduce(buf + lo, buf + lo, hi - lo, ncclFloat, ncclSum, g.comm, g.stream), "AllReduce");
        return NL_OK;
    }
    size_t *counts = nl_xmalloc((size_t)g.size * sizeof *counts), at = lo;
    nl_shard_span(n, g.size, lo, hi, counts);
    ncclResult_t r = ncclGroupStart();
    for (int q = 0; q < g.size && r == ncclSuccess; at += counts[q++])
        if (counts[q])
            r = op == NL_COMM_SUM_SHARD
                        ? ncclReduce(buf + at, buf + at, counts[q], ncclFloat, ncclSum, q, g.comm, g.stream)
                        : ncclBroadcast(buf + at, buf + at, counts[q], ncclFloat, q, g.comm, g.stream);
    const ncclResult_t r2 = ncclGroupEnd();
    free(counts);
    NC(r != ncclSuccess ? r : r2, op == NL_COMM_SUM_SHARD ? "Reduce (reduce-scatter)" : "Broadcast (all-gather)");
    return NL_OK;
}

static int stream_done(void *arg, nl_status *st) {
    (void)arg;
    const cudaError_t e = cudaStreamQuery(g.stream);
    ncclResult_t async = ncclSuccess;
    ncclCommGetAsyncError(g.comm, &async);
    if (async != ncclSuccess) *st = nccl_fail(async, "asynchronous error");
    else if (e != cudaSuccess && e != cudaErrorNotReady) *st = cu_fail(e, "NCCL stream");
    return e != cudaErrorNotReady || async != ncclSuccess;
}

nl_status nl_nccl_wait(void) {
    if (!g.on) return NL_OK;
    return nl_comm_await(stream_done, NULL, "NCCL collective", NULL);
}
