/* comm_mpi.c -- comm.h over MPI_COMM_WORLD (`make USE_MPI=1`, compiled with mpicc). Errors are
 * returned (MPI_ERRORS_RETURN) so a failed collective becomes an nl_status with MPI's message.
 *
 * Every collective is MPI's nonblocking form, completed by polling MPI_Test (await): that is where the
 * watchdog lives. A rank that waits longer than the timeout asks every other rank, over a duplicate
 * communicator, which collective it has reached; the ranks that are polling too answer at once, and
 * those that do not answer within a grace period (stopped, hung, or computing for longer than the
 * timeout) or are behind are named in the one-line error before MPI_Abort ends the job.
 *
 * Posted collectives (nl_comm_post) run on a communication thread. Debian's OpenMPI (4.1) has no
 * asynchronous progress: a nonblocking collective moves only inside MPI calls, so an MPI_Iallreduce
 * started before a computation without MPI calls is still undone after it (docs/scaling.md, the
 * measurement). The thread polls its collective while the main thread computes, sleeping POLL_NS
 * between polls so that it takes little of the cores the backward computes on, and polls without
 * sleeping once the main thread waits for it (nl_comm_wait). MPI_THREAD_SERIALIZED suffices: the main
 * thread makes no MPI call between a post and the wait. */
#include "comm.h"

#include "comm_nccl.h"
#include "common.h"

#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int g_rank, g_size = 1, g_local = 1, g_inited, g_device;
static MPI_Comm g_wd = MPI_COMM_NULL; /* the watchdog's questions and answers */
static double g_timeout;              /* 0: no watchdog (train sets --dp-timeout) */
static long long g_seq;               /* collectives this rank has entered */
enum { TAG_ASK = 1, TAG_ANSWER = 2 };
enum { POLL_NS = 50000 }; /* the communication thread's sleep between polls while the caller computes */

static nl_status mpi_fail(int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return NL_FAIL(NL_ERR_IO, "MPI %s failed on rank %d: %.*s", what, g_rank, len, msg);
}

/* ---------------------------------------------------------------- the watchdog */

/* answers the questions of ranks that waited too long: the number of the collective this rank is in */
static void answer(void) {
    int flag = 0;
    MPI_Status st;
    while (MPI_Iprobe(MPI_ANY_SOURCE, TAG_ASK, g_wd, &flag, &st) == MPI_SUCCESS && flag) {
        long long q;
        MPI_Recv(&q, 1, MPI_LONG_LONG, st.MPI_SOURCE, TAG_ASK, g_wd, MPI_STATUS_IGNORE);
        MPI_Send(&g_seq, 1, MPI_LONG_LONG, st.MPI_SOURCE, TAG_ANSWER, g_wd);
    }
}

/* past the deadline in collective g_seq: ask, wait a grace period for the answers, name the ranks
 * that have not arrived, end the job */
_Noreturn static void expire(const char *what, double waited) {
    static long long ask;
    ask = g_seq;
    long long *at = nl_xmalloc((size_t)g_size * sizeof *at);
    int pending = g_size - 1;
    for (int q = 0; q < g_size; q++) {
        at[q] = q == g_rank ? g_seq : -1;
        if (q == g_rank) continue;
        MPI_Request rq;
        if (MPI_Isend(&ask, 1, MPI_LONG_LONG, q, TAG_ASK, g_wd, &rq) == MPI_SUCCESS) MPI_Request_free(&rq);
    }
    const double grace = g_timeout < 2.0 ? g_timeout : 2.0, t0 = nl_now();
    while (pending > 0 && nl_now() - t0 < grace) {
        answer();
        int flag = 0;
        MPI_Status st;
        if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_ANSWER, g_wd, &flag, &st) == MPI_SUCCESS && flag) {
            long long v;
            MPI_Recv(&v, 1, MPI_LONG_LONG, st.MPI_SOURCE, TAG_ANSWER, g_wd, MPI_STATUS_IGNORE);
            if (at[st.MPI_SOURCE] < 0) pending--;
            at[st.MPI_SOURCE] = v;
        } else sched_yield();
    }
    char who[512] = "";
    size_t k = 0;
    int missing = 0;
    for (int q = 0; q < g_size; q++)
        if (at[q] < g_seq) {
            if (k + 24 < sizeof who) k += (size_t)snprintf(who + k, sizeof who - k, "%s%d", missing ? ", " : "", q);
            else if (k + 5 < sizeof who && who[k - 1] != '.') k += (size_t)snprintf(who + k, sizeof who - k, ", ...");
            missing++;
        }
    char msg[800];
    if (missing)
        snprintf(msg, sizeof msg,
                 "%s waited %.0f s (--dp-timeout %g) for rank(s) %s, which did not arrive (stopped, hung or too slow): "
                 "ending the job; the last checkpoint is intact",
                 what, waited, g_timeout, who);
    else
        snprintf(msg, sizeof msg,
                 "%s waited %.0f s (--dp-timeout %g); every rank arrived but it did not complete: ending the job", what,
                 waited, g_timeout);
    free(at);
    nl_comm_abort(msg);
}

