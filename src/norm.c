/* norm.c -- the placement table (see norm.h). Equations: ../shared/docs/ln-methods.md §2 and §6.
 * Adding a placement: one enum value in include/normlab.h, one row here, and its twin in
 * python/normlab_torch.py (the reference tests fail until the twin knows it). */
#include "norm.h"

#include "common.h"

#include <math.h>
#include <string.h>

static unsigned sites_pre(const nl_config *c, int l) { (void)c, (void)l; return NL_SITE_IN; }
static unsigned sites_post(const nl_config *c, int l) { (void)c, (void)l; return NL_SITE_POST; }
static unsigned sites_out(const nl_config *c, int l) { (void)c, (void)l; return NL_SITE_OUT; }
static unsigned sites_peri(const nl_config *c, int l) {
    (void)c, (void)l;
    return NL_SITE_IN | NL_SITE_OUT;
}
/* Mix-LN: blocks l <= floor(alpha*L) are Post-LN, the rest Pre-LN (l counted from 1). */
static unsigned sites_mix(const nl_config *c, int l) {
    return l <= (int)floor(c->mix_alpha * c->layers) ? NL_SITE_POST : NL_SITE_IN;
}
/* LayerNorm Scaling: the norm outputs of block l are scaled by 1/sqrt(l), l from 1. */
static double scale_lns(const nl_config *c, int l) { (void)c; return 1.0 / sqrt((double)l); }
/* DeepNorm (decoder-only): alpha = (2L)^(1/4), beta = (8L)^(-1/4). */
static double alpha_deepnorm(const nl_config *c) { return pow(2.0 * c->layers, 0.25); }
static double beta_deepnorm(const nl_config *c) { return pow(8.0 * c->layers, -0.25); }

static unsigned sites_none(const nl_config *c, int l) { (void)c, (void)l; return 0; }
/* Gemma 2/3: the embedding sum is multiplied by sqrt(d). */
static double emb_scale_gemma(const nl_config *c) { return sqrt((double)c->dim); }

// clang-format off
const nl_placement nl_placements[NL_NORM_COUNT] = {
    [NL_NORM_POST]     = { "post",     "x' = N(x + F(x))",                         "Vaswani et al. 2017",
                           0, 0, sites_post, NULL, NULL, NULL },
    [NL_NORM_PRE]      = { "pre",      "x' = x + F(N(x))",                         "Xiong et al., arXiv:2002.04745",
                           0, 1, sites_pre, NULL, NULL, NULL },
    [NL_NORM_PERI]     = { "peri",     "x' = x + N(F(N(x)))",                      "Kim et al., arXiv:2502.02732",
                           1, 1, sites_peri, NULL, NULL, NULL },
    [NL_NORM_MIX]      = { "mix",      "post for blocks l <= floor(a*L), pre after", "Li et al., arXiv:2412.13795",
                           0, 1, sites_mix, NULL, NULL, NULL },
    [NL_NORM_LNS]      = { "lns",      "x' = x + F(N(x)/sqrt(l))",                 "Sun et al., arXiv:2502.05795",
                           0, 1, sites_pre, scale_lns, NULL, NULL },
    [NL_NORM_OUTONLY]  = { "outonly",  "x' = x + N(F(x))",                         "OLMo 2, arXiv:2501.00656",
                           0, 1, sites_out, NULL, NULL, NULL },
    [NL_NORM_DEEPNORM] = { "deepnorm", "x' = N(a*x + F(x)), a = (2L)^(1/4)",       "Wang et al., arXiv:2203.00555",
                           0, 0, sites_post, NULL, alpha_deepnorm, beta_deepnorm },
    [NL_NORM_SANDWICH] = { "sandwich", "x' = x + N(F(N(x))) (= peri)",             "CogView, arXiv:2105.13290",
                           1, 1, sites_peri, NULL, NULL, NULL },
    [NL_NORM_GEMMA]    = { "gemma",    "x' = x + N(F(N(x))), gains 1+s, emb*sqrt(d)", "Gemma 2/3 (google-deepmind/gemma)",
                           0, 1, sites_peri, NULL, NULL, NULL,
                           .emb_scale = emb_scale_gemma, .norm_type = NL_RMSNORM, .gain_offset = 1 },
    [NL_NORM_NONE]     = { "none",     "x' = x + F(x) (with --skip-init: x + g*F(x))", "De & Smith, arXiv:2002.10444",
                           0, 0, sites_none, NULL, NULL, NULL },
};
// clang-format on
_Static_assert(sizeof nl_placements / sizeof nl_placements[0] == NL_NORM_COUNT,
               "add a row to nl_placements for every nl_norm value");

