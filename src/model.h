/* model.h -- nl_model: the parameter table, the buffers, and the one forward/backward template that
 * every placement runs (the placement only switches sites on and off, see placement.h).
 *
 * Ownership: nl_model owns six allocations of its backend's memory (params, grads, AdamW m and v,
 * activations + scratch, token ids); every named float pointer below points into them and is never
 * dereferenced outside the backend (see backend.h). Free with nl_model_free(). */
#ifndef NL_MODEL_H
#define NL_MODEL_H

#include "backend.h"
#include "normlab.h"

enum { NL_SUB_ATTN, NL_SUB_MLP, NL_SUB_COUNT };

/* One entry per parameter tensor; names are the export names (docs/file-formats.md). */
typedef struct nl_tensor {
    char name[64];
    size_t offset, numel;
    int rows, cols;     /* cols == 0: a vector of `rows` */
    int export_rows;    /* rows kept by export (V for tok_emb, whose padded rows are dropped) */
    unsigned decay : 1; /* weight decay applies (2-D matrices) */
    unsigned trainable : 1;
    float init_std; /* > 0: N(0, std); 0: zeros; < 0: the constant init_const */
    float init_const;
    int beta_row0;            /* rows >= beta_row0 get the placement's init factor; -1: none */
    int unit;                 /* ngpt: after every optimizer step each row (1) or column (2) is put back on the unit
                             sphere (nl_model_project); 0: none */
    float **slot_p, **slot_g; /* where nl_model wires this tensor's param and grad pointers */
} nl_tensor;

/* The parameters of one norm; which exist depends on the norm type (NULL otherwise):
 * layernorm w,b; rmsnorm w; scalenorm w (1 scalar); dyt w,b,alpha (1); seednorm w,alpha,beta. */
typedef struct nl_normw {
    float *w, *b, *alpha, *beta;
} nl_normw;

typedef struct nl_block_w {
    nl_normw norm[NL_SUB_COUNT][3]; /* [sublayer][site]; w == NULL: absent */
    nl_normw qkvn[3];               /* norms of q, k, v (QK: q and k per head; QKV: all three) */
    nl_normw fcn;                   /* normformer: norm over the 4C hidden units */
    float *hscale;                  /* normformer: (NH) head scales */
    float *lam;                     /* normformer: (C) weight of the MLP's identity path */
    float *skip[NL_SUB_COUNT];      /* --skip-init: (1) branch gain */
    float *eigen[NL_SUB_COUNT];     /* ngpt: (C) eigen learning rates alpha_A, alpha_M (stored; x alpha_init/scale) */
    float *sqk;                     /* ngpt: (C) s_qk of q and k, per head channel (stored; x sqrt(C)) */
    float *suv;                     /* ngpt: (FW) s_uv on the first MLP product (stored; x sqrt(C)) */
    float *gpas;                    /* --gpas: (1) the block's gate a_l, shared by both sublayers */
    float *qkv_sdd, *proj_sdd;      /* --sdd: (Q3), (C) scale vectors of the attention's linear layers */
    float *fc_sdd, *mproj_sdd;      /* --sdd: (FW), (C) of the MLP's (llama: gate | up, down) */
    /* Shapes with Q3 = C + 2 kvC (q | k | v rows), F = ffn_dim; biases are NULL for llama. */
    float *qkv_w, *qkv_b;     /* (Q3, C), (Q3) */
    float *proj_w, *proj_b;   /* (C, C), (C) */
    float *fc_w, *fc_b;       /* gpt2: (F, C), (F); llama: the gate (F, C), directly followed by ... */
    float *up_w;              /* ... llama's up projection (F, C): fc_w is one (2F, C) matrix */
    float *mproj_w, *mproj_b; /* (C, F), (C): gpt2 mlp.proj, llama mlp.down */
    float *ada_w, *ada_b;     /* dit: adaLN (6C, C), (6C): shift | scale | gate of attn, then of mlp */
} nl_block_w;

/* --arch dit's own tensors (docs/dit.md §2); P = patch^2 x channels, TF = NL_DIT_TFREQ */
typedef struct nl_dit_w {
    float *pe_w, *pe_b; /* patch embedding (C, P), (C) */
    float *t1_w, *t1_b; /* time MLP: (C, TF), (C) */
    float *t2_w, *t2_b; /* (C, C), (C) */
    float *fa_w, *fa_b; /* final adaLN (2C, C), (2C): shift | scale */
    float *fl_w, *fl_b; /* final linear (P, C), (P) */
} nl_dit_w;

