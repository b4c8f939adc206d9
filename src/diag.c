/* diag.c -- see diag.h. */
#include "diag.h"

#include "common.h"
#include "norm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- statistics */

static void swapf(float *a, float *b) {
    float t = *a;
    *a = *b;
    *b = t;
}

float nl_select_kth(float *a, size_t n, size_t k) {
    NL_ASSERT(k < n);
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        /* median of three as the pivot, Hoare partition */
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] < a[lo]) swapf(&a[mid], &a[lo]);
        if (a[hi] < a[lo]) swapf(&a[hi], &a[lo]);
        if (a[hi] < a[mid]) swapf(&a[hi], &a[mid]);
        const float p = a[mid];
        size_t i = lo, j = hi;
        for (;;) {
            while (a[i] < p) i++;
            while (p < a[j]) j--;
            if (i >= j) break;
            swapf(&a[i], &a[j]);
            i++;
            j--;
        }
        if (k <= j) hi = j;
        else lo = j + 1;
    }
    return a[k];
}

void nl_stream_stats(const float *x, size_t N, int C, float *scratch, nl_stream_stat *out) {
    double var = 0.0, rms = 0.0, s1 = 0.0, s2 = 0.0, mx = 0.0;
    for (size_t n = 0; n < N; n++) {
        const float *r = x + n * (size_t)C;
        double a = 0.0, b = 0.0;
        for (int c = 0; c < C; c++) {
            const double v = r[c], av = fabs(v);
            a += v;
            b += v * v;
            if (!(av <= mx)) mx = isnan(av) ? INFINITY : av;
            scratch[n * (size_t)C + (size_t)c] = isnan(av) ? INFINITY : (float)av;
        }
        const double mean = a / C, ms = b / C;
        var += ms - mean * mean;
        rms += sqrt(ms);
        s1 += a;
        s2 += b;
    }
    const double NC = (double)N * C, gmean = s1 / NC;
    out->var = var / (double)N;
    out->rms = rms / (double)N;
    out->gvar = s2 / NC - gmean * gmean;
    out->maxabs = mx;
    const size_t n = N * (size_t)C, k = n / 2;
    double med = nl_select_kth(scratch, n, k);
    if (n % 2 == 0) {
        /* the other middle value: the largest of the k elements left of position k */
        float lo = scratch[0];
        for (size_t i = 1; i < k; i++) if (scratch[i] > lo) lo = scratch[i];
        med = 0.5 * (med + lo);
    }
    out->median = med;
}

static double rms_of(const float *x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s / (double)n);
}

static double sumsq(const float *x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

/* ---------------------------------------------------------------- the diagnostic pass */

void nl_diag_init(nl_diag *d, const nl_model *m) {
    memset(d, 0, sizeof *d);
    const int L = m->cfg.layers;
    d->L = L;
    d->x = nl_xcalloc((size_t)(L + 1) * sizeof *d->x);
    d->g_block = nl_xcalloc((size_t)L * 5 * sizeof(double));
    d->g_qkv = d->g_block + L;
    d->g_proj = d->g_qkv + L;
    d->g_fc = d->g_proj + L;
    d->g_mproj = d->g_fc + L;
    d->sites = nl_xcalloc((size_t)(6 * L + 2) * sizeof *d->sites);
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
    free(d->tensor_block);
    free(d->scratch);
    memset(d, 0, sizeof *d);
}

static void add_site(nl_diag *d, const nl_model *m, const char *name, const float *in, const float *out,
                     const nl_normw *norm, size_t NC) {
    nl_diag_site *s = &d->sites[d->nsites++];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->in_rms = rms_of(in, NC);
    s->out_rms = rms_of(out, NC);
    s->gain = nl_norm_gain_mean(m, norm);
}

void nl_diag_run(nl_diag *d, nl_model *m, const int *inp, const int *tgt, int B, int T) {
    const nl_config *c = &m->cfg;
    const int L = c->layers, C = c->dim;
    const size_t N = (size_t)B * T, NC = N * (size_t)C;
    if (d->scratch_n < NC) {
        free(d->scratch);
        d->scratch = nl_xmalloc(NC * sizeof(float));
        d->scratch_n = NC;
    }
    const double t0 = nl_now();
    nl_model_zero_grad(m);
    d->loss = nl_model_forward(m, inp, tgt, B, T, (float)(1.0 / (double)N));
    nl_model_backward(m);
    for (int i = 0; i < m->ntensors; i++) /* frozen tensors have no gradient (as in nl_grad_norm) */
        if (!m->tensors[i].trainable) memset(m->grads + m->tensors[i].offset, 0, m->tensors[i].numel * sizeof(float));

    /* residual stream entering each block, and after the last one */
    for (int l = 0; l < L; l++) nl_stream_stats(m->sub[2 * l].xin, N, C, d->scratch, &d->x[l]);
    nl_stream_stats(m->sub[2 * L - 1].xout, N, C, d->scratch, &d->x[L]);

    /* gradient norms */
    double total = 0.0;
    for (int l = 0; l < L; l++) d->g_block[l] = 0.0;
    for (int i = 0; i < m->ntensors; i++) {
        const double s = sumsq(m->grads + m->tensors[i].offset, m->tensors[i].numel);
        total += s;
        if (d->tensor_block[i] >= 0) d->g_block[d->tensor_block[i]] += s;
    }
    d->g_total = sqrt(total);
    for (int l = 0; l < L; l++) {
        const nl_block_w *g = &m->g.blocks[l];
        d->g_block[l] = sqrt(d->g_block[l]);
        d->g_qkv[l] = sqrt(sumsq(g->qkv_w, (size_t)m->Q3 * C));
        d->g_proj[l] = sqrt(sumsq(g->proj_w, (size_t)C * C));
        d->g_fc[l] = sqrt(sumsq(g->fc_w, (size_t)m->FW * C)); /* llama: gate and up */
        d->g_mproj[l] = sqrt(sumsq(g->mproj_w, (size_t)m->F * C));
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
                if (!norm->w) continue;
                char name[64];
                snprintf(name, sizeof name, "blocks.%d.%s_norm_%s", l, sub_names[s], nl_site_names[k]);
                add_site(d, m, name, in[k], out[k], norm, NC);
            }
        }
    if (c->final_norm && !m->r) add_site(d, m, "final_norm", m->sub[2 * L - 1].xout, m->xf, &m->w.finn, NC);
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
    fprintf(f, "], \"seconds\": %.4f}\n", d->seconds);
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
