/* hf.c -- see hf.h. One table of (Hugging Face name, normlab tensor, transform) per model class
 * serves both directions: export applies each transform, import its inverse. */
#include "hf.h"

#include "bpe.h"
#include "common.h"
#include "config.h"
#include "json.h"
#include "placement.h"
#include "safetensors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef enum hf_kind { HF_GPT2, HF_LLAMA, HF_GEMMA2, HF_OLMO2, HF_KIND_COUNT } hf_kind;
static const char *const class_names[HF_KIND_COUNT] = { "GPT2LMHeadModel", "LlamaForCausalLM", "Gemma2ForCausalLM",
                                                        "Olmo2ForCausalLM" };
static const char *const model_types[HF_KIND_COUNT] = { "gpt2", "llama", "gemma2", "olmo2" };

#define EXPORTABLE                                                                                                     \
    "exportable: --arch gpt2 --norm pre (layernorm), --arch llama --norm pre | gemma (rmsnorm), --arch llama --norm "  \
    "outonly --qk-norm --heads 1 (rmsnorm)"

/* The transformers class that computes c's model exactly, or NL_ERR_ARG naming what has none. */
static nl_status classify(const nl_config *c, hf_kind *k) {
    const char *placement = nl_placements[c->placement].name, *nt = nl_norm_type_names[c->norm_type];
    if (c->skip_init)
        return NL_FAIL(NL_ERR_ARG, "--skip-init: no Hugging Face class has a learnable gain on each residual branch");
    if (c->gpas)
        return NL_FAIL(NL_ERR_ARG, "--gpas: no Hugging Face class scales the residual stream by a learnable gate");
    if (c->sdd) return NL_FAIL(NL_ERR_ARG, "--sdd: no Hugging Face class normalises the output of every linear layer");
    if (c->arch == NL_ARCH_GPT2) {
        if (c->placement != NL_PLACE_PRE)
            return NL_FAIL(NL_ERR_ARG,
                           "--norm %s on gpt2 blocks: GPT2LMHeadModel is Pre-LN and no other Hugging Face class has gpt2 "
                           "blocks (%s)",
                           placement, EXPORTABLE);
        if (c->norm_type != NL_LAYERNORM)
            return NL_FAIL(NL_ERR_ARG, "--norm-type %s: GPT2LMHeadModel uses LayerNorm", nt);
        if (c->emb_norm) return NL_FAIL(NL_ERR_ARG, "--emb-norm on: GPT2LMHeadModel has no embedding norm");
        if (!c->final_norm)
            return NL_FAIL(NL_ERR_ARG, "--final-norm off: GPT2LMHeadModel always applies its final norm ln_f");
        if (c->qk_norm) return NL_FAIL(NL_ERR_ARG, "--qk-norm: GPT2LMHeadModel has no q/k norms");
        if (c->kv_heads != c->heads)
            return NL_FAIL(NL_ERR_ARG, "--kv-heads %d: GPT2LMHeadModel has no grouped-query attention", c->kv_heads);
        *k = HF_GPT2;
        return NL_OK;
    }
    switch (c->placement) {
    case NL_PLACE_PRE:
        if (c->qk_norm) return NL_FAIL(NL_ERR_ARG, "--qk-norm with --norm pre: LlamaForCausalLM has no q/k norms");
        *k = HF_LLAMA;
        break;
    case NL_PLACE_GEMMA:
        if (c->qk_norm)
            return NL_FAIL(NL_ERR_ARG,
                           "--qk-norm with --norm gemma: Gemma2ForCausalLM has no q/k norms (Gemma 3's class, which has "
                           "them, is newer than the pinned transformers)");
        *k = HF_GEMMA2;
        break;
    case NL_PLACE_OUTONLY:
        if (!c->qk_norm)
            return NL_FAIL(NL_ERR_ARG,
                           "--norm outonly without --qk-norm: OLMo 2 (Olmo2ForCausalLM) always normalises q and k");
        if (c->heads != 1)
            return NL_FAIL(NL_ERR_ARG,
                           "--norm outonly --qk-norm with %d heads: OLMo 2 normalises q and k over the whole projection width "
                           "(one gain of d, one of d_kv), normlab's --qk-norm per head (one gain of d/H shared by the heads): "
                           "the two agree only with --heads 1",
                           c->heads);
        *k = HF_OLMO2;
        break;
    case NL_PLACE_PERI:
    case NL_PLACE_SANDWICH:
        return NL_FAIL(NL_ERR_ARG,
                       "--norm %s: no Hugging Face class matches it exactly: Gemma 2 has the same norm sites but multiplies "
                       "the embedding by sqrt(d) and applies its gains as 1+w (normlab's --norm gemma, which exports as "
                       "Gemma2ForCausalLM), OLMo 2 has only the output norms, and neither normalises the embedding",
                       placement);
    default:
        return NL_FAIL(NL_ERR_ARG, "--norm %s on llama blocks: no Hugging Face class has this placement (%s)",
                       placement, EXPORTABLE);
    }
    if (c->norm_type != NL_RMSNORM)
        return NL_FAIL(NL_ERR_ARG, "--norm-type %s on llama blocks: %s uses RMSNorm", nt, class_names[*k]);
    if (c->emb_norm) return NL_FAIL(NL_ERR_ARG, "--emb-norm on: %s has no embedding norm", class_names[*k]);
    if (!c->final_norm)
        return NL_FAIL(NL_ERR_ARG, "--final-norm off: %s always applies its final norm", class_names[*k]);
    return NL_OK;
}

