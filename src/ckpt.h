/* ckpt.h -- checkpoints (everything to continue training) and exported models (parameters only),
 * both safetensors files whose metadata holds the resolved config. Layout: docs/file-formats.md.
 *   checkpoint: <name> (internal shapes), opt.m.<name>, opt.v.<name>; metadata format =
 *               "normlab-checkpoint", version, step, data_rng, crc32 of the data section
 *   export:     <name> (PyTorch Linear layout, tok_emb cut to V rows); metadata format = "normlab" */
#ifndef NL_CKPT_H
#define NL_CKPT_H

#include "common.h"
#include "model.h"
#include "safetensors.h"

#define NL_CKPT_VERSION 1

nl_status nl_ckpt_save(const nl_model *m, const char *path, int step, const nl_rng *data_rng);

/* The training state a checkpoint holds besides tensors and config. */
typedef struct nl_ckpt_info {
    int step;              /* optimizer steps done */
    nl_rng rng;            /* data-order RNG after those steps */
    long long data_tokens; /* tokens in the training stream (-1: not recorded) */
    int rollbacks;         /* divergence rollbacks so far */
    int nskip;             /* steps whose first batch is skipped (the batch that diverged) */
    int skip[NL_MAX_ROLLBACKS];
    /* --dtype fp16's loss scaler (loss_scaler.h): scale (0: none recorded), clean steps since the last
     * overflow or growth, steps skipped for an overflow so far */
    double loss_scale;
    int loss_scale_clean;
    long long skipped_steps;
} nl_ckpt_info;

/* Writes a checkpoint with info in its metadata; refuses (NL_ERR_FORMAT, nothing written) when a
 * parameter or moment is NaN or Inf. */
nl_status nl_ckpt_save_info(const nl_model *m, const char *path, const nl_ckpt_info *info);
/* As nl_ckpt_load, filling info (a file without data_tokens/rollbacks/skip_steps gives -1/0/none, one
 * without loss_scale gives loss_scale 0). */
nl_status nl_ckpt_load_info(nl_model *m, const char *path, nl_ckpt_info *info);
/* Reads every training option saved in a checkpoint's metadata into c (a checkpoint only; nothing
 * else is loaded). */
nl_status nl_ckpt_read_config(const char *path, nl_config *c);
/* Builds *m (nl_model_init) from the file's config and loads params and AdamW moments. The checksum,
 * format, version and every tensor's shape are checked; errors name the file. */
nl_status nl_ckpt_load(nl_model *m, const char *path, int *step, nl_rng *data_rng);
/* The steps of the ckpt-<step>.safetensors files in dir, ascending (*steps: free()). */
nl_status nl_ckpt_list(const char *dir, int **steps, int *n);
/* dir/ckpt-<step, 8 digits>.safetensors */
void nl_ckpt_path(char *out, size_t cap, const char *dir, int step);
/* path may be a run directory: then its newest ckpt-*.safetensors. */
nl_status nl_ckpt_find(const char *ckpt_or_dir, char *out, size_t cap);

nl_status nl_export(const nl_model *m, const char *path);
/* Reads the model config stored in an export (or checkpoint) file's metadata into c (other fields of
 * c are kept). */
nl_status nl_read_model_config(const char *path, nl_config *c);
/* Loads exported parameters into m, whose config must match the file's. */
nl_status nl_import(nl_model *m, const char *path);

#endif