nl_status nl_comm_await(int (*done)(void *arg, nl_status *st), void *arg, const char *what, const atomic_int *gentle) {
    const double t0 = nl_now();
    nl_status st = NL_OK;
    for (unsigned spins = 0; !done(arg, &st); spins++) {
        answer();
        if (g_timeout > 0 && nl_now() - t0 > g_timeout) expire(what, nl_now() - t0);
        if (gentle && atomic_load(gentle)) nanosleep(&(struct timespec){ 0, POLL_NS }, NULL);
        else if (spins > 64) sched_yield(); /* ranks may share cores (mpirun --oversubscribe) */
    }
    return st;
}

static int request_done(void *arg, nl_status *st) {
    int flag = 0, rc = MPI_Test(arg, &flag, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) *st = mpi_fail(rc, "Test");
    return flag || rc != MPI_SUCCESS;
}

/* enters collective g_seq + 1 started as *rq (rc: the start's result) and waits for it */
static nl_status await(int rc, MPI_Request *rq, const char *what, const atomic_int *gentle) {
    if (rc != MPI_SUCCESS) return mpi_fail(rc, what);
    nl_status st = nl_comm_await(request_done, rq, what, gentle);
    return st == NL_OK ? NL_OK : NL_FAIL(st, "MPI %s: %s", what, nl_last_error());
}

/* ---------------------------------------------------------------- setup */

nl_status nl_comm_init(int *argc, char ***argv) {
    if (g_inited) return NL_OK;
    int have = 0, rc = MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &have);
    if (rc != MPI_SUCCESS) return NL_FAIL(NL_ERR_IO, "MPI_Init failed (error %d)", rc);
    g_inited = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (have < MPI_THREAD_SERIALIZED)
        return NL_FAIL(NL_ERR_IO,
                       "this MPI library offers no MPI_THREAD_SERIALIZED (level %d): the communication thread needs it",
                       have);
    if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, &g_wd)) != MPI_SUCCESS) return mpi_fail(rc, "Comm_dup");
    MPI_Comm node;
    if ((rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node)) != MPI_SUCCESS)
        return mpi_fail(rc, "Comm_split_type");
    MPI_Comm_size(node, &g_local);
    MPI_Comm_free(&node);
    return NL_OK;
}

static void thread_stop(void);

void nl_comm_finalize(void) {
    thread_stop();
    nl_nccl_finalize();
    if (g_wd != MPI_COMM_NULL) MPI_Comm_free(&g_wd);
    if (g_inited) MPI_Finalize();
    g_inited = 0;
}

const char *nl_comm_backend(void) { return "mpi"; }
int nl_comm_rank(void) { return g_rank; }
int nl_comm_size(void) { return g_size; }
int nl_comm_local_size(void) { return g_local; }
void nl_comm_set_timeout(double seconds) { g_timeout = seconds > 0 ? seconds : 0; }
long long nl_comm_enter(void) { return ++g_seq; }

nl_status nl_comm_use_device(int on) {
    const int nccl = on && (g_size > 1 || NL_HAVE_NCCL); /* with NCCL also one rank: the path of many */
    if (nccl) NL_TRY(nl_nccl_init(g_rank, g_size));
    g_device = nccl;
    return NL_OK;
}

/* ---------------------------------------------------------------- collectives */

nl_status nl_comm_barrier(void) {
    MPI_Request rq;
    g_seq++;
    return await(MPI_Ibarrier(MPI_COMM_WORLD, &rq), &rq, "Barrier", NULL);
}

/* in-place sum over the ranks of n elements of elem bytes (MPI type t), in chunks (MPI counts are int) */
static nl_status allreduce_sum(void *buf, size_t n, size_t elem, MPI_Datatype t, const atomic_int *gentle) {
    for (size_t i = 0; i < n; i += NL_COMM_CHUNK) {
        const int c = (int)(n - i < NL_COMM_CHUNK ? n - i : NL_COMM_CHUNK);
        MPI_Request rq;
        g_seq++;
        NL_TRY(await(MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + i * elem, c, t, MPI_SUM, MPI_COMM_WORLD, &rq), &rq,
                     "Allreduce", gentle));
    }
    return NL_OK;
}

