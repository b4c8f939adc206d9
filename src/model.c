/* model.c -- parameter table, buffers, initialisation, and the forward/backward template.
 * Read the two template functions (nl_model_forward, nl_model_backward) as the story of the model:
 * every placement runs them; the sites each block uses come from norm.c. */
#include "model.h"

#include "common.h"
#include "config.h"
#include "norm.h"
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- parameter table */

static const char *const sub_names[NL_SUB_COUNT] = { "attn", "mlp" };

static void add_tensor(nl_model *m, int *cap, float **slot_p, float **slot_g, int rows, int cols,
                       float init_std, int decay, const char *fmt, ...) {
    if (m->ntensors == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        nl_tensor *t = nl_xmalloc((size_t)*cap * sizeof *t);
        if (m->ntensors) memcpy(t, m->tensors, (size_t)m->ntensors * sizeof *t);
        free(m->tensors);
        m->tensors = t;
    }
    nl_tensor *t = &m->tensors[m->ntensors++];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->rows = t->export_rows = rows;
    t->cols = cols;
    t->numel = (size_t)rows * (size_t)(cols ? cols : 1);
    t->offset = m->nparams;
    m->nparams += t->numel;
    t->decay = decay;
    t->trainable = 1;
    t->init_std = init_std;
    t->beta_row0 = -1;
    t->slot_p = slot_p;
    t->slot_g = slot_g;
}

/* a norm: gain (ones) and, for LayerNorm, bias (zeros) */
static void add_norm(nl_model *m, int *cap, float **pw, float **gw, float **pb, float **gb,
                     const char *prefix) {
    add_tensor(m, cap, pw, gw, m->cfg.dim, 0, -1.0f, 0, "%s.weight", prefix);
    if (m->cfg.norm_type == NL_LAYERNORM) add_tensor(m, cap, pb, gb, m->cfg.dim, 0, 0.0f, 0, "%s.bias", prefix);
}

static void build_tensors(nl_model *m) {
    const nl_config *c = &m->cfg;
    const int C = c->dim, L = c->layers;
    const float std = 0.02f, std_out = c->scaled_init ? 0.02f / sqrtf(2.0f * L) : 0.02f;
    int cap = 0;
    add_tensor(m, &cap, &m->w.wte, &m->g.wte, c->vocab_padded, C, std, 1, "tok_emb.weight");
    m->tensors[m->ntensors - 1].export_rows = c->vocab;
    add_tensor(m, &cap, &m->w.wpe, &m->g.wpe, c->seq_len, C, std, 1, "pos_emb.weight");
    if (c->emb_norm) add_norm(m, &cap, &m->w.embn_w, &m->g.embn_w, &m->w.embn_b, &m->g.embn_b, "emb_norm");
    for (int l = 0; l < L; l++) {
        nl_block_w *w = &m->w.blocks[l], *g = &m->g.blocks[l];
        const unsigned sites = nl_block_sites(c, l + 1);
        char pre[64];
        for (int s = 0; s < NL_SUB_COUNT; s++)
            for (int k = 0; k < NL_SITE_COUNT; k++) {
                if (!(sites & (1u << k))) continue;
                snprintf(pre, sizeof pre, "blocks.%d.%s_norm_%s", l, sub_names[s], nl_site_names[k]);
                add_norm(m, &cap, &w->norm_w[s][k], &g->norm_w[s][k], &w->norm_b[s][k], &g->norm_b[s][k], pre);
                if ((1u << k) == NL_SITE_OUT && c->out_gain_frozen)
                    m->tensors[m->ntensors - (c->norm_type == NL_LAYERNORM ? 2 : 1)].trainable = 0;
            }
        add_tensor(m, &cap, &w->qkv_w, &g->qkv_w, 3 * C, C, std, 1, "blocks.%d.attn.qkv.weight", l);
        m->tensors[m->ntensors - 1].beta_row0 = 2 * C; /* the value rows */
        add_tensor(m, &cap, &w->qkv_b, &g->qkv_b, 3 * C, 0, 0.0f, 0, "blocks.%d.attn.qkv.bias", l);
        add_tensor(m, &cap, &w->proj_w, &g->proj_w, C, C, std_out, 1, "blocks.%d.attn.proj.weight", l);
        m->tensors[m->ntensors - 1].beta_row0 = 0;
        add_tensor(m, &cap, &w->proj_b, &g->proj_b, C, 0, 0.0f, 0, "blocks.%d.attn.proj.bias", l);
        add_tensor(m, &cap, &w->fc_w, &g->fc_w, 4 * C, C, std, 1, "blocks.%d.mlp.fc.weight", l);
        m->tensors[m->ntensors - 1].beta_row0 = 0;
        add_tensor(m, &cap, &w->fc_b, &g->fc_b, 4 * C, 0, 0.0f, 0, "blocks.%d.mlp.fc.bias", l);
        add_tensor(m, &cap, &w->mproj_w, &g->mproj_w, C, 4 * C, std_out, 1, "blocks.%d.mlp.proj.weight", l);
        m->tensors[m->ntensors - 1].beta_row0 = 0;
        add_tensor(m, &cap, &w->mproj_b, &g->mproj_b, C, 0, 0.0f, 0, "blocks.%d.mlp.proj.bias", l);
    }
    if (c->final_norm) add_norm(m, &cap, &m->w.finn_w, &m->g.finn_w, &m->w.finn_b, &m->g.finn_b, "final_norm");
}

