/* config.c -- defaults, validation, and the option table (see config.h). */
#include "config.h"

#include "common.h"
#include "loss_scaler.h"
#include "placement.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nl_config_defaults(nl_config *c) {
    memset(c, 0, sizeof *c);
    c->vocab = 0; /* from the data */
    c->layers = 4;
    c->dim = 192;
    c->heads = 6;
    c->seq_len = 128;
    c->placement = NL_PLACE_PERI;
    c->norm_type = -1; /* the placement's default */
    c->eps = 1e-5;
    c->emb_norm = -1;
    c->final_norm = -1;
    c->mix_alpha = 0.25;
    c->dyt_alpha = 0.5;
    c->arch = NL_ARCH_GPT2;
    c->rope_theta = 10000.0;
    c->ffn_dim = 0;   /* by architecture */
    c->tie_head = -1; /* by architecture */
    c->kv_heads = 0;  /* = heads */
    c->ngpt_alpha_init = 0.05;
    c->ngpt_alpha_scale = 0.0; /* 1/sqrt(dim) */
    c->patch = 2;
    c->cfg_drop = 0.1;
    c->batch = 16;
    c->accum = 1;
    c->steps = 1000;
    c->lr = 2e-3;
    c->min_lr_frac = 0.1;
    c->weight_decay = -1.0; /* the placement's default: 0.1, or 0 for ngpt */
    c->clip = 1.0;
    c->warmup = -1; /* the placement's default: 100, or 0 for ngpt */
    c->seed = 1337;
    c->eval_every = 100;
    c->eval_windows = 64;
    c->ckpt_every = 0;
    c->log_every = 10;
    c->val_frac = 0.1;
    c->threads = 0; /* all cores */
    c->keep_ckpts = 0;
    c->on_nan = NL_ON_NAN_STOP;
    c->max_rollbacks = 3;
    c->diag_every = 0;
    c->spike_k = 6.0;
    c->diverge_window = 0;
    c->dtype = NL_DTYPE_FP32;
    c->loss_scale = 65536.0;
    c->loss_scale_interval = 2000;
    c->overlap = 1;
    c->dp_timeout = 300.0;
}

void nl_args_defaults(nl_args *a) {
    memset(a, 0, sizeof *a);
    nl_config_defaults(&a->cfg);
    a->tokens = 200;
    a->top_k = 40;
    a->temperature = 0.8;
    snprintf(a->grid, sizeof a->grid, "8x8");
    snprintf(a->sampler, sizeof a->sampler, "heun");
    a->ode_steps = 32;
    a->class_id = -1;
    a->cfg_scale = 2.0;
    a->clf_steps = 2000;
    a->samples = 1000;
    a->max_windows = 0;
    a->stride = 0;
    snprintf(a->metric, sizeof a->metric, "loss");
    snprintf(a->tokenizer, sizeof a->tokenizer, "gpt2");
    a->an_windows = 256;
    a->an_batch = 8;
    snprintf(a->title, sizeof a->title, "normlab report");
    snprintf(a->format, sizeof a->format, "safetensors");
    a->prep_val_frac = 0.1;
    a->shard_tokens = 100000000;
    snprintf(a->sweep.out, sizeof a->sweep.out, "runs/sweep");
    snprintf(a->sweep.launcher, sizeof a->sweep.launcher, "local");
    a->sweep.seeds = 1;
    a->sweep.jobs = 1;
    a->sweep.run_index = -1;
}

const char *const nl_arch_names[NL_ARCH_COUNT] = { "gpt2", "llama", "dit" };
static const char *const tsamp_names[NL_TSAMP_COUNT] = { "logit-normal", "uniform" };
const char *const nl_dtype_names[NL_DTYPE_COUNT] = { "fp32", "bf16", "fp16" };
static const char *const device_names[NL_DEVICE_COUNT] = { "cpu", "cuda" };

/* The MLP width of --ffn-dim 0: 4d for gpt2; for llama the multiple of 64 nearest 8d/3 (ties up, at
 * least 64), LLaMA's 2/3 * 4d rounded as its reference code does. */
static int default_ffn_dim(const nl_config *c) {
    if (c->arch == NL_ARCH_GPT2) return 4 * c->dim;
    const long r = (8L * c->dim + 96) / 192; /* round(8d / (3*64)) with ties up */
    return (int)(r < 1 ? 64 : 64 * r);
}

/* --arch dit (docs/dit.md): the image shape comes from the data; tokens are its patches, the label table
 * has a row per class and one for the null class */
static nl_status dit_resolve(nl_config *c) {
    if (c->img_h < 1 || c->img_w < 1 || c->img_ch < 1 || c->img_h > 4096 || c->img_w > 4096 || c->img_ch > 4)
        return NL_FAIL(NL_ERR_ARG,
                       "--arch dit: image %dx%d with %d channels; the shape comes from --data (fashion-mnist or a PNG folder)",
                       c->img_w, c->img_h, c->img_ch);
    if (c->patch < 1 || c->img_h % c->patch || c->img_w % c->patch)
        return NL_FAIL(NL_ERR_ARG, "--patch %d: must divide the image height %d and width %d", c->patch, c->img_h,
                       c->img_w);
    if (c->classes < 0 || c->classes > 1 << 20)
        return NL_FAIL(NL_ERR_ARG, "--classes %d: must be in 0..1048576", c->classes);
    if (!(c->cfg_drop >= 0 && c->cfg_drop <= 1))
        return NL_FAIL(NL_ERR_ARG, "--cfg-drop %g: must be in [0, 1]", c->cfg_drop);
    if (c->time_sampling < 0 || c->time_sampling >= NL_TSAMP_COUNT)
        return NL_FAIL(NL_ERR_ARG, "--time-sampling: unknown");
    if (c->dtype != NL_DTYPE_FP32) return NL_FAIL(NL_ERR_ARG, "--arch dit runs --dtype fp32 only so far");
    if (c->gpas || c->sdd) return NL_FAIL(NL_ERR_ARG, "--arch dit: --gpas and --sdd are for language models so far");
    if (nl_placements[c->placement].sphere)
        return NL_FAIL(NL_ERR_ARG,
                       "--arch dit: --norm ngpt is for language models (no unit-sphere form of adaLN and the velocity head)");
    if (c->heads < 1 || c->dim % c->heads || (c->dim / c->heads) % 4)
        return NL_FAIL(NL_ERR_ARG, "--arch dit: the head size --dim/--heads must be a multiple of 4 (2-D rotary pairs)");
    c->seq_len = (c->img_h / c->patch) * (c->img_w / c->patch);
    c->vocab = c->classes + 1;
    c->tie_head = 0;
    return NL_OK;
}

