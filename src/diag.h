/* diag.h -- per-layer diagnostics of a model on a fixed batch (docs/methods.md §4.1-4.3), and the
 * trackers the training loop uses for gradient spikes (§4.4) and divergence.
 *
 * nl_diag_run does its own forward and backward: it zeroes m->grads and leaves the diagnostic batch's
 * gradient there, so call it where the next thing to touch the gradients is nl_model_zero_grad (the
 * training loop calls it at the top of a step). It overwrites the activations too. It uses no random
 * numbers, so a run's loss curve is the same with and without diagnostics (also with --dtype: the
 * dtype counters it reads are zeroed and refilled by its own pass). All statistics are
 * accumulated in double from the fp32 activations. */
#ifndef NL_DIAG_H
#define NL_DIAG_H

#include "model.h"

#include <stdio.h>

#define NL_FP16_MAX 65504.0

typedef struct nl_diag_site {
    char name[64]; /* export name of the norm, e.g. blocks.3.mlp_norm_in (--sdd: blocks.3.attn.qkv_sdd) */
    double in_rms, out_rms, gain; /* RMS of its input and output over all entries, mean of its gain */
} nl_diag_site;

typedef struct nl_diag {
    int L;
    double loss;                             /* mean cross-entropy of the diagnostic batch */
    nl_stream_stat *x;                       /* (L+1): x_1 (embedding output) .. x_{L+1} (before the final norm) */
    double *g_block;                         /* (L) L2 norm of all gradients of block l */
    double *g_qkv, *g_proj, *g_fc, *g_mproj; /* (L) of each weight matrix */
    double g_total;                          /* L2 norm of all (trainable) gradients */
    double seconds;                          /* wall time of the last nl_diag_run (the pass's own cost) */
    nl_diag_site *sites;
    int nsites;
    double *gate_silu;    /* (L) --gpas: SiLU(a_l), the fraction block l's gate takes off the stream; else NULL */
    const nl_backend *be; /* the model's, which holds scratch */
    float *scratch;       /* (scratch_n) backend memory for the median */
    size_t scratch_n;
    int *tensor_block; /* (ntensors) block index of each tensor, -1 outside blocks */
    /* --dtype bf16|fp16: the loss scale of the pass (fp16's current one; 1 otherwise: set by the caller,
     * gradients are reported unscaled) and what storing activations (fwd) and activation gradients
     * (bwd) in the dtype overflowed and flushed in it, per part: 0 the embedding, 1..L the blocks, L+1
     * the final norm, head and loss (nl_model.lowp) */
    double loss_scale;
    nl_dtype dtype;
    nl_lowp_counts *lowp; /* (2 (L+2)): [2 i] forward, [2 i + 1] backward */
} nl_diag;

void nl_diag_init(nl_diag *d, const nl_model *m);
void nl_diag_free(nl_diag *d);
/* Forward + backward (mean loss) of inp/tgt (B,T) and every statistic above. The model's activations
 * must be allocated for B x T. */
void nl_diag_run(nl_diag *d, nl_model *m, const int *inp, const int *tgt, int B, int T);
/* The same for --arch dit on a fixed flow-matching batch (nl_dit_forward's inputs). */
void nl_diag_run_dit(nl_diag *d, nl_model *m, const float *xt, const float *t, const int *y, const float *v, int B);
/* One JSON object on one line (docs/file-formats.md, "diag" records); non-finite numbers as null. */
void nl_diag_write_json(const nl_diag *d, int step, FILE *f);

/* Gradient spikes: a step spikes when its global gradient norm exceeds k x the median of the
 * previous NL_SPIKE_WINDOW finite norms (once at least NL_SPIKE_MIN of them exist). */
enum { NL_SPIKE_WINDOW = 100, NL_SPIKE_MIN = 10 };
typedef struct nl_spikes {
    double k;
    double hist[NL_SPIKE_WINDOW];
    int n, head, count;
} nl_spikes;
void nl_spikes_init(nl_spikes *s, double k);        /* k <= 0: never a spike */
int nl_spikes_push(nl_spikes *s, double grad_norm); /* 1 if this step is a spike */

/* Divergence (docs/methods.md §4.4): the loss is non-finite, or after warmup the mean loss of the last
 * `window` steps is above the loss of the first step. window 0: only non-finite. */
typedef struct nl_diverge {
    int window, warmup, n;
    double first, sum;
    double *ring;
} nl_diverge;
void nl_diverge_init(nl_diverge *d, int window, int warmup);
void nl_diverge_free(nl_diverge *d);
/* Adds step `step` (1-based) with its loss; returns NULL, or the reason ("nonfinite", "loss"). */
const char *nl_diverge_push(nl_diverge *d, int step, double loss, double grad_norm);

#endif
