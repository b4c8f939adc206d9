/* norm.h -- THE placement table: the only place that knows what "pre", "post", "peri", ... mean.
 *
 * Each sublayer (attention, MLP) of block l has three sites where a norm can sit (ln-methods.md §2.3):
 *   IN   on the branch input          u = s_l * N_in(x)
 *   OUT  on the branch output         o = N_out(F(u))
 *   POST after the residual add       x' = N_post(alpha_l * x + o)
 * A placement is a per-block site mask plus a few scalars. model.c runs one template for all of them. */
#ifndef NL_NORM_H
#define NL_NORM_H

#include "normlab.h"

enum { NL_SITE_IN = 1u << 0, NL_SITE_OUT = 1u << 1, NL_SITE_POST = 1u << 2 };
enum { NL_SITE_COUNT = 3 };

typedef struct nl_placement {
    const char *name; /* CLI spelling and checkpoint tag */
    const char *eq;   /* one-line equation for --help and reports */
    const char *ref;  /* paper, "" for folklore */
    unsigned emb_norm : 1, final_norm : 1; /* defaults of --emb-norm / --final-norm */
    unsigned (*sites)(const nl_config *c, int l);  /* NL_SITE_* mask of block l (1-based) */
    double (*in_scale)(const nl_config *c, int l); /* NULL = 1: factor on N_in's output */
    double (*res_alpha)(const nl_config *c);       /* NULL = 1: weight of the identity path */
    double (*init_beta)(const nl_config *c);       /* NULL = 1: factor on v/proj/fc/mlp.proj init */
} nl_placement;

extern const nl_placement nl_placements[NL_NORM_COUNT];
extern const char *const nl_norm_type_names[NL_NORM_TYPE_COUNT];
extern const char *const nl_site_names[NL_SITE_COUNT]; /* "in", "out", "post" */

unsigned nl_block_sites(const nl_config *c, int l); /* l is 1-based */
double nl_block_in_scale(const nl_config *c, int l);
double nl_res_alpha(const nl_config *c);
double nl_init_beta(const nl_config *c);

int nl_norm_from_name(const char *s);      /* -1 if unknown */
int nl_norm_type_from_name(const char *s); /* -1 if unknown */

#endif
