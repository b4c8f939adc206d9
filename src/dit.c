/* dit.c -- the ends of --arch dit (docs/dit.md §2): what model.c's template calls instead of the token
 * embedding and the LM head. Every number goes through the backend table.
 *
 *   emb   = x_t patches W_pe^T + b_pe                                  (N, C)
 *   c     = W_2 silu(W_1 sinus(1000 t) + b_1) + b_2 + E_label[y]        (B, C)
 *   mod_l = silu(c) W_ada,l^T + b_ada,l                                (B, 6C) per block; (B, 2C) final
 *   out   = (N_f(x_L) (1 + scale_f) + shift_f) W_fl^T + b_fl           (N, P)
 *   loss  = mean (out - v)^2 over all N P numbers                      (flow matching, v = eps - x_0) */
#include "dit.h"

#include "common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

float *nl_dit_mod(const nl_model *m, int l, int B) { return m->dit_mod + (size_t)l * B * 6 * m->cfg.dim; }

/* 2-D rotary positions (Lumina-Next's RoPE on the two image axes): in each head, the first hs/4 channel
 * pairs turn by the patch row i, the last hs/4 by the column j, each axis with the frequencies of a 1-D
 * RoPE of hs/2 channels: angle = pos * theta^(-k / (hs/4)), k < hs/4. Computed on the host, copied over. */
void nl_dit_rope_table(nl_model *m) {
    const nl_config *c = &m->cfg;
    const int T = c->seq_len, half = m->hs / 2, q = m->hs / 4, wp = c->img_w / c->patch;
    float *cs = nl_xmalloc(2 * (size_t)T * half * sizeof(float)), *sn = cs + (size_t)T * half;
    for (int t = 0; t < T; t++)
        for (int k = 0; k < half; k++) {
            const int pos = k < q ? t / wp : t % wp;
            const double a = pos * pow(c->rope_theta, -(double)(k % q) / q);
            cs[(size_t)t * half + k] = (float)cos(a);
            sn[(size_t)t * half + k] = (float)sin(a);
        }
    m->be->from_host(m->rope_cos, cs, (size_t)T * half * sizeof(float));
    m->be->from_host(m->rope_sin, sn, (size_t)T * half * sizeof(float));
    free(cs);
}

float nl_dit_forward(nl_model *m, const float *xt, const float *t, const int *y, const float *v, int B, float dscale) {
    const nl_config *c = &m->cfg;
    const int T = c->seq_len, H = NL_DIT_TFREQ / 2;
    NL_ASSERT(m->dit && m->acts && B <= m->B && T == m->T);
    const size_t NP = (size_t)B * T * m->P;
    float *tf = nl_xmalloc((size_t)B * NL_DIT_TFREQ * sizeof(float));
    for (int b = 0; b < B; b++) { /* DiT's frequency embedding of 1000 t: cos | sin */
        NL_ASSERT(y[b] >= 0 && y[b] <= c->classes);
        for (int i = 0; i < H; i++) {
            const double a = 1000.0 * t[b] * exp(-log(10000.0) * i / H);
            tf[(size_t)b * NL_DIT_TFREQ + i] = (float)cos(a);
            tf[(size_t)b * NL_DIT_TFREQ + H + i] = (float)sin(a);
        }
    }
    m->be->from_host(m->dit_tf, tf, (size_t)B * NL_DIT_TFREQ * sizeof(float));
    free(tf);
    m->be->from_host(m->dit_x, xt, NP * sizeof(float));
    if (v) m->be->from_host(m->dit_v, v, NP * sizeof(float));
    m->be->from_host(m->tok_inp, y, (size_t)B * sizeof(int));
    m->dit_has_tgt = v != NULL;
    return nl_model_forward(m, NULL, NULL, B, T, dscale);
}