/* ---------------------------------------------------------------- the tensor table */

enum { OP_COPY, OP_T, OP_ROPE }; /* as is; transposed (GPT-2's Conv1D); rows permuted per head for rotate_half */

typedef struct hf_map {
    char hf[96];
    const nl_tensor *t;
    int op, row0, rows; /* rows [row0, row0 + rows) of t */
    int hd;             /* OP_ROPE: head size */
} hf_map;

typedef struct map_list {
    hf_map *v;
    int n;
    const nl_model *m;
} map_list;

static void add(map_list *l, int op, int row0, int rows, int hd, const char *hf, const char *nl, int layer) {
    char name[64];
    snprintf(name, sizeof name, nl, layer);
    const nl_tensor *t = nl_model_find(l->m, name);
    NL_ASSERT(t); /* classify() admits only models that have every tensor of their class */
    hf_map *e = &l->v[l->n++];
    snprintf(e->hf, sizeof e->hf, hf, layer);
    e->t = t;
    e->op = op;
    e->row0 = row0;
    e->rows = rows < 0 ? t->export_rows : rows;
    e->hd = hd;
}

/* the table of kind k for model m; l->v holds room for 16 entries per block + 8 */
static void build_map(map_list *l, hf_kind k) {
    const nl_model *m = l->m;
    const nl_config *c = &m->cfg;
    const int d = c->dim, kvC = m->kvC, hd = m->hs;
    if (k == HF_GPT2) {
        add(l, OP_COPY, 0, -1, 0, "transformer.wte.weight", "tok_emb.weight", 0);
        add(l, OP_COPY, 0, -1, 0, "transformer.wpe.weight", "pos_emb.weight", 0);
        for (int i = 0; i < c->layers; i++) {
            add(l, OP_COPY, 0, -1, 0, "transformer.h.%d.ln_1.weight", "blocks.%d.attn_norm_in.weight", i);
            add(l, OP_COPY, 0, -1, 0, "transformer.h.%d.ln_1.bias", "blocks.%d.attn_norm_in.bias", i);
            add(l, OP_T, 0, -1, 0, "transformer.h.%d.attn.c_attn.weight", "blocks.%d.attn.qkv.weight", i);
            add(l, OP_COPY, 0, -1, 0, "transformer.h.%d.attn.c_attn.bias", "blocks.%d.attn.qkv.bias", i);
            add(l, OP_T, 0, -1, 0, "transformer.h.%d.attn.c_proj.weight", "blocks.%d.attn.proj.weight", i);
            add(l, OP_COPY, 0, -1, 0, "transformer.h.%d.attn.c_proj.bias", "blocks.%d.attn.proj.bias", i);
            add(l, OP_COPY, 0, -1, 0, "transformer.h.%d.ln_2.weight", "blocks.%d.mlp_norm_in.weight", i);
            add(l, OP_COPY, 0, -1, 0, "transformer.h.%d.ln_2.bias", "blocks.%d.mlp_norm_in.bias", i);
            add(l, OP_T, 0, -1, 0, "transformer.h.%d.mlp.c_fc.weight", "blocks.%d.mlp.fc.weight", i);
            add(l, OP_COPY, 0, -1, 0, "transformer.h.%d.mlp.c_fc.bias", "blocks.%d.mlp.fc.bias", i);
            add(l, OP_T, 0, -1, 0, "transformer.h.%d.mlp.c_proj.weight", "blocks.%d.mlp.proj.weight", i);
            add(l, OP_COPY, 0, -1, 0, "transformer.h.%d.mlp.c_proj.bias", "blocks.%d.mlp.proj.bias", i);
        }
        add(l, OP_COPY, 0, -1, 0, "transformer.ln_f.weight", "final_norm.weight", 0);
        add(l, OP_COPY, 0, -1, 0, "transformer.ln_f.bias", "final_norm.bias", 0);
    } else {
        add(l, OP_COPY, 0, -1, 0, "model.embed_tokens.weight", "tok_emb.weight", 0);
        for (int i = 0; i < c->layers; i++) {
            const char *attn_out = "blocks.%d.attn_norm_out.weight", *mlp_in = "blocks.%d.mlp_norm_in.weight";
            if (k != HF_OLMO2)
                add(l, OP_COPY, 0, -1, 0, "model.layers.%d.input_layernorm.weight", "blocks.%d.attn_norm_in.weight", i);
            add(l, OP_COPY, 0, -1, 0, "model.layers.%d.post_attention_layernorm.weight",
                k == HF_LLAMA ? mlp_in : attn_out, i);
            if (k == HF_GEMMA2)
                add(l, OP_COPY, 0, -1, 0, "model.layers.%d.pre_feedforward_layernorm.weight", mlp_in, i);
            if (k != HF_LLAMA)
                add(l, OP_COPY, 0, -1, 0, "model.layers.%d.post_feedforward_layernorm.weight",
                    "blocks.%d.mlp_norm_out.weight", i);
            add(l, OP_ROPE, 0, d, hd, "model.layers.%d.self_attn.q_proj.weight", "blocks.%d.attn.qkv.weight", i);
            add(l, OP_ROPE, d, kvC, hd, "model.layers.%d.self_attn.k_proj.weight", "blocks.%d.attn.qkv.weight", i);
            add(l, OP_COPY, d + kvC, kvC, 0, "model.layers.%d.self_attn.v_proj.weight", "blocks.%d.attn.qkv.weight", i);
            if (k == HF_OLMO2) { /* one head: the per-head gain is the whole-width gain */
                add(l, OP_ROPE, 0, -1, hd, "model.layers.%d.self_attn.q_norm.weight", "blocks.%d.attn.q_norm.weight", i);
                add(l, OP_ROPE, 0, -1, hd, "model.layers.%d.self_attn.k_norm.weight", "blocks.%d.attn.k_norm.weight", i);
            }
            add(l, OP_COPY, 0, -1, 0, "model.layers.%d.self_attn.o_proj.weight", "blocks.%d.attn.proj.weight", i);
            add(l, OP_COPY, 0, -1, 0, "model.layers.%d.mlp.gate_proj.weight", "blocks.%d.mlp.gate.weight", i);
            add(l, OP_COPY, 0, -1, 0, "model.layers.%d.mlp.up_proj.weight", "blocks.%d.mlp.up.weight", i);
            add(l, OP_COPY, 0, -1, 0, "model.layers.%d.mlp.down_proj.weight", "blocks.%d.mlp.down.weight", i);
        }
        add(l, OP_COPY, 0, -1, 0, "model.norm.weight", "final_norm.weight", 0);
    }
    if (!c->tie_head) add(l, OP_COPY, 0, -1, 0, "lm_head.weight", "lm_head.weight", 0);
}