/* N(0, std) in table order from the seed; ones for gains, zeros for biases and padded vocab rows. */
static void init_params(nl_model *m) {
    nl_rng rng;
    nl_rng_seed(&rng, m->cfg.seed);
    const float beta = (float)nl_init_beta(&m->cfg);
    for (int i = 0; i < m->ntensors; i++) {
        const nl_tensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        const size_t rowlen = t->cols ? (size_t)t->cols : 1;
        for (size_t j = 0; j < t->numel; j++) {
            const int row = (int)(j / rowlen);
            if (t->init_std < 0) p[j] = 1.0f;
            else if (t->init_std == 0 || row >= t->export_rows) p[j] = 0.0f;
            else {
                p[j] = t->init_std * (float)nl_rng_normal(&rng);
                if (t->beta_row0 >= 0 && row >= t->beta_row0) p[j] *= beta;
            }
        }
    }
}

nl_status nl_model_init(nl_model *m, const nl_config *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    NL_TRY(nl_config_resolve(&m->cfg));
    m->w.blocks = nl_xcalloc((size_t)m->cfg.layers * sizeof(nl_block_w));
    m->g.blocks = nl_xcalloc((size_t)m->cfg.layers * sizeof(nl_block_w));
    build_tensors(m);
    m->params = nl_xmalloc(m->nparams * sizeof(float));
    m->grads = nl_xcalloc(m->nparams * sizeof(float));
    m->m = nl_xcalloc(m->nparams * sizeof(float));
    m->v = nl_xcalloc(m->nparams * sizeof(float));
    m->norm_nchunk = (m->nparams + NL_NORM_CHUNK - 1) / NL_NORM_CHUNK;
    m->norm_part = nl_xcalloc(m->norm_nchunk * sizeof(double));
    for (int i = 0; i < m->ntensors; i++) {
        *m->tensors[i].slot_p = m->params + m->tensors[i].offset;
        *m->tensors[i].slot_g = m->grads + m->tensors[i].offset;
    }
    init_params(m);
    return NL_OK;
}

void nl_model_free(nl_model *m) {
    if (!m) return;
    free(m->tensors);
    free(m->params);
    free(m->grads);
    free(m->m);
    free(m->v);
    free(m->norm_part);
    free(m->w.blocks);
    free(m->g.blocks);
    free(m->acts);
    free(m->sub);
    memset(m, 0, sizeof *m);
}

void nl_model_zero_grad(nl_model *m) { memset(m->grads, 0, m->nparams * sizeof(float)); }

size_t nl_model_trainable_count(const nl_model *m) {
    size_t n = 0;
    for (int i = 0; i < m->ntensors; i++)
        if (m->tensors[i].trainable) n += (size_t)m->tensors[i].export_rows * (m->tensors[i].cols ? (size_t)m->tensors[i].cols : 1);
    return n;
}

