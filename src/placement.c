/* placement.c -- the placement table (see placement.h). Equations: docs/methods.md §2.
 * Adding a placement: one enum value in include/normlab.h, one row here, and its twin in
 * python/normlab_torch.py (the reference tests fail until the twin knows it). */
#include "placement.h"

#include "common.h"

#include <math.h>
#include <string.h>

static unsigned sites_pre(const nl_config *c, int l) {
    (void)c, (void)l;
    return NL_SITE_IN;
}
static unsigned sites_post(const nl_config *c, int l) {
    (void)c, (void)l;
    return NL_SITE_POST;
}
static unsigned sites_out(const nl_config *c, int l) {
    (void)c, (void)l;
    return NL_SITE_OUT;
}
static unsigned sites_peri(const nl_config *c, int l) {
    (void)c, (void)l;
    return NL_SITE_IN | NL_SITE_OUT;
}
/* Mix-LN: blocks l <= floor(alpha*L) are Post-LN, the rest Pre-LN (l counted from 1). */
static unsigned sites_mix(const nl_config *c, int l) {
    return l <= (int)floor(c->mix_alpha * c->layers) ? NL_SITE_POST : NL_SITE_IN;
}
/* LayerNorm Scaling: the norm outputs of block l are scaled by 1/sqrt(l), l from 1. */
static double scale_lns(const nl_config *c, int l) {
    (void)c;
    return 1.0 / sqrt((double)l);
}
/* DeepNorm (decoder-only): alpha = (2L)^(1/4), beta = (8L)^(-1/4). */
static double alpha_deepnorm(const nl_config *c) { return pow(2.0 * c->layers, 0.25); }
static double beta_deepnorm(const nl_config *c) { return pow(8.0 * c->layers, -0.25); }

static unsigned sites_none(const nl_config *c, int l) {
    (void)c, (void)l;
    return 0;
}
/* Gemma 2/3: the embedding sum is multiplied by sqrt(d). */
static double emb_scale_gemma(const nl_config *c) { return sqrt((double)c->dim); }

/* B2T (Takase et al.): h = N(x + A(x)); x' = N(x + h + M(h)). */
static unsigned sub_b2t(const nl_config *c, int l, int s) {
    (void)c, (void)l;
    return s == 0 ? NL_SITE_POST : NL_SITE_POST | NL_WIRE_B2T;
}
/* HybridNorm (Zhuo et al.): Y = x + W_O attn(N(Q), N(K), N(V)) with no input norm; z = N(Y),
 * x' = z + M(z). HybridNorm* (hybridstar): block 1 is Pre-LN (input norm on attention, which keeps its
 * QKV norms, and x' = Y + M(N(Y))). */
static unsigned sub_hybrid(const nl_config *c, int l, int s) {
    const int first = l == 1 && c->placement == NL_PLACE_HYBRIDSTAR;
    if (s == 0) return NL_WIRE_QKV | (first ? NL_SITE_IN : 0u);
    return NL_SITE_IN | (first ? 0u : NL_WIRE_RES_IN);
}
/* NormFormer (Shleifer et al.), as in the paper: x + N(HeadScale(heads) W_O) with HeadScale before the
 * output projection; h + W2 N(act(W1 N(h))), optionally lambda * h. */
static unsigned sub_normformer(const nl_config *c, int l, int s) {
    (void)l;
    if (s == 0) return NL_SITE_IN | NL_SITE_OUT | NL_WIRE_HSCALE;
    return NL_SITE_IN | NL_WIRE_FCNORM | (c->scale_resids ? NL_WIRE_LAMRES : 0u);
}

/* nGPT (Loshchilov et al., arXiv:2410.01131, eqs. 10-11): h <- Norm(h_A + |alpha| (Norm(F(h_A)) - h_A)) with
 * h_A = Norm(h): all three sites (L2 norms), the identity path from the normalised input, q/k norms per head. */
static unsigned sub_ngpt(const nl_config *c, int l, int s) {
    (void)c, (void)l;
    return NL_SITE_IN | NL_SITE_OUT | NL_SITE_POST | NL_WIRE_RES_IN | (s == 0 ? NL_WIRE_QK : 0u);
}

