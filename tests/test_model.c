/* test_model.c -- the whole model: the placement table, the schedule, gradient accumulation,
 * determinism, checkpoints, and the comparison with the independent PyTorch twin
 * (python/normlab_torch.py via tests/ref_check.py) for every placement x norm type x emb-norm. */
#include "check.h"
#include "ckpt.h"
#include "config.h"
#include "model.h"
#include "optim.h"
#include "placement.h"
#include "safetensors.h"
#include "tests.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { TB = 2, TT = 12, TV = 61 }; /* batch, seq len, vocab of the tiny test models */

static nl_config tiny(int placement, int type, int emb) {
    nl_config c = nl_test_config(TV, 4, 32, 4, TT, 42 + (uint64_t)placement);
    c.placement = placement;
    c.norm_type = type;
    c.emb_norm = emb;
    c.weight_decay = 0.1;
    return c;
}

/* Moves gains and biases off 1 and 0 so every gradient path is exercised. */
static void perturb(nl_model *m, uint64_t seed) {
    nl_rng r;
    nl_rng_seed(&r, seed);
    for (int i = 0; i < m->ntensors; i++) {
        const nl_tensor *t = &m->tensors[i];
        if (t->cols) continue;
        float *p = m->params + t->offset;
        for (size_t j = 0; j < t->numel; j++) p[j] += (float)(0.2 * nl_rng_normal(&r));
    }
    /* With q/k norms the perturbed qkv biases would dominate the tiny 0.02-init projections, making q
     * and k nearly the same for every token: attention would be flat and the q/k-norm gradients
     * ~1e-8, below what an fp32 model can match to 1e-4. Larger projections keep them informative. */
    for (int l = 0; l < m->cfg.layers; l++)
        if (m->w.blocks[l].qkvn[0].w)
            for (size_t j = 0; j < (size_t)3 * m->cfg.dim * m->cfg.dim; j++) m->w.blocks[l].qkv_w[j] *= 10.0f;
}

static void make_batch(int *inp, int *tgt, uint64_t seed) {
    nl_rng r;
    nl_rng_seed(&r, seed);
    int w[TB * (TT + 1)];
    for (int i = 0; i < TB * (TT + 1); i++) w[i] = (int)nl_rng_below(&r, TV);
    for (int b = 0; b < TB; b++) {
        memcpy(inp + b * TT, w + b * (TT + 1), TT * sizeof(int));
        memcpy(tgt + b * TT, w + b * (TT + 1) + 1, TT * sizeof(int));
    }
}

static float step_loss(nl_model *m, const int *inp, const int *tgt) {
    nl_model_zero_grad(m);
    float loss = nl_model_forward(m, inp, tgt, TB, TT, 1.0f / (TB * TT));
    nl_model_backward(m);
    return loss;
}

/* ---------------------------------------------------------------- table and schedule */

