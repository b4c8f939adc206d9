/* llmc.c -- see llmc.h. */
#include "llmc.h"

#include "common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int32_t le32(const unsigned char *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

int nl_llmc_is_model(const char *path) {
    unsigned char h[4];
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    const int ok = fread(h, 1, 4, f) == 4 && le32(h) == NL_LLMC_MAGIC;
    fclose(f);
    return ok;
}

typedef struct hdr {
    int maxT, V, L, NH, C, Vp;
} hdr;

/* the 16 tensors: name in normlab's export (%d = layer), elements per layer (or in total) */
typedef struct ltensor {
    const char *name;
    int per_layer;
    size_t rows, cols;
} ltensor;

static int tensors(const hdr *h, ltensor t[16]) {
    const size_t C = (size_t)h->C;
    const ltensor tab[16] = {
        { "tok_emb.weight", 0, (size_t)h->Vp, C },
        { "pos_emb.weight", 0, (size_t)h->maxT, C },
        { "blocks.%d.attn_norm_in.weight", 1, C, 0 },
        { "blocks.%d.attn_norm_in.bias", 1, C, 0 },
        { "blocks.%d.attn.qkv.weight", 1, 3 * C, C },
        { "blocks.%d.attn.qkv.bias", 1, 3 * C, 0 },
        { "blocks.%d.attn.proj.weight", 1, C, C },
        { "blocks.%d.attn.proj.bias", 1, C, 0 },
        { "blocks.%d.mlp_norm_in.weight", 1, C, 0 },
        { "blocks.%d.mlp_norm_in.bias", 1, C, 0 },
        { "blocks.%d.mlp.fc.weight", 1, 4 * C, C },
        { "blocks.%d.mlp.fc.bias", 1, 4 * C, 0 },
        { "blocks.%d.mlp.proj.weight", 1, C, 4 * C },
        { "blocks.%d.mlp.proj.bias", 1, C, 0 },
        { "final_norm.weight", 0, C, 0 },
        { "final_norm.bias", 0, C, 0 },
    };
    memcpy(t, tab, sizeof tab);
    return 16;
}

static size_t numel(const ltensor *t) { return t->rows * (t->cols ? t->cols : 1); }

static nl_status read_header(FILE *f, const char *path, hdr *h) {
    unsigned char b[1024];
    if (fread(b, 1, sizeof b, f) != sizeof b)
        return NL_FAIL(NL_ERR_FORMAT, "'%s': shorter than llm.c's 1024-byte header", path);
    if (le32(b) != NL_LLMC_MAGIC)
        return NL_FAIL(NL_ERR_FORMAT, "'%s': bad magic %d (not an llm.c GPT-2 model)", path, le32(b));
    const int v = le32(b + 4);
    if (v != NL_LLMC_VERSION)
        return NL_FAIL(NL_ERR_FORMAT, "'%s': llm.c model version %d is not supported (only 3, fp32)%s", path, v,
                       v == 5 ? "; HINT: this is a bf16 file, use the fp32 .bin written beside it" : "");
    h->maxT = le32(b + 8), h->V = le32(b + 12), h->L = le32(b + 16), h->NH = le32(b + 20), h->C = le32(b + 24),
    h->Vp = le32(b + 28);
    if (h->maxT < 1 || h->maxT > 65536 || h->V < 2 || h->V > 1 << 24 || h->L < 1 || h->L > 1024 || h->NH < 1 ||
        h->C < 1 || h->C > 65536 || h->C % h->NH || h->Vp < h->V || h->Vp > 1 << 24)
        return NL_FAIL(NL_ERR_FORMAT, "'%s': implausible llm.c header (maxT %d, V %d, L %d, NH %d, C %d, Vp %d)", path,
                       h->maxT, h->V, h->L, h->NH, h->C, h->Vp);
    ltensor t[16];
    size_t n = 0;
    for (int i = 0; i < tensors(h, t); i++) n += numel(&t[i]) * (t[i].per_layer ? (size_t)h->L : 1);
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) return NL_FAIL(NL_ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
    if ((size_t)sb.st_size != 1024 + 4 * n)
        return NL_FAIL(NL_ERR_FORMAT, "'%s': %lld bytes, but an llm.c fp32 model of this header has %zu (truncated?)",
                       path, (long long)sb.st_size, 1024 + 4 * n);
    return NL_OK;
}

