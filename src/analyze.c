/* analyze.c -- see analyze.h. */
#include "analyze.h"

#include "ckpt.h"
#include "common.h"
#include "json.h"
#include "placement.h"
#include "safetensors.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void nl_analysis_free(nl_analysis *a) {
    free(a->skip_loss);
    free(a->angular);
    memset(a, 0, sizeof *a);
}

static double angle(const float *x, const float *y, int C) {
    double xy = 0.0, xx = 0.0, yy = 0.0;
    for (int c = 0; c < C; c++) {
        xy += (double)x[c] * y[c];
        xx += (double)x[c] * x[c];
        yy += (double)y[c] * y[c];
    }
    double cs = xx > 0 && yy > 0 ? xy / sqrt(xx * yy) : 1.0;
    cs = cs > 1.0 ? 1.0 : cs < -1.0 ? -1.0 : cs;
    return acos(cs) / M_PI;
}

nl_status nl_analyze(nl_model *m, const nl_tokens *t, int max_windows, int B, nl_analysis *a) {
    const nl_config *c = &m->cfg;
    const int T = c->seq_len, L = c->layers, C = c->dim;
    memset(a, 0, sizeof *a);
    size_t W = t->n > 0 ? (t->n - 1) / (size_t)T : 0;
    if (max_windows > 0 && (size_t)max_windows < W) W = (size_t)max_windows;
    if (W == 0) return NL_FAIL(NL_ERR_ARG, "the data holds %zu tokens, fewer than seq-len + 1 = %d", t->n, T + 1);
    if (t->max_token >= c->vocab)
        return NL_FAIL(NL_ERR_ARG, "the data holds token id %d, outside the model's vocabulary of %d", t->max_token,
                       c->vocab);
    if ((size_t)B > W) B = (int)W;
    if (m->B < B || m->T < T) nl_model_alloc_acts(m, B, T);
    a->L = L;
    a->windows = W;
    a->skip_loss = nl_xcalloc((size_t)L * sizeof(double));
    a->angular = nl_xcalloc((size_t)L * L * sizeof(double));
    int *buf = nl_xmalloc((size_t)(T + 1) * sizeof(int)), *inp = nl_xmalloc((size_t)B * T * sizeof(int)),
        *tgt = nl_xmalloc((size_t)B * T * sizeof(int));
    const float **xs = nl_xmalloc((size_t)(L + 1) * sizeof(float *));
    float *last = nl_xmalloc((size_t)(L + 1) * C * sizeof(float)); /* host copy: the last token's x_1..x_{L+1} */
    double full = 0.0;
    m->skip_block = 0;
    for (size_t w0 = 0; w0 < W; w0 += (size_t)B) {
        const int nb = W - w0 < (size_t)B ? (int)(W - w0) : B;
        for (int b = 0; b < nb; b++) {
            nl_tokens_read(t, (w0 + (size_t)b) * T, (size_t)T + 1, buf);
            memcpy(inp + (size_t)b * T, buf, (size_t)T * sizeof(int));
            memcpy(tgt + (size_t)b * T, buf + 1, (size_t)T * sizeof(int));
        }
        full += (double)nl_model_forward(m, inp, tgt, nb, T, 0.0f) * nb;
        for (int l = 0; l < L; l++) xs[l] = m->sub[2 * l].xin;
        xs[L] = m->sub[2 * L - 1].xout;
        for (int b = 0; b < nb; b++) {
            const size_t row = ((size_t)b * T + (size_t)(T - 1)) * (size_t)C;
            for (int l = 0; l <= L; l++) m->be->to_host(last + (size_t)l * C, xs[l] + row, (size_t)C * sizeof(float));
            for (int l = 0; l < L; l++)
                for (int n = 1; l + n <= L; n++)
                    a->angular[(size_t)l * L + (size_t)(n - 1)] += angle(last + (size_t)l * C,
                                                                         last + (size_t)(l + n) * C, C);
        }
        for (int l = 0; l < L; l++) {
            m->skip_block = l + 1;
            a->skip_loss[l] += (double)nl_model_forward(m, inp, tgt, nb, T, 0.0f) * nb;
            m->skip_block = 0;
        }
    }
    a->loss = full / (double)W;
    for (int l = 0; l < L; l++) {
        a->skip_loss[l] /= (double)W;
        for (int n = 1; n <= L; n++) {
            double *d = &a->angular[(size_t)l * L + (size_t)(n - 1)];
            *d = l + n <= L ? *d / (double)W : NAN;
        }
    }
    free(buf);
    free(inp);
    free(tgt);
    free(xs);
    free(last);
    return NL_OK;
}

static void num(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.7g", v);
    else fputs("null", f);
}

void nl_analysis_write_json(const nl_analysis *a, const nl_model *m, const char *ckpt, FILE *f) {
    const int L = a->L;
    fprintf(f, "{\"analyze\": 1, \"ckpt\": ");
    nl_json_write_str(f, ckpt);
    fprintf(f, ", \"norm\": \"%s\", \"layers\": %d, \"windows\": %zu, \"loss\": ", nl_placements[m->cfg.placement].name,
            L, a->windows);
    num(f, a->loss);
    fputs(", \"skip_loss\": [", f);
    for (int l = 0; l < L; l++) fputs(l ? ", " : "", f), num(f, a->skip_loss[l]);
    fputs("], \"skip_delta\": [", f);
    for (int l = 0; l < L; l++) fputs(l ? ", " : "", f), num(f, a->skip_loss[l] - a->loss);
    fputs("], \"angular\": [", f);
    for (int l = 0; l < L; l++) {
        fputs(l ? ", [" : "[", f);
        for (int n = 1; l + n <= L; n++)
            fputs(n > 1 ? ", " : "", f), num(f, a->angular[(size_t)l * L + (size_t)(n - 1)]);
        fputc(']', f);
    }
    fputs("]}\n", f);
}