int test_placement_table(void) {
    int fails = 0;
    for (int i = 0; i < NL_PLACE_COUNT; i++) {
        const nl_placement *p = &nl_placements[i];
        fails += NL_CHECK(p->name && p->eq && p->ref && p->sites, "row %d complete", i);
        fails += NL_CHECK(nl_placement_from_name(p->name) == i, "name '%s' unique and found", p->name);
    }
    fails += NL_CHECK(nl_placement_from_name("bogus") < 0, "unknown name rejected");
    /* the sites of the seven placements, block by block (L = 8; mix alpha 0.25 -> blocks 1..2 post) */
    nl_config c = tiny(NL_PLACE_MIX, NL_LAYERNORM, 0);
    c.layers = 8;
    const unsigned want_mix[8] = { NL_SITE_POST, NL_SITE_POST, NL_SITE_IN, NL_SITE_IN,
                                   NL_SITE_IN,   NL_SITE_IN,   NL_SITE_IN, NL_SITE_IN };
    for (int l = 1; l <= 8; l++) fails += NL_CHECK(nl_block_sites(&c, l) == want_mix[l - 1], "mix block %d", l);
    c.mix_alpha = 0.5;
    fails += NL_CHECK(nl_block_sites(&c, 4) == NL_SITE_POST && nl_block_sites(&c, 5) == NL_SITE_IN, "mix alpha 0.5");
    c.placement = NL_PLACE_PERI;
    fails += NL_CHECK(nl_block_sites(&c, 3) == (NL_SITE_IN | NL_SITE_OUT), "peri = in + out");
    c.placement = NL_PLACE_OUTONLY;
    fails += NL_CHECK(nl_block_sites(&c, 3) == NL_SITE_OUT, "outonly = out");
    c.placement = NL_PLACE_LNS;
    fails += NL_CHECK(fabs(nl_block_in_scale(&c, 1) - 1.0) < 1e-12 && fabs(nl_block_in_scale(&c, 4) - 0.5) < 1e-12,
                      "lns 1/sqrt(l), l from 1");
    c.placement = NL_PLACE_DEEPNORM;
    fails += NL_CHECK(fabs(nl_res_alpha(&c) - pow(16.0, 0.25)) < 1e-12 &&
                              fabs(nl_init_beta(&c) - pow(64.0, -0.25)) < 1e-12,
                      "deepnorm constants");
    /* the restructuring placements: per-sublayer wiring */
    c.placement = NL_PLACE_HYBRIDSTAR;
    fails += NL_CHECK(nl_sub_sites(&c, 1, 0) == (NL_SITE_IN | NL_WIRE_QKV) && nl_sub_sites(&c, 1, 1) == NL_SITE_IN,
                      "hybridstar block 1 is pre-LN with QKV norms");
    fails += NL_CHECK(nl_sub_sites(&c, 2, 0) == NL_WIRE_QKV && nl_sub_sites(&c, 2, 1) == (NL_SITE_IN | NL_WIRE_RES_IN),
                      "hybridstar block 2 is hybrid");
    c.placement = NL_PLACE_HYBRID;
    fails += NL_CHECK(nl_sub_sites(&c, 1, 0) == NL_WIRE_QKV, "hybrid block 1 has no input norm");
    c.placement = NL_PLACE_B2T;
    fails += NL_CHECK(nl_sub_sites(&c, 3, 0) == NL_SITE_POST && nl_sub_sites(&c, 3, 1) == (NL_SITE_POST | NL_WIRE_B2T),
                      "b2t");
    c.placement = NL_PLACE_NORMFORMER;
    fails += NL_CHECK(nl_sub_sites(&c, 3, 0) == (NL_SITE_IN | NL_SITE_OUT | NL_WIRE_HSCALE) &&
                              nl_sub_sites(&c, 3, 1) == (NL_SITE_IN | NL_WIRE_FCNORM),
                      "normformer");
    c.scale_resids = 1;
    fails += NL_CHECK(nl_sub_sites(&c, 3, 1) & NL_WIRE_LAMRES, "normformer --scale-resids");
    c.scale_resids = 0;
    c.qk_norm = 1;
    c.placement = NL_PLACE_PRE;
    fails += NL_CHECK(nl_sub_sites(&c, 2, 0) == (NL_SITE_IN | NL_WIRE_QK) && nl_sub_sites(&c, 2, 1) == NL_SITE_IN,
                      "--qk-norm on attention only");
    c.placement = NL_PLACE_HYBRID;
    fails += NL_CHECK(nl_config_resolve(&c) == NL_ERR_ARG, "hybrid rejects --qk-norm");
    c.qk_norm = 0;
    c.placement = NL_PLACE_RESIDUAL;
    c.final_norm = 0;
    fails += NL_CHECK(nl_placements[NL_PLACE_RESIDUAL].dual && nl_config_resolve(&c) == NL_ERR_ARG,
                      "residual needs its final norm");
    c.final_norm = -1;
    c.placement = NL_PLACE_GEMMA;
    c.norm_type = -1;
    fails += NL_CHECK(nl_config_resolve(&c) == NL_OK && c.norm_type == NL_RMSNORM &&
                              fabs(nl_emb_scale(&c) - sqrt(32.0)) < 1e-12,
                      "gemma: rmsnorm, emb * sqrt(d)");
    /* initial values of the new parameters */
    {
        nl_model im;
        nl_config ic = tiny(NL_PLACE_PRE, NL_DYT, 0);
        ic.dyt_alpha = 0.8;
        ic.skip_init = 1;
        nl_model_init(&im, &ic);
        fails += NL_CHECK(im.w.blocks[1].norm[0][0].alpha[0] == 0.8f && im.w.blocks[1].norm[0][0].w[3] == 1.0f &&
                                  im.w.blocks[1].skip[1][0] == 0.0f,
                          "dyt alpha = --dyt-alpha, gain 1, skip gain 0");
        nl_model_free(&im);
        ic = tiny(NL_PLACE_PRE, NL_SCALENORM, 0);
        ic.qk_norm = 1;
        nl_model_init(&im, &ic);
        fails += NL_CHECK(fabsf(im.w.blocks[0].norm[1][0].w[0] - sqrtf(32.0f)) < 1e-6f &&
                                  fabsf(im.w.blocks[0].qkvn[1].w[0] - sqrtf(8.0f)) < 1e-6f,
                          "scalenorm g = sqrt(width): d for the stream, d/H for q/k");
        nl_model_free(&im);
        ic = tiny(NL_PLACE_GEMMA, NL_SEEDNORM, -1);
        nl_model_init(&im, &ic);
        fails += NL_CHECK(im.w.blocks[2].norm[1][1].w[5] == 0.0f && im.w.blocks[2].norm[1][1].alpha[5] == 1.0f &&
                                  im.w.blocks[2].norm[1][1].beta[5] == 0.0f,
                          "gemma stores gain offsets (0); seednorm alpha 1, beta 0");
        nl_model_free(&im);
        ic = tiny(NL_PLACE_NORMFORMER, NL_LAYERNORM, 0);
        ic.scale_resids = 1;
        nl_model_init(&im, &ic);
        fails += NL_CHECK(im.w.blocks[0].hscale[3] == 1.0f && im.w.blocks[0].lam[7] == 1.0f &&
                                  nl_model_find(&im, "blocks.0.mlp.fc_norm.weight")->rows == 128,
                          "normformer head scales and residual weights 1, fc norm over 4d");
        nl_model_free(&im);
    }
    /* defaults of the end norms (docs/methods.md §2.15) */
    for (int i = 0; i < NL_PLACE_COUNT; i++) {
        nl_config d = tiny(i, nl_placements[i].sphere ? NL_L2NORM : NL_RMSNORM, -1);
        d.final_norm = -1;
        nl_config_resolve(&d);
        const int emb_on = i == NL_PLACE_PERI || i == NL_PLACE_SANDWICH;
        const int fin_off = i == NL_PLACE_POST || i == NL_PLACE_DEEPNORM || i == NL_PLACE_NONE || i == NL_PLACE_B2T ||
                            i == NL_PLACE_NGPT;
        fails += NL_CHECK(d.emb_norm == emb_on, "%s emb-norm default", nl_placements[i].name);
        fails += NL_CHECK(d.final_norm == !fin_off, "%s final-norm default", nl_placements[i].name);
    }
    /* rmsnorm has no biases; frozen out-gains are not trainable */
    nl_model m;
    nl_config p = tiny(NL_PLACE_PERI, NL_RMSNORM, 1);
    p.out_gain_frozen = 1;
    nl_model_init(&m, &p);
    fails += NL_CHECK(!nl_model_find(&m, "blocks.0.attn_norm_in.bias") &&
                              nl_model_find(&m, "blocks.0.attn_norm_in.weight"),
                      "rmsnorm has no bias");
    fails += NL_CHECK(!nl_model_find(&m, "blocks.1.mlp_norm_out.weight")->trainable, "frozen out gain");
    fails += NL_CHECK(!nl_model_find(&m, "blocks.1.mlp_norm_post.weight"), "peri has no post norm");
    nl_model_free(&m);
    /* deepnorm init: value rows scaled by beta, query rows not */
    nl_config dn = tiny(NL_PLACE_DEEPNORM, NL_LAYERNORM, 0);
    dn.layers = 32;
    dn.dim = 64;
    nl_model_init(&m, &dn);
    const float *q = m.w.blocks[0].qkv_w;
    double sq = 0, sv = 0;
    for (int i = 0; i < 64 * 64; i++) sq += q[i] * q[i], sv += q[2 * 64 * 64 + i] * q[2 * 64 * 64 + i];
    double ratio = sqrt(sv / sq);
    fails += NL_CHECK(fabs(ratio - pow(256.0, -0.25)) < 0.03, "deepnorm v/q init std ratio %.4f vs beta %.4f", ratio,
                      pow(256.0, -0.25));
    nl_model_free(&m);
    return fails;
}

