/* placement.h -- THE placement table: the only place that knows what "pre", "post", "peri", ... mean.
 *
 * Each sublayer (attention, MLP) of block l has three sites where a norm can sit (docs/methods.md §2.1):
 *   IN   on the branch input          u = s_l * N_in(x)
 *   OUT  on the branch output         o = N_out(F(u))
 *   POST after the residual add       x' = N_post(alpha_l * x + o)
 * A placement is a per-block site mask plus a few scalars. model.c runs one template for all of them. */
#ifndef NL_PLACEMENT_H
#define NL_PLACEMENT_H

#include "normlab.h"

enum { NL_SITE_IN = 1u << 0, NL_SITE_OUT = 1u << 1, NL_SITE_POST = 1u << 2 };
enum { NL_SITE_COUNT = 3 };
/* Wiring overrides of one sublayer (docs/methods.md §2.10-2.13), in the same mask as the sites:
 *   QK      per-head norms of q and k (attention; --qk-norm, any placement)
 *   QKV     norms of q, k and v over the whole width (attention; hybrid)
 *   RES_IN  the identity path starts from u = N_in(x), not x: x' = u + F(u) (hybrid's MLP)
 *   B2T     the block input is added to the MLP's residual sum (b2t)
 *   HSCALE  per-head scalars on the attention heads before the output projection (normformer)
 *   FCNORM  a norm over the 4d hidden units after the activation (normformer)
 *   LAMRES  a per-channel weight on the identity path, init 1 (normformer's residual scaling)
 *   GPAS    after the residual add: x' = z - SiLU(a_l) sg(z), the gradient passes unchanged (--gpas;
 *           Chen et al., arXiv:2506.22049; one gate a_l per block, shared by its two sublayers)
 *   SDD     every linear layer of the branch outputs alpha * RMSNorm(W u + b) (--sdd; Wang et al.,
 *           arXiv:2502.15499 Eq. 1: y = alpha (.) norm(V x)) */
enum {
    NL_WIRE_QK = 1u << 3,
    NL_WIRE_QKV = 1u << 4,
    NL_WIRE_RES_IN = 1u << 5,
    NL_WIRE_B2T = 1u << 6,
    NL_WIRE_HSCALE = 1u << 7,
    NL_WIRE_FCNORM = 1u << 8,
    NL_WIRE_LAMRES = 1u << 9,
    NL_WIRE_GPAS = 1u << 10,
    NL_WIRE_SDD = 1u << 11,
};

typedef struct nl_placement {
    const char *name;                              /* CLI spelling and checkpoint tag */
    const char *eq;                                /* one-line equation for --help and reports */
    const char *ref;                               /* paper, "" for folklore */
    unsigned emb_norm : 1, final_norm : 1;         /* defaults of --emb-norm / --final-norm */
    unsigned (*sites)(const nl_config *c, int l);  /* NL_SITE_* mask of block l (1-based); both sublayers
                                                      unless sub_sites is set */
    double (*in_scale)(const nl_config *c, int l); /* NULL = 1: factor on N_in's output */
    double (*res_alpha)(const nl_config *c);       /* NULL = 1: weight of the identity path */
    double (*init_beta)(const nl_config *c);       /* NULL = 1: factor on v/proj/fc/mlp.proj init */
    /* overrides, NULL/0 when the placement does not restructure the block */
    unsigned (*sub_sites)(const nl_config *c, int l, int s); /* per-sublayer mask (s: 0 attn, 1 mlp) */
    double (*emb_scale)(const nl_config *c);                 /* NULL = 1: factor on the embedding sum */
    int norm_type;                                           /* default --norm-type */
    unsigned gain_offset : 1; /* every gain is stored as its offset from the initial value (Gemma's 1+s) */
    unsigned dual : 1;        /* ResiDual: a second, unnormalised stream r; head input x_L + N_f(r) */
    /* nGPT (docs/methods.md §2.16): every norm is x/|x| (NL_L2NORM); the residual add is the interpolation
     * u + |alpha| (o - u) with per-channel eigen learning rates; q and k are s_qk Norm(.) per head after RoPE
     * with softmax scale sqrt(head size); s_uv on the MLP input products, s_z on the logits; the matrices
     * are renormalised after every optimizer step; no weight decay and no warmup by default. */
    unsigned sphere : 1;
} nl_placement;

extern const nl_placement nl_placements[NL_PLACE_COUNT];
extern const char *const nl_norm_type_names[NL_NORM_TYPE_COUNT];
extern const char *const nl_norm_type_eqs[NL_NORM_TYPE_COUNT]; /* equation and source, for --help */
extern const char *const nl_site_names[NL_SITE_COUNT];         /* "in", "out", "post" */

unsigned nl_block_sites(const nl_config *c, int l);      /* l is 1-based; union over the sublayers */
unsigned nl_sub_sites(const nl_config *c, int l, int s); /* sites and NL_WIRE_* bits of sublayer s */
double nl_emb_scale(const nl_config *c);
/* Placement-specific validation of a config (called by nl_config_resolve). */
nl_status nl_placement_check(const nl_config *c);
double nl_block_in_scale(const nl_config *c, int l);
double nl_res_alpha(const nl_config *c);
double nl_init_beta(const nl_config *c);

int nl_placement_from_name(const char *s); /* -1 if unknown */
int nl_norm_type_from_name(const char *s); /* -1 if unknown */

#endif