static nl_status make_map(const nl_model *m, hf_kind *k, map_list *l) {
    NL_TRY(classify(&m->cfg, k));
    l->m = m;
    l->n = 0;
    l->v = nl_xmalloc(((size_t)m->cfg.layers * 16 + 8) * sizeof *l->v);
    build_map(l, *k);
    return NL_OK;
}

/* Meta LLaMA pairs channels (2i, 2i+1) of a head, rotate_half pairs (i, i + hd/2): Hugging Face row
 * h*hd + i is normlab row h*hd + 2i, row h*hd + hd/2 + i is normlab row h*hd + 2i + 1. */
static size_t rope_row(size_t r, int hd, int to_nl) {
    const size_t h = r / (size_t)hd, i = r % (size_t)hd, half = (size_t)hd / 2;
    if (to_nl) return h * hd + (i < half ? 2 * i : 2 * (i - half) + 1); /* normlab row of HF row r */
    return h * hd + (i % 2 ? half + i / 2 : i / 2);                     /* HF row of normlab row r */
}

/* Hugging Face layout of entry e from normlab's (to_hf) or back; src/dst hold e->rows x cols. */
static void transform(const hf_map *e, float *dst, const float *src, int to_hf) {
    const size_t rows = (size_t)e->rows, cols = e->t->cols ? (size_t)e->t->cols : 1;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            if (e->op == OP_T) {
                if (to_hf) dst[c * rows + r] = src[r * cols + c];
                else dst[r * cols + c] = src[c * rows + r];
            } else {
                const size_t rd = e->op == OP_ROPE ? rope_row(r, e->hd, 0) : r; /* HF row of normlab row r */
                if (to_hf) dst[rd * cols + c] = src[r * cols + c];
                else dst[r * cols + c] = src[rd * cols + c];
            }
        }
}