int test_lr_schedule(void) {
    nl_config c;
    nl_config_defaults(&c);
    c.lr = 1.0;
    c.warmup = 10;
    c.steps = 110;
    c.min_lr_frac = 0.1;
    int fails = 0;
    fails += nl_check_scalar("lr step 0", nl_lr_at(&c, 0), 0.1, 1e-12);
    fails += nl_check_scalar("lr step 9", nl_lr_at(&c, 9), 1.0, 1e-12);
    fails += nl_check_scalar("lr step 10 (peak)", nl_lr_at(&c, 10), 1.0, 1e-12);
    fails += nl_check_scalar("lr half way", nl_lr_at(&c, 60), 0.55, 1e-12);
    fails += nl_check_scalar("lr end", nl_lr_at(&c, 110), 0.1, 1e-12);
    c.steps = 220; /* extended: the schedule still spans lr_steps = 110, then the floor */
    c.lr_steps = 110;
    fails += nl_check_scalar("lr half way, extended", nl_lr_at(&c, 60), 0.55, 1e-12);
    fails += nl_check_scalar("lr after lr_steps: the floor", nl_lr_at(&c, 150), 0.1, 1e-12);
    fails += nl_check_scalar("clip scale", nl_clip_scale(4.0, 1.0), 1.0 / (4.0 + 1e-6), 1e-12);
    fails += nl_check_scalar("no clip below", nl_clip_scale(0.5, 1.0), 1.0, 1e-12);
    return fails;
}

/* Two accumulated micro-batches of B equal one batch of 2B. */
int test_grad_accum(void) {
    nl_config c = tiny(NL_PLACE_PERI, NL_LAYERNORM, 1);
    nl_model a, b;
    nl_model_init(&a, &c);
    nl_model_init(&b, &c);
    nl_model_alloc_acts(&a, TB, TT);
    nl_model_alloc_acts(&b, 2 * TB, TT);
    int inp[2 * TB * TT], tgt[2 * TB * TT];
    make_batch(inp, tgt, 1);
    make_batch(inp + TB * TT, tgt + TB * TT, 2);
    const float ds = 1.0f / (2 * TB * TT);
    nl_model_zero_grad(&a);
    nl_model_forward(&a, inp, tgt, TB, TT, ds);
    nl_model_backward(&a);
    nl_model_forward(&a, inp + TB * TT, tgt + TB * TT, TB, TT, ds);
    nl_model_backward(&a);
    nl_model_zero_grad(&b);
    nl_model_forward(&b, inp, tgt, 2 * TB, TT, ds);
    nl_model_backward(&b);
    double *want = nl_xmalloc(b.nparams * sizeof(double));
    nl_to_double(b.grads, want, b.nparams);
    int fails = nl_check_rel("accumulated gradient", a.grads, want, a.nparams, 1e-5);
    free(want);
    nl_model_free(&a);
    nl_model_free(&b);
    return fails;
}

/* Same seed -> bit-identical parameters and losses; another seed -> different. */
int test_determinism(void) {
    int fails = 0;
    float loss[3];
    float *p0 = NULL;
    for (int k = 0; k < 3; k++) {
        nl_config c = tiny(NL_PLACE_PRE, NL_LAYERNORM, 0);
        c.seed = k == 2 ? 7 : 42;
        nl_model m;
        nl_model_init(&m, &c);
        nl_model_alloc_acts(&m, TB, TT);
        int inp[TB * TT], tgt[TB * TT];
        for (int s = 0; s < 3; s++) {
            make_batch(inp, tgt, (uint64_t)s);
            loss[k] = step_loss(&m, inp, tgt);
            nl_adamw_step(&m, 1e-3, nl_clip_scale(nl_grad_norm(&m), 1.0), s + 1);
        }
        if (k == 0) {
            p0 = nl_xmalloc(m.nparams * sizeof(float));
            memcpy(p0, m.params, m.nparams * sizeof(float));
        } else if (k == 1) {
            fails += NL_CHECK(memcmp(p0, m.params, m.nparams * sizeof(float)) == 0, "same seed: identical parameters");
        }
        nl_model_free(&m);
    }
    fails += NL_CHECK(memcmp(&loss[0], &loss[1], sizeof(float)) == 0, "same seed: identical loss");
    fails += NL_CHECK(loss[0] != loss[2], "another seed: another loss");
    free(p0);
    return fails;
}