nl_status nl_comm_allreduce_sum(float *buf, size_t n) {
    if (g_device) {
        for (size_t i = 0; i < n; i += NL_COMM_CHUNK)
            NL_TRY(nl_nccl_run(NL_COMM_SUM, buf, n, i, n - i < NL_COMM_CHUNK ? n : i + NL_COMM_CHUNK));
        return NL_OK;
    }
    return allreduce_sum(buf, n, sizeof *buf, MPI_FLOAT, NULL);
}

nl_status nl_comm_allreduce_sum_f64(double *buf, size_t n) {
    return allreduce_sum(buf, n, sizeof *buf, MPI_DOUBLE, NULL);
}

/* the pieces of [lo, hi) in each rank's shard of n as MPI's int counts and offsets from lo */
static void span_counts(size_t n, size_t lo, size_t hi, int *counts, int *displs) {
    size_t *c = nl_xmalloc((size_t)g_size * sizeof *c), at = 0;
    nl_shard_span(n, g_size, lo, hi, c);
    for (int q = 0; q < g_size; q++) {
        counts[q] = (int)c[q];
        displs[q] = (int)at;
        at += c[q];
    }
    free(c);
}

/* buf[lo..hi) ∩ this rank's shard := its sum over the ranks (hi - lo <= NL_COMM_CHUNK) */
static nl_status reduce_scatter_part(float *buf, size_t n, size_t lo, size_t hi, const atomic_int *gentle) {
    int *counts = nl_xmalloc((size_t)g_size * sizeof(int)), *displs = nl_xmalloc((size_t)g_size * sizeof(int));
    span_counts(n, lo, hi, counts, displs);
    const int mine = counts[g_rank], at = displs[g_rank];
    float *part = nl_xmalloc(((size_t)mine + 1) * sizeof(float)); /* send and receive buffers may not overlap */
    MPI_Request rq;
    g_seq++;
    nl_status st = await(MPI_Ireduce_scatter(buf + lo, part, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &rq), &rq,
                         "Reduce_scatter", gentle);
    if (st == NL_OK) memcpy(buf + lo + at, part, (size_t)mine * sizeof(float));
    free(part);
    free(counts);
    free(displs);
    return st;
}

/* every rank's buf[lo..hi) ∩ shard q := rank q's */
static nl_status allgather_part(float *buf, size_t n, size_t lo, size_t hi) {
    int *counts = nl_xmalloc((size_t)g_size * sizeof(int)), *displs = nl_xmalloc((size_t)g_size * sizeof(int));
    span_counts(n, lo, hi, counts, displs);
    MPI_Request rq;
    g_seq++;
    nl_status st = await(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf + lo, counts, displs, MPI_FLOAT,
                                         MPI_COMM_WORLD, &rq),
                         &rq, "Allgatherv", NULL);
    free(counts);
    free(displs);
    return st;
}

nl_status nl_comm_reduce_scatter_sum(float *buf, size_t n) {
    for (size_t i = 0; i < n; i += NL_COMM_CHUNK) {
        const size_t e = n - i < NL_COMM_CHUNK ? n : i + NL_COMM_CHUNK;
        NL_TRY(g_device ? nl_nccl_run(NL_COMM_SUM_SHARD, buf, n, i, e) : reduce_scatter_part(buf, n, i, e, NULL));
    }
    return NL_OK;
}

nl_status nl_comm_allgather(float *buf, size_t n) {
    for (size_t i = 0; i < n; i += NL_COMM_CHUNK) {
        const size_t e = n - i < NL_COMM_CHUNK ? n : i + NL_COMM_CHUNK;
        NL_TRY(g_device ? nl_nccl_run(NL_NCCL_GATHER, buf, n, i, e) : allgather_part(buf, n, i, e));
    }
    return NL_OK;
}

nl_status nl_comm_broadcast(void *buf, size_t bytes, int root) {
    if (root < 0 || root >= g_size)
        return NL_FAIL(NL_ERR_ARG, "broadcast from rank %d: ranks are 0..%d", root, g_size - 1);
    for (size_t i = 0; i < bytes; i += NL_COMM_CHUNK) {
        const int c = (int)(bytes - i < NL_COMM_CHUNK ? bytes - i : NL_COMM_CHUNK);
        MPI_Request rq;
        g_seq++;
        NL_TRY(await(MPI_Ibcast((char *)buf + i, c, MPI_BYTE, root, MPI_COMM_WORLD, &rq), &rq, "Bcast", NULL));
    }
    return NL_OK;
}

