/* model.c -- parameter table, buffers, initialisation, and the forward/backward template.
 * Read the two template functions (nl_model_forward, nl_model_backward) as the story of the model:
 * every placement runs them; the sites each block uses come from placement.c. */
#include "model.h"

#include "common.h"
#include "config.h"
#include "dit.h"
#include "placement.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- parameter table */

static const char *const sub_names[NL_SUB_COUNT] = { "attn", "mlp" };

static void add_tensor(nl_model *m, int *cap, float **slot_p, float **slot_g, int rows, int cols, float init_std,
                       int decay, const char *fmt, ...) {
    if (m->ntensors == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        m->tensors = nl_xresize(m->tensors, (size_t)m->ntensors, (size_t)*cap, sizeof *m->tensors);
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
    t->init_const = 1.0f;
    t->beta_row0 = -1;
    t->slot_p = slot_p;
    t->slot_g = slot_g;
}

/* Initial gain of a norm of width C: sqrt(C) for ScaleNorm's scalar, else 1. */
static float gain_init(int type, int C) { return type == NL_SCALENORM ? sqrtf((float)C) : 1.0f; }

/* One norm of width C: its tensors by norm type (see nl_normw). With the placement's gain offset the
 * stored gain is the offset from gain_init and starts at 0. Returns the index of the gain tensor. */
static int add_norm(nl_model *m, int *cap, nl_normw *p, nl_normw *g, int C, const char *prefix) {
    const int type = m->cfg.norm_type, wi = m->ntensors;
    const int offset = nl_placements[m->cfg.placement].gain_offset;
    if (type == NL_L2NORM) return -1; /* x/|x|: no parameters */
    add_tensor(m, cap, &p->w, &g->w, type == NL_SCALENORM ? 1 : C, 0, offset ? 0.0f : -1.0f, 0, "%s.weight", prefix);
    m->tensors[wi].init_const = gain_init(type, C);
    if ((type == NL_LAYERNORM || type == NL_DYT) && m->cfg.arch == NL_ARCH_GPT2) /* llama: no biases */
        add_tensor(m, cap, &p->b, &g->b, C, 0, 0.0f, 0, "%s.bias", prefix);
    if (type == NL_DYT) {
        add_tensor(m, cap, &p->alpha, &g->alpha, 1, 0, -1.0f, 0, "%s.alpha", prefix);
        m->tensors[m->ntensors - 1].init_const = (float)m->cfg.dyt_alpha;
    }
    if (type == NL_SEEDNORM) {
        add_tensor(m, cap, &p->alpha, &g->alpha, C, 0, -1.0f, 0, "%s.alpha", prefix);
        add_tensor(m, cap, &p->beta, &g->beta, C, 0, 0.0f, 0, "%s.beta", prefix);
    }
    return wi;
}

/* q/k/v column groups of the fused projection (j: 0 q, 1 k, 2 v): first column and width */
static int qkv_col0(const nl_model *m, int j) { return j == 0 ? 0 : j == 1 ? m->cfg.dim : m->cfg.dim + m->kvC; }
static int qkv_cols(const nl_model *m, int j) { return j == 0 ? m->cfg.dim : m->kvC; }
/* q/k/v norms of sublayer mask ms: how many (q, k[, v]), and the width group j's norm spans (head size,
 * or the group's width for QKV) */
static int qkv_norm_count(unsigned ms) { return ms & NL_WIRE_QKV ? 3 : ms & NL_WIRE_QK ? 2 : 0; }
static int qkv_norm_width(const nl_model *m, unsigned ms, int j) { return ms & NL_WIRE_QKV ? qkv_cols(m, j) : m->hs; }

/* ngpt's scale vectors: stored value `stored` at init; the model multiplies by their factor (sphere_factor) */
static void add_scale(nl_model *m, int *cap, float **p, float **g, int n, float stored, const char *fmt, int l) {
    add_tensor(m, cap, p, g, n, 0, -1.0f, 0, fmt, l);
    m->tensors[m->ntensors - 1].init_const = stored;
}

/* ngpt (Loshchilov et al., arXiv:2410.01131, §2.5; docs/methods.md §2.16): a scale s is stored as s_scale at init and acts
 * as s * s_init / s_scale, so that Adam's step on it is tempered. alpha: init --ngpt-alpha-init, scale
 * --ngpt-alpha-scale (1/sqrt(d)); s_qk and s_z: init 1, scale 1/sqrt(d); s_uv: init 1, scale 1, acting x sqrt(d). */
static float sphere_factor_alpha(const nl_config *c) { return (float)(c->ngpt_alpha_init / c->ngpt_alpha_scale); }
static float sphere_factor(const nl_config *c) { return sqrtf((float)c->dim); }

static void set_unit(nl_model *m, int by_col) { m->tensors[m->ntensors - 1].unit = by_col ? 2 : 1; }

/* SDD's scale vector alpha of a linear layer with n outputs, y = alpha * RMSNorm(W x + b) (Wang et al.,
 * arXiv:2502.15499 Eq. 1), initialised to the constant a0: 1, and 1/sqrt(2L) on the two output
 * projections as the authors' code does (kaihemo/SDD, dense/olmo/model.py: attention_out_norm and
 * fc2_norm weights divided by sqrt(2 n_layers)). No weight decay, like every gain. */
static void add_sdd(nl_model *m, int *cap, float **p, float **g, int n, float a0, int l, const char *layer) {
    add_tensor(m, cap, p, g, n, 0, -1.0f, 0, "blocks.%d.%s_sdd.weight", l, layer);
    m->tensors[m->ntensors - 1].init_const = a0;
}

static void build_tensors(nl_model *m) {
    const nl_config *c = &m->cfg;
    const int C = c->dim, L = c->layers, F = m->F, llama = c->arch != NL_ARCH_GPT2, dit = m->dit;
    const int sphere = nl_placements[c->placement].sphere; /* rows along d on the unit sphere (paper §2.1-2.4, §2.6) */
    const float std = 0.02f, std_out = c->scaled_init ? 0.02f / sqrtf(2.0f * L) : 0.02f;
    const float sdd_out = 1.0f / sqrtf(2.0f * L); /* SDD's output-projection scales (see add_sdd) */
    int cap = 0;
    add_tensor(m, &cap, &m->w.wte, &m->g.wte, c->vocab_padded, C, std, 1, dit ? "label_emb.weight" : "tok_emb.weight");
    m->tensors[m->ntensors - 1].export_rows = c->vocab;
    if (sphere) set_unit(m, 0);
    if (!llama) add_tensor(m, &cap, &m->w.wpe, &m->g.wpe, c->seq_len, C, std, 1, "pos_emb.weight");
    if (!llama && sphere) set_unit(m, 0);
    if (c->emb_norm) add_norm(m, &cap, &m->w.embn, &m->g.embn, C, "emb_norm");
    for (int l = 0; l < L; l++) {
        nl_block_w *w = &m->w.blocks[l], *g = &m->g.blocks[l];
        char pre[64];
        m->block_at[l] = m->nparams;
        for (int s = 0; s < NL_SUB_COUNT; s++) {
            const unsigned ms = nl_sub_sites(c, l + 1, s);
            for (int k = 0; k < NL_SITE_COUNT; k++) {
                if (!(ms & (1u << k))) continue;
                snprintf(pre, sizeof pre, "blocks.%d.%s_norm_%s", l, sub_names[s], nl_site_names[k]);
                const int wi = add_norm(m, &cap, &w->norm[s][k], &g->norm[s][k], C, pre);
                if ((1u << k) == NL_SITE_OUT && c->out_gain_frozen && wi >= 0) m->tensors[wi].trainable = 0;
            }
            if (c->skip_init)
                add_tensor(m, &cap, &w->skip[s], &g->skip[s], 1, 0, 0.0f, 0, "blocks.%d.%s_skip.weight", l, sub_names[s]);
            if (ms & NL_WIRE_LAMRES)
                add_tensor(m, &cap, &w->lam, &g->lam, C, 0, -1.0f, 0, "blocks.%d.%s_res_scale.weight", l, sub_names[s]);
            if (sphere)
                add_scale(m, &cap, &w->eigen[s], &g->eigen[s], C, (float)c->ngpt_alpha_scale,
                          s == 0 ? "blocks.%d.attn_alpha" : "blocks.%d.mlp_alpha", l);
        }
        if (c->gpas) add_tensor(m, &cap, &w->gpas, &g->gpas, 1, 0, 0.0f, 0, "blocks.%d.gpas.weight", l); /* a_l = 0 */
        const unsigned ma = nl_sub_sites(c, l + 1, NL_SUB_ATTN), mm = nl_sub_sites(c, l + 1, NL_SUB_MLP);
        add_tensor(m, &cap, &w->qkv_w, &g->qkv_w, m->Q3, C, std, 1, "blocks.%d.attn.qkv.weight", l);
        m->tensors[m->ntensors - 1].beta_row0 = qkv_col0(m, 2); /* the value rows */
        if (sphere) set_unit(m, 0);
        if (!llama) add_tensor(m, &cap, &w->qkv_b, &g->qkv_b, m->Q3, 0, 0.0f, 0, "blocks.%d.attn.qkv.bias", l);
        static const char *const qkv_names[3] = { "q", "k", "v" };
        for (int j = 0; j < qkv_norm_count(ma); j++) {
            snprintf(pre, sizeof pre, "blocks.%d.attn.%s_norm", l, qkv_names[j]);
            add_norm(m, &cap, &w->qkvn[j], &g->qkvn[j], qkv_norm_width(m, ma, j), pre);
        }
        if (sphere) add_scale(m, &cap, &w->sqk, &g->sqk, C, 1.0f / sphere_factor(c), "blocks.%d.attn.sqk", l);
        if (ma & NL_WIRE_SDD) add_sdd(m, &cap, &w->qkv_sdd, &g->qkv_sdd, m->Q3, 1.0f, l, "attn.qkv");
        if (ma & NL_WIRE_HSCALE)
            add_tensor(m, &cap, &w->hscale, &g->hscale, c->heads, 0, -1.0f, 0, "blocks.%d.attn.head_scale", l);
        add_tensor(m, &cap, &w->proj_w, &g->proj_w, C, C, std_out, 1, "blocks.%d.attn.proj.weight", l);
        m->tensors[m->ntensors - 1].beta_row0 = 0;
        if (sphere) set_unit(m, 1); /* (d, d): each column, a vector over the output (embedding) dimension */
        if (!llama) add_tensor(m, &cap, &w->proj_b, &g->proj_b, C, 0, 0.0f, 0, "blocks.%d.attn.proj.bias", l);
        if (ma & NL_WIRE_SDD) add_sdd(m, &cap, &w->proj_sdd, &g->proj_sdd, C, sdd_out, l, "attn.proj");
        add_tensor(m, &cap, &w->fc_w, &g->fc_w, F, C, std, 1,
                   llama ? "blocks.%d.mlp.gate.weight" : "blocks.%d.mlp.fc.weight", l);
        m->tensors[m->ntensors - 1].beta_row0 = 0;
        if (sphere) set_unit(m, 0);
        if (llama) { /* directly after the gate: the two are one (2F, C) product */
            add_tensor(m, &cap, &w->up_w, &g->up_w, F, C, std, 1, "blocks.%d.mlp.up.weight", l);
            m->tensors[m->ntensors - 1].beta_row0 = 0;
            if (sphere) set_unit(m, 0);
        } else {
            add_tensor(m, &cap, &w->fc_b, &g->fc_b, F, 0, 0.0f, 0, "blocks.%d.mlp.fc.bias", l);
        }
        if (sphere) add_scale(m, &cap, &w->suv, &g->suv, m->FW, 1.0f, "blocks.%d.mlp.suv", l);
        if (mm & NL_WIRE_SDD) add_sdd(m, &cap, &w->fc_sdd, &g->fc_sdd, m->FW, 1.0f, l, "mlp.fc");
        if (mm & NL_WIRE_FCNORM) {
            snprintf(pre, sizeof pre, "blocks.%d.mlp.fc_norm", l);
            add_norm(m, &cap, &w->fcn, &g->fcn, F, pre);
        }
        add_tensor(m, &cap, &w->mproj_w, &g->mproj_w, C, F, std_out, 1,
                   llama ? "blocks.%d.mlp.down.weight" : "blocks.%d.mlp.proj.weight", l);
        m->tensors[m->ntensors - 1].beta_row0 = 0;
        if (sphere) set_unit(m, 1); /* (d, F): each column along d */
        if (!llama) add_tensor(m, &cap, &w->mproj_b, &g->mproj_b, C, 0, 0.0f, 0, "blocks.%d.mlp.proj.bias", l);
        if (dit) { /* adaLN-Zero: zero init, every block starts as the identity */
            add_tensor(m, &cap, &w->ada_w, &g->ada_w, 6 * C, C, 0.0f, 1, "blocks.%d.adaln.weight", l);
            add_tensor(m, &cap, &w->ada_b, &g->ada_b, 6 * C, 0, 0.0f, 0, "blocks.%d.adaln.bias", l);
        }
        if (mm & NL_WIRE_SDD) add_sdd(m, &cap, &w->mproj_sdd, &g->mproj_sdd, C, sdd_out, l, "mlp.proj");
    }
    m->block_at[L] = m->nparams;
    if (c->final_norm) add_norm(m, &cap, &m->w.finn, &m->g.finn, C, "final_norm");
    if (dit) {
        nl_dit_w *w = &m->w.dit, *g = &m->g.dit;
        add_tensor(m, &cap, &w->pe_w, &g->pe_w, C, m->P, std, 1, "patch_emb.weight");
        add_tensor(m, &cap, &w->pe_b, &g->pe_b, C, 0, 0.0f, 0, "patch_emb.bias");
        add_tensor(m, &cap, &w->t1_w, &g->t1_w, C, NL_DIT_TFREQ, std, 1, "t_emb.fc1.weight");
        add_tensor(m, &cap, &w->t1_b, &g->t1_b, C, 0, 0.0f, 0, "t_emb.fc1.bias");
        add_tensor(m, &cap, &w->t2_w, &g->t2_w, C, C, std, 1, "t_emb.fc2.weight");
        add_tensor(m, &cap, &w->t2_b, &g->t2_b, C, 0, 0.0f, 0, "t_emb.fc2.bias");
        add_tensor(m, &cap, &w->fa_w, &g->fa_w, 2 * C, C, 0.0f, 1, "final.adaln.weight");
        add_tensor(m, &cap, &w->fa_b, &g->fa_b, 2 * C, 0, 0.0f, 0, "final.adaln.bias");
        add_tensor(m, &cap, &w->fl_w, &g->fl_w, m->P, C, 0.0f, 1, "final.linear.weight");
        add_tensor(m, &cap, &w->fl_b, &g->fl_b, m->P, 0, 0.0f, 0, "final.linear.bias");
    } else if (!c->tie_head) {
        add_tensor(m, &cap, &m->w.head, &m->g.head, c->vocab_padded, C, std, 1, "lm_head.weight");
        m->tensors[m->ntensors - 1].export_rows = c->vocab;
        if (sphere) set_unit(m, 0);
    }
    if (sphere) {
        add_tensor(m, &cap, &m->w.sz, &m->g.sz, c->vocab, 0, -1.0f, 0, "logit_scale");
        m->tensors[m->ntensors - 1].init_const = 1.0f / sphere_factor(c);
    }
}

/* N(0, std) in table order from the seed; constants for gains, zeros for biases and padded vocab rows.
 * Drawn on the host (the same numbers for every backend), then copied to the backend. */
static void init_params(nl_model *m) {
    nl_rng rng;
    nl_rng_seed(&rng, m->cfg.seed);
    const float beta = (float)nl_init_beta(&m->cfg);
    float *host = nl_xmalloc(m->nparams * sizeof(float));
    for (int i = 0; i < m->ntensors; i++) {
        const nl_tensor *t = &m->tensors[i];
        float *p = host + t->offset;
        const size_t rowlen = t->cols ? (size_t)t->cols : 1;
        for (size_t j = 0; j < t->numel; j++) {
            const int row = (int)(j / rowlen);
            if (t->init_std < 0) p[j] = t->init_const;
            else if (t->init_std == 0 || row >= t->export_rows) p[j] = 0.0f;
            else {
                p[j] = t->init_std * (float)nl_rng_normal(&rng);
                if (t->beta_row0 >= 0 && row >= t->beta_row0) p[j] *= beta;
            }
        }
    }
    m->be->from_host(m->params, host, m->nparams * sizeof(float));
    free(host);
}

nl_status nl_model_init(nl_model *m, const nl_config *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    NL_TRY(nl_config_resolve(&m->cfg));
    if (m->cfg.device == NL_DEVICE_CUDA) {
        if (m->cfg.dtype != NL_DTYPE_FP32)
            return NL_FAIL(NL_ERR_ARG,
                           "--device cuda runs --dtype fp32 only so far (bf16/fp16: the CPU backend's emulation)");
        if (m->cfg.arch == NL_ARCH_DIT)
            return NL_FAIL(NL_ERR_ARG,
                           "--device cuda: --arch dit has no CUDA kernels yet (bidirectional attention, adaLN); use the CPU");
        NL_TRY(nl_backend_cuda(&m->be));
    } else m->be = nl_backend_cpu_dtype((nl_dtype)m->cfg.dtype);
    const nl_config *c = &m->cfg;
    m->hs = c->dim / c->heads;
    m->kvC = m->hs * c->kv_heads;
    m->Q3 = c->dim + 2 * m->kvC;
    m->F = c->ffn_dim;
    m->FW = c->arch != NL_ARCH_GPT2 ? 2 * m->F : m->F;
    m->dit = c->arch == NL_ARCH_DIT;
    m->P = m->dit ? c->patch * c->patch * c->img_ch : 0;
    m->w.blocks = nl_xcalloc((size_t)m->cfg.layers * sizeof(nl_block_w));
    m->lowp = nl_xcalloc(2 * ((size_t)c->layers + 2) * sizeof *m->lowp);
    m->lowp_at = m->lowp;
    m->g.blocks = nl_xcalloc((size_t)m->cfg.layers * sizeof(nl_block_w));
    m->block_at = nl_xcalloc(((size_t)c->layers + 1) * sizeof *m->block_at);
    build_tensors(m);
    m->params = m->be->alloc(m->nparams * sizeof(float));
    m->grads = m->be->alloc(m->nparams * sizeof(float));
    m->m = m->be->alloc(m->nparams * sizeof(float));
    m->v = m->be->alloc(m->nparams * sizeof(float));
    for (int i = 0; i < m->ntensors; i++) {
        *m->tensors[i].slot_p = m->params + m->tensors[i].offset;
        *m->tensors[i].slot_g = m->grads + m->tensors[i].offset;
    }
    if (c->tie_head && !m->dit) m->w.head = m->w.wte, m->g.head = m->g.wte;
    for (int l = 0; l < c->layers; l++)
        NL_ASSERT(!m->w.blocks[l].up_w || m->w.blocks[l].up_w == m->w.blocks[l].fc_w + (size_t)m->F * c->dim);
    init_params(m);
    nl_model_project(m); /* ngpt: the initial rows on the unit sphere too */
    return NL_OK;
}

void nl_model_project(nl_model *m) {
    for (int i = 0; i < m->ntensors; i++) {
        const nl_tensor *t = &m->tensors[i];
        if (t->unit) m->be->unit_project(m->params + t->offset, (size_t)t->export_rows, t->cols, t->unit == 2);
    }
}

void nl_model_free(nl_model *m) {
    if (!m) return;
    if (m->be) {
        m->be->free(m->params);
        m->be->free(m->grads);
        m->be->free(m->m);
        m->be->free(m->v);
        m->be->free(m->acts);
        m->be->free(m->tok_inp);
    }
    free(m->tensors);
    free(m->w.blocks);
    free(m->g.blocks);
    free(m->sub);
    free(m->lowp);
    free(m->block_at);
    memset(m, 0, sizeof *m);
}

void nl_model_zero_grad(nl_model *m) { m->be->zero(m->grads, m->nparams * sizeof(float)); }

size_t nl_model_trainable_count(const nl_model *m) {
    size_t n = 0;
    for (int i = 0; i < m->ntensors; i++)
        if (m->tensors[i].trainable)
            n += (size_t)m->tensors[i].export_rows * (m->tensors[i].cols ? (size_t)m->tensors[i].cols : 1);
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
 * absent steps is decided here once. Returns the float count. */
static size_t plan_acts(nl_model *m, float *base, int B, int T) {
    const nl_config *c = &m->cfg;
    const size_t N = (size_t)B * T, C = (size_t)c->dim, NC = N * C, ATT = (size_t)B * c->heads * T * T;
    const size_t NQ = N * (size_t)m->Q3, NF = N * (size_t)m->F;
    const int rope = c->arch != NL_ARCH_GPT2, sphere = nl_placements[c->placement].sphere;
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
        for (int s = 0; s < NL_SUB_COUNT; s++) {
            const unsigned ms = nl_sub_sites(c, l + 1, s);
            nl_sub_acts *A = &m->sub[2 * l + s];
            memset(A, 0, sizeof *A);
            A->xin = x;
            A->u = x;
            if (ms & NL_SITE_IN) {
                A->u = take(base, &off, NC);
                A->u_mean = take(base, &off, N);
                A->u_rstd = take(base, &off, N);
            }
            A->um = m->dit ? take(base, &off, NC) : A->u;
            const int sdd = (ms & NL_WIRE_SDD) != 0;
            if (sdd) {
                A->sdd_mean = take(base, &off, 4 * N);
                A->sdd_rstd = take(base, &off, 4 * N);
            }
            if (s == NL_SUB_ATTN) {
                A->qkv_lin = A->qkv_raw = A->qkv = take(base, &off, NQ);
                if (sdd) A->qkv_raw = A->qkv = take(base, &off, NQ);
                const int nq = qkv_norm_count(ms);
                if (nq || rope) A->qkv = take(base, &off, NQ);
                for (int j = 0; j < nq; j++) {
                    const size_t rows = N * (size_t)qkv_cols(m, j) / (size_t)qkv_norm_width(m, ms, j);
                    A->qn_mean[j] = take(base, &off, rows);
                    A->qn_rstd[j] = take(base, &off, rows);
                }
                A->att = take(base, &off, ATT);
                A->atty_raw = A->atty = take(base, &off, NC);
                if (ms & NL_WIRE_HSCALE) A->atty = take(base, &off, NC);
            } else {
                A->fch_lin = A->fch = take(base, &off, N * (size_t)m->FW);
                if (sdd || sphere) A->fch = take(base, &off, N * (size_t)m->FW);
                A->fgelu = A->fgn = take(base, &off, NF);
                if (ms & NL_WIRE_FCNORM) {
                    A->fgn = take(base, &off, NF);
                    A->fn_mean = take(base, &off, N);
                    A->fn_rstd = take(base, &off, N);
                }
            }
            A->a_lin = A->a = A->o = take(base, &off, NC);
            if (sdd) A->a = A->o = take(base, &off, NC);
            if (ms & NL_SITE_OUT) {
                A->o = take(base, &off, NC);
                A->o_mean = take(base, &off, N);
                A->o_rstd = take(base, &off, N);
            }
            A->ob = A->o;
            if (c->skip_init) A->ob = take(base, &off, NC);
            A->og = m->dit ? take(base, &off, NC) : A->ob;
            A->z = A->xout = take(base, &off, NC);
            if (ms & NL_SITE_POST) {
                A->xout = take(base, &off, NC);
                A->p_mean = take(base, &off, N);
                A->p_rstd = take(base, &off, N);
            } else if (ms & NL_WIRE_GPAS) { /* z is kept: the gate's gradient reads it */
                A->xout = take(base, &off, NC);
            }
            x = A->xout;
        }
    }
    m->xf = x;
    m->r = nl_placements[c->placement].dual ? take(base, &off, NC) : NULL;
    if (c->final_norm) {
        m->xf = take(base, &off, NC);
        m->f_mean = take(base, &off, N);
        m->f_rstd = take(base, &off, N);
    }
    m->logits = take(base, &off, N * (size_t)c->vocab_padded);
    m->lraw = sphere ? take(base, &off, N * (size_t)c->vocab_padded) : NULL;
    m->dbase = sphere ? take(base, &off, NC) : NULL;
    m->losses = take(base, &off, N);
    m->gA = take(base, &off, NC);
    m->gB = take(base, &off, NC);
    m->dz = take(base, &off, NC);
    m->da = take(base, &off, NC);
    m->du = take(base, &off, NC);
    m->dqkv = take(base, &off, NQ);
    m->datt = take(base, &off, ATT);
    m->datty = take(base, &off, NC);
    m->dfch = take(base, &off, N * (size_t)m->FW);
    m->dfgelu = take(base, &off, NF);
    m->dob = take(base, &off, NC);
    m->dr = take(base, &off, NC);
    m->db2t = take(base, &off, NC);
    m->sx = take(base, &off, NC);
    m->sy = take(base, &off, NC);
    m->sd = take(base, &off, NC);
    m->dfgn = take(base, &off, NF);
    m->geff = take(base, &off, C > (size_t)m->F ? C : (size_t)m->F);
    m->dsdd = m->gx = m->gy = m->gd = NULL;
    if (c->sdd) {
        const size_t NFW = N * (size_t)m->FW, NG = N * (C > (size_t)m->F ? C : (size_t)m->F);
        m->dsdd = take(base, &off, NQ > NFW ? (NQ > NC ? NQ : NC) : (NFW > NC ? NFW : NC));
        m->gx = take(base, &off, NG);
        m->gy = take(base, &off, NG);
        m->gd = take(base, &off, NG);
    }
    m->rope_cos = m->rope_sin = NULL;
    if (rope) {
        m->rope_cos = take(base, &off, (size_t)T * m->hs / 2);
        m->rope_sin = take(base, &off, (size_t)T * m->hs / 2);
    }
    if (m->dit) {
        const size_t BC = (size_t)B * C, P = (size_t)m->P, NM = (size_t)c->layers * B * 6 * C + 2 * BC;
        const size_t BTF = (size_t)B * NL_DIT_TFREQ, NP = N * P;
        m->dit_x = take(base, &off, NP);
        m->dit_v = take(base, &off, NP);
        m->dit_tf = take(base, &off, BTF);
        m->dit_h1 = take(base, &off, BC);
        m->dit_s1 = take(base, &off, BC);
        m->dit_cv = take(base, &off, BC);
        m->dit_sc = take(base, &off, BC);
        m->dit_mod = take(base, &off, NM);
        m->dit_dmod = take(base, &off, NM);
        m->dit_fm = take(base, &off, NC);
        m->dit_out = take(base, &off, NP);
        m->dit_dsc = take(base, &off, BC);
        m->dit_db = take(base, &off, NP > BTF + BC ? NP : BTF + BC);
    }
    return off;
}

void nl_model_alloc_acts(nl_model *m, int B, int T) {
    NL_ASSERT(B > 0 && T > 0 && T <= m->cfg.seq_len);
    m->be->free(m->acts);
    m->be->free(m->tok_inp);
    free(m->sub);
    m->sub = nl_xcalloc((size_t)m->cfg.layers * NL_SUB_COUNT * sizeof(nl_sub_acts));
    size_t n = plan_acts(m, NULL, B, T);
    m->acts = m->be->alloc(n * sizeof(float));
    plan_acts(m, m->acts, B, T);
    m->tok_inp = m->be->alloc(2 * (size_t)B * T * sizeof(int));
    m->tok_tgt = m->tok_inp + (size_t)B * T;
    m->B = B;
    m->T = T;
    if (m->dit) nl_dit_rope_table(m);
    else if (m->rope_cos) m->be->rope_table(m->rope_cos, m->rope_sin, T, m->hs, m->cfg.rope_theta);
}

/* ---------------------------------------------------------------- activations in the dtype */

/* Stores the n values of activation (or activation gradient) x in the backend's dtype, counting into
 * the current part: rule 3 of docs/numerics.md. Nothing happens in fp32. */
static void store(const nl_model *m, float *x, size_t n) {
    if (m->be->dtype != NL_DTYPE_FP32) m->be->round_act(x, n, m->lowp_at);
}

/* the counter of part i (0 embedding, 1..L blocks, L+1 head), forward (bwd 0) or backward */
static void count_at(nl_model *m, int part, int bwd) { m->lowp_at = &m->lowp[2 * part + bwd]; }

/* ---------------------------------------------------------------- norms of every type */

/* The gain a norm of width C applies: its parameter, or (gain offset) the parameter + its init. */
static const float *eff_gain(const nl_model *m, const nl_normw *p, int C) {
    if (!nl_placements[m->cfg.placement].gain_offset) return p->w;
    const int type = m->cfg.norm_type, n = type == NL_SCALENORM ? 1 : C;
    m->be->scale_shift(m->geff, p->w, 1.0f, gain_init(type, C), (size_t)n);
    return m->geff;
}

double nl_norm_gain_mean(const nl_model *m, const nl_normw *p) {
    const int type = m->cfg.norm_type, C = m->cfg.dim, n = type == NL_SCALENORM ? 1 : C;
    const double g0 = nl_placements[m->cfg.placement].gain_offset ? gain_init(type, C) : 0.0;
    if (!p->w) return 1.0; /* x/|x| (ngpt): no gain */
    return m->be->sum(p->w, (size_t)n) / n + g0;
}

/* out = scale * N(x) over rows of C; s0, s1 keep the statistics backward needs. */
static void norm_fwd(const nl_model *m, float *out, float *s0, float *s1, const float *x, const nl_normw *p,
                     float scale, size_t N, int C) {
    const float eps = (float)m->cfg.eps, *w = eff_gain(m, p, C);
    switch (m->cfg.norm_type) {
    case NL_LAYERNORM:
    case NL_RMSNORM: m->be->norm_forward(out, s0, s1, x, w, p->b, scale, m->cfg.norm_type, eps, N, C); break;
    case NL_SCALENORM: m->be->scalenorm_forward(out, s1, x, w, scale, eps, N, C); break;
    case NL_DYT: m->be->dyt_forward(out, x, w, p->b, p->alpha, scale, N, C); break;
    case NL_SEEDNORM: m->be->seednorm_forward(out, s0, s1, x, w, p->alpha, p->beta, scale, eps, N, C); break;
    case NL_CRMSNORM: m->be->crmsnorm_forward(out, s0, s1, x, w, scale, eps, N, C); break;
    case NL_L2NORM: m->be->l2norm_forward(out, s1, x, NULL, scale, N, C, C); break;
    default: NL_ASSERT(0);
    }
    store(m, out, N * (size_t)C);
}

/* dx += J^T dy; parameter gradients into gp. x is the norm's input. */
static void norm_bwd(const nl_model *m, float *dx, const nl_normw *gp, const float *dy, const float *x,
                     const nl_normw *p, const float *s0, const float *s1, float scale, size_t N, int C) {
    const float *w = eff_gain(m, p, C);
    switch (m->cfg.norm_type) {
    case NL_LAYERNORM:
    case NL_RMSNORM: m->be->norm_backward(dx, gp->w, gp->b, dy, x, w, s0, s1, scale, m->cfg.norm_type, N, C); break;
    case NL_SCALENORM: m->be->scalenorm_backward(dx, gp->w, dy, x, w, s1, scale, N, C); break;
    case NL_DYT: m->be->dyt_backward(dx, gp->w, gp->b, gp->alpha, dy, x, w, p->alpha, scale, N, C); break;
    case NL_SEEDNORM:
        m->be->seednorm_backward(dx, gp->w, gp->alpha, gp->beta, dy, x, w, p->alpha, p->beta, s0, s1, scale, N, C);
        break;
    case NL_CRMSNORM: m->be->crmsnorm_backward(dx, gp->w, dy, x, w, s0, s1, scale, N, C); break;
    case NL_L2NORM: m->be->l2norm_backward(dx, NULL, dy, x, NULL, s1, scale, N, C, C); break;
    default: NL_ASSERT(0);
    }
    store(m, dx, N * (size_t)C);
}

/* columns [c0, c0+C) of an (N, ld) array <-> a contiguous (N, C) array */
static void gather_cols(const nl_model *m, float *dst, const float *src, size_t N, int C, int ld, int c0) {
    m->be->copy_cols(dst, C, src + c0, ld, N, C);
}
static void scatter_cols(const nl_model *m, float *dst, const float *src, size_t N, int C, int ld, int c0) {
    m->be->copy_cols(dst + c0, ld, src, C, N, C);
}

/* ---------------------------------------------------------------- SDD: alpha * RMSNorm of a linear output */

/* The ng column groups of an (N, ld) linear output that SDD normalises separately (as separate layers in
 * the paper: q, k, v of the fused projection; llama's gate and up), their widths into wd. */
static int sdd_groups(const nl_model *m, int s, int input_layer, int wd[3]) {
    if (!input_layer) return wd[0] = m->cfg.dim, 1;
    if (s == NL_SUB_ATTN) return wd[0] = m->cfg.dim, wd[1] = wd[2] = m->kvC, 3;
    wd[0] = wd[1] = m->F;
    return m->FW / m->F;
}

/* y = alpha * RMSNorm(x) per row of each group (eps --eps, no bias); statistics of group j at j N. */
static void sdd_fwd(const nl_model *m, float *y, float *mean, float *rstd, const float *x, const float *alpha, size_t N,
                    int ld, const int *wd, int ng) {
    const float eps = (float)m->cfg.eps;
    if (ng == 1) m->be->norm_forward(y, mean, rstd, x, alpha, NULL, 1.0f, NL_RMSNORM, eps, N, ld);
    for (int j = 0, c0 = 0; ng > 1 && j < ng; c0 += wd[j++]) {
        gather_cols(m, m->gx, x, N, wd[j], ld, c0);
        m->be->norm_forward(m->gy, mean + j * N, rstd + j * N, m->gx, alpha + c0, NULL, 1.0f, NL_RMSNORM, eps, N, wd[j]);
        scatter_cols(m, y, m->gy, N, wd[j], ld, c0);
    }
    store(m, y, N * (size_t)ld);
}

/* dx = J^T dy (overwritten), dalpha accumulated; x is the linear output sdd_fwd normalised. */
static void sdd_bwd(const nl_model *m, float *dx, float *dalpha, const float *dy, const float *x, const float *alpha,
                    const float *mean, const float *rstd, size_t N, int ld, const int *wd, int ng) {
    if (ng == 1) {
        m->be->zero(dx, N * (size_t)ld * sizeof(float));
        m->be->norm_backward(dx, dalpha, NULL, dy, x, alpha, mean, rstd, 1.0f, NL_RMSNORM, N, ld);
    }
    for (int j = 0, c0 = 0; ng > 1 && j < ng; c0 += wd[j++]) {
        gather_cols(m, m->gd, dy, N, wd[j], ld, c0);
        gather_cols(m, m->gx, x, N, wd[j], ld, c0);
        m->be->zero(m->gy, N * (size_t)wd[j] * sizeof(float));
        m->be->norm_backward(m->gy, dalpha + c0, NULL, m->gd, m->gx, alpha + c0, mean + j * N, rstd + j * N, 1.0f,
                             NL_RMSNORM, N, wd[j]);
        scatter_cols(m, dx, m->gy, N, wd[j], ld, c0);
    }
    store(m, dx, N * (size_t)ld);
}

/* ---------------------------------------------------------------- forward */

float nl_model_forward(nl_model *m, const int *inp, const int *tgt, int B, int T, float dscale) {
    const nl_config *c = &m->cfg;
    NL_ASSERT(m->acts && B <= m->B && T <= m->T && B * T <= m->B * m->T);
    const size_t N = (size_t)B * T, NC = N * (size_t)c->dim;
    const int C = c->dim;
    /* the plan was made for (m->B, m->T); smaller calls reuse its buffers (only attention's
     * per-head layout depends on T, and it is indexed with the T passed here) */
    const float alpha = (float)nl_res_alpha(c), es = (float)nl_emb_scale(c);
    const int sphere = nl_placements[c->placement].sphere;
    const float sf = sphere_factor(c), alpha_f = sphere ? sphere_factor_alpha(c) : 0.0f; /* ngpt's scale factors */
    const nl_backend *be = m->be;
    be->enter();
    if (inp) be->from_host(m->tok_inp, inp, N * sizeof(int)); /* dit: nl_dit_forward staged its inputs */
    if (tgt) be->from_host(m->tok_tgt, tgt, N * sizeof(int));
    m->fB = B;
    m->fT = T;

    count_at(m, 0, 0);
    if (m->dit) nl_dit_embed_forward(m, B); /* patches -> emb; conditioning and every adaLN output */
    else be->encoder_forward(m->emb, m->tok_inp, m->w.wte, m->w.wpe, B, T, C);
    if (es != 1.0f) be->scale_shift(m->emb, m->emb, es, 0.0f, NC);
    store(m, m->emb, NC);
    if (c->emb_norm) norm_fwd(m, m->embn, m->e_mean, m->e_rstd, m->emb, &m->w.embn, 1.0f, N, C);
    if (m->r) be->copy(m->r, m->sub[0].xin, NC * sizeof(float));

    for (int l = 0; l < c->layers; l++) {
        const float scale = (float)nl_block_in_scale(c, l + 1);
        const nl_block_w *w = &m->w.blocks[l];
        count_at(m, l + 1, 0);
        if (l + 1 == m->skip_block) { /* layer removal (normlab analyze): the block's output is its input */
            be->copy(m->sub[2 * l + 1].xout, m->sub[2 * l].xin, NC * sizeof(float));
            continue;
        }
        for (int s = 0; s < NL_SUB_COUNT; s++) {
            const unsigned ms = nl_sub_sites(c, l + 1, s);
            nl_sub_acts *A = &m->sub[2 * l + s];
            if (ms & NL_SITE_IN) norm_fwd(m, A->u, A->u_mean, A->u_rstd, A->xin, &w->norm[s][0], scale, N, C);
            const float *mod = m->dit ? nl_dit_mod(m, l, B) + 3 * s * C : NULL;        /* shift | scale | gate */
            if (mod) be->ada_forward(A->um, A->u, mod + C, mod, 6 * C, 1.0f, B, T, C); /* u (1 + scale) + shift */
            int wd[3], ng;
            if (s == NL_SUB_ATTN) {
                be->linear_forward(A->qkv_lin, A->um, w->qkv_w, w->qkv_b, N, C, m->Q3);
                store(m, A->qkv_lin, N * (size_t)m->Q3);
                if (ms & NL_WIRE_SDD) {
                    ng = sdd_groups(m, s, 1, wd);
                    sdd_fwd(m, A->qkv_raw, A->sdd_mean, A->sdd_rstd, A->qkv_lin, w->qkv_sdd, N, m->Q3, wd, ng);
                }
                const int nq = qkv_norm_count(ms);
                if (m->rope_cos && sphere) { /* ngpt rotates before its q/k norms (s_qk is per channel) */
                    be->rope_forward(A->qkv_raw, A->qkv_raw, m->rope_cos, m->rope_sin, B, T, m->Q3, C + m->kvC, m->hs);
                    store(m, A->qkv_raw, N * (size_t)m->Q3);
                }
                for (int j = 0; nq && j < 3; j++) { /* q/k/v norms: qkv_raw -> qkv, group by group */
                    const int cj = qkv_cols(m, j), G = qkv_norm_width(m, ms, j);
                    gather_cols(m, m->sx, A->qkv_raw, N, cj, m->Q3, qkv_col0(m, j));
                    if (j < nq && sphere) { /* ngpt eqs. 15-16: s_qk Norm(q), s_qk Norm(k); x hs for the sqrt(hs) scale */
                        be->l2norm_forward(m->sy, A->qn_rstd[j], m->sx, w->sqk, j == 0 ? sf * (float)m->hs : sf, N, cj,
                                           G);
                        store(m, m->sy, N * (size_t)cj);
                    } else if (j < nq)
                        norm_fwd(m, m->sy, A->qn_mean[j], A->qn_rstd[j], m->sx, &w->qkvn[j], 1.0f, N * cj / G, G);
                    scatter_cols(m, A->qkv, j < nq ? m->sy : m->sx, N, cj, m->Q3, qkv_col0(m, j));
                }
                if (m->rope_cos && !sphere) { /* rotary positions on q and k (columns [0, C + kvC)), v copied */
                    be->rope_forward(A->qkv, nq ? A->qkv : A->qkv_raw, m->rope_cos, m->rope_sin, B, T, m->Q3,
                                     C + m->kvC, m->hs);
                    store(m, A->qkv, N * (size_t)m->Q3);
                }
                if (m->dit) be->attention_bidir_forward(A->atty_raw, A->att, A->qkv, B, T, C, c->heads, c->kv_heads);
                else be->attention_forward(A->atty_raw, A->att, A->qkv, B, T, C, c->heads, c->kv_heads);
                store(m, A->atty_raw, NC);
                if (ms & NL_WIRE_HSCALE) {
                    be->headscale_forward(A->atty, A->atty_raw, w->hscale, N, C, c->heads);
                    store(m, A->atty, NC);
                }
                be->linear_forward(A->a_lin, A->atty, w->proj_w, w->proj_b, N, C, C);
            } else {
                be->linear_forward(A->fch_lin, A->um, w->fc_w, w->fc_b, N, C, m->FW);
                store(m, A->fch_lin, N * (size_t)m->FW);
                if (sphere) { /* ngpt eqs. 20-21: s_uv sqrt(d) on the products that enter the activation */
                    be->colscale_forward(A->fch, A->fch_lin, w->suv, sf, N, m->FW, m->FW);
                    store(m, A->fch, N * (size_t)m->FW);
                }
                if (ms & NL_WIRE_SDD) {
                    ng = sdd_groups(m, s, 1, wd);
                    sdd_fwd(m, A->fch, A->sdd_mean, A->sdd_rstd, A->fch_lin, w->fc_sdd, N, m->FW, wd, ng);
                }
                if (w->up_w) be->swiglu_forward(A->fgelu, A->fch, N, m->F);
                else be->gelu_forward(A->fgelu, A->fch, N * m->F);
                store(m, A->fgelu, N * (size_t)m->F);
                if (ms & NL_WIRE_FCNORM) norm_fwd(m, A->fgn, A->fn_mean, A->fn_rstd, A->fgelu, &w->fcn, 1.0f, N, m->F);
                be->linear_forward(A->a_lin, A->fgn, w->mproj_w, w->mproj_b, N, m->F, C);
            }
            store(m, A->a_lin, NC);
            if (ms & NL_WIRE_SDD) {
                ng = sdd_groups(m, s, 0, wd);
                sdd_fwd(m, A->a, A->sdd_mean + 3 * N, A->sdd_rstd + 3 * N, A->a_lin,
                        s == NL_SUB_ATTN ? w->proj_sdd : w->mproj_sdd, N, C, wd, ng);
            }
            if (ms & NL_SITE_OUT) norm_fwd(m, A->o, A->o_mean, A->o_rstd, A->a, &w->norm[s][1], 1.0f, N, C);
            if (c->skip_init) {
                be->gain_forward(A->ob, A->o, w->skip[s], NC);
                store(m, A->ob, NC);
            }
            if (mod) be->ada_forward(A->og, A->ob, mod + 2 * C, NULL, 6 * C, 0.0f, B, T, C); /* gate * ob */
            const float *base = (ms & NL_WIRE_RES_IN) ? A->u : A->xin;
            if (ms & NL_WIRE_LAMRES) be->chanres_forward(A->z, base, A->og, w->lam, N, C);
            else if (sphere) be->lerp_forward(A->z, base, A->og, w->eigen[s], alpha_f, N, C); /* ngpt eqs. 10-11 */
            else be->residual_forward(A->z, base, A->og, alpha, NC);
            if (ms & NL_WIRE_B2T) be->residual_forward(A->z, m->sub[2 * l].xin, A->z, 1.0f, NC);
            store(m, A->z, NC);
            if (m->r) {
                be->residual_forward(m->r, m->r, A->og, 1.0f, NC);
                store(m, m->r, NC);
            }
            if (ms & NL_SITE_POST) norm_fwd(m, A->xout, A->p_mean, A->p_rstd, A->z, &w->norm[s][2], 1.0f, N, C);
            if (ms & NL_WIRE_GPAS) { /* x' = z - SiLU(a_l) sg(z) (GPAS, arXiv:2506.22049; no POST site here) */
                be->gpas_forward(A->xout, A->z, w->gpas, NC);
                store(m, A->xout, NC);
            }
        }
    }
    const float *xl = m->sub[2 * c->layers - 1].xout;
    count_at(m, c->layers + 1, 0);
    if (m->r) { /* ResiDual: x_L + N_f(r) */
        norm_fwd(m, m->xf, m->f_mean, m->f_rstd, m->r, &m->w.finn, 1.0f, N, C);
        be->residual_forward(m->xf, xl, m->xf, 1.0f, NC);
        store(m, m->xf, NC);
    } else if (c->final_norm) {
        norm_fwd(m, m->xf, m->f_mean, m->f_rstd, xl, &m->w.finn, 1.0f, N, C);
    }

    if (m->dit) return nl_dit_head_forward(m, B, dscale); /* final adaLN, linear, flow-matching loss */
    /* head over the real vocabulary: logits (N, V) with row stride Vp */
    if (sphere) { /* ngpt eqs. 1, 3: s_z on the logits of unit vectors */
        be->gemm(0, 1, (int)N, c->vocab, C, 1.0f, m->xf, C, m->w.head, C, 0.0f, m->lraw, c->vocab_padded);
        store(m, m->lraw, N * (size_t)c->vocab_padded);
        be->colscale_forward(m->logits, m->lraw, m->w.sz, sf, N, c->vocab, c->vocab_padded);
    } else {
        be->gemm(0, 1, (int)N, c->vocab, C, 1.0f, m->xf, C, m->w.head, C, 0.0f, m->logits, c->vocab_padded);
    }
    store(m, m->logits, N * (size_t)c->vocab_padded);
    if (!tgt) return 0.0f;
    be->xent(m->losses, m->logits, m->tok_tgt, N, c->vocab, c->vocab_padded, dscale);
    if (dscale != 0.0f) { /* dlogits, the input of the head's backward products */
        count_at(m, c->layers + 1, 1);
        store(m, m->logits, N * (size_t)c->vocab_padded);
    }
    return (float)(be->sum(m->losses, N) / (double)N);
}

/* ---------------------------------------------------------------- backward */

/* the gradients of [lo, hi) are final: tell the caller (model.h, grad_ready) */
/* dit: the adaLN gradients of every block are only final after nl_dit_embed_backward, so its
 * backward reports one range, [0, nparams), at the end */
static void grads_ready(const nl_model *m, size_t lo, size_t hi) {
    if (m->grad_ready && !m->dit && lo < hi) m->grad_ready(m->grad_ready_arg, lo, hi);
}

/* The branch's input projection backward: dy = dL/d(its output) (through SDD's norm when wired, whose
 * statistics are the first ones of A) -> m->du = dL/du, with the projection's gradients. */
static void input_linear_backward(nl_model *m, const nl_sub_acts *A, int s, unsigned ms, const float *dy,
                                  const float *lin, const float *wsdd, float *gsdd, const float *W, float *gW,
                                  float *gb, size_t N, int K) {
    if (ms & NL_WIRE_SDD) {
        int wd[3];
        const int ng = sdd_groups(m, s, 1, wd);
        sdd_bwd(m, m->dsdd, gsdd, dy, lin, wsdd, A->sdd_mean, A->sdd_rstd, N, K, wd, ng);
        dy = m->dsdd;
    }
    m->be->linear_backward(m->du, gW, gb, dy, A->um, W, N, m->cfg.dim, K);
}

/* da = dL/d(branch output a) -> m->du = dL/du, parameter gradients of the branch. */
static void branch_backward(nl_model *m, const nl_sub_acts *A, int s, unsigned ms, const nl_block_w *w, nl_block_w *g,
                            const float *da, size_t N) {
    const int C = m->cfg.dim, NH = m->cfg.heads, sphere = nl_placements[m->cfg.placement].sphere;
    const float sf = sphere_factor(&m->cfg);
    const nl_backend *be = m->be;
    if (ms & NL_WIRE_SDD) { /* da -> gradient of the output projection's linear output */
        int wd[3];
        const int ng = sdd_groups(m, s, 0, wd);
        sdd_bwd(m, m->dsdd, s == NL_SUB_ATTN ? g->proj_sdd : g->mproj_sdd, da, A->a_lin,
                s == NL_SUB_ATTN ? w->proj_sdd : w->mproj_sdd, A->sdd_mean + 3 * N, A->sdd_rstd + 3 * N, N, C, wd, ng);
        da = m->dsdd;
    }
    if (s == NL_SUB_ATTN) {
        be->linear_backward(m->datty, g->proj_w, g->proj_b, da, A->atty, w->proj_w, N, C, C);
        store(m, m->datty, N * (size_t)C);
        const float *dh = m->datty;
        if (ms & NL_WIRE_HSCALE) {
            be->headscale_backward(m->sx, g->hscale, m->datty, A->atty_raw, w->hscale, N, C, NH);
            store(m, m->sx, N * (size_t)C);
            dh = m->sx;
        }
        if (m->dit)
            be->attention_bidir_backward(m->dqkv, m->datt, dh, A->qkv, A->att, m->fB, m->fT, C, NH, m->cfg.kv_heads);
        else be->attention_backward(m->dqkv, m->datt, dh, A->qkv, A->att, m->fB, m->fT, C, NH, m->cfg.kv_heads);
        store(m, m->dqkv, N * (size_t)m->Q3);
        if (m->rope_cos && !sphere) {
            be->rope_backward(m->dqkv, m->rope_cos, m->rope_sin, m->fB, m->fT, m->Q3, C + m->kvC, m->hs);
            store(m, m->dqkv, N * (size_t)m->Q3);
        }
        for (int j = 0; j < qkv_norm_count(ms); j++) {
            const int cj = qkv_cols(m, j), G = qkv_norm_width(m, ms, j);
            gather_cols(m, m->sd, m->dqkv, N, cj, m->Q3, qkv_col0(m, j));
            gather_cols(m, m->sx, A->qkv_raw, N, cj, m->Q3, qkv_col0(m, j));
            be->zero(m->sy, N * cj * sizeof(float));
            if (sphere) {
                be->l2norm_backward(m->sy, g->sqk, m->sd, m->sx, w->sqk, A->qn_rstd[j], j == 0 ? sf * (float)m->hs : sf,
                                    N, cj, G);
                store(m, m->sy, N * (size_t)cj);
            } else
                norm_bwd(m, m->sy, &g->qkvn[j], m->sd, m->sx, &w->qkvn[j], A->qn_mean[j], A->qn_rstd[j], 1.0f,
                         N * cj / G, G);
            scatter_cols(m, m->dqkv, m->sy, N, cj, m->Q3, qkv_col0(m, j));
        }
        if (m->rope_cos && sphere) { /* ngpt: the rotation came before the q/k norms */
            be->rope_backward(m->dqkv, m->rope_cos, m->rope_sin, m->fB, m->fT, m->Q3, C + m->kvC, m->hs);
            store(m, m->dqkv, N * (size_t)m->Q3);
        }
        input_linear_backward(m, A, s, ms, m->dqkv, A->qkv_lin, w->qkv_sdd, g->qkv_sdd, w->qkv_w, g->qkv_w, g->qkv_b, N,
                              m->Q3);
    } else {
        const int F = m->F;
        float *dh = (ms & NL_WIRE_FCNORM) ? m->dfgn : m->dfgelu;
        be->linear_backward(dh, g->mproj_w, g->mproj_b, da, A->fgn, w->mproj_w, N, F, C);
        store(m, dh, N * (size_t)F);
        if (ms & NL_WIRE_FCNORM) {
            be->zero(m->dfgelu, N * F * sizeof(float));
            norm_bwd(m, m->dfgelu, &g->fcn, m->dfgn, A->fgelu, &w->fcn, A->fn_mean, A->fn_rstd, 1.0f, N, F);
        }
        if (w->up_w) be->swiglu_backward(m->dfch, A->fch, m->dfgelu, N, F);
        else be->gelu_backward(m->dfch, A->fch, m->dfgelu, N * F);
        store(m, m->dfch, N * (size_t)m->FW);
        if (sphere) {
            be->colscale_backward(m->dfch, g->suv, m->dfch, A->fch_lin, w->suv, sf, N, m->FW, m->FW);
            store(m, m->dfch, N * (size_t)m->FW);
        }
        input_linear_backward(m, A, s, ms, m->dfch, A->fch_lin, w->fc_sdd, g->fc_sdd, w->fc_w, g->fc_w, g->fc_b, N,
                              m->FW);
    }
    store(m, m->du, N * (size_t)C);
}

void nl_model_backward(nl_model *m) {
    const nl_config *c = &m->cfg;
    const size_t N = (size_t)m->fB * m->fT, C = (size_t)c->dim, NC = N * C;
    const float alpha = (float)nl_res_alpha(c), es = (float)nl_emb_scale(c);
    const nl_backend *be = m->be;
    NL_ASSERT(m->skip_block == 0);
    be->enter();

    /* head: logits holds dL/dlogits; dxf = dlogits @ head, dhead += dlogits^T @ xf */
    float *g = m->gA, *gnext = m->gB;
    const int sphere = nl_placements[c->placement].sphere;
    const float alpha_f = sphere ? sphere_factor_alpha(c) : 0.0f;
    count_at(m, c->layers + 1, 1);
    if (m->dit) nl_dit_head_backward(m, g); /* dit: the final layer's backward gives dL/dxf */
    else {
        if (sphere) { /* s_z: dlogits -> d(raw logits) in place, ds_z */
            be->colscale_backward(m->logits, m->g.sz, m->logits, m->lraw, m->w.sz, sphere_factor(c), N, c->vocab,
                                  c->vocab_padded);
            store(m, m->logits, N * (size_t)c->vocab_padded);
        }
        be->gemm(0, 0, (int)N, (int)C, c->vocab, 1.0f, m->logits, c->vocab_padded, m->w.head, (int)C, 0.0f, g, (int)C);
        store(m, g, NC);
        be->gemm(1, 0, c->vocab, (int)C, (int)N, 1.0f, m->logits, c->vocab_padded, m->xf, (int)C, 1.0f, m->g.head,
                 (int)C);
    }
    const float *xl = m->sub[2 * c->layers - 1].xout;
    if (m->r) { /* x_L + N_f(r): g reaches x_L unchanged and r through N_f; r feeds every branch */
        be->zero(m->dr, NC * sizeof(float));
        norm_bwd(m, m->dr, &m->g.finn, g, m->r, &m->w.finn, m->f_mean, m->f_rstd, 1.0f, N, (int)C);
    } else if (c->final_norm) {
        be->zero(gnext, NC * sizeof(float));
        norm_bwd(m, gnext, &m->g.finn, g, xl, &m->w.finn, m->f_mean, m->f_rstd, 1.0f, N, (int)C);
        float *t = g;
        g = gnext;
        gnext = t;
    }
    grads_ready(m, m->block_at[c->layers], m->nparams);

    for (int l = c->layers - 1; l >= 0; l--) {
        const float scale = (float)nl_block_in_scale(c, l + 1);
        const nl_block_w *w = &m->w.blocks[l];
        nl_block_w *gw = &m->g.blocks[l];
        int b2t = 0;
        count_at(m, l + 1, 1);
        for (int s = NL_SUB_COUNT - 1; s >= 0; s--) {
            const unsigned ms = nl_sub_sites(c, l + 1, s);
            const nl_sub_acts *A = &m->sub[2 * l + s];
            /* g = dL/dxout */
            const float *dz = g;
            /* GPAS: dL/dz = g unchanged (the stop-gradient), the gate collects -SiLU'(a) sum(g z) */
            if (ms & NL_WIRE_GPAS) be->gpas_backward(gw->gpas, g, A->z, w->gpas, NC);
            if (ms & NL_SITE_POST) {
                be->zero(m->dz, NC * sizeof(float));
                norm_bwd(m, m->dz, &gw->norm[s][2], g, A->z, &w->norm[s][2], A->p_mean, A->p_rstd, 1.0f, N, (int)C);
                dz = m->dz;
            }
            if (ms & NL_WIRE_B2T) { /* the block input's share, added after the attention sublayer */
                be->copy(m->db2t, dz, NC * sizeof(float));
                b2t = 1;
            }
            /* identity path (from u for RES_IN: then it joins the branch gradient below) */
            const int res_in = (ms & NL_WIRE_RES_IN) && (ms & NL_SITE_IN);
            if (res_in) be->zero(gnext, NC * sizeof(float));
            else if (ms & NL_WIRE_LAMRES) be->chanres_backward(gnext, gw->lam, dz, A->xin, w->lam, N, (int)C);
            else be->scale_shift(gnext, dz, alpha, 0.0f, NC);
            store(m, gnext, NC);
            /* gradient of the branch output ob: dz, plus ResiDual's dr, through the skip gain */
            const float *dob = dz;
            const float *mod = m->dit ? nl_dit_mod(m, l, m->fB) + 3 * s * C : NULL;
            float *dmod = m->dit ? m->dit_dmod + (mod - m->dit_mod) : NULL;
            if (m->r || c->skip_init || mod) {
                if (m->r) be->residual_forward(m->dob, m->dr, dz, 1.0f, NC);
                else be->copy(m->dob, dz, NC * sizeof(float));
                if (mod)
                    be->ada_backward(m->dob, dmod + 2 * C, NULL, m->dob, A->ob, mod + 2 * C, 6 * (int)C, 0.0f, m->fB,
                                     m->fT, (int)C);
                if (c->skip_init) be->gain_backward(m->dob, gw->skip[s], m->dob, A->o, w->skip[s], NC);
                store(m, m->dob, NC);
                dob = m->dob;
            }
            if (sphere) { /* z = u + |a| (o - u): the base's share into dbase, the branch output's into dob */
                be->lerp_backward(m->dbase, m->dob, gw->eigen[s], dz, A->u, A->ob, w->eigen[s], alpha_f, N, (int)C);
                store(m, m->dbase, NC);
                store(m, m->dob, NC);
                dob = m->dob;
            }
            const float *da = dob;
            if (ms & NL_SITE_OUT) {
                be->zero(m->da, NC * sizeof(float));
                norm_bwd(m, m->da, &gw->norm[s][1], dob, A->a, &w->norm[s][1], A->o_mean, A->o_rstd, 1.0f, N, (int)C);
                da = m->da;
            }
            branch_backward(m, A, s, ms, w, gw, da, N);
            if (mod) /* du was d/d(um): through the modulation to u */
                be->ada_backward(m->du, dmod + C, dmod, m->du, A->u, mod + C, 6 * (int)C, 1.0f, m->fB, m->fT, (int)C);
            if (res_in) {
                be->residual_forward(m->du, sphere ? m->dbase : dz, m->du, sphere ? 1.0f : alpha, NC);
                store(m, m->du, NC);
            }
            if (ms & NL_SITE_IN)
                norm_bwd(m, gnext, &gw->norm[s][0], m->du, A->xin, &w->norm[s][0], A->u_mean, A->u_rstd, scale, N,
                         (int)C);
            else be->residual_forward(gnext, gnext, m->du, 1.0f, NC);
            if (s == NL_SUB_ATTN && b2t) be->residual_forward(gnext, gnext, m->db2t, 1.0f, NC);
            store(m, gnext, NC);
            float *t = g;
            g = gnext;
            gnext = t;
        }
        grads_ready(m, m->block_at[l], m->block_at[l + 1]);
    }
    count_at(m, 0, 1);
    if (m->r) {
        be->residual_forward(g, g, m->dr, 1.0f, NC);
        store(m, g, NC);
    }
    if (c->emb_norm) {
        be->zero(gnext, NC * sizeof(float));
        norm_bwd(m, gnext, &m->g.embn, g, m->emb, &m->w.embn, m->e_mean, m->e_rstd, 1.0f, N, (int)C);
        g = gnext;
    }
    if (es != 1.0f) {
        be->scale_shift(g, g, es, 0.0f, NC);
        store(m, g, NC);
    }
    if (m->dit) nl_dit_embed_backward(m, g); /* patch embedding, every adaLN, the conditioning */
    else be->encoder_backward(m->g.wte, m->g.wpe, g, m->tok_inp, m->fB, m->fT, (int)C);
    if (m->dit && m->grad_ready) m->grad_ready(m->grad_ready_arg, 0, m->nparams); /* adaLN grads come last */
    else grads_ready(m, 0, m->block_at[0]);
}