int test_ckpt_roundtrip(void) {
    int fails = 0;
    char dir[] = "/tmp/nl_ckpt_XXXXXX", path[64];
    NL_ASSERT(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/c.safetensors", dir);
    nl_config c = tiny(NL_PLACE_MIX, NL_RMSNORM, 1);
    nl_model a, b;
    nl_model_init(&a, &c);
    perturb(&a, 3);
    for (size_t i = 0; i < a.nparams; i++) a.m[i] = (float)i, a.v[i] = (float)(2 * i);
    nl_rng r, r2;
    nl_rng_seed(&r, 9);
    fails += NL_CHECK(nl_ckpt_save(&a, path, 17, &r) == NL_OK, "save: %s", nl_last_error());
    int step = 0;
    fails += NL_CHECK(nl_ckpt_load(&b, path, &step, &r2) == NL_OK, "load: %s", nl_last_error());
    fails += NL_CHECK(step == 17 && !memcmp(&r, &r2, sizeof r), "step and rng restored");
    fails += NL_CHECK(b.nparams == a.nparams && !memcmp(a.params, b.params, a.nparams * 4) &&
                              !memcmp(a.m, b.m, a.nparams * 4) && !memcmp(a.v, b.v, a.nparams * 4),
                      "params and moments restored");
    fails += NL_CHECK(b.cfg.placement == NL_PLACE_MIX && b.cfg.norm_type == NL_RMSNORM && b.cfg.emb_norm == 1 &&
                              b.cfg.vocab == TV,
                      "config restored");
    nl_model_free(&b);
    /* flip one data byte: the checksum catches it */
    FILE *f = fopen(path, "r+b");
    fseek(f, -5, SEEK_END);
    int ch = fgetc(f);
    fseek(f, -5, SEEK_END);
    fputc(ch ^ 0x40, f);
    fclose(f);
    fails += NL_CHECK(nl_ckpt_load(&b, path, &step, &r2) == NL_ERR_FORMAT && strstr(nl_last_error(), "checksum"),
                      "corrupt checkpoint rejected: %s", nl_last_error());
    /* an export is not a checkpoint */
    fails += NL_CHECK(nl_export(&a, path) == NL_OK, "export");
    fails += NL_CHECK(nl_ckpt_load(&b, path, &step, &r2) == NL_ERR_FORMAT &&
                              strstr(nl_last_error(), "not a normlab checkpoint"),
                      "export is not a checkpoint: %s", nl_last_error());
    /* export -> import restores parameters; a model of another placement refuses it */
    nl_model_init(&b, &c);
    fails += NL_CHECK(nl_import(&b, path) == NL_OK && !memcmp(a.params, b.params, a.nparams * 4),
                      "import restores params: %s", nl_last_error());
    nl_model_free(&b);
    nl_config o = c;
    o.placement = NL_PLACE_PERI;
    nl_model_init(&b, &o);
    fails += NL_CHECK(nl_import(&b, path) == NL_ERR_FORMAT, "import into another placement fails");
    nl_model_free(&b);
    nl_model_free(&a);
    unlink(path);
    rmdir(dir);
    return fails;
}

/* ---------------------------------------------------------------- PyTorch twin */

enum { KSTEPS = 5 };
static const float twin_lrs[KSTEPS] = { 1e-3f, 3e-3f, 3e-3f, 2e-3f, 1e-3f };

typedef struct twin_case {
    nl_config c;
    char dir[96];
} twin_case;

static int write_case(const twin_case *tc, int *inp, int *tgt) {
    nl_model m;
    char path[160];
    if (nl_model_init(&m, &tc->c) != NL_OK) return printf("    init: %s\n", nl_last_error()), 1;
    perturb(&m, tc->c.seed + 100);
    snprintf(path, sizeof path, "%s/model.safetensors", tc->dir);
    nl_status st = nl_export(&m, path);
    nl_model_free(&m);
    if (st != NL_OK) return printf("    export: %s\n", nl_last_error()), 1;
    int tok[TB * (TT + 1)];
    for (int b = 0; b < TB; b++) {
        memcpy(tok + b * (TT + 1), inp + b * TT, TT * sizeof(int));
        tok[b * (TT + 1) + TT] = tgt[b * TT + TT - 1];
    }
    nl_st_entry e[2] = { { "tokens", NL_ST_I32, 2, { TB, TT + 1 }, tok }, { "lrs", NL_ST_F32, 1, { KSTEPS }, twin_lrs } };
    snprintf(path, sizeof path, "%s/batch.safetensors", tc->dir);
    if (nl_twin_write_batch(path, e, 2, &tc->c) != NL_OK) return printf("    batch: %s\n", nl_last_error()), 1;
    return 0;
}

/* got against the twin's want (2-norm relative error) within 1e-4; where the case is ill-conditioned in
 * fp32, within 10x the error of the twin's own float32 run on it (ref's f32dev.<name>), counted in
 * *widened. */
/* name without its "blocks.<l>." part: the same tensor in every block */
static const char *block_free(const char *name, char *buf, size_t cap) {
    const char *b = strstr(name, "blocks.");
    if (!b) return name;
    const char *rest = b + 7 + strspn(b + 7, "0123456789");
    snprintf(buf, cap, "%.*s%s", (int)(b - name), name, *rest == '.' ? rest + 1 : rest);
    return buf;
}

static int twin_check(const nl_st_file *ref, const char *name, const float *got, const double *want, size_t n,
                      int *widened) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++)
        num += ((double)got[i] - want[i]) * ((double)got[i] - want[i]), den += want[i] * want[i];
    const double rel = sqrt(num) / fmax(sqrt(den), 1e-12);
    if (rel <= 1e-4) return 0;
    /* the twin's float32 error of this tensor, in whichever block it is largest: one float32 run samples
     * one rounding pattern per block, and the blocks share the tensor's conditioning */
    char key[160], kb[160], tb[160];
    snprintf(key, sizeof key, "f32dev.%s", name);
    NL_ASSERT(nl_st_find(ref, key));
    const char *kfree = block_free(key, kb, sizeof kb);
    double dev = 0.0;
    for (int i = 0; i < ref->nt; i++) {
        const nl_st_tensor *d = &ref->t[i];
        if (strncmp(d->name, "f32dev.", 7) || strcmp(block_free(d->name, tb, sizeof tb), kfree)) continue;
        NL_ASSERT(d->nbytes == sizeof(float));
        dev = fmax(dev, ((const float *)d->data)[0]);
    }
    const double tol = fmax(1e-4, 10.0 * dev);
    if (rel <= tol) return (*widened)++, 0;
    return nl_check_rel(name, got, want, n, tol);
}