nl_status nl_config_resolve(nl_config *c) {
    if (c->placement < 0 || c->placement >= NL_PLACE_COUNT) return NL_FAIL(NL_ERR_ARG, "--norm: unknown placement");
    if (c->arch < 0 || c->arch >= NL_ARCH_COUNT) return NL_FAIL(NL_ERR_ARG, "--arch: unknown architecture");
    if (c->norm_type < 0) {
        c->norm_type = nl_placements[c->placement].norm_type;
        if (c->arch != NL_ARCH_GPT2 && c->norm_type == NL_LAYERNORM) c->norm_type = NL_RMSNORM;
    }
    if (c->arch == NL_ARCH_DIT) NL_TRY(dit_resolve(c));
    if (c->norm_type < 0 || c->norm_type >= NL_NORM_TYPE_COUNT)
        return NL_FAIL(NL_ERR_ARG, "--norm-type: unknown norm type");
    const int sphere = nl_placements[c->placement].sphere; /* ngpt: no weight decay, no warmup (paper §2.6) */
    if (c->weight_decay == -1.0) c->weight_decay = sphere ? 0.0 : 0.1;
    if (c->warmup == -1) c->warmup = sphere ? 0 : 100;
    if (c->vocab < (c->arch == NL_ARCH_DIT ? 1 : 2) || c->vocab > 1 << 24)
        return NL_FAIL(NL_ERR_ARG, "--vocab %d: must be in 2..16777216", c->vocab);
    if (c->layers < 1 || c->layers > 1024) return NL_FAIL(NL_ERR_ARG, "--layers %d: must be in 1..1024", c->layers);
    if (c->dim < 1 || c->dim > 65536) return NL_FAIL(NL_ERR_ARG, "--dim %d: must be in 1..65536", c->dim);
    if (c->heads < 1) return NL_FAIL(NL_ERR_ARG, "--heads %d: must be positive", c->heads);
    if (c->dim % c->heads) return NL_FAIL(NL_ERR_ARG, "--heads %d does not divide --dim %d", c->heads, c->dim);
    if (c->seq_len < 1 || c->seq_len > 65536)
        return NL_FAIL(NL_ERR_ARG, "--seq-len %d: must be in 1..65536", c->seq_len);
    if (c->kv_heads == 0) c->kv_heads = c->heads;
    if (c->kv_heads < 1 || c->heads % c->kv_heads)
        return NL_FAIL(NL_ERR_ARG, "--kv-heads %d: must divide --heads %d", c->kv_heads, c->heads);
    if (c->ffn_dim == 0) c->ffn_dim = default_ffn_dim(c);
    if (c->ffn_dim < 1 || c->ffn_dim > 1 << 20)
        return NL_FAIL(NL_ERR_ARG, "--ffn-dim %d: must be in 1..1048576 (0: default)", c->ffn_dim);
    if (c->tie_head < 0) c->tie_head = c->arch == NL_ARCH_GPT2;
    if (!(c->rope_theta > 1 && c->rope_theta < 1e12))
        return NL_FAIL(NL_ERR_ARG, "--rope-theta %g: must be in (1, 1e12)", c->rope_theta);
    if (c->arch == NL_ARCH_LLAMA && (c->dim / c->heads) % 2)
        return NL_FAIL(NL_ERR_ARG, "--arch llama: the head size --dim/--heads = %d must be even (rotary pairs)",
                       c->dim / c->heads);
    if (!(c->eps > 0 && c->eps < 1)) return NL_FAIL(NL_ERR_ARG, "--eps %g: must be in (0, 1)", c->eps);
    if (!(c->mix_alpha >= 0 && c->mix_alpha <= 1))
        return NL_FAIL(NL_ERR_ARG, "--mix-alpha %g: must be in [0, 1]", c->mix_alpha);
    if (c->batch < 1) return NL_FAIL(NL_ERR_ARG, "--batch %d: must be positive", c->batch);
    if (c->accum < 1) return NL_FAIL(NL_ERR_ARG, "--accum %d: must be positive", c->accum);
    if (c->global_batch < 0)
        return NL_FAIL(NL_ERR_ARG, "--global-batch %d: must be 0 (off) or positive", c->global_batch);
    if (c->zero != 0 && c->zero != 1)
        return NL_FAIL(NL_ERR_ARG, "--zero %d: must be 0 (off) or 1 (sharded AdamW moments)", c->zero);
    if (!(c->dp_timeout >= 0 && c->dp_timeout <= 1e6))
        return NL_FAIL(NL_ERR_ARG, "--dp-timeout %g: must be in 0..1e6 seconds (0: off)", c->dp_timeout);
    if (c->steps < 0) return NL_FAIL(NL_ERR_ARG, "--steps %d: must be >= 0", c->steps);
    if (!(c->lr >= 0 && isfinite(c->lr))) return NL_FAIL(NL_ERR_ARG, "--lr %g: must be a finite number >= 0", c->lr);
    if (!(c->min_lr_frac >= 0 && c->min_lr_frac <= 1))
        return NL_FAIL(NL_ERR_ARG, "--min-lr-frac %g: must be in [0, 1]", c->min_lr_frac);
    if (!(c->weight_decay >= 0 && isfinite(c->weight_decay)))
        return NL_FAIL(NL_ERR_ARG, "--weight-decay %g: must be >= 0 (-1: the default)", c->weight_decay);
    if (!(c->clip >= 0 && isfinite(c->clip)))
        return NL_FAIL(NL_ERR_ARG, "--clip %g: must be >= 0 (0 disables)", c->clip);
    if (c->warmup < 0) return NL_FAIL(NL_ERR_ARG, "--warmup %d: must be >= 0 (-1: the default)", c->warmup);
    if (c->lr_steps < 0) return NL_FAIL(NL_ERR_ARG, "--lr-steps %d: must be >= 0 (0: --steps)", c->lr_steps);
    if (c->eval_every < 0 || c->ckpt_every < 0 || c->log_every < 1 || c->eval_windows < 1)
        return NL_FAIL(NL_ERR_ARG, "--eval-every/--ckpt-every must be >= 0, --log-every/--eval-windows >= 1");
    if (!(c->val_frac >= 0 && c->val_frac < 1))
        return NL_FAIL(NL_ERR_ARG, "--val-frac %g: must be in [0, 1)", c->val_frac);
    if (c->device < 0 || c->device >= NL_DEVICE_COUNT) return NL_FAIL(NL_ERR_ARG, "--device: unknown device");
    if (c->threads < 0 || c->threads > 1024) return NL_FAIL(NL_ERR_ARG, "--threads %d: must be in 0..1024", c->threads);
    if (c->keep_ckpts < 0) return NL_FAIL(NL_ERR_ARG, "--keep-ckpts %d: must be >= 0 (0 keeps all)", c->keep_ckpts);
    if (c->on_nan != NL_ON_NAN_STOP && c->on_nan != NL_ON_NAN_ROLLBACK)
        return NL_FAIL(NL_ERR_ARG, "--on-nan: must be stop or rollback");
    if (c->max_rollbacks < 0 || c->max_rollbacks > NL_MAX_ROLLBACKS)
        return NL_FAIL(NL_ERR_ARG, "--max-rollbacks %d: must be in 0..%d", c->max_rollbacks, NL_MAX_ROLLBACKS);
    if (c->diag_every < 0) return NL_FAIL(NL_ERR_ARG, "--diag-every %d: must be >= 0 (0: off)", c->diag_every);
    if (!(c->spike_k >= 0)) return NL_FAIL(NL_ERR_ARG, "--spike-k %g: must be >= 0 (0: off)", c->spike_k);
    if (c->diverge_window < 0)
        return NL_FAIL(NL_ERR_ARG, "--diverge-window %d: must be >= 0 (0: off)", c->diverge_window);
    if (c->dtype < 0 || c->dtype >= NL_DTYPE_COUNT) return NL_FAIL(NL_ERR_ARG, "--dtype: must be fp32, bf16 or fp16");
    int e2;
    if (!(c->loss_scale >= 1 && c->loss_scale <= NL_LOSS_SCALE_MAX && frexp(c->loss_scale, &e2) == 0.5))
        return NL_FAIL(NL_ERR_ARG, "--loss-scale %g: must be a power of two in [1, 2^32]", c->loss_scale);
    if (c->loss_scale_interval < 1)
        return NL_FAIL(NL_ERR_ARG, "--loss-scale-interval %d: must be >= 1", c->loss_scale_interval);
    const nl_placement *p = &nl_placements[c->placement];
    NL_TRY(nl_placement_check(c));
    if (sphere && c->ngpt_alpha_scale == 0) c->ngpt_alpha_scale = 1.0 / sqrt((double)c->dim);
    if (c->emb_norm < 0) c->emb_norm = p->emb_norm;
    if (c->final_norm < 0) c->final_norm = p->final_norm;
    c->vocab_padded = c->vocab <= 256 ? c->vocab : (c->vocab + 63) / 64 * 64;
    return NL_OK;
}