// clang-format off
const nl_placement nl_placements[NL_PLACE_COUNT] = {
    [NL_PLACE_POST] = { .name = "post", .eq = "x' = N(x + F(x))", .ref = "Vaswani et al. 2017",
        .sites = sites_post },
    [NL_PLACE_PRE] = { .name = "pre", .eq = "x' = x + F(N(x))", .ref = "Xiong et al., arXiv:2002.04745",
        .final_norm = 1, .sites = sites_pre },
    [NL_PLACE_PERI] = { .name = "peri", .eq = "x' = x + N(F(N(x)))", .ref = "Kim et al., arXiv:2502.02732",
        .emb_norm = 1, .final_norm = 1, .sites = sites_peri },
    [NL_PLACE_MIX] = { .name = "mix", .eq = "post for blocks l <= floor(a*L), pre after", .ref = "Li et al., arXiv:2412.13795",
        .final_norm = 1, .sites = sites_mix },
    [NL_PLACE_LNS] = { .name = "lns", .eq = "x' = x + F(N(x)/sqrt(l))", .ref = "Sun et al., arXiv:2502.05795",
        .final_norm = 1, .sites = sites_pre, .in_scale = scale_lns },
    [NL_PLACE_OUTONLY] = { .name = "outonly", .eq = "x' = x + N(F(x))", .ref = "OLMo 2, arXiv:2501.00656",
        .final_norm = 1, .sites = sites_out },
    [NL_PLACE_DEEPNORM] = { .name = "deepnorm", .eq = "x' = N(a*x + F(x)), a = (2L)^(1/4)", .ref = "Wang et al., arXiv:2203.00555",
        .sites = sites_post, .res_alpha = alpha_deepnorm, .init_beta = beta_deepnorm },
    [NL_PLACE_SANDWICH] = { .name = "sandwich", .eq = "x' = x + N(F(N(x))) (= peri)", .ref = "CogView, arXiv:2105.13290",
        .emb_norm = 1, .final_norm = 1, .sites = sites_peri },
    [NL_PLACE_GEMMA] = { .name = "gemma", .eq = "x' = x + N(F(N(x))), gains 1+s, emb*sqrt(d)", .ref = "Gemma 2/3 (google-deepmind/gemma)",
        .final_norm = 1, .sites = sites_peri, .emb_scale = emb_scale_gemma, .norm_type = NL_RMSNORM, .gain_offset = 1 },
    [NL_PLACE_NONE] = { .name = "none", .eq = "x' = x + F(x) (with --skip-init: x + g*F(x))", .ref = "De & Smith, arXiv:2002.10444",
        .sites = sites_none },
    [NL_PLACE_B2T] = { .name = "b2t", .eq = "h = N(x + A(x)); x' = N(x + h + M(h))", .ref = "Takase et al., arXiv:2206.00330",
        .sites = sites_post, .sub_sites = sub_b2t },
    [NL_PLACE_HYBRID] = { .name = "hybrid", .eq = "Y = x + A(N(Q),N(K),N(V)); z = N(Y); x' = z + M(z)", .ref = "Zhuo et al., arXiv:2503.04598",
        .final_norm = 1, .sites = sites_pre, .sub_sites = sub_hybrid },
    [NL_PLACE_HYBRIDSTAR] = { .name = "hybridstar", .eq = "hybrid with a Pre-LN block 1 (HybridNorm*)", .ref = "Zhuo et al., arXiv:2503.04598",
        .final_norm = 1, .sites = sites_pre, .sub_sites = sub_hybrid },
    [NL_PLACE_NORMFORMER] = { .name = "normformer", .eq = "x + N(HS(heads) W_O); h + W2 N(act(W1 N(h)))", .ref = "Shleifer et al., arXiv:2110.09456",
        .final_norm = 1, .sites = sites_pre, .sub_sites = sub_normformer },
    [NL_PLACE_RESIDUAL] = { .name = "residual", .eq = "x' = N(x + F(x)), r' = r + F(x); head x_L + N(r_L)", .ref = "Xie et al., arXiv:2304.14802",
        .final_norm = 1, .sites = sites_post, .dual = 1 },
    [NL_PLACE_NGPT] = { .name = "ngpt", .eq = "h' = N(h_A + |a|(N(F(h_A)) - h_A)), h_A = N(h)", .ref = "Loshchilov et al., arXiv:2410.01131",
        .sites = sites_peri, .sub_sites = sub_ngpt, .norm_type = NL_L2NORM, .sphere = 1 },
};
// clang-format on
_Static_assert(sizeof nl_placements / sizeof nl_placements[0] == NL_PLACE_COUNT,
               "add a row to nl_placements for every nl_placement_id value");