/* a gradient against the twin's (nl_twin_cmp): below gfloor where the twin's is, else twin_check */
typedef struct grad_ctx {
    const nl_st_file *ref;
    double gfloor;
    int *widened;
} grad_ctx;

static int grad_check(void *ctx, const char *label, const float *got, const double *want, size_t n) {
    const grad_ctx *g = ctx;
    double nw = 0.0, ng = 0.0;
    for (size_t j = 0; j < n; j++) nw += want[j] * want[j], ng += (double)got[j] * got[j];
    if (sqrt(nw) < g->gfloor)
        return NL_CHECK(sqrt(ng) < g->gfloor, "%s: twin gradient ~0 (%.3g), model %.3g", label, sqrt(nw), sqrt(ng));
    return twin_check(g->ref, label, got, want, n, g->widened);
}

/* this model against the twin's ref.safetensors: loss, every gradient, KSTEPS AdamW steps */
static int compare_case(const twin_case *tc, const int *inp, const int *tgt, int *widened) {
    char path[160], label[160];
    nl_st_file ref;
    snprintf(path, sizeof path, "%s/ref.safetensors", tc->dir);
    if (nl_st_read(path, &ref) != NL_OK) return printf("    %s\n", nl_last_error()), 1;
    nl_model m;
    nl_model_init(&m, &tc->c);
    perturb(&m, tc->c.seed + 100);
    nl_model_alloc_acts(&m, TB, TT);
    int fails = 0;
    float loss = step_loss(&m, inp, tgt);
    nl_grad_norm(&m); /* zeroes frozen gradients, as the twin has none */
    const nl_st_tensor *rl = nl_st_find(&ref, "loss"), *rls = nl_st_find(&ref, "losses");
    if (!rl || !rls || rls->nbytes != (KSTEPS + 1) * sizeof(float)) {
        nl_model_free(&m);
        nl_st_free(&ref);
        return printf("    %s: loss/losses missing\n", path), 1;
    }
    /* loss and every gradient within 1e-4 relative (twin in float64, model fp32). A gradient that is
     * zero by symmetry (the k-norm bias: softmax ignores a shift shared by all keys) has no relative
     * error; a tensor whose twin gradient is below 1e-7 of the whole gradient's norm must instead be
     * below that level in the model too. A case that is itself ill-conditioned in fp32 (the twin's own
     * float32 run misses its float64 result) may miss 1e-4 by no more than 10x that float32 error (of
     * the same tensor in any block, see twin_check); its line says how often. Only q/k-norm cases need
     * it: with grouped-query attention, in float64 alone, perturbing every weight by a relative 1e-7
     * (fp32 rounding) moves gradients by 1.6e-4, against 4e-7 for the same model without q/k norms; in
     * `none` + ScaleNorm + q/k norms the twin's float32 q/k-norm gradients miss by up to 9.3e-5, and the
     * model's by 5e-5 (block 1, OpenBLAS) or 1.3e-4 (oneDNN): the matmul library's summation order. */
    double gall = 0.0;
    for (int i = 0; i < ref.nt; i++)
        if (!strncmp(ref.t[i].name, "grad.", 5))
            for (size_t j = 0; j < ref.t[i].nbytes / sizeof(float); j++)
                gall += (double)((const float *)ref.t[i].data)[j] * ((const float *)ref.t[i].data)[j];
    grad_ctx gc = { &ref, 1e-7 * sqrt(gall), widened };
    fails += nl_check_scalar("loss", loss, ((const float *)rl->data)[0], 1e-4);
    fails += nl_twin_grads(&m, &ref, grad_check, &gc);
    /* KSTEPS AdamW steps on the same batch: losses[k] after k updates */
    float losses[KSTEPS + 1], *p0 = nl_xmalloc(m.nparams * sizeof(float));
    memcpy(p0, m.params, m.nparams * sizeof(float));
    losses[0] = loss;
    for (int k = 0; k < KSTEPS; k++) {
        if (k) losses[k] = step_loss(&m, inp, tgt);
        double gn = nl_grad_norm(&m);
        nl_adamw_step(&m, twin_lrs[k], nl_clip_scale(gn, tc->c.clip), k + 1);
    }
    losses[KSTEPS] = nl_model_forward(&m, inp, tgt, TB, TT, 0.0f);
    double want[KSTEPS + 1];
    nl_to_double((const float *)rls->data, want, KSTEPS + 1);
    fails += twin_check(&ref, "losses", losses, want, KSTEPS + 1, widened);
    fails += NL_CHECK(losses[KSTEPS] < losses[0], "training lowers the loss (%g -> %g)", losses[0], losses[KSTEPS]);
    /* ngpt: the parameters themselves after the KSTEPS updates, each followed by the projection onto the unit
     * sphere: the change of every tensor against the twin's */
    for (int i = 0; nl_placements[tc->c.placement].sphere && i < m.ntensors; i++) {
        const nl_tensor *t = &m.tensors[i];
        snprintf(label, sizeof label, "step.%s", t->name);
        const nl_st_tensor *d = nl_st_find(&ref, label);
        const size_t n = (size_t)t->export_rows * (t->cols ? (size_t)t->cols : 1);
        if (!d || d->nbytes != n * sizeof(float)) {
            fails += NL_CHECK(0, "%s missing or of the wrong size in the twin", label);
            continue;
        }
        float *got = nl_xmalloc(n * sizeof(float));
        double *wd = nl_xmalloc(n * sizeof(double));
        for (size_t j = 0; j < n; j++) got[j] = m.params[t->offset + j] - p0[t->offset + j];
        nl_to_double((const float *)d->data, wd, n);
        fails += twin_check(&ref, label, got, wd, n, widened);
        free(got);
        free(wd);
    }
    free(p0);
    nl_model_free(&m);
    nl_st_free(&ref);
    return fails;
}

