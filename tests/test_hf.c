/* test_hf.c -- `normlab export --format hf` against Hugging Face transformers itself (build/venv,
 * scripts/deps.sh; offline): for every mapped class, transformers' AutoModelForCausalLM loads the
 * directory and its logits on the windows of `normlab eval` match the PyTorch twin's and its loss
 * matches `normlab eval` (1e-4 relative, tests/hf_check.py), and a GPT-2-vocabulary export's tokenizer
 * files encode the text as GPT-2 does; `train --init-from DIR` then export
 * gives the same bytes and the same eval, and so does --init-from of what transformers' own
 * save_pretrained writes; every unmapped model and every foreign config is refused
 * with one line naming what has no equivalent. */
#include "check.h"
#include "json.h"
#include "tests.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char out[1 << 16];

#define run(...) nl_run_fmt(out, sizeof out, __VA_ARGS__)

/* small, and trained hard enough (lr 1e-2) that the weights are far from their initialisation:
 * attention that is not near uniform makes a wrong q/k row order or rotary convention visible */
#define SMALL "--layers 2 --dim 32 --heads 4 --seq-len 16 --batch 4 --threads 2 --warmup 0 --lr 1e-2 --val-frac 0.1"
#define WINDOWS 16

/* the last line of out as "{...}" */
static const char *last_line(void) {
    size_t n = strlen(out);
    while (n && out[n - 1] == '\n') out[--n] = 0;
    char *p = strrchr(out, '\n');
    return p ? p + 1 : out;
}

/* two eval result lines agree in everything but the checkpoint's "step" */
static int same_eval(const char *a, const char *b) {
    const char *sa = strstr(a, ", \"step\""), *sb = strstr(b, ", \"step\"");
    size_t na = sa ? (size_t)(sa - a) : strlen(a), nb = sb ? (size_t)(sb - b) : strlen(b);
    return na == nb && !strncmp(a, b, na);
}

/* trains dir/r<i> with opts, exports it both ways and compares transformers with normlab */
static int mapped_case(const char *dir, const char *txt, int i, const char *opts, const char *cls) {
    const char *bin = nl_test_bin();
    int fails = 0;
    printf("    %s: %s\n", cls, opts);
    if (run("%s train " SMALL " %s --steps 40 --data %s --out %s/r%d 2>&1", bin, opts, txt, dir, i))
        return NL_CHECK(0, "train: %s", out);
    if (run("%s export --ckpt %s/r%d --format hf --out %s/h%d 2>&1", bin, dir, i, dir, i) || !strstr(out, cls))
        return NL_CHECK(0, "export --format hf (want %s): %s", cls, out);
    if (run("%s export --ckpt %s/r%d --out %s/e%d.safetensors 2>&1", bin, dir, i, dir, i))
        return NL_CHECK(0, "export: %s", out);
    if (run("%s eval --ckpt %s/r%d --data %s --max-windows %d 2>&1", bin, dir, i, txt, WINDOWS))
        return NL_CHECK(0, "eval: %s", out);
    char want[256];
    snprintf(want, sizeof want, "%s", last_line());
    nl_json_doc a, b;
    if (nl_json_parse(&a, want, strlen(want), "normlab eval") != NL_OK) return NL_CHECK(0, "%s", nl_last_error());
    int rc = run("%s tests/hf_check.py %s/h%d %s/e%d.safetensors %s %d %s/s%d 2>&1", nl_test_venv_python(), dir, i, dir,
                 i, txt, WINDOWS, dir, i);
    if (rc || nl_json_parse(&b, last_line(), strlen(last_line()), "hf_check.py") != NL_OK) {
        nl_json_free(&a);
        return NL_CHECK(0, "hf_check.py (exit %d): %s\n    HINT: scripts/deps.sh installs transformers into build/venv",
                        rc, out);
    }
    const char *got_cls = nl_json_str(nl_json_get(b.root, "class"));
    const double loss = nl_json_num(nl_json_get(a.root, "loss")), hf_loss = nl_json_num(nl_json_get(b.root, "loss"));
    const double rel = nl_json_num(nl_json_get(b.root, "logit_rel_err"));
    fails += NL_CHECK(got_cls && !strcmp(got_cls, cls), "transformers built %s, want %s", got_cls ? got_cls : "?", cls);
    fails += NL_CHECK(nl_json_num(nl_json_get(a.root, "tokens")) == nl_json_num(nl_json_get(b.root, "tokens")),
                      "token counts differ");
    fails += NL_CHECK(fabs(hf_loss - loss) <= 1e-4 * loss, "loss: transformers %.7f, normlab eval %.6f", hf_loss, loss);
    fails += NL_CHECK(rel <= 1e-4, "logits: transformers vs the twin, relative error %.3g", rel);
    printf("      normlab eval %.6f, transformers %.6f, logits vs twin %.2g\n", loss, hf_loss, rel);
    nl_json_free(&a);
    nl_json_free(&b);
    /* round trip: the directory becomes a checkpoint that evaluates and exports the same */
    if (run("%s train --init-from %s/h%d --steps 0 --threads 2 --data %s --out %s/b%d 2>&1", bin, dir, i, txt, dir, i))
        return fails + NL_CHECK(0, "train --init-from DIR: %s", out);
    if (run("%s eval --ckpt %s/b%d --data %s --max-windows %d 2>&1", bin, dir, i, txt, WINDOWS))
        return fails + NL_CHECK(0, "eval: %s", out);
    fails += NL_CHECK(same_eval(last_line(), want), "round trip eval %s, original %s", last_line(), want);
    rc = run("%s export --ckpt %s/b%d --format hf --out %s/hb%d 2>&1 && cmp %s/h%d/model.safetensors %s/hb%d/model.safetensors 2>&1 && "
             "cmp %s/h%d/config.json %s/hb%d/config.json 2>&1",
             bin, dir, i, dir, i, dir, i, dir, i, dir, i, dir, i);
    fails += NL_CHECK(rc == 0, "export -> --init-from -> export differs: %s", out);
    /* what transformers' save_pretrained wrote reads back as the same model */
    if (run("%s train --init-from %s/s%d --steps 0 --threads 2 --data %s --out %s/sb%d 2>&1", bin, dir, i, txt, dir, i))
        return fails + NL_CHECK(0, "train --init-from a save_pretrained directory: %s", out);
    if (run("%s eval --ckpt %s/sb%d --data %s --max-windows %d 2>&1", bin, dir, i, txt, WINDOWS))
        return fails + NL_CHECK(0, "eval: %s", out);
    return fails + NL_CHECK(same_eval(last_line(), want), "save_pretrained -> --init-from eval %s, original %s",
                            last_line(), want);
}

