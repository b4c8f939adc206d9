/* test_llmc.c -- llm.c GPT-2 checkpoints (train --init-from FILE.bin): files written here from the
 * format's description load tensor by tensor into the right places, and the loaded model's loss equals
 * an independent float64 forward written from the same description (tests/llmc_ref.py); malformed
 * files are rejected with one line. */
#include "check.h"
#include "llmc.h"
#include "tests.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { MT = 8, V = 300, L = 2, NH = 2, C = 16, VP = 320 };

static char out[1 << 16];

#define run(...) nl_run_fmt(out, sizeof out, __VA_ARGS__)

/* the 16 tensors' element counts, in file order */
static const size_t sizes[16] = {
    (size_t)VP * C,       (size_t)MT *C, L *C, L *C, (size_t)L * 3 * C *C, L * 3 * C,
    (size_t)L *C *C,      L *C,          L *C, L *C, (size_t)L * 4 * C *C, L * 4 * C,
    (size_t)L *C * 4 * C, L *C,          C,    C,
};

static size_t total(void) {
    size_t n = 0;
    for (int i = 0; i < 16; i++) n += sizes[i];
    return n;
}

static float *write_model(const char *path, int version, size_t drop) {
    int32_t h[256] = { 20240326, version, MT, V, L, NH, C, VP };
    const size_t n = total();
    float *p = nl_xmalloc(n * sizeof(float));
    nl_rng r;
    nl_rng_seed(&r, 11);
    size_t off = 0;
    for (int i = 0; i < 16; i++) {
        const int gain = i == 2 || i == 8 || i == 14; /* ln1w, ln2w, lnfw */
        for (size_t k = 0; k < sizes[i]; k++)
            p[off + k] = (float)((gain ? 1.0 : 0.0) + (i == 0 ? 0.3 : 0.1) * nl_rng_normal(&r));
        if (i == 0)
            for (size_t k = (size_t)V * C; k < sizes[0]; k++) p[k] = 50.0f; /* padding rows: must never matter */
        off += sizes[i];
    }
    FILE *f = fopen(path, "wb");
    NL_ASSERT(f);
    fwrite(h, 4, 256, f);
    fwrite(p, 4, n - drop, f);
    fclose(f);
    return p;
}

