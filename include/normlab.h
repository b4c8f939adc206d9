/* normlab.h -- the one public header of normlab: configuration, status codes and the model API.
 *
 * A model is a decoder-only transformer whose normalization placement is chosen by nl_config.placement from
 * the table in src/placement.c, in one of two architectures (nl_config.arch):
 *   gpt2   token + learned position embedding; causal attention and a GELU MLP with biases; head tied
 *          to the token embedding
 *   llama  token embedding only, rotary positions on q and k, a SwiGLU MLP, no biases anywhere, an
 *          untied head, RMSNorm by default
 * Parameters and optimizer state are fp32; activations are fp32, bf16 or fp16 (nl_config.dtype,
 * docs/numerics.md). See docs/architecture.md for the data flow. */
#ifndef NORMLAB_H
#define NORMLAB_H

#include <stddef.h>
#include <stdint.h>

#define NL_VERSION "0.1.0" /* the release; the Makefile reads it from here */

typedef enum nl_status {
    NL_OK = 0,
    NL_ERR_IO = -1,     /* a file could not be read or written */
    NL_ERR_FORMAT = -2, /* a file or value is malformed */
    NL_ERR_ARG = -3,    /* a bad option or configuration */
} nl_status;

/* The last error message set by a failing call (thread-local). */
const char *nl_last_error(void);

/* Placements; the table in src/placement.c gives each its name, equation and sites. */
typedef enum nl_placement_id {
    NL_PLACE_POST,
    NL_PLACE_PRE,
    NL_PLACE_PERI,
    NL_PLACE_MIX,
    NL_PLACE_LNS,
    NL_PLACE_OUTONLY,
    NL_PLACE_DEEPNORM,
    NL_PLACE_SANDWICH,
    NL_PLACE_GEMMA,
    NL_PLACE_NONE,
    NL_PLACE_B2T,
    NL_PLACE_HYBRID,
    NL_PLACE_HYBRIDSTAR,
    NL_PLACE_NORMFORMER,
    NL_PLACE_RESIDUAL,
    NL_PLACE_NGPT,
    NL_PLACE_COUNT
} nl_placement_id;

typedef enum nl_norm_type {
    NL_LAYERNORM,
    NL_RMSNORM,
    NL_SCALENORM, /* g x / sqrt(|x|^2 + eps), one scalar g */
    NL_DYT,       /* w tanh(alpha x) + b, one scalar alpha */
    NL_SEEDNORM,  /* (tanh(beta . x) alpha + w) x / rms(x) */
    NL_CRMSNORM,  /* RMSNorm from the first d-1 coordinates of a zero-mean x (pre/lns only) */
    NL_L2NORM,    /* x / |x|, no parameters (ngpt only) */
    NL_NORM_TYPE_COUNT
} nl_norm_type;

typedef enum nl_arch { NL_ARCH_GPT2, NL_ARCH_LLAMA, NL_ARCH_DIT, NL_ARCH_COUNT } nl_arch;
/* --arch dit: how training draws the flow-matching time t (docs/dit.md §2) */
typedef enum nl_tsamp { NL_TSAMP_LOGIT_NORMAL, NL_TSAMP_UNIFORM, NL_TSAMP_COUNT } nl_tsamp;

/* Where the numbers live and the ops run (--device): the CPU backend, or CUDA (make USE_CUDA=1). */
typedef enum nl_device { NL_DEVICE_CPU, NL_DEVICE_CUDA, NL_DEVICE_COUNT } nl_device;

/* Number formats of the low-precision numerics (docs/numerics.md); the CPU emulation is src/cpu/lowp.h. */
typedef enum nl_dtype { NL_DTYPE_FP32, NL_DTYPE_BF16, NL_DTYPE_FP16, NL_DTYPE_COUNT } nl_dtype;
extern const char *const nl_dtype_names[NL_DTYPE_COUNT]; /* "fp32", "bf16", "fp16" */