static void hf_shape(const hf_map *e, int *ndim, int64_t shape[2]) {
    *ndim = e->t->cols ? 2 : 1;
    shape[0] = e->op == OP_T ? e->t->cols : e->rows;
    shape[1] = e->op == OP_T ? e->rows : e->t->cols;
}

/* ---------------------------------------------------------------- config.json */

/* the shortest %g that reads back as x */
static void fmt_num(char *out, size_t cap, double x) {
    for (int p = 1; p <= 17; p++) {
        snprintf(out, cap, "%.*g", p, x);
        if (strtod(out, NULL) == x) return;
    }
}

static nl_status write_config(const nl_model *m, hf_kind k, const char *path) {
    const nl_config *c = &m->cfg;
    char tmp[NL_PATH_MAX + 64], eps[32], theta[32];
    FILE *f;
    NL_TRY(nl_write_atomic_begin(path, tmp, sizeof tmp, &f));
    fmt_num(eps, sizeof eps, c->eps);
    fmt_num(theta, sizeof theta, c->rope_theta);
    const char *tie = c->tie_head ? "true" : "false";
    fprintf(f, "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n  \"torch_dtype\": \"float32\",\n",
            class_names[k], model_types[k]);
    fprintf(f, "  \"vocab_size\": %d,\n  \"tie_word_embeddings\": %s,\n", c->vocab, tie);
    if (c->vocab == 50257)
        fprintf(f, "  \"bos_token_id\": 50256,\n  \"eos_token_id\": 50256,\n"); /* GPT-2's <|endoftext|> */
    else fprintf(f, "  \"bos_token_id\": null,\n  \"eos_token_id\": null,\n");
    if (k == HF_GPT2) {
        fprintf(f,
                "  \"n_embd\": %d,\n  \"n_layer\": %d,\n  \"n_head\": %d,\n  \"n_inner\": %d,\n  \"n_positions\": %d,\n",
                c->dim, c->layers, c->heads, c->ffn_dim, c->seq_len);
        fprintf(f,
                "  \"layer_norm_epsilon\": %s,\n  \"activation_function\": \"gelu_new\",\n  \"scale_attn_weights\": true,\n"
                "  \"scale_attn_by_inverse_layer_idx\": false,\n  \"reorder_and_upcast_attn\": false,\n"
                "  \"resid_pdrop\": 0.0,\n  \"embd_pdrop\": 0.0,\n  \"attn_pdrop\": 0.0\n}\n",
                eps);
    } else {
        fprintf(f,
                "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
                "  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n  \"max_position_embeddings\": %d,\n",
                c->dim, c->ffn_dim, c->layers, c->heads, c->kv_heads, m->hs, c->seq_len);
        fprintf(f,
                "  \"rms_norm_eps\": %s,\n  \"rope_theta\": %s,\n  \"rope_scaling\": null,\n  \"attention_bias\": false,\n"
                "  \"attention_dropout\": 0.0,\n",
                eps, theta);
        if (k == HF_GEMMA2) /* SwiGLU, plain 1/sqrt(hd) scores, no soft-capping, no window within seq_len */
            fprintf(f,
                    "  \"hidden_activation\": \"silu\",\n  \"query_pre_attn_scalar\": %d,\n  \"attn_logit_softcapping\": null,\n"
                    "  \"final_logit_softcapping\": null,\n  \"sliding_window\": %d,\n",
                    m->hs, c->seq_len);
        if (k == HF_LLAMA) fprintf(f, "  \"mlp_bias\": false,\n");
        fprintf(f, "  \"hidden_act\": \"silu\"\n}\n");
    }
    return nl_write_atomic_commit(path, tmp, f);
}