double nl_config_matrix_params(const nl_config *c) {
    const double C = c->dim, kvC = C / c->heads * c->kv_heads, F = c->ffn_dim;
    const double emb = (double)c->vocab_padded * C * (c->tie_head ? 1 : 2) +
                       (c->arch == NL_ARCH_GPT2 ? (double)c->seq_len * C : 0.0);
    return emb + c->layers * (C * (C + 2.0 * kvC) + C * C + (c->arch != NL_ARCH_GPT2 ? 3.0 : 2.0) * C * F);
}

/* ---------------------------------------------------------------- option table */

/* T_LIST: values appended, '\n'-separated; T_ARGS: the same for the command's arguments that are not options */
typedef enum opt_type {
    T_INT,
    T_U64,
    T_DBL,
    T_PATH,
    T_TEXT,
    T_WORD,
    T_PLACE,
    T_NTYPE,
    T_ARCH,
    T_ONOFF,
    T_GAIN,
    T_FLAG,
    T_LIST,
    T_ONNAN,
    T_DEVICE,
    T_ARGS,
    T_DTYPE,
    T_TSAMP
} opt_type;

typedef struct opt {
    const char *name; /* CLI spelling; config keys use '_' for '-' */
    opt_type type;
    size_t off; /* offset in nl_args */
    int cmds;   /* NL_CMD_* mask */
    int model;  /* fixed by a checkpoint's architecture */
    const char *help;
} opt;

#define CFG(f) offsetof(nl_args, cfg.f)
#define ARG(f) offsetof(nl_args, f)
enum {
    TR = NL_CMD_TRAIN,
    EV = NL_CMD_EVAL,
    SA = NL_CMD_SAMPLE,
    EX = NL_CMD_EXPORT,
    MC = NL_CMD_EVALMC,
    PR = NL_CMD_PREPARE,
    SW = NL_CMD_SWEEP,
    AN = NL_CMD_ANALYZE,
    RP = NL_CMD_REPORT,
    CL = NL_CMD_CLF,
    FI = NL_CMD_FID
};

