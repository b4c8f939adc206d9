/* dp.c -- see dp.h. */
#include "dp.h"

#include "comm.h"
#include "common.h"
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { BUCKET_FLOATS = 4 << 20 }; /* 16 MiB per all-reduce call */

nl_status nl_dp_plan(nl_dp *d, nl_config *cfg) {
    memset(d, 0, sizeof *d);
    d->rank = nl_comm_rank();
    d->size = nl_comm_size();
    d->zero = cfg->zero;
    d->bucket = BUCKET_FLOATS;
    if (d->zero == 1 && d->size < 2) /* other values: nl_config_resolve's error */
        return NL_FAIL(NL_ERR_ARG, "--zero 1 shards the AdamW moments across MPI ranks, but this run has one rank: launch it with "
                                   "'mpirun -np N' (N >= 2) on a 'make USE_MPI=1' build, or drop --zero");
    if (cfg->global_batch > 0) {
        const long per = (long)d->size * cfg->batch;
        if (cfg->global_batch % per)
            return NL_FAIL(NL_ERR_ARG, "--global-batch %d is not a multiple of ranks x --batch = %d x %d = %ld", cfg->global_batch,
                           d->size, cfg->batch, per);
        cfg->accum = (int)(cfg->global_batch / per);
    }
    return NL_OK;
}

void nl_dp_shard(nl_dp *d, nl_model *m) {
    d->lo = 0, d->hi = m->nparams;
    if (!d->zero) return;
    nl_comm_shard(m->nparams, d->rank, &d->lo, &d->hi);
    const size_t n = d->hi - d->lo;
    float *mm = m->be->alloc((n + 1) * sizeof(float)), *vv = m->be->alloc((n + 1) * sizeof(float));
    m->be->copy(mm, m->m + d->lo, n * sizeof(float));
    m->be->copy(vv, m->v + d->lo, n * sizeof(float));
    m->be->free(m->m);
    m->be->free(m->v);
    m->m = mm, m->v = vv;
}

nl_status nl_dp_reduce_grads(const nl_dp *d, nl_model *m) {
    nl_zero_frozen_grads(m);
    if (d->size == 1) return NL_OK;
    if (d->zero) return nl_comm_reduce_scatter_sum(m->grads, m->nparams);
    for (size_t i = 0; i < m->nparams; i += d->bucket)
        NL_TRY(nl_comm_allreduce_sum(m->grads + i, m->nparams - i < d->bucket ? m->nparams - i : d->bucket));
    return NL_OK;
}

nl_status nl_dp_grad_norm(const nl_dp *d, nl_model *m, double *norm) {
    if (!d->zero) {
        *norm = nl_grad_norm(m);
        return NL_OK;
    }
    double ss = m->be->sumsq(m->grads + d->lo, d->hi - d->lo);
    NL_TRY(nl_comm_allreduce_sum_f64(&ss, 1));
    *norm = sqrt(ss);
    return NL_OK;
}

nl_status nl_dp_adamw(const nl_dp *d, nl_model *m, double lr, double gscale, int t) {
    if (!d->zero) {
        nl_adamw_step(m, lr, gscale, t);
        return NL_OK;
    }
    nl_adamw_range(m, lr, gscale, t, d->lo, d->hi);
    NL_TRY(nl_comm_allgather(m->params, m->nparams));
    nl_model_project(m); /* ngpt: whole rows, after the gather */
    return NL_OK;
}

nl_status nl_dp_nonfinite(const nl_dp *d, const nl_model *m, int *bad) {
    const size_t n = d->hi - d->lo;
    *bad = m->be->first_nonfinite(m->params, m->nparams) < m->nparams || m->be->first_nonfinite(m->m, n) < n ||
           m->be->first_nonfinite(m->v, n) < n;
    return d->zero ? nl_dp_agree(bad) : NL_OK;
}

nl_status nl_dp_agree(int *v) {
    double x[2] = { *v != 0, *v }; /* how many ranks have one, and the sum of their values */
    NL_TRY(nl_comm_allreduce_sum_f64(x, 2));
    if (*v == 0 && x[0] > 0) *v = (int)lround(x[1] / x[0]);
    return NL_OK;
}

nl_status nl_dp_full_moments(const nl_dp *d, const nl_model *m, float **mm, float **vv) {
    if (!d->zero) {
        *mm = m->m, *vv = m->v;
        return NL_OK;
    }
    const size_t n = d->hi - d->lo;
    *mm = m->be->alloc(m->nparams * sizeof(float));
    *vv = m->be->alloc(m->nparams * sizeof(float));
    m->be->copy(*mm + d->lo, m->m, n * sizeof(float));
    m->be->copy(*vv + d->lo, m->v, n * sizeof(float));
    nl_status st = nl_comm_allgather(*mm, m->nparams);
    if (st == NL_OK) st = nl_comm_allgather(*vv, m->nparams);
    if (st != NL_OK) nl_dp_free_moments(d, m, *mm, *vv);
    return st;
}

void nl_dp_free_moments(const nl_dp *d, const nl_model *m, float *mm, float *vv) {
    if (!d->zero) return;
    m->be->free(mm);
    m->be->free(vv);
}

void nl_dp_set_moments(const nl_dp *d, nl_model *m, const float *mm, const float *vv) {
    m->be->from_host(m->m, mm + d->lo, (d->hi - d->lo) * sizeof(float));
    m->be->from_host(m->v, vv + d->lo, (d->hi - d->lo) * sizeof(float));
}

/* FNV-1a over the parameters' bytes */
static unsigned long long params_hash(const nl_model *m) {
    enum { CH = 1 << 16 };
    float *h = nl_xmalloc(CH * sizeof(float));
    unsigned long long x = 1469598103934665603ull;
    for (size_t i = 0; i < m->nparams; i += CH) {
        const size_t n = m->nparams - i < CH ? m->nparams - i : CH;
        m->be->to_host(h, m->params + i, n * sizeof(float));
        const unsigned char *b = (const unsigned char *)h;
        for (size_t k = 0; k < n * sizeof(float); k++) x = (x ^ b[k]) * 1099511628211ull;
    }
    free(h);
    return x;
}

nl_status nl_dp_check_params(const nl_dp *d, const nl_model *m, int step) {
    if (d->size == 1) return NL_OK;
    const unsigned long long mine = params_hash(m);
    unsigned long long root = mine;
    NL_TRY(nl_comm_broadcast(&root, sizeof root, 0));
    /* bit r set: rank r differs (the first 52 ranks are named; later ones counted) */
    double differ[2] = { mine != root && d->rank < 52 ? ldexp(1.0, d->rank) : 0.0, mine != root };
    NL_TRY(nl_comm_allreduce_sum_f64(differ, 2));
    if (differ[1] == 0) return NL_OK;
    char who[256] = "";
    size_t k = 0;
    unsigned long long bits = (unsigned long long)differ[0];
    for (int r = 0; r < 52 && k + 16 < sizeof who; r++)
        if (bits >> r & 1) k += (size_t)snprintf(who + k, sizeof who - k, "%s%d", k ? ", " : "", r);
    return NL_FAIL(NL_ERR_FORMAT, "after step %d the parameters of %d rank(s) (%s) differ from rank 0's: the ranks no longer train "
                                  "one model", step, (int)differ[1], who);
}