/* copies the file src to dst (atomically) */
static nl_status copy_file(const char *src, const char *dst) {
    char *buf, tmp[NL_PATH_MAX + 64];
    size_t n;
    FILE *f;
    NL_TRY(nl_read_file(src, (size_t)1 << 26, &buf, &n));
    nl_status st = nl_write_atomic_begin(dst, tmp, sizeof tmp, &f);
    if (st == NL_OK) {
        fwrite(buf, 1, n, f);
        st = nl_write_atomic_commit(dst, tmp, f);
    }
    free(buf);
    return st;
}

/* GPT-2's tokenizer for a GPT-2-vocabulary model, in the files transformers' GPT2Tokenizer reads:
 * vocab.json (= encoder.json), merges.txt (= vocab.bpe), tokenizer_config.json. A byte-level model
 * (any other vocabulary) has no Hugging Face tokenizer and gets none. */
static nl_status write_tokenizer(const nl_model *m, const char *dir) {
    char bpe[NL_PATH_MAX] = "", src[NL_PATH_MAX + 32], dst[NL_PATH_MAX + 32], tmp[NL_PATH_MAX + 64];
    NL_TRY(nl_bpe_find_dir(bpe, sizeof bpe));
    snprintf(src, sizeof src, "%s/encoder.json", bpe);
    snprintf(dst, sizeof dst, "%s/vocab.json", dir);
    NL_TRY(copy_file(src, dst));
    snprintf(src, sizeof src, "%s/vocab.bpe", bpe);
    snprintf(dst, sizeof dst, "%s/merges.txt", dir);
    NL_TRY(copy_file(src, dst));
    snprintf(dst, sizeof dst, "%s/tokenizer_config.json", dir);
    FILE *f;
    NL_TRY(nl_write_atomic_begin(dst, tmp, sizeof tmp, &f));
    fprintf(f,
            "{\n  \"tokenizer_class\": \"GPT2Tokenizer\",\n  \"model_max_length\": %d,\n  \"add_prefix_space\": false,\n"
            "  \"bos_token\": \"<|endoftext|>\",\n  \"eos_token\": \"<|endoftext|>\",\n  \"unk_token\": \"<|endoftext|>\"\n}\n",
            m->cfg.seq_len);
    return nl_write_atomic_commit(dst, tmp, f);
}

int nl_hf_is_dir(const char *path) {
    char p[NL_PATH_MAX + 32];
    struct stat sb;
    snprintf(p, sizeof p, "%s/config.json", path);
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode) && stat(p, &sb) == 0;
}

nl_status nl_hf_export(const nl_model *m, const char *dir, const char **class_name) {
    hf_kind k;
    map_list l;
    NL_TRY(make_map(m, &k, &l));
    nl_status st = nl_mkdir_p(dir);
    char path[NL_PATH_MAX + 32];
    nl_st_entry *e = nl_xmalloc((size_t)l.n * sizeof *e);
    float **bufs = nl_xcalloc((size_t)l.n * sizeof *bufs);
    for (int i = 0; i < l.n && st == NL_OK; i++) {
        const hf_map *h = &l.v[i];
        const size_t cols = h->t->cols ? (size_t)h->t->cols : 1;
        bufs[i] = nl_xmalloc((size_t)h->rows * cols * sizeof(float));
        transform(h, bufs[i], m->params + h->t->offset + (size_t)h->row0 * cols, 1);
        e[i].name = h->hf;
        e[i].dtype = NL_ST_F32;
        hf_shape(h, &e[i].ndim, e[i].shape);
        e[i].data = bufs[i];
    }
    const char *mk[] = { "format" }, *mv[] = { "pt" }; /* transformers requires format "pt" */
    if (st == NL_OK) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        st = nl_st_write(path, e, l.n, mk, mv, 1);
    }
    if (st == NL_OK) {
        snprintf(path, sizeof path, "%s/config.json", dir);
        st = write_config(m, k, path);
    }
    if (st == NL_OK && m->cfg.vocab == 50257) st = write_tokenizer(m, dir);
    for (int i = 0; i < l.n; i++) free(bufs[i]);
    free(bufs);
    free(e);
    free(l.v);
    if (class_name) *class_name = class_names[k];
    return st;
}