// clang-format off
static const opt opts[] = {
    { "data",         T_PATH,  CFG(data),         MC,    0, "task file: one JSON object per line, in the task's layout" },
    { "data",         T_PATH,  CFG(data),         TR,    0, "text file (byte tokens) or llm.c .bin shard glob" },
    { "data",         T_PATH,  CFG(data),         EV|AN, 0, "text file or llm.c .bin shard glob (default: the run's data, from the checkpoint); text is GPT-2-BPE-encoded for GPT-2-vocabulary (50257) models, bytes otherwise" },
    { "split",        T_WORD,  ARG(split),        EV,    0, "all | train | val: the part scored (default: all of --data; without --data: val, the run's held-out split)" },
    { "split",        T_WORD,  ARG(split),        AN,    0, "all | train | val: the part analysed (default: val, the run's held-out split: its --val-data or last --val-frac)" },
    { "val-data",     T_PATH,  CFG(val_data),     TR,    0, "validation data; default: the last --val-frac of --data" },
    { "val-frac",     T_DBL,   CFG(val_frac),     TR,    0, "fraction of --data held out for validation" },
    { "out",          T_PATH,  CFG(out),          TR,    0, "run directory (default runs/<norm>-<date>)" },
    { "tensorboard",  T_PATH,  CFG(tensorboard),  TR,    0, "directory for the TensorBoard event files (default: the run directory)" },
    { "init-from",    T_PATH,  CFG(init_from),    TR,    0, "start from an exported .safetensors model, a Hugging Face directory (config.json), or an llm.c GPT-2 .bin (version 3, fp32)" },
    { "arch",         T_ARCH,  CFG(arch),         TR,    1, "gpt2 (learned positions, GELU, biases, tied head) | llama (RoPE, SwiGLU, no biases, untied head) | dit (Next-DiT on images: --data fashion-mnist or a PNG folder; docs/dit.md)" },
    { "norm",         T_PLACE, CFG(placement),    TR,    1, "normalization placement (see below)" },
    { "norm-type",    T_NTYPE, CFG(norm_type),    TR,    1, "layernorm|rmsnorm|scalenorm|dyt|seednorm|crmsnorm|l2 (default: rmsnorm for gemma and --arch llama, l2 for ngpt, else layernorm)" },
    { "eps",          T_DBL,   CFG(eps),          TR,    1, "epsilon inside every norm" },
    { "emb-norm",     T_ONOFF, CFG(emb_norm),     TR,    1, "norm on the embedding output: on|off (default: on for peri, else off)" },
    { "final-norm",   T_ONOFF, CFG(final_norm),   TR,    1, "norm before the LM head: on|off (default: off for post/deepnorm, else on)" },
    { "out-gain",     T_GAIN,  CFG(out_gain_frozen), TR, 1, "output-norm gains (peri, outonly): learn | frozen (fixed at 1)" },
    { "mix-alpha",    T_DBL,   CFG(mix_alpha),    TR,    1, "mix: blocks l <= floor(alpha*L) are Post-LN" },
    { "dyt-alpha",    T_DBL,   CFG(dyt_alpha),    TR,    1, "initial alpha of every DyT norm (--norm-type dyt)" },
    { "skip-init",    T_FLAG,  CFG(skip_init),    TR,    1, "scale each residual branch by a learnable scalar initialised to 0" },
    { "qk-norm",      T_FLAG,  CFG(qk_norm),      TR,    1, "normalise q and k per head (gain of head size, shared by the heads)" },
    { "scale-resids", T_FLAG,  CFG(scale_resids), TR,    1, "normformer: learnable per-channel weight (init 1) on the MLP residual" },
    { "gpas",         T_FLAG,  CFG(gpas),         TR,    1, "GPAS: after each residual add x' = z - SiLU(a) sg(z): the stream scaled by 1 - SiLU(a), its gradient unchanged (one gate a per block, init 0; placements without a post-add norm)" },
    { "sdd",          T_FLAG,  CFG(sdd),          TR,    1, "SDD: each block linear layer outputs alpha * RMSNorm(W x + b), alpha learnable per channel (init 1; output projections 1/sqrt(2L))" },
    { "scaled-init",  T_FLAG,  CFG(scaled_init),  TR,    1, "init residual output projections with 0.02/sqrt(2L)" },
    { "layers",       T_INT,   CFG(layers),       TR,    1, "number of blocks L" },
    { "dim",          T_INT,   CFG(dim),          TR,    1, "model width d" },
    { "heads",        T_INT,   CFG(heads),        TR,    1, "attention heads (must divide --dim)" },
    { "kv-heads",     T_INT,   CFG(kv_heads),     TR,    1, "key/value heads, grouped-query attention (must divide --heads; 0: --heads)" },
    { "ffn-dim",      T_INT,   CFG(ffn_dim),      TR,    1, "MLP hidden width (0: 4d for gpt2, the multiple of 64 nearest 8d/3 for llama)" },
    { "ngpt-alpha-init",  T_DBL, CFG(ngpt_alpha_init),  TR, 1, "ngpt: initial eigen learning rates alpha_A, alpha_M (paper: 0.05)" },
    { "ngpt-alpha-scale", T_DBL, CFG(ngpt_alpha_scale), TR, 1, "ngpt: stored initial value of the alphas, which act as stored x init/scale (0: 1/sqrt(--dim), the paper's)" },
    { "tie-head",     T_ONOFF, CFG(tie_head),     TR,    1, "LM head = token embedding: on|off (default: on for gpt2, off for llama)" },
    { "rope-theta",   T_DBL,   CFG(rope_theta),   TR,    1, "--arch llama: base of the rotary position frequencies" },
    { "seq-len",      T_INT,   CFG(seq_len),      TR,    1, "context length T" },
    { "patch",        T_INT,   CFG(patch),        TR,    1, "--arch dit: patch side p (must divide the image height and width)" },
    { "img-h",        T_INT,   CFG(img_h),        TR,    1, "--arch dit: image height (from the data)" },
    { "img-w",        T_INT,   CFG(img_w),        TR,    1, "--arch dit: image width (from the data)" },
    { "img-ch",       T_INT,   CFG(img_ch),       TR,    1, "--arch dit: image channels (from the data)" },
    { "classes",      T_INT,   CFG(classes),      TR,    1, "--arch dit: class labels (from the data; 0: unconditional)" },
    { "cfg-drop",     T_DBL,   CFG(cfg_drop),     TR,    0, "--arch dit: probability that a training label is replaced by the null class (classifier-free guidance)" },
    { "time-sampling", T_TSAMP, CFG(time_sampling), TR,  0, "--arch dit: logit-normal (SD3, t = sigmoid(n), n ~ N(0,1)) | uniform: the flow-matching time t of a training example" },
    { "vocab",        T_INT,   CFG(vocab),        TR,    1, "vocabulary size (0: 256 for text, 50257 for shards)" },
    { "batch",        T_INT,   CFG(batch),        TR,    0, "sequences per micro-batch" },
    { "accum",        T_INT,   CFG(accum),        TR,    0, "micro-batches per optimizer step (gradient accumulation)" },
    { "global-batch", T_INT,   CFG(global_batch), TR,    0, "sequences per optimizer step over all MPI ranks; replaces --accum by it / (ranks x batch), which must divide (0: ranks x batch x accum)" },
    { "zero",         T_INT,   CFG(zero),         TR,    0, "1: ZeRO-1 under mpirun, AdamW moments sharded across the ranks (not kept by --resume: give it again)" },
    { "overlap",      T_ONOFF, CFG(overlap),      TR,    0, "under mpirun: reduce each gradient bucket as soon as the backward has finished it (on) or after the backward (off); the same sums" },
    { "dp-timeout",   T_DBL,   CFG(dp_timeout),   TR,    0, "under mpirun: seconds a rank waits in one collective before the job ends naming the ranks that did not arrive (0: forever)" },
    { "steps",        T_INT,   CFG(steps),        TR,    0, "optimizer steps" },
    { "lr",           T_DBL,   CFG(lr),           TR,    0, "peak learning rate" },
    { "min-lr-frac",  T_DBL,   CFG(min_lr_frac),  TR,    0, "cosine decay floor as a fraction of --lr" },
    { "warmup",       T_INT,   CFG(warmup),       TR,    0, "linear warmup steps (-1: 100, and 0 for ngpt; longer than the schedule: a warning, the LR never reaches --lr)" },
    { "lr-steps",     T_INT,   CFG(lr_steps),     TR,    0, "steps the warmup + cosine schedule spans; later steps run at the floor --min-lr-frac x --lr (0: --steps; set by --resume --steps)" },
    { "weight-decay", T_DBL,   CFG(weight_decay), TR,    0, "AdamW decoupled weight decay on 2-D matrices (-1: 0.1, and 0 for ngpt; a value given here applies to ngpt too)" },
    { "clip",         T_DBL,   CFG(clip),         TR,    0, "global gradient-norm clip (0: off)" },
    { "seed",         T_U64,   CFG(seed),         TR|SA|CL|FI, 0, "random seed (init, data order, sampling)" },
    { "eval-every",   T_INT,   CFG(eval_every),   TR,    0, "validation every N steps (0: only at the end)" },
    { "eval-windows", T_INT,   CFG(eval_windows), TR,    0, "validation windows of seq-len tokens" },
    { "ckpt-every",   T_INT,   CFG(ckpt_every),   TR,    0, "checkpoint every N steps (0: only at the end)" },
    { "log-every",    T_INT,   CFG(log_every),    TR,    0, "progress line every N steps when not on a terminal" },
    { "threads",      T_INT,   CFG(threads),      TR|EV|SA|EX|MC|AN|CL|FI, 0, "threads for OpenMP and BLAS (0: all cores)" },
    { "device",       T_DEVICE, CFG(device),      TR,    0, "cpu | cuda: where the model computes (cuda: a build with make USE_CUDA=1 and a GPU)" },
    { "diag-every",   T_INT,   CFG(diag_every),   TR,    0, "per-layer diagnostics on a fixed validation batch every N steps, at step 0 and at the end (0: off)" },
    { "spike-k",      T_DBL,   CFG(spike_k),      TR,    0, "count a gradient spike when the grad norm exceeds k x its running median (0: off)" },
    { "diverge-window", T_INT, CFG(diverge_window), TR,  0, "stop as diverged when, after warmup, the mean loss of the last N steps exceeds the first step's (0: off)" },
    { "resume",       T_PATH,  ARG(resume),       TR,    0, "continue RUN_DIR from its newest checkpoint with the config saved in it (with --steps N: extend it to N steps)" },
    { "overwrite",    T_FLAG,  ARG(overwrite),    TR,    0, "--out holds a run: remove its config.txt, metrics.jsonl, evals.jsonl, analyze.json and ckpt-*.safetensors (nothing else) and start afresh" },
    { "keep-ckpts",   T_INT,   CFG(keep_ckpts),   TR,    0, "keep only the newest N checkpoints (0: all)" },
    { "on-nan",       T_ONNAN, CFG(on_nan),       TR,    0, "NaN/Inf loss or gradient: stop | rollback (to the last checkpoint, skipping the batch)" },
    { "max-rollbacks", T_INT,  CFG(max_rollbacks), TR,   0, "with --on-nan rollback: stop after N rollbacks" },
    { "dtype",        T_DTYPE, CFG(dtype),        TR,    0, "fp32 | bf16 | fp16: number format of activations and matmul inputs, emulated exactly (fp32 master weights and AdamW state; docs/numerics.md)" },
    { "loss-scale",   T_DBL,   CFG(loss_scale),   TR,    0, "--dtype fp16: initial dynamic loss scale, a power of two in [1, 2^32] (halved on a gradient overflow, which skips the step)" },
    { "loss-scale-interval", T_INT, CFG(loss_scale_interval), TR, 0, "--dtype fp16: double the loss scale after N steps in a row without overflow" },
    { "ckpt",         T_PATH,  ARG(ckpt),         EV|SA|EX|MC|AN|FI, 0, "checkpoint file, or a run directory (its latest checkpoint)" },
    { "max-windows",  T_INT,   ARG(max_windows),  EV,    0, "evaluate at most K windows (0: all)" },
    { "metric",       T_WORD,  ARG(metric),       EV,    0, "headline metric: loss | ppl | bpb (bits per byte)" },
    { "stride",       T_INT,   ARG(stride),       EV,    0, "sliding windows start every S tokens (0: seq-len, no overlap)" },
    { "task",         T_WORD,  ARG(task),         MC,    0, "hellaswag | arc | piqa | siqa | winogrande | generic" },
    { "prompt",       T_TEXT,  ARG(prompt),       SA,    0, "text to continue" },
    { "tokens",       T_INT,   ARG(tokens),       SA,    0, "tokens to generate" },
    { "temperature",  T_DBL,   ARG(temperature),  SA,    0, "sampling temperature (0: greedy)" },
    { "top-k",        T_INT,   ARG(top_k),        SA,    0, "sample from the k most likely tokens (0: all)" },
    { "grid",         T_WORD,  ARG(grid),         SA,    0, "--arch dit: ROWSxCOLS images in the PNG grid" },
    { "out",          T_PATH,  ARG(out_file),     SA,    0, "--arch dit: the PNG file of the grid (required)" },
    { "sampler",      T_WORD,  ARG(sampler),      SA|FI, 0, "--arch dit: euler | heun (2 model evaluations a step): the ODE from noise (t = 1) to image (t = 0)" },
    { "steps",        T_INT,   ARG(ode_steps),    SA|FI, 0, "--arch dit: ODE steps on a uniform grid of t" },
    { "class",        T_INT,   ARG(class_id),     SA,    0, "--arch dit: the class of every image (-1: row r shows class r mod classes; classes: the null class, unconditional)" },
    { "cfg",          T_DBL,   ARG(cfg_scale),    SA|FI, 0, "--arch dit: classifier-free guidance scale w, v = v(null) + w (v(class) - v(null)); 1: no guidance" },
    { "data",         T_PATH,  CFG(data),         CL,    0, "labelled images: fashion-mnist (or fashion-mnist:DIR)" },
    { "out",          T_PATH,  ARG(out_file),     CL,    0, "the classifier's .safetensors file" },
    { "steps",        T_INT,   ARG(clf_steps),    CL,    0, "training steps (batches of 128)" },
    { "data",         T_PATH,  CFG(data),         FI,    0, "held-out images (default: the run's --data: Fashion-MNIST's test split, a folder's last --val-frac)" },
    { "classifier",   T_PATH,  ARG(classifier),   FI,    0, "the feature classifier (normlab classifier --out)" },
    { "samples",      T_INT,   ARG(samples),      FI,    0, "images generated, and held-out images compared" },
    { "out",          T_PATH,  ARG(out_file),     EX,    0, "output .safetensors file (--format hf: a directory)" },
    { "format",       T_WORD,  ARG(format),       EX,    0, "safetensors (normlab's names) | hf (config.json + model.safetensors for Hugging Face transformers; GPT-2 vocabulary: + its tokenizer files)" },
    { "out",          T_PATH,  ARG(out_file),     MC,    0, "also write each item's log-likelihoods to this JSONL file" },
    { "config",       T_PATH,  ARG(config),       TR,    0, "read options from a key = value file (e.g. a run's config.txt); command-line options override it" },
    { "bpe-dir",      T_PATH,  ARG(bpe_dir),      SA|PR, 0, "directory with GPT-2's encoder.json and vocab.bpe (default: the repository's data/gpt2-bpe)" },
    { "tokenizer",    T_WORD,  ARG(tokenizer),    PR,    0, "gpt2 (BPE, vocabulary 50257) | byte (vocabulary 256)" },
    { "in",           T_LIST,  ARG(prep_in),      PR,    0, "text files or quoted globs, tokenized in order" },
    { "out",          T_PATH,  ARG(prep_out),     PR,    0, "output directory for train_NNNNNN.bin and val_NNNNNN.bin" },
    { "val-frac",     T_DBL,   ARG(prep_val_frac), PR,   0, "the last fraction of the tokens written as validation shards" },
    { "shard-tokens", T_INT,   ARG(shard_tokens), PR,    0, "tokens per shard at most" },
    { "max-windows",  T_INT,   ARG(an_windows),   AN,    0, "analyse at most K windows of seq-len tokens (0: all)" },
    { "batch",        T_INT,   ARG(an_batch),     AN,    0, "windows per forward pass" },
    { "out",          T_PATH,  ARG(out_file),     AN,    0, "JSON file to write (default: analyze.json in the checkpoint's directory; -: standard output)" },
    { "paths",        T_ARGS,  ARG(paths),        RP,    0, "run directories, sweep directories and analyze JSON files" },
    { "out",          T_PATH,  ARG(out_file),     RP,    0, "HTML file to write (-o is the same)" },
    { "title",        T_TEXT,  ARG(title),        RP,    0, "page title" },
    /* sweep: partition and time are free text for sbatch (T_PATH: the longest buffer type) */
    { "norm",         T_TEXT,  ARG(sweep.placements), SW,    0, "placements to train, comma-separated (required)" },
    { "lr",           T_TEXT,  ARG(sweep.lrs),    SW,    0, "peak learning rates, comma-separated (required)" },
    { "seeds",        T_INT,   ARG(sweep.seeds),  SW,    0, "seeds per placement x LR: --seed, --seed+1, ..." },
    { "seed",         T_U64,   CFG(seed),         SW,    0, "the first seed" },
    { "out",          T_PATH,  ARG(sweep.out),    SW,    0, "sweep directory: one run directory per placement x LR x seed" },
    { "jobs",         T_INT,   ARG(sweep.jobs),   SW,    0, "runs at once (per MPI rank); slurm: the array's limit of running tasks" },
    { "launcher",     T_WORD,  ARG(sweep.launcher), SW,  0, "local (train processes here) | slurm (one sbatch job array, returns at once)" },
    { "partition",    T_PATH,  ARG(sweep.partition), SW, 0, "slurm: sbatch --partition (default: the cluster's)" },
    { "time",         T_PATH,  ARG(sweep.time),   SW,    0, "slurm: sbatch --time per run, e.g. 30 or 2:00:00 (default: the partition's)" },
    { "cpus-per-task", T_INT,  ARG(sweep.cpus_per_task), SW, 0, "slurm: sbatch --cpus-per-task, also each run's --threads (0: the cluster's default)" },
    { "run-index",    T_INT,   ARG(sweep.run_index), SW, 0, "train and record only run X of the grid (0-based: placement-major, then LR, then seed), as each Slurm array task does (-1: all)" },
};
// clang-format on
enum { NOPTS = sizeof opts / sizeof opts[0] };
_Static_assert(NOPTS <= sizeof((nl_args *)0)->given, "nl_args.given is too small for the option table");
_Static_assert(sizeof((nl_args *)0)->paths == sizeof((nl_args *)0)->prep_in, "T_LIST/T_ARGS fields share one size");
_Static_assert(sizeof((nl_args *)0)->title == sizeof((nl_args *)0)->prompt, "T_TEXT fields share one size");