/* a model with no transformers class: export exits 2 with one line containing want, writes nothing */
static int refused_case(const char *dir, const char *txt, int i, const char *opts, const char *want) {
    const char *bin = nl_test_bin();
    if (run("%s train " SMALL " %s --steps 1 --data %s --out %s/u%d 2>&1", bin, opts, txt, dir, i))
        return NL_CHECK(0, "train %s: %s", opts, out);
    int rc = run("%s export --ckpt %s/u%d --format hf --out %s/uh%d 2>&1 >/dev/null", bin, dir, i, dir, i);
    const char *nl = strchr(out, '\n');
    int fails = NL_CHECK(rc == 2 && strstr(out, want) && nl && !nl[1], "%s: exit %d (want 2), stderr: %s", opts, rc, out);
    char p[128];
    snprintf(p, sizeof p, "%s/uh%d", dir, i);
    return fails + NL_CHECK(access(p, F_OK) != 0, "%s: a refused export left %s", opts, p);
}

/* --init-from a directory whose config.json (text) no normlab model reproduces: exit 1, one line */
static int refused_config(const char *dir, const char *txt, int i, const char *json, const char *want) {
    char p[128];
    snprintf(p, sizeof p, "%s/c%d", dir, i);
    if (run("mkdir -p %s", p)) return NL_CHECK(0, "mkdir");
    snprintf(p, sizeof p, "%s/c%d/config.json", dir, i);
    FILE *f = fopen(p, "w");
    NL_ASSERT(f);
    fputs(json, f);
    fclose(f);
    int rc = run("%s train --init-from %s/c%d --steps 0 --data %s --out %s/cr%d 2>&1 >/dev/null", nl_test_bin(), dir, i,
                 txt, dir, i);
    const char *nl = strchr(out, '\n');
    return NL_CHECK(rc == 1 && strstr(out, want) && nl && !nl[1], "config %d: exit %d (want 1), stderr: %s", i, rc, out);
}