/* ---------------------------------------------------------------- reading a directory back */

typedef struct cfg_reader {
    const nl_json *root;
    const char *path;
} cfg_reader;

/* a number under key (absent or null: def, NaN = required) */
static nl_status get_num(const cfg_reader *r, const char *key, double def, double *out) {
    const nl_json *v = nl_json_get(r->root, key);
    if (!v || v->type == NL_JNULL) {
        if (isnan(def)) return NL_FAIL(NL_ERR_FORMAT, "'%s': key '%s' is missing", r->path, key);
        *out = def;
        return NL_OK;
    }
    if (v->type != NL_JNUM) return NL_FAIL(NL_ERR_FORMAT, "'%s': key '%s' is not a number", r->path, key);
    *out = v->num;
    return NL_OK;
}

static nl_status get_int(const cfg_reader *r, const char *key, double def, int lo, int hi, int *out) {
    double x;
    NL_TRY(get_num(r, key, def, &x));
    if (x != floor(x) || x < lo || x > hi)
        return NL_FAIL(NL_ERR_FORMAT, "'%s': %s = %g is not an integer in [%d, %d]", r->path, key, x, lo, hi);
    *out = (int)x;
    return NL_OK;
}

/* key must be null or (want != NULL) the string want; absent_ok: an absent key means that too (the
 * class's default), else an absent key is refused as the class's default is something else */
static nl_status want_str(const cfg_reader *r, const char *key, const char *want, int absent_ok, const char *why) {
    const nl_json *v = nl_json_get(r->root, key);
    if (!v && absent_ok) return NL_OK;
    if (!v) return NL_FAIL(NL_ERR_FORMAT, "'%s': %s is missing (the class's default): %s", r->path, key, why);
    if (v->type == NL_JNULL) return NL_OK;
    if (want && v->type == NL_JSTR && !strcmp(v->str, want)) return NL_OK;
    return NL_FAIL(NL_ERR_FORMAT, "'%s': %s = %s%s%s: %s", r->path, key, v->type == NL_JSTR ? "\"" : "",
                   v->type == NL_JSTR ? v->str : "(not null)", v->type == NL_JSTR ? "\"" : "", why);
}

/* a boolean key (absent: def); *out 0/1 */
static nl_status get_bool(const cfg_reader *r, const char *key, int def, int *out) {
    const nl_json *v = nl_json_get(r->root, key);
    if (!v) return *out = def, NL_OK;
    if (v->type != NL_JBOOL) return NL_FAIL(NL_ERR_FORMAT, "'%s': key '%s' is not true or false", r->path, key);
    *out = v->num != 0;
    return NL_OK;
}