static int key_eq(const char *key, const char *name) {
    for (; *key && *name; key++, name++)
        if (*key != *name && !(*key == '_' && *name == '-')) return 0;
    return *key == *name;
}

static const opt *find_opt(int cmd, const char *key) {
    for (int i = 0; i < NOPTS; i++)
        if ((opts[i].cmds & cmd) && key_eq(key, opts[i].name)) return &opts[i];
    return NULL;
}

int nl_option_takes_value(int cmd, const char *key) {
    const opt *o = find_opt(cmd, key);
    return !o ? -1 : o->type != T_FLAG;
}

static int parse_onoff(const char *v) {
    if (!strcmp(v, "on") || !strcmp(v, "1") || !strcmp(v, "true")) return 1;
    if (!strcmp(v, "off") || !strcmp(v, "0") || !strcmp(v, "false")) return 0;
    return -1;
}

static nl_status set_value(nl_args *a, const opt *o, const char *v) {
    char *p = (char *)a + o->off, *end;
    errno = 0;
    switch (o->type) {
    case T_INT: {
        long x = strtol(v, &end, 10);
        if (end == v || *end || errno || x < -2147483647L || x > 2147483647L)
            return NL_FAIL(NL_ERR_ARG, "--%s: '%s' is not an integer", o->name, v);
        *(int *)p = (int)x;
        break;
    }
    case T_U64: {
        unsigned long long x = strtoull(v, &end, 10);
        if (end == v || *end || errno || *v == '-')
            return NL_FAIL(NL_ERR_ARG, "--%s: '%s' is not a non-negative integer", o->name, v);
        *(uint64_t *)p = (uint64_t)x;
        break;
    }
    case T_DBL: {
        double x = strtod(v, &end);
        if (end == v || *end || errno == ERANGE) return NL_FAIL(NL_ERR_ARG, "--%s: '%s' is not a number", o->name, v);
        if (!isfinite(x)) return NL_FAIL(NL_ERR_ARG, "--%s: '%s' is not finite", o->name, v);
        *(double *)p = x;
        break;
    }
    case T_LIST:
    case T_ARGS: {
        size_t used = strlen(p), len = strlen(v);
        if (used + len + 2 > sizeof a->prep_in) return NL_FAIL(NL_ERR_ARG, "--%s: too many values", o->name);
        if (used) p[used++] = '\n';
        memcpy(p + used, v, len + 1);
        break;
    }
    case T_PATH:
    case T_TEXT:
    case T_WORD: {
        size_t cap = o->type == T_PATH ? NL_PATH_MAX : o->type == T_TEXT ? sizeof a->prompt : sizeof a->task;
        if (strlen(v) >= cap) return NL_FAIL(NL_ERR_ARG, "--%s: value longer than %zu bytes", o->name, cap - 1);
        memcpy(p, v, strlen(v) + 1);
        break;
    }
    case T_PLACE: {
        int x = nl_placement_from_name(v);
        if (x < 0) return NL_FAIL(NL_ERR_ARG, "--norm: unknown placement '%s' (see 'normlab train --help')", v);
        *(int *)p = x;
        break;
    }
    case T_NTYPE: {
        int x = nl_norm_type_from_name(v);
        if (x < 0) return NL_FAIL(NL_ERR_ARG, "--norm-type: unknown norm type '%s' (see 'normlab train --help')", v);
        *(int *)p = x;
        break;
    }
    case T_ARCH: {
        int x = -1;
        for (int i = 0; i < NL_ARCH_COUNT; i++)
            if (!strcmp(v, nl_arch_names[i])) x = i;
        if (x < 0) return NL_FAIL(NL_ERR_ARG, "--arch: unknown architecture '%s' (gpt2|llama|dit)", v);
        *(int *)p = x;
        break;
    }
    case T_DEVICE: {
        int x = -1;
        for (int i = 0; i < NL_DEVICE_COUNT; i++)
            if (!strcmp(v, device_names[i])) x = i;
        if (x < 0) return NL_FAIL(NL_ERR_ARG, "--device: unknown device '%s' (cpu|cuda)", v);
        *(int *)p = x;
        break;
    }
    case T_ONOFF:
    case T_FLAG: {
        int x = parse_onoff(v);
        if (x < 0) return NL_FAIL(NL_ERR_ARG, "--%s: '%s' is not on|off", o->name, v);
        *(int *)p = x;
        break;
    }
    case T_ONNAN:
        if (!strcmp(v, "stop")) *(int *)p = NL_ON_NAN_STOP;
        else if (!strcmp(v, "rollback")) *(int *)p = NL_ON_NAN_ROLLBACK;
        else return NL_FAIL(NL_ERR_ARG, "--on-nan: '%s' is not stop|rollback", v);
        break;
    case T_DTYPE: {
        int x = -1;
        for (int i = 0; i < NL_DTYPE_COUNT; i++)
            if (!strcmp(v, nl_dtype_names[i])) x = i;
        if (x < 0) return NL_FAIL(NL_ERR_ARG, "--dtype: '%s' is not fp32|bf16|fp16", v);
        *(int *)p = x;
        break;
    }
    case T_TSAMP: {
        int x = -1;
        for (int i = 0; i < NL_TSAMP_COUNT; i++)
            if (!strcmp(v, tsamp_names[i])) x = i;
        if (x < 0) return NL_FAIL(NL_ERR_ARG, "--time-sampling: '%s' is not logit-normal|uniform", v);
        *(int *)p = x;
        break;
    }
    case T_GAIN:
        if (!strcmp(v, "learn")) *(int *)p = 0;
        else if (!strcmp(v, "frozen")) *(int *)p = 1;
        else return NL_FAIL(NL_ERR_ARG, "--out-gain: '%s' is not learn|frozen", v);
        break;
    }
    return NL_OK;
}