int test_torch_twin(void) {
    /* every placement x norm type (LayerNorm and RMSNorm with emb-norm off and on, the other types with
     * the placement's default), every placement as llama, plus the other switches once each */
    enum { NBASE = NL_PLACE_COUNT * (NL_NORM_TYPE_COUNT + 3), NEXTRA = 42, NCASE = NBASE + NEXTRA };
    twin_case *tc = nl_xcalloc(NCASE * sizeof *tc);
    char root[] = "/tmp/nl_twin_XXXXXX";
    NL_ASSERT(mkdtemp(root));
    int n = 0;
    for (int p = 0; p < NL_PLACE_COUNT; p++)
        for (int t = 0; t < NL_NORM_TYPE_COUNT; t++)
            for (int e = 0; e < (t <= NL_RMSNORM ? 2 : 1); e++) {
                nl_config probe = tiny(p, t, t <= NL_RMSNORM ? e : -1);
                if (nl_config_resolve(&probe) != NL_OK) continue; /* crmsnorm outside pre/lns */
                tc[n++].c = tiny(p, t, t <= NL_RMSNORM ? e : -1);
            }
    for (int p = 0; p < NL_PLACE_COUNT; p++) tc[n].c = tiny(p, -1, -1), tc[n++].c.arch = NL_ARCH_LLAMA;
    const int nbase = n;
    tc[n].c = tiny(NL_PLACE_PERI, NL_LAYERNORM, 1), tc[n++].c.out_gain_frozen = 1;
    tc[n].c = tiny(NL_PLACE_OUTONLY, NL_RMSNORM, 0), tc[n++].c.out_gain_frozen = 1;
    tc[n].c = tiny(NL_PLACE_PRE, NL_LAYERNORM, 0), tc[n++].c.scaled_init = 1;
    tc[n].c = tiny(NL_PLACE_POST, NL_LAYERNORM, 0), tc[n++].c.final_norm = 1;
    tc[n].c = tiny(NL_PLACE_MIX, NL_RMSNORM, 0), tc[n++].c.mix_alpha = 0.5;
    tc[n].c = tiny(NL_PLACE_NONE, NL_LAYERNORM, 0), tc[n++].c.skip_init = 1;
    tc[n].c = tiny(NL_PLACE_PRE, NL_RMSNORM, 0), tc[n++].c.skip_init = 1;
    tc[n].c = tiny(NL_PLACE_PRE, NL_LAYERNORM, 0), tc[n++].c.qk_norm = 1;
    tc[n].c = tiny(NL_PLACE_GEMMA, NL_RMSNORM, -1), tc[n++].c.qk_norm = 1;
    tc[n].c = tiny(NL_PLACE_PRE, NL_SEEDNORM, 0), tc[n++].c.qk_norm = 1;
    tc[n].c = tiny(NL_PLACE_POST, NL_DYT, 0), tc[n++].c.qk_norm = 1;
    tc[n].c = tiny(NL_PLACE_PRE, NL_DYT, 0), tc[n++].c.dyt_alpha = 1.5;
    tc[n].c = tiny(NL_PLACE_NONE, NL_SCALENORM, 0), tc[n++].c.qk_norm = 1;
    tc[n].c = tiny(NL_PLACE_GEMMA, NL_SCALENORM, 1), tc[n++].c.skip_init = 1;
    tc[n].c = tiny(NL_PLACE_NORMFORMER, NL_LAYERNORM, 0), tc[n++].c.scale_resids = 1;
    tc[n].c = tiny(NL_PLACE_NORMFORMER, NL_RMSNORM, 0), tc[n].c.scale_resids = 1, tc[n++].c.qk_norm = 1;
    tc[n].c = tiny(NL_PLACE_RESIDUAL, NL_LAYERNORM, 0), tc[n++].c.skip_init = 1;
    tc[n].c = tiny(NL_PLACE_B2T, NL_RMSNORM, 0), tc[n++].c.final_norm = 1;
    tc[n].c = tiny(NL_PLACE_LNS, NL_CRMSNORM, 1), tc[n++].c.qk_norm = 1;
    /* llama with other norm types (no biases), grouped-query attention, head tying, widths, theta */
    const int l0 = n;
    tc[n++].c = tiny(NL_PLACE_PRE, NL_LAYERNORM, 1);
    tc[n++].c = tiny(NL_PLACE_PERI, NL_DYT, 0);
    tc[n++].c = tiny(NL_PLACE_PRE, NL_SEEDNORM, 0);
    tc[n++].c = tiny(NL_PLACE_LNS, NL_CRMSNORM, 0);
    tc[n].c = tiny(NL_PLACE_PRE, NL_RMSNORM, 0), tc[n++].c.kv_heads = 2;
    tc[n].c = tiny(NL_PLACE_PERI, NL_RMSNORM, 1), tc[n++].c.kv_heads = 1;
    tc[n].c = tiny(NL_PLACE_HYBRID, NL_RMSNORM, 0), tc[n++].c.kv_heads = 2;
    tc[n].c = tiny(NL_PLACE_PRE, NL_RMSNORM, 0), tc[n].c.qk_norm = 1, tc[n++].c.kv_heads = 2;
    tc[n].c = tiny(NL_PLACE_GEMMA, NL_RMSNORM, 0), tc[n++].c.tie_head = 1;
    tc[n].c = tiny(NL_PLACE_NORMFORMER, NL_RMSNORM, 0), tc[n++].c.scale_resids = 1;
    tc[n].c = tiny(NL_PLACE_PRE, NL_RMSNORM, 0), tc[n].c.ffn_dim = 48, tc[n++].c.rope_theta = 100.0;
    for (int i = l0; i < n; i++) tc[i].c.arch = NL_ARCH_LLAMA;
    /* gpt2 with an untied head and grouped-query attention */
    tc[n].c = tiny(NL_PLACE_PRE, NL_LAYERNORM, 0), tc[n].c.tie_head = 0, tc[n++].c.kv_heads = 2;
    tc[n].c = tiny(NL_PLACE_PERI, NL_LAYERNORM, 1), tc[n++].c.ffn_dim = 40;
    tc[n].c = tiny(NL_PLACE_HYBRID, NL_LAYERNORM, 0), tc[n++].c.kv_heads = 2;
    tc[n].c = tiny(NL_PLACE_PRE, NL_RMSNORM, 0), tc[n].c.qk_norm = 1, tc[n++].c.arch = NL_ARCH_LLAMA;
    /* GPAS (pre, peri, lns, outonly, hybrid) and SDD (every placement kind; llama's gate | up and
     * grouped q/k/v groups), alone and together */
    tc[n].c = tiny(NL_PLACE_PRE, NL_LAYERNORM, 0), tc[n++].c.gpas = 1;
    tc[n].c = tiny(NL_PLACE_PERI, NL_RMSNORM, 1), tc[n++].c.gpas = 1;
    tc[n].c = tiny(NL_PLACE_LNS, NL_LAYERNORM, 0), tc[n].c.gpas = 1, tc[n++].c.arch = NL_ARCH_LLAMA;
    tc[n].c = tiny(NL_PLACE_OUTONLY, NL_RMSNORM, 0), tc[n].c.gpas = 1, tc[n++].c.skip_init = 1;
    tc[n].c = tiny(NL_PLACE_HYBRID, NL_RMSNORM, 0), tc[n++].c.gpas = 1;
    tc[n].c = tiny(NL_PLACE_PRE, NL_LAYERNORM, 0), tc[n++].c.sdd = 1;
    tc[n].c = tiny(NL_PLACE_POST, NL_LAYERNORM, 0), tc[n++].c.sdd = 1;
    tc[n].c = tiny(NL_PLACE_PERI, NL_RMSNORM, 0), tc[n].c.sdd = 1, tc[n].c.kv_heads = 2, tc[n++].c.arch = NL_ARCH_LLAMA;
    tc[n].c = tiny(NL_PLACE_NORMFORMER, NL_LAYERNORM, 0), tc[n].c.sdd = 1, tc[n++].c.qk_norm = 1;
    tc[n].c = tiny(NL_PLACE_PRE, NL_RMSNORM, 0), tc[n].c.sdd = 1, tc[n].c.gpas = 1, tc[n++].c.arch = NL_ARCH_LLAMA;
    NL_ASSERT(n <= NCASE);
    const int ncase = n;
    int inp[TB * TT], tgt[TB * TT], fails = 0;
    make_batch(inp, tgt, 77);
    for (int i = 0; i < ncase; i++) {
        nl_twin_case_dir(tc[i].dir, sizeof tc[i].dir, root, i);
        fails += write_case(&tc[i], inp, tgt);
    }
    static char out[1 << 16];
    if (nl_twin_run("tests/ref_check.py grad", root, ncase, out, sizeof out)) fails++;
    else {
        for (int i = 0; i < ncase; i++) {
            int widened = 0, f = compare_case(&tc[i], inp, tgt, &widened);
            const nl_config *cc = &tc[i].c;
            char more[96] = "";
            if (cc->kv_heads) snprintf(more + strlen(more), sizeof more - strlen(more), " kv-heads %d", cc->kv_heads);
            if (cc->tie_head >= 0)
                snprintf(more + strlen(more), sizeof more - strlen(more), " tie-head %s", cc->tie_head ? "on" : "off");
            if (cc->ffn_dim) snprintf(more + strlen(more), sizeof more - strlen(more), " ffn-dim %d", cc->ffn_dim);
            if (cc->rope_theta != 10000.0)
                snprintf(more + strlen(more), sizeof more - strlen(more), " rope-theta %g", cc->rope_theta);
            char note[96] = "";
            if (widened)
                snprintf(note, sizeof note, " (fp32-sensitive: %d within 10x the twin's own float32 error)", widened);
            if (cc->gpas) snprintf(more + strlen(more), sizeof more - strlen(more), " gpas");
            if (cc->sdd) snprintf(more + strlen(more), sizeof more - strlen(more), " sdd");
            printf("  twin %-5s %-10s %-9s emb-norm %s%s%s%s%s%s%s%s%s%s: %s%s\n", nl_arch_names[cc->arch],
                   nl_placements[cc->placement].name, cc->norm_type < 0 ? "default" : nl_norm_type_names[cc->norm_type],
                   cc->emb_norm < 0 ? "dflt"
                   : cc->emb_norm   ? "on  "
                                    : "off ",
                   more, cc->out_gain_frozen ? " out-gain frozen" : "", cc->scaled_init ? " scaled-init" : "",
                   cc->final_norm == 1 && i >= nbase ? " final-norm on" : "",
                   cc->mix_alpha != 0.25 ? " mix-alpha 0.5" : "", cc->skip_init ? " skip-init" : "",
                   cc->scale_resids ? " scale-resids" : "", cc->qk_norm ? " qk-norm" : "",
                   cc->dyt_alpha != 0.5 ? " dyt-alpha 1.5" : "", f ? "FAIL" : "ok", note);
            fails += f;
        }
    }
    free(tc);
    return fails + nl_test_rmdir(root);
}