int test_llmc_init(void) {
    int fails = 0;
    char dir[] = "/tmp/nl_llmc_XXXXXX", bin[64], a[4096];
    NL_ASSERT(mkdtemp(dir));
    snprintf(bin, sizeof bin, "%s/gpt2.bin", dir);
    float *p = write_model(bin, 3, 0);
    /* the config and every tensor, element for element */
    nl_config c;
    nl_config_defaults(&c);
    fails += NL_CHECK(nl_llmc_is_model(bin) && nl_llmc_read_config(bin, &c) == NL_OK, "read config: %s", nl_last_error());
    fails += NL_CHECK(c.placement == NL_PLACE_PRE && c.norm_type == NL_LAYERNORM && c.layers == L && c.dim == C &&
                              c.heads == NH && c.seq_len == MT && c.vocab == V && c.final_norm == 1 &&
                              c.emb_norm == 0 && c.eps == 1e-5,
                      "config from the header");
    nl_model m;
    if (fails || nl_model_init(&m, &c) != NL_OK) return fails + 1;
    fails += NL_CHECK(nl_llmc_import(&m, bin) == NL_OK, "import: %s", nl_last_error());
    static const char *const names[16] = {
        "tok_emb.weight",
        "pos_emb.weight",
        "blocks.%d.attn_norm_in.weight",
        "blocks.%d.attn_norm_in.bias",
        "blocks.%d.attn.qkv.weight",
        "blocks.%d.attn.qkv.bias",
        "blocks.%d.attn.proj.weight",
        "blocks.%d.attn.proj.bias",
        "blocks.%d.mlp_norm_in.weight",
        "blocks.%d.mlp_norm_in.bias",
        "blocks.%d.mlp.fc.weight",
        "blocks.%d.mlp.fc.bias",
        "blocks.%d.mlp.proj.weight",
        "blocks.%d.mlp.proj.bias",
        "final_norm.weight",
        "final_norm.bias",
    };
    size_t off = 0;
    for (int i = 0; i < 16; i++) {
        const int per_layer = strstr(names[i], "%d") != NULL;
        const size_t each = per_layer ? sizes[i] / L : sizes[i];
        for (int l = 0; l < (per_layer ? L : 1); l++) {
            char name[64];
            snprintf(name, sizeof name, names[i], l);
            const nl_tensor *t = nl_model_find(&m, name);
            const size_t cmp = i == 0 ? (size_t)V * C : each; /* tok_emb: the real rows */
            int same = t && t->numel >= cmp;
            for (size_t k = 0; same && k < cmp; k++) same = m.params[t->offset + k] == p[off + (size_t)l * each + k];
            fails += NL_CHECK(same, "%s holds the file's values", name);
        }
        off += sizes[i];
    }
    const nl_tensor *te = nl_model_find(&m, "tok_emb.weight");
    int zero = 1;
    for (size_t k = (size_t)V * C; k < te->numel; k++) zero &= m.params[te->offset + k] == 0.0f;
    fails += NL_CHECK(zero, "padding rows are zero");
    nl_model_free(&m);
    free(p);
    /* end to end: train --init-from (0 steps) -> eval equals the independent forward */
    char txt[64];
    snprintf(txt, sizeof txt, "%s/t.txt", dir);
    snprintf(a, sizeof a, "head -c 3000 tests/data/bpe_corpus.txt > %s", txt);
    fails += NL_CHECK(system(a) == 0, "text");
    int rc = run("%s train --init-from %s --steps 0 --data %s --out %s/run --threads 2 2>&1", nl_test_bin(), bin, txt,
                 dir);
    fails += NL_CHECK(rc == 0 && strstr(out, "gpt2 pre (layernorm), L=2 d=16 H=2 F=64 T=8 V=300"),
                      "train --init-from FILE.bin: %s", out);
    rc = run("%s eval --ckpt %s/run --data %s --max-windows 20 2>&1", nl_test_bin(), dir, txt);
    const char *q = strstr(out, "\"loss\": ");
    const double c_loss = q ? atof(q + 8) : NAN;
    fails += NL_CHECK(rc == 0, "eval: %s", out);
    rc = run("%s tests/llmc_ref.py %s %s 20 2>&1", nl_test_python(), bin, txt);
    q = strstr(out, "\"loss\": ");
    fails += NL_CHECK(rc == 0 && q, "llmc_ref.py: %s", out);
    fails += nl_check_scalar("loaded llm.c model vs the independent forward", c_loss, q ? atof(q + 8) : NAN, 1e-5);
    /* a vocabulary of 300 has no tokenizer: eval-mc and bpb say so */
    snprintf(a, sizeof a, "%s/mc.jsonl", dir);
    FILE *mc = fopen(a, "w");
    NL_ASSERT(mc);
    fputs("{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"label\": 0}\n", mc);
    fclose(mc);
    snprintf(a, sizeof a, "eval-mc --ckpt %s/run --task generic --data %s/mc.jsonl", dir, dir);
    fails += nl_expect_error(2, "vocabulary (300) is neither bytes (256) nor GPT-2's (50257)", a);
    snprintf(a, sizeof a, "eval --ckpt %s/run --data %s --metric bpb", dir, txt);
    fails += nl_expect_error(2, "vocabulary (300) is neither bytes (256) nor GPT-2's (50257)", a);
    /* fine-tuning runs */
    rc = run("%s train --init-from %s --steps 10 --lr 1e-2 --warmup 1 --batch 4 --data %s --out %s/ft --threads 2 2>&1",
             nl_test_bin(), bin, txt, dir);
    fails += NL_CHECK(rc == 0, "fine-tune: %s", out);
    /* malformed files */
    free(write_model(bin, 5, 0));
    snprintf(a, sizeof a, "train --init-from %s --data %s", bin, txt);
    fails += nl_expect_error(1, "version 5 is not supported (only 3, fp32); HINT: this is a bf16 file", a);
    free(write_model(bin, 3, 100));
    fails += nl_expect_error(1, "truncated", a);
    snprintf(a, sizeof a, "train --init-from %s --layers 3 --data %s", bin, txt);
    fails += nl_expect_error(2, "--layers: the model's shape and placement come from --init-from", a);
    fails += nl_test_rmdir(dir);
    return fails;
}