nl_status nl_llmc_read_config(const char *path, nl_config *c) {
    FILE *f = fopen(path, "rb");
    if (!f) return NL_FAIL(NL_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    hdr h;
    nl_status st = read_header(f, path, &h);
    fclose(f);
    NL_TRY(st);
    c->placement = NL_PLACE_PRE;
    c->norm_type = NL_LAYERNORM;
    c->eps = 1e-5;
    c->emb_norm = 0;
    c->final_norm = 1;
    c->out_gain_frozen = 0;
    c->layers = h.L;
    c->dim = h.C;
    c->heads = h.NH;
    c->seq_len = h.maxT;
    c->vocab = h.V;
    c->arch = NL_ARCH_GPT2;
    c->ffn_dim = 4 * h.C;
    c->tie_head = 1;
    c->kv_heads = h.NH;
    return NL_OK;
}

nl_status nl_llmc_import(nl_model *m, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NL_FAIL(NL_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    hdr h;
    nl_status st = read_header(f, path, &h);
    const nl_config *c = &m->cfg;
    if (st == NL_OK && (c->placement != NL_PLACE_PRE || c->norm_type != NL_LAYERNORM || c->emb_norm || !c->final_norm ||
                        c->layers != h.L || c->dim != h.C || c->heads != h.NH || c->seq_len != h.maxT || c->vocab != h.V ||
                        c->arch != NL_ARCH_GPT2 || c->ffn_dim != 4 * h.C || !c->tie_head || c->kv_heads != h.NH))
        st = NL_FAIL(NL_ERR_ARG,
                     "'%s': the model is not the file's (gpt2, Pre-LN layernorm, L %d, C %d, NH %d, T %d, V %d)", path,
                     h.L, h.C, h.NH, h.maxT, h.V);
    ltensor t[16];
    unsigned char *buf = NULL;
    size_t cap = 0;
    for (int i = 0; st == NL_OK && i < tensors(&h, t); i++) {
        const size_t n = numel(&t[i]);
        if (n * 4 > cap) {
            free(buf);
            cap = n * 4;
            buf = nl_xmalloc(cap);
        }
        for (int l = 0; st == NL_OK && l < (t[i].per_layer ? h.L : 1); l++) {
            char name[64];
            snprintf(name, sizeof name, t[i].name, l);
            const nl_tensor *mt = nl_model_find(m, name);
            NL_ASSERT(mt); /* a Pre-LN layernorm model has every one of these */
            if (fread(buf, 4, n, f) != n) {
                st = NL_FAIL(NL_ERR_IO, "'%s': read failed at tensor %s", path, name);
                break;
            }
            /* wte: the first min(Vp, padded rows) rows; rows beyond V are padding (never scored) */
            const size_t rows = t[i].rows < (size_t)mt->rows ? t[i].rows : (size_t)mt->rows,
                         k = rows * (t[i].cols ? t[i].cols : 1);
            float *dst = m->params + mt->offset;
            memset(dst, 0, mt->numel * sizeof(float));
            for (size_t j = 0; j < k; j++) {
                const uint32_t u = (uint32_t)le32(buf + 4 * j);
                memcpy(&dst[j], &u, 4);
            }
            if (i == 0) /* padding rows of the embedding: zero, as llm.c initialises them */
                memset(dst + (size_t)h.V * h.C, 0, (mt->numel - (size_t)h.V * h.C) * sizeof(float));
        }
    }
    free(buf);
    fclose(f);
    return st;
}