/* An absent key means the class's default (transformers 4.49's configuration_*.py), used below. */
static nl_status read_config(const cfg_reader *r, nl_config *c) {
    const char *mt = nl_json_str(nl_json_get(r->root, "model_type"));
    int k = -1;
    for (int i = 0; mt && i < HF_KIND_COUNT; i++)
        if (!strcmp(mt, model_types[i])) k = i;
    if (k < 0)
        return NL_FAIL(NL_ERR_FORMAT,
                       "'%s': model_type '%s' has no normlab equivalent (readable: gpt2, llama, gemma2, olmo2)",
                       r->path, mt ? mt : "(missing)");
    const double REQ = NAN;
    const int BIG = 1 << 24;
    int v, bias = 0;
    nl_config_defaults(c);
    c->norm_type = k == HF_GPT2 ? NL_LAYERNORM : NL_RMSNORM;
    c->emb_norm = 0;
    c->final_norm = 1;
    NL_TRY(get_int(r, "vocab_size", REQ, 2, BIG, &c->vocab));
    if (k == HF_GPT2) {
        c->arch = NL_ARCH_GPT2;
        c->placement = NL_PLACE_PRE;
        NL_TRY(get_int(r, "n_embd", REQ, 1, 65536, &c->dim));
        NL_TRY(get_int(r, "n_layer", REQ, 1, 1024, &c->layers));
        NL_TRY(get_int(r, "n_head", REQ, 1, 65536, &c->heads));
        NL_TRY(get_int(r, "n_inner", 4.0 * c->dim, 1, BIG, &c->ffn_dim));
        NL_TRY(get_int(r, "n_positions", REQ, 1, BIG, &c->seq_len));
        NL_TRY(get_num(r, "layer_norm_epsilon", 1e-5, &c->eps));
        const char *act = nl_json_str(nl_json_get(r->root, "activation_function"));
        if (act && strcmp(act, "gelu_new") && strcmp(act, "gelu_pytorch_tanh"))
            return NL_FAIL(NL_ERR_FORMAT,
                           "'%s': activation_function \"%s\": normlab's gpt2 MLP uses GELU with the tanh approximation",
                           r->path, act);
        NL_TRY(get_bool(r, "scale_attn_weights", 1, &v));
        if (!v)
            return NL_FAIL(NL_ERR_FORMAT,
                           "'%s': scale_attn_weights false: normlab scales attention scores by 1/sqrt(head size)",
                           r->path);
        NL_TRY(get_bool(r, "scale_attn_by_inverse_layer_idx", 0, &v));
        if (v)
            return NL_FAIL(NL_ERR_FORMAT, "'%s': scale_attn_by_inverse_layer_idx true has no normlab equivalent",
                           r->path);
        c->kv_heads = c->heads;
    } else {
        c->arch = NL_ARCH_LLAMA;
        c->placement = k == HF_LLAMA ? NL_PLACE_PRE : k == HF_GEMMA2 ? NL_PLACE_GEMMA : NL_PLACE_OUTONLY;
        c->qk_norm = k == HF_OLMO2;
        NL_TRY(get_int(r, "hidden_size", REQ, 1, 65536, &c->dim));
        NL_TRY(get_int(r, "num_hidden_layers", REQ, 1, 1024, &c->layers));
        NL_TRY(get_int(r, "num_attention_heads", REQ, 1, 65536, &c->heads));
        NL_TRY(get_int(r, "num_key_value_heads", c->heads, 1, 65536, &c->kv_heads));
        NL_TRY(get_int(r, "intermediate_size", REQ, 1, BIG, &c->ffn_dim));
        NL_TRY(get_int(r, "max_position_embeddings", REQ, 1, BIG, &c->seq_len));
        NL_TRY(get_num(r, "rms_norm_eps", k == HF_OLMO2 ? 1e-5 : 1e-6, &c->eps));
        NL_TRY(get_num(r, "rope_theta", 10000.0, &c->rope_theta));
        NL_TRY(get_int(r, "head_dim", k == HF_GEMMA2 ? 256 : c->dim / c->heads, 1, 65536, &v));
        if (v * c->heads != c->dim)
            return NL_FAIL(NL_ERR_FORMAT,
                           "'%s': head_dim %d x %d heads is not hidden_size %d (normlab's head size is d/H)", r->path,
                           v, c->heads, c->dim);
        NL_TRY(want_str(r, "rope_scaling", NULL, 1, "normlab's rotary embedding has no scaling"));
        if (k == HF_GEMMA2)
            NL_TRY(want_str(r, "hidden_activation", "silu", 0, "normlab's llama MLP is SwiGLU (SiLU), not GeGLU"));
        else NL_TRY(want_str(r, "hidden_act", "silu", 1, "normlab's llama MLP is SwiGLU (SiLU)"));
        NL_TRY(get_bool(r, "attention_bias", 0, &bias));
        if (!bias && k == HF_LLAMA) NL_TRY(get_bool(r, "mlp_bias", 0, &bias));
        if (bias)
            return NL_FAIL(NL_ERR_FORMAT, "'%s': attention_bias/mlp_bias true: normlab's llama blocks have no biases",
                           r->path);
        if (k == HF_GEMMA2) {
            double x;
            NL_TRY(want_str(r, "attn_logit_softcapping", NULL, 0, "normlab does not soft-cap attention scores"));
            NL_TRY(want_str(r, "final_logit_softcapping", NULL, 0, "normlab does not soft-cap logits"));
            NL_TRY(get_num(r, "query_pre_attn_scalar", 256, &x));
            if (x != c->dim / c->heads)
                return NL_FAIL(NL_ERR_FORMAT,
                               "'%s': query_pre_attn_scalar %g: normlab scales scores by 1/sqrt(head size %d)", r->path,
                               x, c->dim / c->heads);
            NL_TRY(get_num(r, "sliding_window", nl_json_get(r->root, "sliding_window") ? INFINITY : 4096,
                           &x)); /* null: none */
            if (x < c->seq_len)
                return NL_FAIL(NL_ERR_FORMAT,
                               "'%s': sliding_window %g < max_position_embeddings %d: normlab attends to the whole context",
                               r->path, x, c->seq_len);
        }
        if (k == HF_OLMO2 && c->heads != 1)
            return NL_FAIL(NL_ERR_FORMAT,
                           "'%s': OLMo 2 with %d heads normalises q and k over the whole width; normlab's --qk-norm is per head "
                           "(the same only with 1 head)",
                           r->path, c->heads);
    }
    NL_TRY(get_bool(r, "tie_word_embeddings", k == HF_GPT2 || k == HF_GEMMA2, &c->tie_head));
    return NL_OK;
}

