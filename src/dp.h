/* dp.h -- data-parallel training over the communicator (comm.h): every rank holds the whole model,
 * trains on its own micro-batches, and the gradients are summed across the ranks before the update;
 * with ZeRO-1 each rank keeps the AdamW moments of its shard of the parameters only
 * (reduce-scatter the gradients, update the shard, all-gather the parameters). One process (the
 * default build, or the MPI build without mpirun) is the case of one rank: every call is plain
 * single-process training. docs/cluster.md describes the whole scheme. */
#ifndef NL_DP_H
#define NL_DP_H

#include "model.h"

typedef struct nl_dp {
    int rank, size, zero;
    size_t lo, hi; /* this rank's shard of the parameters (ZeRO-1), else [0, nparams) */
    size_t bucket; /* floats per all-reduce call */
} nl_dp;

/* Checks the launch against cfg (NL_ERR_ARG: --zero 1 with one rank, a --global-batch that ranks x
 * batch does not divide) and sets cfg->accum from --global-batch. Call before the model exists. */
nl_status nl_dp_plan(nl_dp *d, nl_config *cfg);
/* With ZeRO-1: keeps only this rank's shard of m's AdamW moments (m->m, m->v shrink to hi - lo). */
void nl_dp_shard(nl_dp *d, nl_model *m);
/* Sums the gradients over the ranks (gradients of frozen tensors zeroed first): all-reduce in
 * buckets; with ZeRO-1 a reduce-scatter (only this rank's shard is then summed). */
nl_status nl_dp_reduce_grads(const nl_dp *d, nl_model *m);
/* The global gradient norm after nl_dp_reduce_grads (the same value on every rank). */
nl_status nl_dp_grad_norm(const nl_dp *d, nl_model *m, double *norm);
/* The AdamW step (optim.h); with ZeRO-1 on this rank's shard, then the parameters all-gathered. */
nl_status nl_dp_adamw(const nl_dp *d, nl_model *m, double lr, double gscale, int t);
/* 1 when a parameter or a moment (of any rank) is NaN or Inf, the same answer on every rank. */
nl_status nl_dp_nonfinite(const nl_dp *d, const nl_model *m, int *bad);
/* Agreement on a flag or signal number: a rank whose *v is 0 takes the (mean) value of the ranks
 * whose *v is not, so every rank acts when any one does. */
nl_status nl_dp_agree(int *v);
/* With ZeRO-1: *mm, *vv := newly allocated full moments gathered from every rank (backend memory,
 * free with m->be->free); without it: m->m and m->v themselves. */
nl_status nl_dp_full_moments(const nl_dp *d, const nl_model *m, float **mm, float **vv);
void nl_dp_free_moments(const nl_dp *d, const nl_model *m, float *mm, float *vv);
/* Sets m's moments (this rank's shard with ZeRO-1) from full ones in host memory. */
void nl_dp_set_moments(const nl_dp *d, nl_model *m, const float *mm, const float *vv);
/* A hash of the parameters compared across the ranks: NL_ERR_FORMAT naming the step and the ranks
 * whose parameters differ from rank 0's. */
nl_status nl_dp_check_params(const nl_dp *d, const nl_model *m, int step);

#endif
