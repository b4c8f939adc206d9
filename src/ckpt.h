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
/* Builds *m (nl_model_init) from the file's config and loads params and AdamW moments. The checksum,
 * format, version and every tensor's shape are checked; errors name the file. */
nl_status nl_ckpt_load(nl_model *m, const char *path, int *step, nl_rng *data_rng);
/* path may be a run directory: then its newest ckpt-*.safetensors. */
nl_status nl_ckpt_find(const char *ckpt_or_dir, char *out, size_t cap);

nl_status nl_export(const nl_model *m, const char *path);
/* Reads the model config stored in an export (or checkpoint) file's metadata into c (other fields of
 * c are kept). */
nl_status nl_read_model_config(const char *path, nl_config *c);
/* Loads exported parameters into m, whose config must match the file's. */
nl_status nl_import(nl_model *m, const char *path);

#endif
