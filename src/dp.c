/* dp.c -- see dp.h. */
#include "dp.h"

#include "comm.h"
#include "common.h"
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { BUCKET_FLOATS = 4 << 20 }; /* 16 MiB per bucket (NORMLAB_DP_BUCKET: another size, in floats) */

nl_status nl_dp_plan(nl_dp *d, nl_config *cfg) {
    memset(d, 0, sizeof *d);
    d->rank = nl_comm_rank();
    d->size = nl_comm_size();
    d->zero = cfg->zero;
    d->overlap = cfg->overlap;
    const char *b = getenv("NORMLAB_DP_BUCKET");
    d->bucket = BUCKET_FLOATS;
    if (b && *b) {
        char *end;
        const long long v = strtoll(b, &end, 10);
        if (*end || v < 1 || v > NL_COMM_CHUNK)
            return NL_FAIL(NL_ERR_ARG, "NORMLAB_DP_BUCKET '%s': expected floats per gradient bucket, 1..%d", b,
                           NL_COMM_CHUNK);
        d->bucket = (size_t)v;
    }
    if (d->zero == 1 && d->size < 2) /* other values: nl_config_resolve's error */
        return NL_FAIL(NL_ERR_ARG,
                       "--zero 1 shards the AdamW moments across MPI ranks, but this run has one rank: launch it with "
                       "'mpirun -np N' (N >= 2) on a 'make USE_MPI=1' build, or drop --zero");
    if (cfg->global_batch > 0) {
        const long per = (long)d->size * cfg->batch;
        if (cfg->global_batch % per)
            return NL_FAIL(NL_ERR_ARG, "--global-batch %d is not a multiple of ranks x --batch = %d x %d = %ld",
                           cfg->global_batch, d->size, cfg->batch, per);
        cfg->accum = (int)(cfg->global_batch / per);
    }
    return NL_OK;
}

int nl_dp_buckets(const size_t *at, int n, size_t target, size_t max, size_t *cut) {
    int nb = 0;
    cut[0] = at[0];
    for (int i = 1; i < n; i++) {
        while (cut[nb] - at[i] > max) cut[nb + 1] = cut[nb] - max, nb++; /* a long range: pieces of max */
        if (cut[nb] - at[i] >= target || (i == n - 1 && at[i] < cut[nb])) cut[++nb] = at[i];
    }
    return nb;
}

/* the finish points of m's backward (model.h, grad_ready) -> d's buckets */
static void plan_buckets(nl_dp *d, const nl_model *m) {
    const int L = m->cfg.layers;
    size_t *at = nl_xmalloc(((size_t)L + 3) * sizeof *at);
    int n = 0;
    at[n++] = m->nparams;
    for (int l = L; l >= 0; l--)
        if (m->block_at[l] < at[n - 1]) at[n++] = m->block_at[l];
    if (at[n - 1] > 0) at[n++] = 0;
    d->cut = nl_xmalloc(((size_t)n + m->nparams / NL_COMM_CHUNK + 1) * sizeof *d->cut);
    d->nb = nl_dp_buckets(at, n, d->bucket, NL_COMM_CHUNK, d->cut);
    free(at);
}

void nl_dp_free(nl_dp *d) {
    free(d->cut);
    d->cut = NULL;
    d->nb = 0;
}

void nl_dp_shard(nl_dp *d, nl_model *m) {
    d->m = m;
    nl_dp_free(d);
    plan_buckets(d, m);
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

/* zeroes the gradients of frozen tensors in [lo, hi) */
static void zero_frozen(nl_model *m, size_t lo, size_t hi) {
    for (int i = 0; i < m->ntensors; i++) {
        const nl_tensor *t = &m->tensors[i];
        const size_t a = t->offset > lo ? t->offset : lo, b = t->offset + t->numel < hi ? t->offset + t->numel : hi;
        if (!t->trainable && a < b) m->be->zero(m->grads + a, (b - a) * sizeof(float));
    }
}

/* starts the reduction of the buckets that lie in [from, nparams) and are not started yet */
static void post_from(nl_dp *d, size_t from) {
    nl_model *m = d->m;
    for (; d->posted < d->nb && d->cut[d->posted + 1] >= from; d->posted++) {
        const size_t lo = d->cut[d->posted + 1], hi = d->cut[d->posted];
        zero_frozen(m, lo, hi);
        nl_status st = nl_comm_post(d->zero ? NL_COMM_SUM_SHARD : NL_COMM_SUM, m->grads, m->nparams, lo, hi);
        if (st != NL_OK && d->st == NL_OK) d->st = st;
    }
}

static void on_grads_ready(void *arg, size_t lo, size_t hi) {
    (void)hi; /* the ranges come in descending order: everything from lo up is final */
    post_from(arg, lo);
}

void nl_dp_overlap(nl_dp *d) {
    if (d->size == 1 || !d->overlap) return;
    d->m->grad_ready = on_grads_ready;
    d->m->grad_ready_arg = d;
}

nl_status nl_dp_reduce_grads(nl_dp *d, nl_model *m) {
    m->grad_ready = NULL;
    if (d->size == 1) {
        nl_zero_frozen_grads(m);
        return NL_OK;
    }
    post_from(d, 0);
    nl_status st = nl_comm_wait();
    if (d->st != NL_OK) st = d->st;
    d->posted = 0;
    d->st = NL_OK;
    return st;
}

nl_status nl_dp_grad_norm(const nl_dp *d, nl_model *m, double *grad_norm) {
    if (!d->zero) {
        *grad_norm = nl_grad_norm(m);
        return NL_OK;
    }
    double ss = m->be->sumsq(m->grads + d->lo, d->hi - d->lo);
    NL_TRY(nl_comm_allreduce_sum_f64(&ss, 1));
    *grad_norm = sqrt(ss);
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
    return NL_FAIL(NL_ERR_FORMAT,
                   "after step %d the parameters of %d rank(s) (%s) differ from rank 0's: the ranks no longer train "
                   "one model",
                   step, (int)differ[1], who);
}