typedef struct nl_weights {
    float *wte;         /* (Vp, C) */
    float *wpe;         /* (T, C); NULL for llama (rotary positions) */
    float *head;        /* (Vp, C): wte when the head is tied, else lm_head */
    nl_normw embn;      /* embedding norm (w == NULL: absent) */
    nl_normw finn;      /* final norm */
    float *sz;          /* ngpt: (V) s_z on the logits (stored; x sqrt(C)) */
    nl_block_w *blocks; /* (L) */
    nl_dit_w dit;       /* --arch dit; wte is then the label table (classes + 1 rows, the last the null class) */
} nl_weights;

/* Activations of one sublayer; pointers of absent steps alias their input (u = xin, qkv = qkv_raw,
 * atty = atty_raw, fgn = fgelu, o = a, ob = o, xout = z). Norm statistics: mean/rstd (LayerNorm),
 * rstd (RMSNorm, ScaleNorm), tanh(beta.x)/rstd (SeeDNorm), none (DyT). */
typedef struct nl_sub_acts {
    float *xin, *u, *u_mean, *u_rstd; /* stream in; IN norm */
    /* --sdd: outputs of the branch's linear layers before their RMSNorm (aliases of qkv_raw, fch, a
     * without SDD; ngpt: fch_lin is the first MLP product before s_uv), and the statistics: [0, 3N) of
     * the input layer's groups, [3N, 4N) the output's */
    float *qkv_lin, *fch_lin, *a_lin, *sdd_mean, *sdd_rstd;
    float *qkv_raw, *qkv;                         /* attention: projections (N,Q3); after the q/k/v norms and RoPE */
    float *qn_mean[3], *qn_rstd[3];               /* statistics of the q, k, v norms */
    float *att, *atty_raw, *atty;                 /* (B,NH,T,T), (N,C) heads, after the head scales */
    float *fch, *fgelu, *fgn, *fn_mean, *fn_rstd; /* MLP: (N,F) [llama (N,2F): gate | up], activation
                                                     (N,F), after FCNORM (N,F), its statistics */
    float *a;                                     /* branch output (N,C) */
    float *o, *o_mean, *o_rstd;                   /* OUT norm */
    float *ob;                                    /* after the --skip-init gain */
    float *z;                                     /* alpha * xin + ob (+ the block input for B2T) */
    float *xout, *p_mean, *p_rstd;                /* POST norm (or, with --gpas, the scaled z) */
    float *um;                                    /* dit: the branch input after adaLN modulation (= u otherwise) */
    float *og;                                    /* dit: the branch output after the adaLN gate (= ob otherwise) */
} nl_sub_acts;