/* ---------------------------------------------------------------- docs/methods.md §1.3: LN = RMSNorm = CRMSNorm */

/* Subtracts each column's mean over the rows (rows x cols, row-major): outputs of W x then have zero
 * mean over the output channels. With cols == 0 (a vector) subtracts its mean. */
static void center_rows_of(float *w, int rows, int cols) {
    for (int j = 0; j < (cols ? cols : 1); j++) {
        double s = 0;
        for (int i = 0; i < rows; i++) s += w[(size_t)i * (cols ? cols : 1) + j];
        for (int i = 0; i < rows; i++) w[(size_t)i * (cols ? cols : 1) + j] -= (float)(s / rows);
    }
}

static void center_each_row(float *w, int rows, int cols) {
    for (int i = 0; i < rows; i++) center_rows_of(w + (size_t)i * cols, cols, 0);
}

/* Pre-LN with LayerNorm, Pre-RMSNorm and Pre-CRMSNorm compute the same function when the residual
 * stream has zero mean (Jiang et al. 2023, docs/methods.md §1.3): zero-mean embedding rows, attention
 * and MLP output projections (and biases) whose outputs have zero mean over the channels, and the
 * LayerNorm biases folded into the next linear layer (qkv, fc); the final norm's bias must be 0
 * because the head is tied. Without the centring the functions differ (the negative control). */
