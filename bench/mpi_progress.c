/* mpi_progress.c -- does an MPI nonblocking all-reduce move while the caller computes without calling
 * MPI? (the question behind the communication thread of src/comm_mpi.c; docs/scaling.md). For 16 MiB
 * of floats, three ways, each after a barrier, repeated 3 times:
 *   blocking   MPI_Allreduce alone: its time t;
 *   no calls   MPI_Iallreduce, then 3 t of arithmetic with no MPI call, then MPI_Wait: the wait is ~t
 *              when nothing moved during the arithmetic, ~0 when the library progresses on its own;
 *   polled     the same with MPI_Test between slices of the arithmetic;
 *   thread     MPI_Allreduce on a second thread while the main thread computes: the join's wait.
 *   make bench-mpi-progress     (mpirun --allow-run-as-root --oversubscribe -np 2 build/mpi/mpi_progress) */
#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static volatile double sink;
enum { N = 4 << 20 };
static float *buf;

/* `secs` of arithmetic; with rq, MPI_Test(rq) after every slice of ~20k multiply-adds */
static void compute(double secs, MPI_Request *rq) {
    double x = 1.0;
    for (const double t0 = now(); now() - t0 < secs;) {
        for (int i = 0; i < 20000; i++) x = x * 1.0000001 + 1e-9;
        int flag;
        if (rq) MPI_Test(rq, &flag, MPI_STATUS_IGNORE);
    }
    sink = x;
}

static void *reduce_thread(void *arg) {
    (void)arg;
    MPI_Allreduce(MPI_IN_PLACE, buf, N, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    return NULL;
}

int main(int argc, char **argv) {
    int have, rank;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &have);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    buf = calloc(N, sizeof(float));
    if (rank == 0)
        printf("16 MiB all-reduce; waits after 3x its time of computation (seconds)\n%10s %10s %10s %10s\n", "blocking",
               "no calls", "polled", "thread");
    for (int rep = 0; rep < 3; rep++) {
        MPI_Request rq;
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = now();
        MPI_Allreduce(MPI_IN_PLACE, buf, N, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        const double t = now() - t0, work = 3 * t;
        double w[3];
        for (int k = 0; k < 2; k++) {
            MPI_Barrier(MPI_COMM_WORLD);
            MPI_Iallreduce(MPI_IN_PLACE, buf, N, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &rq);
            compute(work, k ? &rq : NULL);
            t0 = now();
            MPI_Wait(&rq, MPI_STATUS_IGNORE);
            w[k] = now() - t0;
        }
        pthread_t th;
        MPI_Barrier(MPI_COMM_WORLD);
        if (have == MPI_THREAD_MULTIPLE && pthread_create(&th, NULL, reduce_thread, NULL) == 0) {
            compute(work, NULL);
            t0 = now();
            pthread_join(th, NULL);
            w[2] = now() - t0;
        } else w[2] = -1;
        if (rank == 0) printf("%10.4f %10.4f %10.4f %10.4f\n", t, w[0], w[1], w[2]);
    }
    free(buf);
    MPI_Finalize();
    return 0;
}