const char *const nl_norm_type_names[NL_NORM_TYPE_COUNT] = { "layernorm", "rmsnorm",  "scalenorm", "dyt",
                                                             "seednorm",  "crmsnorm", "l2" };
const char *const nl_norm_type_eqs[NL_NORM_TYPE_COUNT] = {
    "w (x - mean) / sqrt(var + eps) + b                     Ba et al. 2016",
    "w x / sqrt(mean(x^2) + eps)                            Zhang & Sennrich 2019",
    "g x / sqrt(sum(x^2) + eps), one scalar g = sqrt(d)     Nguyen & Salazar, arXiv:1910.05895",
    "w tanh(a x) + b, one scalar a = --dyt-alpha            Zhu et al., arXiv:2503.10622",
    "(tanh(beta.x) alpha + w) x / sqrt(mean(x^2) + eps)     Cai et al., arXiv:2510.22777",
    "w x / sqrt((sum_{i<d} x_i^2 + (sum_{i<d} x_i)^2)/d + eps), pre/lns  Jiang et al., arXiv:2305.14858",
    "x / |x|, no parameters and no eps, ngpt only (its default)  Loshchilov et al., arXiv:2410.01131",
};
_Static_assert(sizeof nl_norm_type_eqs / sizeof nl_norm_type_eqs[0] == NL_NORM_TYPE_COUNT, "one equation per norm type");
const char *const nl_site_names[NL_SITE_COUNT] = { "in", "out", "post" };

unsigned nl_sub_sites(const nl_config *c, int l, int s) {
    const nl_placement *p = &nl_placements[c->placement];
    unsigned m = p->sub_sites ? p->sub_sites(c, l, s) : p->sites(c, l);
    if (c->qk_norm && s == 0) m |= NL_WIRE_QK;
    if (c->gpas) m |= NL_WIRE_GPAS;
    if (c->sdd) m |= NL_WIRE_SDD;
    return m;
}

unsigned nl_block_sites(const nl_config *c, int l) {
    return (nl_sub_sites(c, l, 0) | nl_sub_sites(c, l, 1)) & (NL_SITE_IN | NL_SITE_OUT | NL_SITE_POST);
}

double nl_emb_scale(const nl_config *c) {
    const nl_placement *p = &nl_placements[c->placement];
    return p->emb_scale ? p->emb_scale(c) : 1.0;
}

/* What nGPT fixes (a one-line error for each switch that would contradict it). */
static nl_status sphere_check(const nl_config *c) {
    const int sphere = nl_placements[c->placement].sphere;
    if ((c->norm_type == NL_L2NORM) != sphere)
        return sphere ? NL_FAIL(NL_ERR_ARG,
                                "--norm-type %s: ngpt normalises with x/|x| only (--norm-type l2, its default)",
                                nl_norm_type_names[c->norm_type])
                      : NL_FAIL(NL_ERR_ARG, "--norm-type l2: only with --norm ngpt");
    if (!sphere) return NL_OK;
    const char *bad = c->emb_norm == 1     ? "--emb-norm on"
                      : c->final_norm == 1 ? "--final-norm on"
                      : c->qk_norm         ? "--qk-norm"
                      : c->skip_init       ? "--skip-init"
                      : c->scaled_init     ? "--scaled-init"
                      : c->out_gain_frozen ? "--out-gain frozen"
                                           : NULL;
    if (bad)
        return NL_FAIL(NL_ERR_ARG,
                       "%s: ngpt has no norm gains and no final norm (every vector and weight row is on the unit sphere)",
                       bad);
    if (c->kv_heads != c->heads)
        return NL_FAIL(NL_ERR_ARG,
                       "--kv-heads %d: ngpt shares s_qk between q and k (paper eq. 15-16), so it needs --kv-heads = --heads %d",
                       c->kv_heads, c->heads);
    if (!(c->ngpt_alpha_init > 0 && c->ngpt_alpha_init <= 1))
        return NL_FAIL(NL_ERR_ARG, "--ngpt-alpha-init %g: must be in (0, 1]", c->ngpt_alpha_init);
    if (!(c->ngpt_alpha_scale >= 0 && c->ngpt_alpha_scale <= 1))
        return NL_FAIL(NL_ERR_ARG, "--ngpt-alpha-scale %g: must be in [0, 1] (0: 1/sqrt(--dim))", c->ngpt_alpha_scale);
    return NL_OK;
}