nl_status nl_args_set(nl_args *a, int cmd, const char *key, const char *val) {
    const opt *o = find_opt(cmd, key);
    if (!o) return NL_FAIL(NL_ERR_ARG, "unknown option '%s'", key);
    return set_value(a, o, val);
}

nl_status nl_args_parse(nl_args *a, int cmd, int argc, char **argv, int *help) {
    *help = 0;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            *help = 1;
            return NL_OK;
        }
        if (!strcmp(s, "-o")) s = "--out"; /* the one short option */
        if (strncmp(s, "--", 2) != 0) {
            const opt *pos = NULL;
            for (int k = 0; k < NOPTS && !pos; k++)
                if ((opts[k].cmds & cmd) && opts[k].type == T_ARGS) pos = &opts[k];
            if (!pos) return NL_FAIL(NL_ERR_ARG, "unexpected argument '%s' (options start with --)", s);
            NL_TRY(set_value(a, pos, s));
            continue;
        }
        char key[64];
        const char *eq = strchr(s + 2, '='), *val = NULL;
        size_t klen = eq ? (size_t)(eq - s - 2) : strlen(s + 2);
        if (klen >= sizeof key) return NL_FAIL(NL_ERR_ARG, "unknown option '%s'", s);
        memcpy(key, s + 2, klen);
        key[klen] = 0;
        const opt *o = find_opt(cmd, key);
        if (!o || strchr(key, '_')) return NL_FAIL(NL_ERR_ARG, "unknown option '--%s' (see --help)", key);
        if (eq) val = eq + 1;
        else if (o->type == T_FLAG) val = "on";
        else if (i + 1 < argc) val = argv[++i];
        else return NL_FAIL(NL_ERR_ARG, "--%s needs a value", key);
        NL_TRY(set_value(a, o, val));
        while (o->type == T_LIST && !eq && i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
            NL_TRY(set_value(a, o, argv[++i]));
        if ((size_t)(o - opts) < sizeof a->given) a->given[o - opts] = 1;
        if (o->model) snprintf(a->model_opt_given, sizeof a->model_opt_given, "%s", o->name);
    }
    return NL_OK;
}