void nl_dit_embed_forward(nl_model *m, int B) {
    const nl_backend *be = m->be;
    const nl_dit_w *w = &m->w.dit;
    const int C = m->cfg.dim, L = m->cfg.layers;
    const size_t N = (size_t)B * m->cfg.seq_len, BC = (size_t)B * C;
    be->linear_forward(m->emb, m->dit_x, w->pe_w, w->pe_b, N, m->P, C);
    be->linear_forward(m->dit_h1, m->dit_tf, w->t1_w, w->t1_b, (size_t)B, NL_DIT_TFREQ, C);
    be->silu_forward(m->dit_s1, m->dit_h1, BC);
    be->linear_forward(m->dit_cv, m->dit_s1, w->t2_w, w->t2_b, (size_t)B, C, C);
    be->encoder_forward(m->dit_sc, m->tok_inp, m->w.wte, NULL, B, 1, C); /* label rows, then c = time + label */
    be->residual_forward(m->dit_cv, m->dit_sc, m->dit_cv, 1.0f, BC);
    be->silu_forward(m->dit_sc, m->dit_cv, BC);
    for (int l = 0; l < L; l++)
        be->linear_forward(nl_dit_mod(m, l, B), m->dit_sc, m->w.blocks[l].ada_w, m->w.blocks[l].ada_b, (size_t)B, C,
                           6 * C);
    be->linear_forward(nl_dit_mod(m, L, B), m->dit_sc, w->fa_w, w->fa_b, (size_t)B, C, 2 * C);
}

float nl_dit_head_forward(nl_model *m, int B, float dscale) {
    const nl_backend *be = m->be;
    const int C = m->cfg.dim, T = m->cfg.seq_len;
    const size_t N = (size_t)B * T, NP = N * m->P;
    const float *mf = nl_dit_mod(m, m->cfg.layers, B);
    be->ada_forward(m->dit_fm, m->xf, mf + C, mf, 2 * C, 1.0f, B, T, C);
    be->linear_forward(m->dit_out, m->dit_fm, m->w.dit.fl_w, m->w.dit.fl_b, N, C, m->P);
    if (!m->dit_has_tgt) return 0.0f;
    be->residual_forward(m->dit_v, m->dit_v, m->dit_out, -1.0f, NP); /* out - v */
    const double loss = be->sumsq(m->dit_v, NP) / (double)NP;
    if (dscale != 0.0f) be->scale_shift(m->dit_v, m->dit_v, (float)(2.0 * dscale / (double)NP), 0.0f, NP);
    return (float)loss;
}

void nl_dit_head_backward(nl_model *m, float *dxf) {
    const nl_backend *be = m->be;
    const int C = m->cfg.dim, B = m->fB, T = m->fT, L = m->cfg.layers;
    NL_ASSERT(m->dit_has_tgt);
    const size_t N = (size_t)B * T;
    be->zero(m->dit_dmod, ((size_t)L * B * 6 * C + 2 * (size_t)B * C) * sizeof(float));
    const float *mf = nl_dit_mod(m, L, B);
    float *dmf = m->dit_dmod + (mf - m->dit_mod);
    be->linear_backward(dxf, m->g.dit.fl_w, m->g.dit.fl_b, m->dit_v, m->dit_fm, m->w.dit.fl_w, N, C, m->P);
    be->ada_backward(dxf, dmf + C, dmf, dxf, m->xf, mf + C, 2 * C, 1.0f, B, T, C);
}

void nl_dit_embed_backward(nl_model *m, const float *demb) {
    const nl_backend *be = m->be;
    nl_dit_w *g = &m->g.dit;
    const nl_dit_w *w = &m->w.dit;
    const int C = m->cfg.dim, B = m->fB, L = m->cfg.layers;
    const size_t N = (size_t)B * m->fT, BC = (size_t)B * C;
    float *db = m->dit_db, *dtf = m->dit_db + BC;
    be->linear_backward(db, g->pe_w, g->pe_b, demb, m->dit_x, w->pe_w, N, m->P, C);
    be->zero(m->dit_dsc, BC * sizeof(float));
    for (int l = 0; l <= L; l++) { /* every adaLN reads silu(c) */
        const int last = l == L, W = last ? 2 * C : 6 * C;
        const float *mod = nl_dit_mod(m, l, B);
        be->linear_backward(db, last ? g->fa_w : m->g.blocks[l].ada_w, last ? g->fa_b : m->g.blocks[l].ada_b,
                            m->dit_dmod + (mod - m->dit_mod), m->dit_sc, last ? w->fa_w : m->w.blocks[l].ada_w,
                            (size_t)B, C, W);
        be->residual_forward(m->dit_dsc, db, m->dit_dsc, 1.0f, BC);
    }
    be->silu_backward(m->dit_dsc, m->dit_cv, m->dit_dsc, BC); /* dc */
    be->encoder_backward(m->g.wte, NULL, m->dit_dsc, m->tok_inp, B, 1, C);
    be->linear_backward(db, g->t2_w, g->t2_b, m->dit_dsc, m->dit_s1, w->t2_w, (size_t)B, C, C);
    be->silu_backward(db, m->dit_h1, db, BC);
    be->linear_backward(dtf, g->t1_w, g->t1_b, db, m->dit_tf, w->t1_w, (size_t)B, NL_DIT_TFREQ, C);
}