nl_status nl_placement_check(const nl_config *c) {
    if (c->norm_type == NL_DYT && !(c->dyt_alpha > 0 && c->dyt_alpha < 1e3))
        return NL_FAIL(NL_ERR_ARG, "--dyt-alpha %g: must be in (0, 1000)", c->dyt_alpha);
    if (c->norm_type == NL_CRMSNORM && c->placement != NL_PLACE_PRE && c->placement != NL_PLACE_LNS)
        return NL_FAIL(NL_ERR_ARG, "--norm-type crmsnorm: only with --norm pre or lns (its equivalence with "
                                   "LayerNorm needs every norm to read the zero-mean residual stream)");
    NL_TRY(sphere_check(c));
    if (c->scale_resids && c->placement != NL_PLACE_NORMFORMER)
        return NL_FAIL(NL_ERR_ARG, "--scale-resids: only for --norm normformer");
    if (c->qk_norm && (c->placement == NL_PLACE_HYBRID || c->placement == NL_PLACE_HYBRIDSTAR))
        return NL_FAIL(NL_ERR_ARG, "--qk-norm: %s already normalises q, k and v", nl_placements[c->placement].name);
    /* GPAS scales the stream after the residual add; with a norm there (post, deepnorm, mix's first
     * blocks, b2t, residual) the paper's code moves the gate onto the identity path instead, which this
     * template does not have: refused rather than approximated (docs/placements.md, GPAS). */
    for (int l = 1; c->gpas && l <= c->layers; l++)
        if (nl_block_sites(c, l) & NL_SITE_POST)
            return NL_FAIL(NL_ERR_ARG,
                           "--gpas: only for placements without a norm after the residual add (pre, peri, lns, "
                           "outonly, ...); %s normalises after the add in block %d",
                           nl_placements[c->placement].name, l);
    if (c->sdd && nl_placements[c->placement].sphere) /* (--gpas is refused above: ngpt normalises after the add) */
        return NL_FAIL(NL_ERR_ARG,
                       "--sdd: not with --norm ngpt (its unit-sphere states and s_qk, s_uv scales take that part)");
    if (nl_placements[c->placement].dual && c->final_norm == 0)
        return NL_FAIL(NL_ERR_ARG, "--final-norm off: %s needs the final norm (it normalises the second stream)",
                       nl_placements[c->placement].name);
    return NL_OK;
}

double nl_block_in_scale(const nl_config *c, int l) {
    const nl_placement *p = &nl_placements[c->placement];
    return p->in_scale ? p->in_scale(c, l) : 1.0;
}

double nl_res_alpha(const nl_config *c) {
    const nl_placement *p = &nl_placements[c->placement];
    return p->res_alpha ? p->res_alpha(c) : 1.0;
}

double nl_init_beta(const nl_config *c) {
    const nl_placement *p = &nl_placements[c->placement];
    return p->init_beta ? p->init_beta(c) : 1.0;
}

int nl_placement_from_name(const char *s) {
    for (int i = 0; i < NL_PLACE_COUNT; i++)
        if (strcmp(s, nl_placements[i].name) == 0) return i;
    return -1;
}

int nl_norm_type_from_name(const char *s) {
    for (int i = 0; i < NL_NORM_TYPE_COUNT; i++)
        if (strcmp(s, nl_norm_type_names[i]) == 0) return i;
    return -1;
}
