/* sweep.h -- `normlab sweep`: the grid placement x learning rate x seed, one `normlab train` process
 * per run (so a crash or divergence of one run cannot take the sweep down), up to --jobs at once; under
 * mpirun the ranks share the grid (comm.h); --launcher slurm submits it as a job array (sweep_slurm.h).
 *
 * Layout of a sweep directory (docs/file-formats.md):
 *   <dir>/<norm>_lr<lr>_s<seed>/   a run directory, plus train.log (the run's output) and
 *                                  result.json (written last, atomically: the run is finished)
 *   <dir>/runs.csv, <dir>/summary.csv
 *   <dir>/slurm/                   --launcher slurm: job ids, batch script, task outputs
 * Resuming: a run with a result.json whose status is "done" or "diverged" is skipped. */
#ifndef NL_SWEEP_H
#define NL_SWEEP_H

#include "normlab.h"

#include <stdio.h>

/* argv: the options after "sweep". exe: the normlab binary to run for each training run. */
nl_status nl_sweep_main(int argc, char **argv, const char *exe);
void nl_sweep_usage(void);

/* One finished run, as read back from its result.json. */
typedef struct nl_sweep_result {
    char placement[32], status[16], reason[16];
    double lr, val_loss, loss;
    uint64_t seed;
    int step, spikes;
} nl_sweep_result;

/* Reads <rundir>/result.json; NL_ERR_IO if absent, NL_ERR_FORMAT if malformed. */
nl_status nl_sweep_read_result(const char *rundir, nl_sweep_result *r);

/* Writes the placement x LR summary (mean +- sd of final val loss over finished seeds, diverged
 * count) of results[0..n) to f as CSV (csv = 1) or as an aligned table (csv = 0). */
void nl_sweep_summary(const nl_sweep_result *res, int n, int csv, FILE *f);

#endif