const char *nl_args_given_except(const nl_args *a, int cmd, const char *const *allowed) {
    for (int i = 0; i < NOPTS && (size_t)i < sizeof a->given; i++) {
        if (!a->given[i] || !(opts[i].cmds & cmd)) continue;
        int ok = 0;
        for (const char *const *s = allowed; *s && !ok; s++) ok = !strcmp(*s, opts[i].name);
        if (!ok) return opts[i].name;
    }
    return NULL;
}

/* the shortest %.Ng (N = 1..17) that strtod reads back as exactly x: 0.1 rather than
 * 0.10000000000000001; whole numbers below 1e15 as integers (10000, not 1e+04) */
static void format_double(char *buf, size_t n, double x) {
    if (x == floor(x) && fabs(x) < 1e15) {
        snprintf(buf, n, "%.0f", x);
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, x);
        if (strtod(buf, NULL) == x) return;
    }
}

static void format_value(const nl_args *a, const opt *o, char *buf, size_t n) {
    const char *p = (const char *)a + o->off;
    switch (o->type) {
    case T_INT: snprintf(buf, n, "%d", *(const int *)p); break;
    case T_U64: snprintf(buf, n, "%llu", (unsigned long long)*(const uint64_t *)p); break;
    case T_DBL: format_double(buf, n, *(const double *)p); break;
    case T_PATH:
    case T_TEXT:
    case T_WORD: snprintf(buf, n, "%s", p); break;
    case T_LIST:
    case T_ARGS: snprintf(buf, n, "%s", p); break;
    case T_PLACE: snprintf(buf, n, "%s", nl_placements[*(const int *)p].name); break;
    case T_NTYPE: snprintf(buf, n, "%s", *(const int *)p < 0 ? "auto" : nl_norm_type_names[*(const int *)p]); break;
    case T_ARCH: snprintf(buf, n, "%s", nl_arch_names[*(const int *)p]); break;
    case T_DEVICE: snprintf(buf, n, "%s", device_names[*(const int *)p]); break;
    case T_ONOFF:
    case T_FLAG: snprintf(buf, n, "%s", *(const int *)p < 0 ? "auto" : *(const int *)p ? "on" : "off"); break;
    case T_GAIN: snprintf(buf, n, "%s", *(const int *)p ? "frozen" : "learn"); break;
    case T_ONNAN: snprintf(buf, n, "%s", *(const int *)p == NL_ON_NAN_ROLLBACK ? "rollback" : "stop"); break;
    case T_DTYPE: snprintf(buf, n, "%s", nl_dtype_names[*(const int *)p]); break;
    case T_TSAMP: snprintf(buf, n, "%s", tsamp_names[*(const int *)p]); break;
    }
}