const nl_tensor *nl_model_find(const nl_model *m, const char *name) {
    for (int i = 0; i < m->ntensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

/* ---------------------------------------------------------------- activation plan */

/* Bump allocation over one buffer; with base == NULL it only counts. */
static float *take(float *base, size_t *off, size_t n) {
    float *p = base ? base + *off : NULL;
    *off += n;
    return p;
}

/* Lays out every activation and scratch buffer; the same walk as the forward pass, so aliasing of
 * absent sites is decided here once. Returns the float count. */
static size_t plan_acts(nl_model *m, float *base, int B, int T) {
    const nl_config *c = &m->cfg;
    const size_t N = (size_t)B * T, C = (size_t)c->dim, NC = N * C, ATT = (size_t)B * c->heads * T * T;
    size_t off = 0;
    m->emb = take(base, &off, NC);
    float *x = m->emb;
    if (c->emb_norm) {
        m->embn = take(base, &off, NC);
        m->e_mean = take(base, &off, N);
        m->e_rstd = take(base, &off, N);
        x = m->embn;
    }
    for (int l = 0; l < c->layers; l++) {
        const unsigned sites = nl_block_sites(c, l + 1);
        for (int s = 0; s < NL_SUB_COUNT; s++) {
            nl_sub_acts *A = &m->sub[2 * l + s];
            memset(A, 0, sizeof *A);
            A->xin = x;
            A->u = x;
            if (sites & NL_SITE_IN) {
                A->u = take(base, &off, NC);
                A->u_mean = take(base, &off, N);
                A->u_rstd = take(base, &off, N);
            }
            if (s == NL_SUB_ATTN) {
                A->qkv = take(base, &off, 3 * NC);
                A->att = take(base, &off, ATT);
                A->atty = take(base, &off, NC);
            } else {
                A->fch = take(base, &off, 4 * NC);
                A->fgelu = take(base, &off, 4 * NC);
            }
            A->a = A->o = take(base, &off, NC);
            if (sites & NL_SITE_OUT) {
                A->o = take(base, &off, NC);
                A->o_mean = take(base, &off, N);
                A->o_rstd = take(base, &off, N);
            }
            A->z = A->xout = take(base, &off, NC);
            if (sites & NL_SITE_POST) {
                A->xout = take(base, &off, NC);
                A->p_mean = take(base, &off, N);
                A->p_rstd = take(base, &off, N);
            }
            x = A->xout;
        }
    }
    m->xf = x;
    if (c->final_norm) {
        m->xf = take(base, &off, NC);
        m->f_mean = take(base, &off, N);
        m->f_rstd = take(base, &off, N);
    }
    m->logits = take(base, &off, N * (size_t)c->vocab_padded);
    m->losses = take(base, &off, N);
    m->gA = take(base, &off, NC);
    m->gB = take(base, &off, NC);
    m->dz = take(base, &off, NC);
    m->da = take(base, &off, NC);
    m->du = take(base, &off, NC);
    m->dqkv = take(base, &off, 3 * NC);
    m->datt = take(base, &off, ATT);
    m->datty = take(base, &off, NC);
    m->dfch = take(base, &off, 4 * NC);
    m->dfgelu = take(base, &off, 4 * NC);
    return off;
}

void nl_model_alloc_acts(nl_model *m, int B, int T) {
    NL_ASSERT(B > 0 && T > 0 && T <= m->cfg.seq_len);
    free(m->acts);
    free(m->sub);
    m->sub = nl_xcalloc((size_t)m->cfg.layers * NL_SUB_COUNT * sizeof(nl_sub_acts));
    size_t n = plan_acts(m, NULL, B, T);
    m->acts = nl_xcalloc(n * sizeof(float));
    plan_acts(m, m->acts, B, T);
    m->B = B;
    m->T = T;
}

/* ---------------------------------------------------------------- forward */

static void norm_fwd(const nl_model *m, float *out, float *mean, float *rstd, const float *x,
                     const float *w, const float *b, float scale, size_t N) {
    nl_norm_forward(out, mean, rstd, x, w, b, scale, m->cfg.norm_type, (float)m->cfg.eps, N, m->cfg.dim);
}

static void norm_bwd(const nl_model *m, float *dx, float *dw, float *db, const float *dy,
                     const float *x, const float *w, const float *mean, const float *rstd, float scale,
                     size_t N) {
    nl_norm_backward(dx, dw, db, dy, x, w, mean, rstd, scale, m->cfg.norm_type, N, m->cfg.dim);
}

float nl_model_forward(nl_model *m, const int *inp, const int *tgt, int B, int T, float dscale) {
    const nl_config *c = &m->cfg;
    NL_ASSERT(m->acts && B <= m->B && T <= m->T && B * T <= m->B * m->T);
    const size_t N = (size_t)B * T;
    const int C = c->dim;
    /* the plan was made for (m->B, m->T); smaller calls reuse its buffers (only attention's
     * per-head layout depends on T, and it is indexed with the T passed here) */
    const float alpha = (float)nl_res_alpha(c);
    m->inp = inp;
    m->fB = B;
    m->fT = T;

    nl_encoder_forward(m->emb, inp, m->w.wte, m->w.wpe, B, T, C);
    if (c->emb_norm) norm_fwd(m, m->embn, m->e_mean, m->e_rstd, m->emb, m->w.embn_w, m->w.embn_b, 1.0f, N);

    for (int l = 0; l < c->layers; l++) {
        const unsigned sites = nl_block_sites(c, l + 1);
        const float scale = (float)nl_block_in_scale(c, l + 1);
        const nl_block_w *w = &m->w.blocks[l];
        if (l + 1 == m->skip_block) { /* layer removal (normlab analyze): the block's output is its input */
            memcpy(m->sub[2 * l + 1].xout, m->sub[2 * l].xin, N * C * sizeof(float));
            continue;
        }
        for (int s = 0; s < NL_SUB_COUNT; s++) {
            nl_sub_acts *A = &m->sub[2 * l + s];
            if (sites & NL_SITE_IN)
                norm_fwd(m, A->u, A->u_mean, A->u_rstd, A->xin, w->norm_w[s][0], w->norm_b[s][0], scale, N);
            if (s == NL_SUB_ATTN) {
                nl_linear_forward(A->qkv, A->u, w->qkv_w, w->qkv_b, N, C, 3 * C);
                nl_attention_forward(A->atty, A->att, A->qkv, B, T, C, c->heads);
                nl_linear_forward(A->a, A->atty, w->proj_w, w->proj_b, N, C, C);
            } else {
                nl_linear_forward(A->fch, A->u, w->fc_w, w->fc_b, N, C, 4 * C);
                nl_gelu_forward(A->fgelu, A->fch, N * 4 * C);
                nl_linear_forward(A->a, A->fgelu, w->mproj_w, w->mproj_b, N, 4 * C, C);
            }
            if (sites & NL_SITE_OUT)
                norm_fwd(m, A->o, A->o_mean, A->o_rstd, A->a, w->norm_w[s][1], w->norm_b[s][1], 1.0f, N);
            nl_residual_forward(A->z, A->xin, A->o, alpha, N * C);
            if (sites & NL_SITE_POST)
                norm_fwd(m, A->xout, A->p_mean, A->p_rstd, A->z, w->norm_w[s][2], w->norm_b[s][2], 1.0f, N);
        }
    }
    const float *xl = m->sub[2 * c->layers - 1].xout;
    if (c->final_norm) norm_fwd(m, m->xf, m->f_mean, m->f_rstd, xl, m->w.finn_w, m->w.finn_b, 1.0f, N);

    /* tied head over the real vocabulary: logits (N, V) with row stride Vp */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, c->vocab, C, 1.0f, m->xf, C, m->w.wte,
                C, 0.0f, m->logits, c->vocab_padded);
    if (!tgt) return 0.0f;
    nl_xent(m->losses, m->logits, tgt, N, c->vocab, c->vocab_padded, dscale);
    double sum = 0.0;
    for (size_t n = 0; n < N; n++) sum += m->losses[n];
    return (float)(sum / (double)N);
}

/* ---------------------------------------------------------------- backward */

static void branch_backward(nl_model *m, const nl_sub_acts *A, int s, const nl_block_w *w,
                            nl_block_w *g, const float *da, size_t N) {
    const int C = m->cfg.dim;
    if (s == NL_SUB_ATTN) {
        nl_linear_backward(m->datty, g->proj_w, g->proj_b, da, A->atty, w->proj_w, N, C, C);
        nl_attention_backward(m->dqkv, m->datt, m->datty, A->qkv, A->att, m->fB, m->fT, C, m->cfg.heads);
        nl_linear_backward(m->du, g->qkv_w, g->qkv_b, m->dqkv, A->u, w->qkv_w, N, C, 3 * C);
    } else {
        nl_linear_backward(m->dfgelu, g->mproj_w, g->mproj_b, da, A->fgelu, w->mproj_w, N, 4 * C, C);
        nl_gelu_backward(m->dfch, A->fch, m->dfgelu, N * 4 * C);
        nl_linear_backward(m->du, g->fc_w, g->fc_b, m->dfch, A->u, w->fc_w, N, C, 4 * C);
    }
}

void nl_model_backward(nl_model *m) {
    const nl_config *c = &m->cfg;
    const size_t N = (size_t)m->fB * m->fT, C = (size_t)c->dim, NC = N * C;
    const float alpha = (float)nl_res_alpha(c);
    NL_ASSERT(m->skip_block == 0);

    /* head: logits holds dL/dlogits; dxf = dlogits @ wte, dwte += dlogits^T @ xf */
    float *g = m->gA, *gnext = m->gB;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)C, c->vocab, 1.0f, m->logits,
                c->vocab_padded, m->w.wte, (int)C, 0.0f, g, (int)C);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, c->vocab, (int)C, (int)N, 1.0f, m->logits,
                c->vocab_padded, m->xf, (int)C, 1.0f, m->g.wte, (int)C);
    if (c->final_norm) {
        memset(gnext, 0, NC * sizeof(float));
        norm_bwd(m, gnext, m->g.finn_w, m->g.finn_b, g, m->sub[2 * c->layers - 1].xout, m->w.finn_w,
                 m->f_mean, m->f_rstd, 1.0f, N);
        float *t = g; g = gnext; gnext = t;
    }

    for (int l = c->layers - 1; l >= 0; l--) {
        const unsigned sites = nl_block_sites(c, l + 1);
        const float scale = (float)nl_block_in_scale(c, l + 1);
        const nl_block_w *w = &m->w.blocks[l];
        nl_block_w *gw = &m->g.blocks[l];
        for (int s = NL_SUB_COUNT - 1; s >= 0; s--) {
            const nl_sub_acts *A = &m->sub[2 * l + s];
            /* g = dL/dxout */
            const float *dz = g;
            if (sites & NL_SITE_POST) {
                memset(m->dz, 0, NC * sizeof(float));
                norm_bwd(m, m->dz, gw->norm_w[s][2], gw->norm_b[s][2], g, A->z, w->norm_w[s][2],
                         A->p_mean, A->p_rstd, 1.0f, N);
                dz = m->dz;
            }
            for (size_t i = 0; i < NC; i++) gnext[i] = alpha * dz[i]; /* identity path */
            const float *da = dz;
            if (sites & NL_SITE_OUT) {
                memset(m->da, 0, NC * sizeof(float));
                norm_bwd(m, m->da, gw->norm_w[s][1], gw->norm_b[s][1], dz, A->a, w->norm_w[s][1],
                         A->o_mean, A->o_rstd, 1.0f, N);
                da = m->da;
            }
            branch_backward(m, A, s, w, gw, da, N);
            if (sites & NL_SITE_IN)
                norm_bwd(m, gnext, gw->norm_w[s][0], gw->norm_b[s][0], m->du, A->xin, w->norm_w[s][0],
                         A->u_mean, A->u_rstd, scale, N);
            else
                for (size_t i = 0; i < NC; i++) gnext[i] += m->du[i];
            float *t = g; g = gnext; gnext = t;
        }
    }
    if (c->emb_norm) {
        memset(gnext, 0, NC * sizeof(float));
        norm_bwd(m, gnext, m->g.embn_w, m->g.embn_b, g, m->emb, m->w.embn_w, m->e_mean, m->e_rstd, 1.0f, N);
        g = gnext;
    }
    nl_encoder_backward(m->g.wte, m->g.wpe, g, m->inp, m->fB, m->fT, (int)C);
}
