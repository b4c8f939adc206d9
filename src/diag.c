/* diag.c -- see diag.h. */
#include "diag.h"

#include "common.h"
#include "dit.h"
#include "optim.h"
#include "placement.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double rms_of(const nl_backend *be, const float *x, size_t n) { return sqrt(be->sumsq(x, n) / (double)n); }

/* ---------------------------------------------------------------- the diagnostic pass */

void nl_diag_init(nl_diag *d, const nl_model *m) {
    memset(d, 0, sizeof *d);
    const int L = m->cfg.layers;
    d->be = m->be;
    d->L = L;
    d->x = nl_xcalloc((size_t)(L + 1) * sizeof *d->x);
    d->g_block = nl_xcalloc((size_t)L * 5 * sizeof(double));
    d->g_qkv = d->g_block + L;
    d->g_proj = d->g_qkv + L;
    d->g_fc = d->g_proj + L;
    d->g_mproj = d->g_fc + L;
    d->sites = nl_xcalloc((size_t)(10 * L + 2) * sizeof *d->sites); /* 6 norms and 4 SDD layers per block */
    if (m->cfg.gpas) d->gate_silu = nl_xcalloc((size_t)L * sizeof(double));
    d->loss_scale = 1.0;
    d->dtype = (nl_dtype)m->cfg.dtype;
    d->lowp = nl_xcalloc(2 * ((size_t)L + 2) * sizeof *d->lowp);
    d->tensor_block = nl_xmalloc((size_t)m->ntensors * sizeof(int));
    for (int i = 0; i < m->ntensors; i++) {
        int l;
        d->tensor_block[i] = sscanf(m->tensors[i].name, "blocks.%d.", &l) == 1 && l >= 0 && l < L ? l : -1;
    }
}

void nl_diag_free(nl_diag *d) {
    free(d->x);
    free(d->g_block);
    free(d->sites);
    free(d->gate_silu);
    free(d->tensor_block);
    free(d->lowp);
    if (d->be) d->be->free(d->scratch);
    memset(d, 0, sizeof *d);
}

static void add_site(nl_diag *d, const nl_model *m, const char *name, const float *in, const float *out,
                     const nl_normw *norm, size_t NC) {
    nl_diag_site *s = &d->sites[d->nsites++];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->in_rms = rms_of(m->be, in, NC);
    s->out_rms = rms_of(m->be, out, NC);
    s->gain = nl_norm_gain_mean(m, norm);
}

static void collect(nl_diag *d, nl_model *m, int B, int T, double t0);
/* an SDD layer of block l: the linear output (N, n) in, alpha * RMSNorm of it out, the mean of alpha */
static void add_sdd_site(nl_diag *d, const nl_model *m, int l, const char *layer, const float *in, const float *out,
                         const float *alpha, size_t N, int n) {
    char name[64];
    snprintf(name, sizeof name, "blocks.%d.%s_sdd", l, layer);
    nl_diag_site *s = &d->sites[d->nsites++];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->in_rms = rms_of(m->be, in, N * (size_t)n);
    s->out_rms = rms_of(m->be, out, N * (size_t)n);
    s->gain = m->be->sum(alpha, (size_t)n) / n;
}

void nl_diag_run(nl_diag *d, nl_model *m, const int *inp, const int *tgt, int B, int T) {
    const double t0 = nl_now();
    nl_model_zero_grad(m);
    memset(m->lowp, 0, 2 * ((size_t)m->cfg.layers + 2) * sizeof *m->lowp);
    d->loss = nl_model_forward(m, inp, tgt, B, T, (float)(d->loss_scale / ((double)B * T)));
    nl_model_backward(m);
    collect(d, m, B, T, t0);
}

void nl_diag_run_dit(nl_diag *d, nl_model *m, const float *xt, const float *t, const int *y, const float *v, int B) {
    const double t0 = nl_now();
    nl_model_zero_grad(m);
    d->loss = nl_dit_forward(m, xt, t, y, v, B, (float)d->loss_scale); /* gradient of the mean loss */
    nl_model_backward(m);
    collect(d, m, B, m->cfg.seq_len, t0);
}