#define NL_PATH_MAX 1024
#define NL_MAX_ROLLBACKS 100

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
    int placement;    /* nl_placement_id */
    int norm_type;    /* nl_norm_type; -1: the placement's default */
    double eps;
    int emb_norm;   /* -1 auto, 0 off, 1 on */
    int final_norm; /* -1 auto, 0 off, 1 on */
    int out_gain_frozen;
    int scaled_init;
    double mix_alpha;
    double dyt_alpha;        /* initial alpha of every DyT norm */
    int skip_init;           /* a learnable scalar (init 0) on every residual branch */
    int qk_norm;             /* per-head norm of q and k */
    int scale_resids;        /* normformer: a learnable per-channel weight (init 1) on the MLP's identity path */
    int gpas;                /* GPAS: x' = z - SiLU(a_l) sg(z) after every residual add, one gate a_l per block */
    int sdd;                 /* SDD: every block linear layer's output is alpha * RMSNorm(W x) */
    int arch;                /* nl_arch */
    double rope_theta;       /* llama: base of the rotary frequencies */
    int ffn_dim;             /* F: MLP hidden width; 0: 4d (gpt2), the multiple of 64 nearest 8d/3 (llama) */
    int tie_head;            /* -1 auto (gpt2 on, llama off), 0: separate lm_head, 1: head = token embedding */
    int kv_heads;            /* key/value heads (grouped-query attention; must divide heads); 0: heads */
    double ngpt_alpha_init;  /* ngpt: effective initial eigen learning rates alpha_A, alpha_M */
    double ngpt_alpha_scale; /* ngpt: their stored initial value (0: 1/sqrt(dim)) */
    /* --arch dit (docs/dit.md): images of img_h x img_w x img_ch cut into p x p patches (seq_len tokens),
     * classes labels (0: unconditional) and a null class: vocab = classes + 1 rows of the label table */
    int patch, img_h, img_w, img_ch, classes;
    double cfg_drop;   /* classifier-free dropout: P(label -> null class) in training */
    int time_sampling; /* nl_tsamp */
    /* training */
    int batch;        /* B: sequences per micro-batch */
    int accum;        /* micro-batches per optimizer step */
    int global_batch; /* sequences per optimizer step over all ranks (0: ranks x batch x accum); sets accum */
    int zero;         /* 1: ZeRO-1, AdamW moments sharded across MPI ranks (docs/cluster.md) */
    int overlap;      /* MPI ranks: reduce gradient buckets during the backward (1) or after it (0) */
    double dp_timeout; /* MPI ranks: seconds a collective waits before the job ends naming the missing ranks (0: forever) */
    int steps;
    double lr, min_lr_frac, weight_decay, clip; /* weight_decay < 0: the placement's default */
    int warmup;                                 /* < 0: the placement's default */
    uint64_t seed;
    int eval_every, eval_windows, ckpt_every, log_every;
    double val_frac;
    int threads;
    int device;         /* nl_device: cpu (default) or cuda */
    int diag_every;     /* per-layer diagnostics every N steps (0: off), src/diag.h */
    double spike_k;     /* gradient spike: grad norm > spike_k x running median (0: off) */
    int diverge_window; /* stop when the mean loss of the last N steps exceeds the first (0: off) */
    char data[NL_PATH_MAX];
    char val_data[NL_PATH_MAX];
    char out[NL_PATH_MAX];
    char init_from[NL_PATH_MAX];
    char tensorboard[NL_PATH_MAX]; /* directory of the TensorBoard event files; "": the run directory */
    /* run safety (docs/reliability.md) */
    int keep_ckpts;    /* keep the newest N checkpoints, 0: all */
    int on_nan;        /* nl_on_nan: what a NaN/Inf loss or gradient does */
    int max_rollbacks; /* rollbacks allowed per run with on_nan = rollback */
    int lr_steps;      /* steps the warmup + cosine schedule spans (0: steps); later steps run at the floor */
    /* numerics (docs/numerics.md) */
    int dtype;               /* nl_dtype of activations and matmul inputs; master weights are always fp32 */
    double loss_scale;       /* fp16: initial dynamic loss scale (a power of two) */
    int loss_scale_interval; /* fp16: clean steps in a row that double the scale */
} nl_config;

typedef enum nl_on_nan { NL_ON_NAN_STOP, NL_ON_NAN_ROLLBACK } nl_on_nan;

#define NL_ADAM_BETA1 0.9
#define NL_ADAM_BETA2 0.95
#define NL_ADAM_EPS 1e-8

/* ---------------------------------------------------------------- library API
 * Link with libnormlab (pkg-config --cflags --libs normlab). Calls return NL_OK or a status with
 * nl_last_error() set; nothing exits the process. examples/train_api.c is a complete program. */

/* The defaults of `normlab train` (vocab 0: set it before nl_trainer_create). */
void nl_config_defaults(nl_config *c);
/* Sets one option by its command-line name, dashes or underscores ("norm", "seq_len", "lr", ...)
 * from a string, exactly as `normlab train --KEY VALUE` and config files do. */
nl_status nl_config_set(nl_config *c, const char *key, const char *value);

/* A model with its AdamW state, trained one optimizer step at a time on tokens the caller provides. */
typedef struct nl_trainer nl_trainer;
/* Builds and initialises a model from c (resolved: placement defaults, padded vocabulary);
 * activations for c->batch sequences of c->seq_len tokens. */
nl_status nl_trainer_create(nl_trainer **out, const nl_config *c);
void nl_trainer_free(nl_trainer *t);
const nl_config *nl_trainer_config(const nl_trainer *t); /* the resolved configuration */
/* One optimizer step (scheduled learning rate, clipping, AdamW) on c->batch windows of seq_len + 1
 * token ids in [0, vocab), row after row: inputs are a window's first seq_len tokens, targets its last.
 * *loss (may be NULL): the mean cross-entropy before the update. With dtype fp16 the step uses dynamic
 * loss scaling as `normlab train` does: a step whose gradients overflow is skipped (NL_OK, no update)
 * and halves the scale. */
nl_status nl_trainer_step(nl_trainer *t, const int *windows, double *loss);
/* Mean cross-entropy of n windows laid out as for nl_trainer_step; no update. */
nl_status nl_trainer_eval(nl_trainer *t, const int *windows, int n, double *loss);
/* Writes the parameters as an exported model (safetensors; `normlab eval/sample --ckpt` read
 * checkpoints, `train --init-from` and python/normlab_torch.py read this file). */
nl_status nl_trainer_export(const nl_trainer *t, const char *path);

/* A whole `normlab train` run (data, run directory, checkpoints) from a configuration. */
nl_status nl_train(nl_config *cfg);

/* GPT-2's BPE tokenizer (encoder.json + vocab.bpe in dir; "" finds the shipped data/gpt2-bpe in the
 * working directory, the repository of the binary or <prefix>/share/normlab). */
typedef struct nl_bpe nl_bpe;
nl_status nl_bpe_load(nl_bpe **out, const char *dir);
void nl_bpe_free(nl_bpe *b);
/* Token ids of text[0..n) in a new heap array (free()); *ntok their count. */
int *nl_bpe_tokenize(nl_bpe *b, const char *text, size_t n, size_t *ntok);
/* Bytes of the ids as a new NUL-terminated heap string (free()); *len its length. */
nl_status nl_bpe_decode(const nl_bpe *b, const int *ids, size_t n, char **text, size_t *len);

#endif
