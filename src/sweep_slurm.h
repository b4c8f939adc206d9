/* sweep_slurm.h -- `normlab sweep --launcher slurm` (used by sweep.c): the grid's unfinished runs as one
 * Slurm job array. Array task K runs `normlab sweep <the same options> --run-index K`, which trains run
 * K and writes its result.json (docs/cluster.md). State under <out>/slurm/: jobs (the array job ids
 * submitted, one a line), sweep.sh (the last batch script) and <jobid>_<task>.out (each task's output).
 * What is queued or running comes from `squeue --me -r` filtered to those job ids; what finished, from
 * the result.json files (sacct is not needed: clusters without accounting work too). */
#ifndef NL_SWEEP_SLURM_H
#define NL_SWEEP_SLURM_H

#include "normlab.h"

#include <stddef.h>

typedef struct nl_sweep_slurm_job {
    const char *exe; /* the normlab binary (on a file system the nodes share) */
    int argc;        /* the sweep's options, repeated by every task */
    char **argv;
    const char *out, *partition, *time; /* partition, time: "" for the cluster's default */
    int cpus_per_task, jobs;            /* 0: not passed; jobs: the array's limit of running tasks */
    int threads;                        /* > 0: adds --threads to the tasks' options */
} nl_sweep_slurm_job;

/* finished[i] != 0: run i of n has finished. Counts the unfinished runs still queued or running in
 * *active, submits the others (neither finished nor active) as one array in *submitted, with its job
 * id in jobid. NL_ERR_IO with a one-line message when squeue or sbatch is missing or fails. */
nl_status nl_sweep_slurm(const nl_sweep_slurm_job *s, int n, const unsigned char *finished, int *active, int *submitted,
                         char *jobid, size_t cap);

#endif