typedef struct nl_model {
    nl_config cfg;
    const nl_backend *be;   /* where the numbers live and every op runs */
    int hs, kvC, Q3, F, FW; /* head size, k/v width, qkv rows, MLP width, rows of fc_w (F or 2F) */
    nl_tensor *tensors;
    int ntensors;
    size_t nparams;
    float *params, *grads, *m, *v;
    nl_weights w, g; /* pointers into params and grads */
    /* activations for up to B x T tokens (nl_model_alloc_acts) */
    int B, T;
    float *acts;
    float *emb, *embn, *e_mean, *e_rstd;
    float *r;         /* ResiDual: the unnormalised stream after the last block */
    nl_sub_acts *sub; /* (L, 2) */
    float *xf, *f_mean, *f_rstd, *logits, *losses;
    float *gA, *gB, *dz, *da, *du, *dqkv, *datt, *datty, *dfch, *dfgelu; /* backward scratch */
    int skip_block; /* 1-based block that nl_model_forward skips (x_{l+1} = x_l), 0: none; forward only */
    float *dob, *dr, *db2t, *sx, *sy, *sd, *dfgn, *geff; /* more scratch (q/k/v gathers, gains) */
    float *dsdd, *gx, *gy, *gd; /* --sdd: gradient before the RMSNorm; column-group gathers (N max(C, F)) */
    float *rope_cos, *rope_sin; /* llama: (T, hs/2) rotation of pair i at position t */
    float *lraw, *dbase;        /* ngpt: logits before s_z (N, Vp); gradient of the interpolation's base (N, C) */
    int *tok_inp, *tok_tgt;     /* (B*T) token ids of the last forward in backend memory (inputs for backward) */
    int fB, fT;
    /* --dtype bf16|fp16 (docs/numerics.md §3): what storing activations in the dtype overflowed and
     * flushed, summed over forwards and backwards until the caller zeroes them (host memory, 2 (L+2)
     * entries): lowp[2 i] forward, lowp[2 i + 1] backward of part i = 0 the embedding, 1..L block i,
     * L+1 the final norm, head and loss. All zero for fp32. */
    nl_lowp_counts *lowp;
    nl_lowp_counts *lowp_at; /* where the op running now counts (an entry of lowp) */
    /* --arch dit (src/dit.c): B x T patch rows of width P, per-sample conditioning of width C */
    int dit, P;
    float *dit_x, *dit_v;      /* (N, P): noisy patches x_t (input), target velocity, then d loss / d output */
    float *dit_tf;             /* (B, TF) sinusoidal features of t */
    float *dit_h1, *dit_s1;    /* (B, C) time MLP hidden, its SiLU */
    float *dit_cv, *dit_sc;    /* (B, C) conditioning c = time + label embedding, SiLU(c) */
    float *dit_mod, *dit_dmod; /* (L x B x 6C + B x 2C) adaLN outputs of the blocks and the final layer; grads */
    float *dit_fm, *dit_out;   /* (N, C) final modulated stream, (N, P) predicted velocity */
    float *dit_dsc, *dit_db;   /* (B, C) d SiLU(c); (max(N P, B TF + B C)) backward scratch */
    int dit_has_tgt;           /* the staged batch has a target (the forward computes the loss) */
    size_t *block_at;          /* (L + 1): block l's parameters are [block_at[l], block_at[l + 1]) */
    /* Not NULL: nl_model_backward calls grad_ready(grad_ready_arg, lo, hi) as soon as the gradients of
     * parameters [lo, hi) are final for this backward (enqueued on the backend): the final norm's and
     * untied head's, then each block's from the last to the first, then the embeddings' (and a tied
     * head's). The ranges come in descending order and tile [0, nparams); empty ones are left out
     * (--arch dit: one range, at the end).
     * Data-parallel training reduces them while the backward goes on (dp.h). */
    void (*grad_ready)(void *arg, size_t lo, size_t hi);
    void *grad_ready_arg;
} nl_model;

/* Validates cfg (nl_config_check) and builds the parameter table; params are initialised from
 * cfg->seed. Returns NL_ERR_ARG with a message for a bad config. */
nl_status nl_model_init(nl_model *m, const nl_config *cfg);
void nl_model_free(nl_model *m); /* safe on a zeroed or freed model */
/* Allocates activations for B sequences of T tokens (once, before training: no allocation per step). */
void nl_model_alloc_acts(nl_model *m, int B, int T);
/* Forward on inp (B,T) (host arrays, copied to the backend). With tgt: returns the mean cross-entropy;
 * if dscale != 0 the logits buffer is replaced by the gradient of dscale * (sum of token losses), ready
 * for nl_model_backward. Without tgt: returns 0 and leaves logits (B*T, Vp) in m->logits (backend
 * memory: read them with m->be->to_host). */
float nl_model_forward(nl_model *m, const int *inp, const int *tgt, int B, int T, float dscale);
/* Accumulates parameter gradients of the last forward into m->grads. */
void nl_model_backward(nl_model *m);
void nl_model_zero_grad(nl_model *m);
size_t nl_model_trainable_count(const nl_model *m);
/* Mean of the gain a width-C norm applies (its scalar for ScaleNorm; 1 + s for gain offsets). */
double nl_norm_gain_mean(const nl_model *m, const nl_normw *p);
const nl_tensor *nl_model_find(const nl_model *m, const char *name);
/* ngpt: puts the rows or columns of every tensor with `unit` set back on the unit sphere (after init and after
 * every optimizer step); a no-op for the other placements. */
void nl_model_project(nl_model *m);

#endif