_Noreturn void nl_comm_abort(const char *msg) {
    fprintf(stderr, "normlab: rank %d: %s\n", g_rank, msg);
    fflush(stderr);
    if (g_inited) MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

/* ---------------------------------------------------------------- the communication thread */

typedef struct post {
    nl_comm_op op;
    float *buf;
    size_t n, lo, hi;
} post;

static struct {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started, quit;
    post *q;
    size_t cap, posted, done; /* posts [done, posted) are queued or running */
    nl_status st;             /* the first error since the last wait, its message in err */
    char err[1024];
    atomic_int gentle; /* the caller computes: poll with sleeps */
} g_ct = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void *thread_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&g_ct.mu);
    for (;;) {
        while (!g_ct.quit && g_ct.done == g_ct.posted) pthread_cond_wait(&g_ct.cv, &g_ct.mu);
        if (g_ct.quit) break;
        const post p = g_ct.q[g_ct.done];
        const int skip = g_ct.st != NL_OK; /* after an error the rest is not run: the caller stops */
        pthread_mutex_unlock(&g_ct.mu);
        nl_status st = NL_OK;
        if (!skip) {
            if (p.op == NL_COMM_SUM)
                st = allreduce_sum(p.buf + p.lo, p.hi - p.lo, sizeof(float), MPI_FLOAT, &g_ct.gentle);
            else st = reduce_scatter_part(p.buf, p.n, p.lo, p.hi, &g_ct.gentle);
        }
        pthread_mutex_lock(&g_ct.mu);
        if (st != NL_OK && g_ct.st == NL_OK) {
            g_ct.st = st;
            snprintf(g_ct.err, sizeof g_ct.err, "%s", nl_last_error());
        }
        g_ct.done++;
        pthread_cond_broadcast(&g_ct.cv);
    }
    pthread_mutex_unlock(&g_ct.mu);
    return NULL;
}

static void thread_stop(void) {
    if (!g_ct.started) return;
    pthread_mutex_lock(&g_ct.mu);
    g_ct.quit = 1;
    pthread_cond_broadcast(&g_ct.cv);
    pthread_mutex_unlock(&g_ct.mu);
    pthread_join(g_ct.th, NULL);
    free(g_ct.q);
    g_ct.q = NULL;
    g_ct.cap = g_ct.posted = g_ct.done = 0;
    g_ct.started = g_ct.quit = 0;
}

nl_status nl_comm_post(nl_comm_op op, float *buf, size_t n, size_t lo, size_t hi) {
    if (!(lo <= hi && hi <= n && hi - lo <= NL_COMM_CHUNK))
        return NL_FAIL(NL_ERR_ARG, "nl_comm_post: bad range [%zu, %zu) of %zu", lo, hi, n);
    if (g_size == 1 || lo == hi) return NL_OK;
    if (g_device) return nl_nccl_post(op, buf, n, lo, hi);
    pthread_mutex_lock(&g_ct.mu);
    if (!g_ct.started) {
        if (pthread_create(&g_ct.th, NULL, thread_main, NULL) != 0) {
            pthread_mutex_unlock(&g_ct.mu);
            return NL_FAIL(NL_ERR_IO, "rank %d: cannot start the communication thread", g_rank);
        }
        g_ct.started = 1;
    }
    if (g_ct.posted == g_ct.cap) { /* the queue is compacted at each wait: it holds one step's buckets */
        g_ct.cap = g_ct.cap ? 2 * g_ct.cap : 64;
        g_ct.q = nl_xresize(g_ct.q, g_ct.posted, g_ct.cap, sizeof *g_ct.q);
    }
    if (g_ct.done == g_ct.posted) atomic_store(&g_ct.gentle, 1); /* the first post of a step: the caller computes */
    g_ct.q[g_ct.posted++] = (post){ op, buf, n, lo, hi };
    pthread_cond_broadcast(&g_ct.cv);
    pthread_mutex_unlock(&g_ct.mu);
    return NL_OK;
}

nl_status nl_comm_wait(void) {
    if (g_device) return nl_nccl_wait();
    if (!g_ct.started) return NL_OK;
    atomic_store(&g_ct.gentle, 0); /* the caller waits: poll at full speed */
    pthread_mutex_lock(&g_ct.mu);
    while (g_ct.done < g_ct.posted) pthread_cond_wait(&g_ct.cv, &g_ct.mu);
    nl_status st = g_ct.st;
    if (st != NL_OK) nl_set_error("%s", g_ct.err);
    g_ct.st = NL_OK;
    g_ct.posted = g_ct.done = 0;
    pthread_mutex_unlock(&g_ct.mu);
    return st;
}