const char *const nl_norm_type_names[NL_NORM_TYPE_COUNT] = { "layernorm", "rmsnorm", "scalenorm", "dyt",
                                                             "seednorm" };
const char *const nl_norm_type_eqs[NL_NORM_TYPE_COUNT] = {
    "w (x - mean) / sqrt(var + eps) + b                     Ba et al. 2016",
    "w x / sqrt(mean(x^2) + eps)                            Zhang & Sennrich 2019",
    "g x / sqrt(sum(x^2) + eps), one scalar g = sqrt(d)     Nguyen & Salazar, arXiv:1910.05895",
    "w tanh(a x) + b, one scalar a = --dyt-alpha            Zhu et al., arXiv:2503.10622",
    "(tanh(beta.x) alpha + w) x / sqrt(mean(x^2) + eps)     Cai et al., arXiv:2510.22777",
};
_Static_assert(sizeof nl_norm_type_eqs / sizeof nl_norm_type_eqs[0] == NL_NORM_TYPE_COUNT, "one equation per norm type");
const char *const nl_site_names[NL_SITE_COUNT] = { "in", "out", "post" };

unsigned nl_sub_sites(const nl_config *c, int l, int s) {
    const nl_placement *p = &nl_placements[c->norm];
    unsigned m = p->sub_sites ? p->sub_sites(c, l, s) : p->sites(c, l);
    if (c->qk_norm && s == 0) m |= NL_WIRE_QK;
    return m;
}

unsigned nl_block_sites(const nl_config *c, int l) {
    return (nl_sub_sites(c, l, 0) | nl_sub_sites(c, l, 1)) & (NL_SITE_IN | NL_SITE_OUT | NL_SITE_POST);
}

double nl_emb_scale(const nl_config *c) {
    const nl_placement *p = &nl_placements[c->norm];
    return p->emb_scale ? p->emb_scale(c) : 1.0;
}

nl_status nl_placement_check(const nl_config *c) {
    if (c->norm_type == NL_DYT && !(c->dyt_alpha > 0 && c->dyt_alpha < 1e3))
        return NL_FAIL(NL_ERR_ARG, "--dyt-alpha %g: must be in (0, 1000)", c->dyt_alpha);
    return NL_OK;
}

double nl_block_in_scale(const nl_config *c, int l) {
    const nl_placement *p = &nl_placements[c->norm];
    return p->in_scale ? p->in_scale(c, l) : 1.0;
}

double nl_res_alpha(const nl_config *c) {
    const nl_placement *p = &nl_placements[c->norm];
    return p->res_alpha ? p->res_alpha(c) : 1.0;
}

double nl_init_beta(const nl_config *c) {
    const nl_placement *p = &nl_placements[c->norm];
    return p->init_beta ? p->init_beta(c) : 1.0;
}

int nl_norm_from_name(const char *s) {
    for (int i = 0; i < NL_NORM_COUNT; i++)
        if (strcmp(s, nl_placements[i].name) == 0) return i;
    return -1;
}

int nl_norm_type_from_name(const char *s) {
    for (int i = 0; i < NL_NORM_TYPE_COUNT; i++)
        if (strcmp(s, nl_norm_type_names[i]) == 0) return i;
    return -1;
}