void nl_dit_fm_batch(const nl_config *c, const nl_images *im, nl_rng *rng, const int *idx, int B, double drop,
                     float *xt, float *v, float *t, int *y) {
    const size_t TP = (size_t)c->seq_len * c->patch * c->patch * c->img_ch, per = (size_t)im->h * im->w * im->ch;
    NL_ASSERT(im->h == c->img_h && im->w == c->img_w && im->ch == c->img_ch && TP == per);
    for (int b = 0; b < B; b++) {
        const size_t i = idx ? (size_t)idx[b] : (size_t)nl_rng_below(rng, (uint64_t)im->n);
        const double tb = c->time_sampling == NL_TSAMP_UNIFORM ? nl_rng_uniform(rng)
                                                               : 1.0 / (1.0 + exp(-nl_rng_normal(rng)));
        const int dropped = nl_rng_uniform(rng) < drop;
        t[b] = (float)tb;
        y[b] = im->label && !dropped ? im->label[i] : c->classes;
        float *x0 = v + (size_t)b * TP, *xb = xt + (size_t)b * TP;
        nl_dit_patchify(c, im->pix + i * per, x0);
        for (size_t j = 0; j < TP; j++) {
            const float e = (float)nl_rng_normal(rng);
            xb[j] = (1.0f - t[b]) * x0[j] + t[b] * e;
            x0[j] = e - x0[j]; /* v */
        }
    }
}

double nl_dit_eval(nl_model *m, const nl_images *im, int n, uint64_t seed) {
    const nl_config *c = &m->cfg;
    const size_t TP = (size_t)c->seq_len * m->P;
    n = n < im->n ? n : im->n;
    float *xt = nl_xmalloc((size_t)m->B * TP * sizeof(float)), *v = nl_xmalloc((size_t)m->B * TP * sizeof(float));
    float *t = nl_xmalloc((size_t)m->B * sizeof(float));
    int *y = nl_xmalloc((size_t)m->B * sizeof(int)), *idx = nl_xmalloc((size_t)m->B * sizeof(int));
    nl_rng rng;
    nl_rng_seed(&rng, seed);
    double sum = 0.0;
    for (int i0 = 0; i0 < n; i0 += m->B) {
        const int nb = n - i0 < m->B ? n - i0 : m->B;
        for (int b = 0; b < nb; b++) idx[b] = i0 + b;
        nl_dit_fm_batch(c, im, &rng, idx, nb, 0.0, xt, v, t, y);
        sum += (double)nl_dit_forward(m, xt, t, y, v, nb, 0.0f) * nb;
    }
    free(xt), free(v), free(t), free(y), free(idx);
    return n ? sum / n : NAN;
}

/* The image index (row-major H x W x ch) of element j = (py p + px) ch + k of patch t (raster order). */
static size_t patch_pixel(const nl_config *c, int t, int j) {
    const int p = c->patch, ch = c->img_ch, wp = c->img_w / p, k = j % ch, px = j / ch % p, py = j / ch / p;
    const size_t y = (size_t)(t / wp) * p + py, x = (size_t)(t % wp) * p + px;
    return (y * c->img_w + x) * ch + k;
}

void nl_dit_patchify(const nl_config *c, const float *img, float *patches) {
    const int P = c->patch * c->patch * c->img_ch;
    for (int t = 0; t < c->seq_len; t++)
        for (int j = 0; j < P; j++) patches[(size_t)t * P + j] = img[patch_pixel(c, t, j)];
}

void nl_dit_unpatchify(const nl_config *c, const float *patches, float *img) {
    const int P = c->patch * c->patch * c->img_ch;
    for (int t = 0; t < c->seq_len; t++)
        for (int j = 0; j < P; j++) img[patch_pixel(c, t, j)] = patches[(size_t)t * P + j];
}