/* every statistic of the pass that just ran (forward + backward of B x T) */
static void collect(nl_diag *d, nl_model *m, int B, int T, double t0) {
    const nl_config *c = &m->cfg;
    const int L = c->layers, C = c->dim;
    const size_t N = (size_t)B * T, NC = N * (size_t)C;
    const nl_backend *be = m->be;
    if (d->scratch_n < NC) {
        be->free(d->scratch);
        d->scratch = be->alloc(NC * sizeof(float));
        d->scratch_n = NC;
    }
    const size_t nparts = 2 * ((size_t)L + 2);
    memcpy(d->lowp, m->lowp, nparts * sizeof *d->lowp);
    nl_zero_frozen_grads(m); /* as in nl_grad_norm */

    /* residual stream entering each block, and after the last one */
    for (int l = 0; l < L; l++) be->stream_stats(m->sub[2 * l].xin, N, C, d->scratch, &d->x[l]);
    be->stream_stats(m->sub[2 * L - 1].xout, N, C, d->scratch, &d->x[L]);

    /* gradient norms */
    double total = 0.0;
    for (int l = 0; l < L; l++) d->g_block[l] = 0.0;
    for (int i = 0; i < m->ntensors; i++) {
        const double s = be->sumsq(m->grads + m->tensors[i].offset, m->tensors[i].numel);
        total += s;
        if (d->tensor_block[i] >= 0) d->g_block[d->tensor_block[i]] += s;
    }
    const double us = 1.0 / d->loss_scale; /* unscaled, as the optimizer sees them */
    d->g_total = sqrt(total) * us;
    for (int l = 0; l < L; l++) {
        const nl_block_w *g = &m->g.blocks[l];
        d->g_block[l] = sqrt(d->g_block[l]) * us;
        d->g_qkv[l] = sqrt(be->sumsq(g->qkv_w, (size_t)m->Q3 * C)) * us;
        d->g_proj[l] = sqrt(be->sumsq(g->proj_w, (size_t)C * C)) * us;
        d->g_fc[l] = sqrt(be->sumsq(g->fc_w, (size_t)m->FW * C)) * us; /* llama: gate and up */
        d->g_mproj[l] = sqrt(be->sumsq(g->mproj_w, (size_t)m->F * C)) * us;
    }

    /* norm sites: input, output, gain */
    static const char *const sub_names[NL_SUB_COUNT] = { "attn", "mlp" };
    d->nsites = 0;
    if (c->emb_norm) add_site(d, m, "emb_norm", m->emb, m->embn, &m->w.embn, NC);
    for (int l = 0; l < L; l++)
        for (int s = 0; s < NL_SUB_COUNT; s++) {
            const nl_sub_acts *A = &m->sub[2 * l + s];
            const float *in[NL_SITE_COUNT] = { A->xin, A->a, A->z }, *out[NL_SITE_COUNT] = { A->u, A->o, A->xout };
            for (int k = 0; k < NL_SITE_COUNT; k++) {
                const nl_normw *norm = &m->w.blocks[l].norm[s][k];
                if (!(nl_sub_sites(c, l + 1, s) & (1u << k))) continue;
                char name[64];
                snprintf(name, sizeof name, "blocks.%d.%s_norm_%s", l, sub_names[s], nl_site_names[k]);
                add_site(d, m, name, in[k], out[k], norm, NC);
            }
        }
    if (c->final_norm && !m->r) add_site(d, m, "final_norm", m->sub[2 * L - 1].xout, m->xf, &m->w.finn, NC);
    for (int l = 0; c->sdd && l < L; l++) {
        const nl_sub_acts *A = &m->sub[2 * l], *M = A + 1;
        const nl_block_w *w = &m->w.blocks[l];
        add_sdd_site(d, m, l, "attn.qkv", A->qkv_lin, A->qkv_raw, w->qkv_sdd, N, m->Q3);
        add_sdd_site(d, m, l, "attn.proj", A->a_lin, A->a, w->proj_sdd, N, C);
        add_sdd_site(d, m, l, "mlp.fc", M->fch_lin, M->fch, w->fc_sdd, N, m->FW);
        add_sdd_site(d, m, l, "mlp.proj", M->a_lin, M->a, w->mproj_sdd, N, C);
    }
    for (int l = 0; d->gate_silu && l < L; l++) {
        float a;
        be->to_host(&a, m->w.blocks[l].gpas, sizeof a);
        d->gate_silu[l] = a / (1.0 + exp(-(double)a));
    }
    d->seconds = nl_now() - t0;
}

/* ---------------------------------------------------------------- JSON */

static void num(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.7g", v);
    else fputs("null", f);
}

static void arr(FILE *f, const char *key, const double *v, int n, size_t stride) {
    fprintf(f, ", \"%s\": [", key);
    for (int i = 0; i < n; i++) {
        if (i) fputs(", ", f);
        num(f, *(const double *)((const char *)v + (size_t)i * stride));
    }
    fputc(']', f);
}