int test_hf(void) {
    char dir[] = "/tmp/nl_hf_XXXXXX", txt[64];
    NL_ASSERT(mkdtemp(dir));
    snprintf(txt, sizeof txt, "%s/t.txt", dir);
    nl_make_text(txt, 3000);
    int fails = 0;
    static const struct {
        const char *opts, *cls;
    } mapped[] = {
        { "--norm pre --vocab 50257", "GPT2LMHeadModel" }, /* tied; the 47 padding rows are not exported */
        { "--norm pre --tie-head off --ffn-dim 48 --eps 1e-6", "GPT2LMHeadModel" },
        { "--arch llama --norm pre --kv-heads 1", "LlamaForCausalLM" }, /* grouped-query attention */
        { "--arch llama --norm pre --tie-head on --rope-theta 500 --ffn-dim 40", "LlamaForCausalLM" },
        { "--arch llama --norm gemma --kv-heads 2", "Gemma2ForCausalLM" },
        { "--arch llama --norm outonly --qk-norm --heads 1", "Olmo2ForCausalLM" },
    };
    for (int i = 0; i < (int)(sizeof mapped / sizeof mapped[0]); i++)
        fails += mapped_case(dir, txt, i, mapped[i].opts, mapped[i].cls);
    static const struct {
        const char *opts, *want;
    } refused[] = {
        { "--arch llama --norm peri", "--norm peri: no Hugging Face class matches it exactly" },
        { "--norm post", "--norm post on gpt2 blocks" },
        { "--norm pre --kv-heads 2", "GPT2LMHeadModel has no grouped-query attention" },
        { "--norm pre --norm-type rmsnorm", "--norm-type rmsnorm: GPT2LMHeadModel uses LayerNorm" },
        { "--arch llama --norm pre --qk-norm", "LlamaForCausalLM has no q/k norms" },
        { "--arch llama --norm pre --norm-type layernorm", "--norm-type layernorm on llama blocks" },
        { "--arch llama --norm pre --emb-norm on", "LlamaForCausalLM has no embedding norm" },
        { "--arch llama --norm gemma --qk-norm", "Gemma2ForCausalLM has no q/k norms" },
        { "--arch llama --norm outonly", "always normalises q and k" },
        { "--arch llama --norm outonly --qk-norm", "the two agree only with --heads 1" },
        { "--arch llama --norm pre --skip-init", "--skip-init" },
        { "--arch llama --norm pre --gpas", "--gpas: no Hugging Face class" },
        { "--norm pre --sdd", "--sdd: no Hugging Face class" },
        { "--arch llama --norm lns", "--norm lns on llama blocks" },
    };
    for (int i = 0; i < (int)(sizeof refused / sizeof refused[0]); i++)
        fails += refused_case(dir, txt, i, refused[i].opts, refused[i].want);
    static const struct {
        const char *json, *want;
    } configs[] = {
        { "{\"model_type\": \"mistral\"}", "model_type 'mistral' has no normlab equivalent" },
        { "{\"model_type\": \"llama\", \"vocab_size\": 256, \"hidden_size\": 32, \"num_hidden_layers\": 1, \"num_attention_heads\": 4, "
          "\"intermediate_size\": 64, \"max_position_embeddings\": 16, \"rms_norm_eps\": 1e-5, \"rope_scaling\": {\"type\": \"linear\", "
          "\"factor\": 2.0}}",
          "rope_scaling" },
        { "{\"model_type\": \"gpt2\", \"vocab_size\": 256, \"n_embd\": 32, \"n_layer\": 1, \"n_head\": 4, \"n_positions\": 16, "
          "\"activation_function\": \"relu\"}",
          "activation_function \"relu\"" },
        { "{\"model_type\": \"gemma2\", \"vocab_size\": 256, \"hidden_size\": 32, \"num_hidden_layers\": 1, \"num_attention_heads\": 4, "
          "\"intermediate_size\": 64, \"max_position_embeddings\": 16, \"rms_norm_eps\": 1e-6, \"hidden_activation\": \"silu\", "
          "\"head_dim\": 8, \"query_pre_attn_scalar\": 8, \"attn_logit_softcapping\": 50.0}",
          "attn_logit_softcapping" },
        { "{\"model_type\": \"llama\", \"vocab_size\": 256}", "key 'hidden_size' is missing" },
        /* an absent key means the class's default: Gemma 2's is GeGLU */
        { "{\"model_type\": \"gemma2\", \"vocab_size\": 256, \"hidden_size\": 32, \"num_hidden_layers\": 1, \"num_attention_heads\": 4, "
          "\"intermediate_size\": 64, \"max_position_embeddings\": 16, \"head_dim\": 8}",
          "hidden_activation is missing" },
    };
    for (int i = 0; i < (int)(sizeof configs / sizeof configs[0]); i++)
        fails += refused_config(dir, txt, i, configs[i].json, configs[i].want);
    fails += nl_test_rmdir(dir);
    return fails;
}
