/* hf.h -- Hugging Face transformers model directories: `normlab export --format hf` writes one
 * (config.json + model.safetensors) that AutoModelForCausalLM.from_pretrained loads, and
 * `train --init-from DIR` reads one back. Only models that a transformers class computes exactly are
 * mapped (docs/file-formats.md has the table, tensor by tensor):
 *   gpt2 blocks, pre, layernorm                        -> GPT2LMHeadModel (Conv1D = transposed Linear)
 *   llama blocks, pre, rmsnorm                         -> LlamaForCausalLM (q/k rows permuted for
 *                                                         rotate_half; GQA by num_key_value_heads)
 *   llama blocks, gemma, rmsnorm                       -> Gemma2ForCausalLM (SiLU, no soft-capping,
 *                                                         no sliding window within seq_len)
 *   llama blocks, outonly, rmsnorm, --qk-norm, 1 head  -> Olmo2ForCausalLM
 * Everything else is refused with one line naming what has no equivalent. */
#ifndef NL_HF_H
#define NL_HF_H

#include "model.h"

/* 1 if path is a directory holding config.json. */
int nl_hf_is_dir(const char *path);
/* Writes dir/config.json and dir/model.safetensors (F32; the directory is created), and for a
 * GPT-2-vocabulary model (50257) GPT-2's tokenizer as vocab.json, merges.txt and
 * tokenizer_config.json (copied from the shipped data/gpt2-bpe); NL_ERR_ARG
 * naming the option when no transformers class computes m's model exactly. */
nl_status nl_hf_export(const nl_model *m, const char *dir, const char **class_name);
/* Sets c's model options from dir/config.json; NL_ERR_FORMAT naming the key for a config that no
 * normlab model reproduces (another model type, rope scaling, soft-capping, biases, ...). */
nl_status nl_hf_read_config(const char *dir, nl_config *c);
/* Loads dir/model.safetensors into m, built from a config read by nl_hf_read_config. Every tensor
 * of the file must be used (a few known non-parameter buffers excepted). */
nl_status nl_hf_import(nl_model *m, const char *dir);

#endif