int test_crms_equivalence(void) {
    int fails = 0;
    int inp[TB * TT], tgt[TB * TT];
    make_batch(inp, tgt, 5);
    for (int centred = 1; centred >= 0; centred--) {
        nl_model ln, rms, crms;
        nl_config c = tiny(NL_PLACE_PRE, NL_LAYERNORM, 0);
        nl_model_init(&ln, &c);
        perturb(&ln, 99);
        const int C = c.dim;
        memset(ln.w.finn.b, 0, (size_t)C * sizeof(float));
        if (centred) {
            center_each_row(ln.w.wte, TV, C);
            center_each_row(ln.w.wpe, TT, C);
            for (int l = 0; l < c.layers; l++) {
                nl_block_w *b = &ln.w.blocks[l];
                center_rows_of(b->proj_w, C, C), center_rows_of(b->proj_b, C, 0);
                center_rows_of(b->mproj_w, C, 4 * C), center_rows_of(b->mproj_b, C, 0);
            }
        }
        c.norm_type = NL_RMSNORM;
        nl_model_init(&rms, &c);
        c.norm_type = NL_CRMSNORM;
        nl_model_init(&crms, &c);
        nl_model *to[2] = { &rms, &crms };
        for (int k = 0; k < 2; k++) {
            nl_model *m = to[k];
            memcpy(m->w.wte, ln.w.wte, (size_t)TV * C * sizeof(float));
            memcpy(m->w.wpe, ln.w.wpe, (size_t)TT * C * sizeof(float));
            memcpy(m->w.finn.w, ln.w.finn.w, (size_t)C * sizeof(float));
            for (int l = 0; l < c.layers; l++) {
                const nl_block_w *a = &ln.w.blocks[l];
                nl_block_w *b = &m->w.blocks[l];
                memcpy(b->proj_w, a->proj_w, (size_t)C * C * sizeof(float));
                memcpy(b->proj_b, a->proj_b, (size_t)C * sizeof(float));
                memcpy(b->mproj_w, a->mproj_w, (size_t)4 * C * C * sizeof(float));
                memcpy(b->mproj_b, a->mproj_b, (size_t)C * sizeof(float));
                memcpy(b->qkv_w, a->qkv_w, (size_t)3 * C * C * sizeof(float));
                memcpy(b->fc_w, a->fc_w, (size_t)4 * C * C * sizeof(float));
                memcpy(b->norm[0][0].w, a->norm[0][0].w, (size_t)C * sizeof(float));
                memcpy(b->norm[1][0].w, a->norm[1][0].w, (size_t)C * sizeof(float));
                /* W (g xh + beta) + bias = W (g xh) + (W beta + bias) */
                for (int o = 0; o < 3 * C; o++) {
                    double s = a->qkv_b[o];
                    for (int i = 0; i < C; i++) s += (double)a->qkv_w[(size_t)o * C + i] * a->norm[0][0].b[i];
                    b->qkv_b[o] = (float)s;
                }
                for (int o = 0; o < 4 * C; o++) {
                    double s = a->fc_b[o];
                    for (int i = 0; i < C; i++) s += (double)a->fc_w[(size_t)o * C + i] * a->norm[1][0].b[i];
                    b->fc_b[o] = (float)s;
                }
            }
        }
        nl_model_alloc_acts(&ln, TB, TT), nl_model_alloc_acts(&rms, TB, TT), nl_model_alloc_acts(&crms, TB, TT);
        const double l0 = nl_model_forward(&ln, inp, tgt, TB, TT, 0.0f);
        const double l1 = nl_model_forward(&rms, inp, tgt, TB, TT, 0.0f);
        const double l2 = nl_model_forward(&crms, inp, tgt, TB, TT, 0.0f);
        if (centred) {
            fails += nl_check_scalar("zero-mean stream: pre-rmsnorm loss = pre-layernorm loss", l1, l0, 1e-5);
            fails += nl_check_scalar("zero-mean stream: pre-crmsnorm loss = pre-layernorm loss", l2, l0, 1e-5);
            double *want = nl_xmalloc((size_t)TB * TT * TV * sizeof(double));
            nl_model_forward(&ln, inp, NULL, TB, TT, 0.0f); /* logits are scratch after xent: rerun */
            for (int n = 0; n < TB * TT; n++)
                for (int v = 0; v < TV; v++) want[n * TV + v] = ln.logits[(size_t)n * ln.cfg.vocab_padded + v];
            nl_model_forward(&crms, inp, NULL, TB, TT, 0.0f);
            float *got = nl_xmalloc((size_t)TB * TT * TV * sizeof(float));
            for (int n = 0; n < TB * TT; n++)
                for (int v = 0; v < TV; v++) got[n * TV + v] = crms.logits[(size_t)n * crms.cfg.vocab_padded + v];
            fails += nl_check_rel("zero-mean stream: crmsnorm logits = layernorm logits", got, want,
                                  (size_t)TB * TT * TV, 1e-5);
            free(want);
            free(got);
        } else {
            fails += NL_CHECK(fabs(l1 - l0) > 1e-4 * fabs(l0) && fabs(l2 - l0) > 1e-4 * fabs(l0),
                              "without the zero-mean conditions the functions differ (%g, %g vs %g)", l1, l2, l0);
        }
        nl_model_free(&ln), nl_model_free(&rms), nl_model_free(&crms);
    }
    return fails;
}
