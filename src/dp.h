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
    int overlap;   /* reduce each bucket as soon as the backward has finished it (--overlap) */
    size_t lo, hi; /* this rank's shard of the parameters (ZeRO-1), else [0, nparams) */
    size_t bucket; /* floats per gradient bucket, at least (a bucket ends where a block's gradients do) */
    /* the gradient buckets, reduced from the last to the first: bucket k is [cut[k + 1], cut[k]),
     * cut[0] = nparams > cut[1] > ... > cut[nb] = 0 */
    size_t *cut;
    int nb, posted; /* buckets, and those posted in this step */
    nl_model *m;
    nl_status st; /* the first failed post of this step (reported by nl_dp_reduce_grads) */
} nl_dp;

/* Gradient buckets of about `target` floats (at most `max`) for a backward whose gradients become final
 * at the points `at` (descending, at[0] the parameter count, at[n-1] = 0: the ends of the ranges
 * model.h's grad_ready reports): a bucket ends at such a point once it holds `target` floats, and a range
 * longer than `max` is cut into pieces of at most `max`. Writes the cuts (descending, from at[0] to 0)
 * to cut (capacity: n + at[0] / max + 1) and returns the number of buckets. */
int nl_dp_buckets(const size_t *at, int n, size_t target, size_t max, size_t *cut);

/* Checks the launch against cfg (NL_ERR_ARG: --zero 1 with one rank, a --global-batch that ranks x
 * batch does not divide) and sets cfg->accum from --global-batch. Call before the model exists. */
nl_status nl_dp_plan(nl_dp *d, nl_config *cfg);
/* Plans the gradient buckets of m; with ZeRO-1 keeps only this rank's shard of m's AdamW moments
 * (m->m, m->v shrink to hi - lo). */
void nl_dp_shard(nl_dp *d, nl_model *m);
void nl_dp_free(nl_dp *d);
/* With more than one rank and --overlap on: makes the next nl_model_backward of m start the
 * reduction of each bucket as soon as its gradients are final (model.h, grad_ready); call it before
 * the last micro-step's backward of an optimizer step. */
void nl_dp_overlap(nl_dp *d);
/* Sums the gradients over the ranks (gradients of frozen tensors zeroed first), bucket by bucket:
 * all-reduce; with ZeRO-1 reduce-scatter (only this rank's shard is then summed). Starts the buckets
 * the backward has not started and waits for all; ends what nl_dp_overlap began. The buckets and the
 * calls are the same with or without overlap: the sums are bit-identical. */
nl_status nl_dp_reduce_grads(nl_dp *d, nl_model *m);
/* The global gradient norm after nl_dp_reduce_grads (the same value on every rank). */
nl_status nl_dp_grad_norm(const nl_dp *d, nl_model *m, double *grad_norm);
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
