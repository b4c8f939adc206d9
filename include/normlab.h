/* normlab.h -- the one public header of normlab: configuration, status codes and the model API.
 *
 * A model is a GPT (token + learned position embedding, L blocks of causal attention and a GELU MLP,
 * head tied to the token embedding) whose normalization placement is chosen by nl_config.norm from the
 * table in src/norm.c. Everything is fp32 on the CPU. See docs/architecture.md for the data flow. */
#ifndef NORMLAB_H
#define NORMLAB_H

#include <stddef.h>
#include <stdint.h>

typedef enum nl_status {
    NL_OK = 0,
    NL_ERR_IO = -1,     /* a file could not be read or written */
    NL_ERR_FORMAT = -2, /* a file or value is malformed */
    NL_ERR_ARG = -3,    /* a bad option or configuration */
} nl_status;

/* The last error message set by a failing call (thread-local). */
const char *nl_last_error(void);

/* Placements; the table in src/norm.c gives each its name, equation and sites. */
typedef enum nl_norm {
    NL_NORM_POST,
    NL_NORM_PRE,
    NL_NORM_PERI,
    NL_NORM_MIX,
    NL_NORM_LNS,
    NL_NORM_OUTONLY,
    NL_NORM_DEEPNORM,
    NL_NORM_SANDWICH,
    NL_NORM_GEMMA,
    NL_NORM_NONE,
    NL_NORM_B2T,
    NL_NORM_HYBRID,
    NL_NORM_HYBRIDSTAR,
    NL_NORM_NORMFORMER,
    NL_NORM_RESIDUAL,
    NL_NORM_COUNT
} nl_norm;

typedef enum nl_norm_type {
    NL_LAYERNORM,
    NL_RMSNORM,
    NL_SCALENORM, /* g x / sqrt(|x|^2 + eps), one scalar g */
    NL_DYT,       /* w tanh(alpha x) + b, one scalar alpha */
    NL_SEEDNORM,  /* (tanh(beta . x) alpha + w) x / rms(x) */
    NL_CRMSNORM,  /* RMSNorm from the first d-1 coordinates of a zero-mean x (pre/lns only) */
    NL_NORM_TYPE_COUNT
} nl_norm_type;

#define NL_PATH_MAX 1024

/* The resolved configuration of a model and its training run. Tri-state switches use -1 for
 * "default of the placement" until nl_config_resolve() fixes them to 0 or 1. */
typedef struct nl_config {
    /* model */
    int vocab;        /* V: real vocabulary size (256 for bytes) */
    int vocab_padded; /* Vp: rows of the embedding table, V rounded up to a multiple of 64 when V > 256 */
    int layers;       /* L */
    int dim;          /* C (d) */
    int heads;        /* NH; head size C/NH */
    int seq_len;      /* T: context length = rows of the position table */
    int norm;         /* nl_norm */
    int norm_type;    /* nl_norm_type; -1: the placement's default */
    double eps;
    int emb_norm;     /* -1 auto, 0 off, 1 on */
    int final_norm;   /* -1 auto, 0 off, 1 on */
    int out_gain_frozen;
    int scaled_init;
    double mix_alpha;
    double dyt_alpha; /* initial alpha of every DyT norm */
    int skip_init;    /* a learnable scalar (init 0) on every residual branch */
    int qk_norm;      /* per-head norm of q and k */
    int scale_resids; /* normformer: a learnable per-channel weight (init 1) on the MLP's identity path */
    /* training */
    int batch;        /* B: sequences per micro-batch */
    int accum;        /* micro-batches per optimizer step */
    int steps;
    double lr, min_lr_frac, weight_decay, clip;
    int warmup;
    uint64_t seed;
    int eval_every, eval_windows, ckpt_every, log_every;
    double val_frac;
    int threads;
    char data[NL_PATH_MAX];
    char val_data[NL_PATH_MAX];
    char out[NL_PATH_MAX];
    char init_from[NL_PATH_MAX];
} nl_config;

#define NL_ADAM_BETA1 0.9
#define NL_ADAM_BETA2 0.95
#define NL_ADAM_EPS 1e-8

#endif