void nl_diag_write_json(const nl_diag *d, int step, FILE *f) {
    const int L1 = d->L + 1;
    const size_t st = sizeof(nl_stream_stat);
    fprintf(f, "{\"diag\": %d, \"loss\": ", step);
    num(f, d->loss);
    arr(f, "x_var", &d->x[0].var, L1, st);
    arr(f, "x_gvar", &d->x[0].gvar, L1, st);
    arr(f, "x_rms", &d->x[0].rms, L1, st);
    arr(f, "x_max", &d->x[0].maxabs, L1, st);
    arr(f, "x_median", &d->x[0].median, L1, st);
    double *ratio = nl_xmalloc(2 * (size_t)L1 * sizeof(double)), *fp16 = ratio + L1;
    for (int l = 0; l < L1; l++) {
        ratio[l] = d->x[l].median > 0 ? d->x[l].maxabs / d->x[l].median : NAN;
        fp16[l] = d->x[l].maxabs / NL_FP16_MAX;
    }
    arr(f, "x_max_over_median", ratio, L1, sizeof(double));
    arr(f, "x_max_over_fp16", fp16, L1, sizeof(double));
    free(ratio);
    fputs(", \"grad_total\": ", f);
    num(f, d->g_total);
    arr(f, "grad_block", d->g_block, d->L, sizeof(double));
    arr(f, "grad_qkv", d->g_qkv, d->L, sizeof(double));
    arr(f, "grad_proj", d->g_proj, d->L, sizeof(double));
    arr(f, "grad_fc", d->g_fc, d->L, sizeof(double));
    arr(f, "grad_mlp_proj", d->g_mproj, d->L, sizeof(double));
    fputs(", \"norms\": [", f);
    for (int i = 0; i < d->nsites; i++) {
        const nl_diag_site *s = &d->sites[i];
        fprintf(f, "%s{\"site\": \"%s\", \"in_rms\": ", i ? ", " : "", s->name);
        num(f, s->in_rms);
        fputs(", \"out_rms\": ", f);
        num(f, s->out_rms);
        fputs(", \"gain_mean\": ", f);
        num(f, s->gain);
        fputc('}', f);
    }
    fputc(']', f);
    if (d->gate_silu) arr(f, "gpas_silu", d->gate_silu, d->L, sizeof(double));
    if (d->dtype != NL_DTYPE_FP32) { /* per part: embedding, blocks 1..L, head */
        fprintf(f, ", \"dtype\": \"%s\", \"loss_scale\": %.17g", nl_dtype_names[d->dtype], d->loss_scale);
        static const char *const keys[4] = { "overflow_fwd", "overflow_bwd", "flushed_fwd", "flushed_bwd" };
        for (int k = 0; k < 4; k++) {
            fprintf(f, ", \"%s\": [", keys[k]);
            for (int i = 0; i < d->L + 2; i++) {
                const nl_lowp_counts *q = &d->lowp[2 * i + (k & 1)];
                fprintf(f, "%s%llu", i ? ", " : "", (unsigned long long)(k < 2 ? q->overflow : q->flushed));
            }
            fputc(']', f);
        }
    }
    fprintf(f, ", \"seconds\": %.4f}\n", d->seconds);
}

/* ---------------------------------------------------------------- spikes and divergence */

void nl_spikes_init(nl_spikes *s, double k) {
    memset(s, 0, sizeof *s);
    s->k = k;
}

int nl_spikes_push(nl_spikes *s, double grad_norm) {
    if (!isfinite(grad_norm)) return 0;
    int spike = 0;
    if (s->k > 0 && s->n >= NL_SPIKE_MIN) {
        float tmp[NL_SPIKE_WINDOW];
        for (int i = 0; i < s->n; i++) tmp[i] = (float)s->hist[i];
        const double med = nl_select_kth(tmp, (size_t)s->n, (size_t)s->n / 2);
        spike = grad_norm > s->k * med;
    }
    s->count += spike;
    s->hist[s->head] = grad_norm;
    s->head = (s->head + 1) % NL_SPIKE_WINDOW;
    if (s->n < NL_SPIKE_WINDOW) s->n++;
    return spike;
}

void nl_diverge_init(nl_diverge *d, int window, int warmup) {
    memset(d, 0, sizeof *d);
    d->window = window;
    d->warmup = warmup;
    if (window > 0) d->ring = nl_xcalloc((size_t)window * sizeof(double));
}

void nl_diverge_free(nl_diverge *d) {
    free(d->ring);
    memset(d, 0, sizeof *d);
}

const char *nl_diverge_push(nl_diverge *d, int step, double loss, double grad_norm) {
    if (!isfinite(loss) || !isfinite(grad_norm)) return "nonfinite";
    if (d->window <= 0) return NULL;
    if (d->n == 0) d->first = loss;
    const int slot = d->n % d->window;
    if (d->n >= d->window) d->sum -= d->ring[slot];
    d->ring[slot] = loss;
    d->sum += loss;
    d->n++;
    if (step > d->warmup && d->n >= d->window && d->sum / d->window > d->first) return "loss";
    return NULL;
}