void nl_args_help(FILE *f, int cmd) {
    nl_args d;
    nl_args_defaults(&d);
    fprintf(f, "options (default in brackets):\n");
    for (int i = 0; i < NOPTS; i++) {
        if (!(opts[i].cmds & cmd)) continue;
        char def[64] = "";
        format_value(&d, &opts[i], def, sizeof def);
        char left[48];
        if (opts[i].type == T_ARGS) snprintf(left, sizeof left, "PATH...");
        else
            snprintf(left, sizeof left, "--%s%s", opts[i].name,
                     opts[i].type == T_FLAG   ? ""
                     : opts[i].type == T_LIST ? " X..."
                                              : " X");
        fprintf(f, "  %-20s %s [%s]\n", left, opts[i].help, def[0] ? def : "none");
    }
    if (cmd & NL_CMD_TRAIN) {
        fprintf(f, "\nplacements (--norm):\n");
        for (int i = 0; i < NL_PLACE_COUNT; i++)
            fprintf(f, "  %-10s %-44s %s\n", nl_placements[i].name, nl_placements[i].eq, nl_placements[i].ref);
        fprintf(f, "\nnorm types (--norm-type):\n");
        for (int i = 0; i < NL_NORM_TYPE_COUNT; i++)
            fprintf(f, "  %-10s %s\n", nl_norm_type_names[i], nl_norm_type_eqs[i]);
    }
}

int nl_config_to_kv(const nl_config *c, nl_kv *kv, int n) {
    nl_args a;
    nl_args_defaults(&a);
    a.cfg = *c;
    int k = 0;
    for (int i = 0; i < NOPTS; i++) {
        if (!(opts[i].cmds & NL_CMD_TRAIN) || opts[i].off >= sizeof(nl_config) + offsetof(nl_args, cfg)) continue;
        if (k < n) {
            size_t j = 0;
            for (; opts[i].name[j] && j + 1 < sizeof kv[k].key; j++)
                kv[k].key[j] = opts[i].name[j] == '-' ? '_' : opts[i].name[j];
            kv[k].key[j] = 0;
            format_value(&a, &opts[i], kv[k].val, sizeof kv[k].val);
        }
        k++;
    }
    return k;
}

int nl_config_key_kind(const char *key) {
    const opt *o = find_opt(NL_CMD_TRAIN, key);
    return !o ? 0 : o->model ? 2 : 1;
}

nl_status nl_args_load_file(nl_args *a, int cmd, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return NL_FAIL(NL_ERR_IO, "cannot open config file '%s': %s", path, strerror(errno));
    char line[NL_PATH_MAX + 128];
    int ln = 0;
    nl_status st = NL_OK;
    while (st == NL_OK && fgets(line, sizeof line, f)) {
        ln++;
        size_t n = strlen(line);
        if (n == sizeof line - 1 && line[n - 1] != '\n') {
            st = NL_FAIL(NL_ERR_ARG, "%s:%d: line too long", path, ln);
            break;
        }
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
            line[--n] = 0;
        char *k = line;
        while (*k == ' ' || *k == '\t') k++;
        if (!*k || *k == '#') continue;
        char *eq = strchr(k, '=');
        if (!eq) {
            st = NL_FAIL(NL_ERR_ARG, "%s:%d: expected 'key = value', got '%s'", path, ln, k);
            break;
        }
        char *v = eq + 1, *ke = eq;
        while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t')) ke--;
        *ke = 0;
        while (*v == ' ' || *v == '\t') v++;
        const opt *o = find_opt(cmd, k);
        if (!o || o->off == ARG(config)) {
            st = NL_FAIL(NL_ERR_ARG, "%s:%d: unknown option '%s'%s", path, ln, k, o ? " (config files do not nest)" : "");
            break;
        }
        if (set_value(a, o, v) != NL_OK) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", nl_last_error());
            st = NL_FAIL(NL_ERR_ARG, "%s:%d: %s", path, ln, msg);
        }
    }
    if (st == NL_OK && ferror(f)) st = NL_FAIL(NL_ERR_IO, "cannot read config file '%s'", path);
    fclose(f);
    return st;
}