nl_status nl_hf_read_config(const char *dir, nl_config *c) {
    char path[NL_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.json", dir);
    nl_json_doc doc;
    NL_TRY(nl_json_load(&doc, path, 1 << 20));
    nl_config h;
    cfg_reader r = { doc.root, path };
    nl_status st = read_config(&r, &h);
    nl_json_free(&doc);
    NL_TRY(st);
    /* the model options of h into c; c's training options are kept */
    c->arch = h.arch, c->placement = h.placement, c->norm_type = h.norm_type, c->eps = h.eps, c->emb_norm = h.emb_norm;
    c->final_norm = h.final_norm, c->out_gain_frozen = 0, c->skip_init = 0, c->qk_norm = h.qk_norm, c->scale_resids = 0;
    c->gpas = 0, c->sdd = 0;
    c->layers = h.layers, c->dim = h.dim, c->heads = h.heads, c->kv_heads = h.kv_heads, c->ffn_dim = h.ffn_dim;
    c->tie_head = h.tie_head, c->rope_theta = h.rope_theta, c->seq_len = h.seq_len, c->vocab = h.vocab;
    return NL_OK;
}

/* tensors a transformers file may hold that are buffers, not parameters */
static int ignorable(const char *name) {
    static const char *const suffixes[] = { ".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq" };
    const size_t n = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        const size_t s = strlen(suffixes[i]);
        if (n >= s && !strcmp(name + n - s, suffixes[i])) return 1;
    }
    return 0;
}

static nl_status import_file(nl_model *m, const nl_st_file *f, const char *path, const map_list *l) {
    memset(m->params, 0, m->nparams * sizeof(float)); /* the padding rows of the vocabulary stay zero */
    for (int i = 0; i < l->n; i++) {
        const hf_map *e = &l->v[i];
        const nl_st_tensor *s = nl_st_find(f, e->hf);
        int ndim;
        int64_t shape[2];
        hf_shape(e, &ndim, shape);
        if (!s) return NL_FAIL(NL_ERR_FORMAT, "'%s': tensor '%s' is missing", path, e->hf);
        if (s->dtype != NL_ST_F32)
            return NL_FAIL(NL_ERR_FORMAT, "'%s': tensor '%s' is not F32 (save the model in float32)", path, e->hf);
        if (s->ndim != ndim || s->shape[0] != shape[0] || (ndim == 2 && s->shape[1] != shape[1]))
            return NL_FAIL(NL_ERR_FORMAT, "'%s': tensor '%s' has the wrong shape (expected [%lld%s%lld])", path, e->hf,
                           (long long)shape[0], ndim == 2 ? ", " : "", ndim == 2 ? (long long)shape[1] : 0LL);
        const size_t cols = e->t->cols ? (size_t)e->t->cols : 1, n = (size_t)e->rows * cols;
        float *src = nl_xmalloc(n * sizeof(float));
        memcpy(src, s->data, n * sizeof(float)); /* the data section need not be aligned */
        transform(e, m->params + e->t->offset + (size_t)e->row0 * cols, src, 0);
        free(src);
    }
    for (int i = 0; i < f->nt; i++) {
        int used = ignorable(f->t[i].name);
        for (int j = 0; j < l->n && !used; j++) used = !strcmp(f->t[i].name, l->v[j].hf);
        if (!used)
            return NL_FAIL(NL_ERR_FORMAT, "'%s': tensor '%s' has no place in the model of config.json", path,
                           f->t[i].name);
    }
    return NL_OK;
}

nl_status nl_hf_import(nl_model *m, const char *dir) {
    hf_kind k;
    map_list l;
    NL_TRY(make_map(m, &k, &l));
    char path[NL_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    nl_st_file f;
    nl_status st = nl_st_read(path, &f);
    if (st == NL_OK) {
        st = import_file(m, &f, path, &l);
        nl_st_free(&f);
    }
    free(l.v);
    return st;
}
