/* prepare.c -- see prepare.h. */
#include "prepare.h"

#include "bpe.h"
#include "common.h"
#include "data.h"
#include "safetensors.h"

#include <errno.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct u16vec {
    uint16_t *v;
    size_t n, cap;
} u16vec;

static void u16_reserve(u16vec *a, size_t more) {
    if (a->n + more <= a->cap) return;
    size_t cap = a->cap ? a->cap : 1 << 20;
    while (cap < a->n + more) cap *= 2;
    a->v = nl_xresize(a->v, a->n, cap, sizeof *a->v);
    a->cap = cap;
}

static void progress(const nl_prepare_opts *o, size_t done, size_t total, double t0, int last) {
    if (!o->progress) return;
    const int W = 30, k = total ? (int)((double)done / (double)total * W) : W;
    char bar[64];
    for (int i = 0; i < W; i++) bar[i] = i < k ? '#' : '.';
    bar[W] = 0;
    const double dt = nl_now() - t0;
    fprintf(stderr, "\r\033[Ktokenizing [%s] %3.0f%% %.1f/%.1f MB %.1f MB/s", bar,
            total ? 100.0 * (double)done / (double)total : 100.0, (double)done / 1e6, (double)total / 1e6,
            dt > 0 ? (double)done / 1e6 / dt : 0.0);
    if (last) fputc('\n', stderr);
}

static nl_status read_all(const char *path, unsigned char **p, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NL_FAIL(NL_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return NL_FAIL(NL_ERR_IO, "'%s' is not a regular file", path);
    }
    *n = (size_t)sb.st_size;
    *p = nl_xmalloc(*n + 1);
    size_t got = fread(*p, 1, *n, f);
    fclose(f);
    if (got != *n) {
        free(*p);
        return NL_FAIL(NL_ERR_IO, "cannot read '%s'", path);
    }
    return NL_OK;
}

static nl_status write_shards(const char *dir, const char *split, const uint16_t *tok, size_t n, int per, int *count) {
    *count = 0;
    for (size_t off = 0; off < n; off += (size_t)per, ++*count) {
        const size_t k = n - off < (size_t)per ? n - off : (size_t)per;
        char path[NL_PATH_MAX + 64], tmp[NL_PATH_MAX + 128];
        snprintf(path, sizeof path, "%s/%s_%06d.bin", dir, split, *count);
        int32_t h[256] = { 0 };
        h[0] = NL_SHARD_MAGIC, h[1] = NL_SHARD_VERSION, h[2] = (int32_t)k;
        unsigned char hb[1024];
        for (int i = 0; i < 256; i++)
            for (int b = 0; b < 4; b++) hb[4 * i + b] = (unsigned char)((uint32_t)h[i] >> (8 * b)); /* little-endian */
        FILE *f;
        NL_TRY(nl_write_atomic_begin(path, tmp, sizeof tmp, &f));
        fwrite(hb, 1, sizeof hb, f);
        unsigned char buf[8192];
        for (size_t i = 0; i < k;) {
            size_t m = 0;
            for (; m < sizeof buf / 2 && i < k; i++, m++)
                buf[2 * m] = (unsigned char)tok[off + i], buf[2 * m + 1] = (unsigned char)(tok[off + i] >> 8);
            fwrite(buf, 2, m, f);
        }
        NL_TRY(nl_write_atomic_commit(path, tmp, f));
    }
    return NL_OK;
}

/* the files named by o->in, globs expanded (each sorted), in order */
static nl_status expand_inputs(const nl_prepare_opts *o, char ***files, int *nfiles) {
    int n = 0, cap = 16;
    char **f = nl_xmalloc((size_t)cap * sizeof *f);
    for (int i = 0; i < o->nin; i++) {
        glob_t g;
        const int is_glob = strpbrk(o->in[i], "*?[") != NULL;
        int rc = is_glob ? glob(o->in[i], 0, NULL, &g) : 0;
        if (is_glob && rc != 0) {
            for (int k = 0; k < n; k++) free(f[k]);
            free(f);
            return NL_FAIL(NL_ERR_IO, "--in: no file matches '%s'", o->in[i]);
        }
        const size_t m = is_glob ? g.gl_pathc : 1;
        for (size_t k = 0; k < m; k++) {
            if (n == cap) {
                cap *= 2;
                f = nl_xresize(f, (size_t)n, (size_t)cap, sizeof *f);
            }
            const char *s = is_glob ? g.gl_pathv[k] : o->in[i];
            f[n] = nl_xmalloc(strlen(s) + 1);
            memcpy(f[n++], s, strlen(s) + 1);
        }
        if (is_glob) globfree(&g);
    }
    *files = f;
    *nfiles = n;
    return NL_OK;
}

enum { CHUNK = 1 << 20 };

/* tokenizes files into toks */
static nl_status tokenize(const nl_prepare_opts *o, nl_bpe *bpe, char **files, int nfiles, u16vec *toks,
                          nl_prepare_stats *s) {
    size_t total = 0;
    for (int i = 0; i < nfiles; i++) {
        struct stat sb;
        if (stat(files[i], &sb) != 0) return NL_FAIL(NL_ERR_IO, "cannot open '%s': %s", files[i], strerror(errno));
        total += (size_t)sb.st_size;
    }
    const double t0 = nl_now();
    nl_ids ids = { 0 };
    for (int i = 0; i < nfiles; i++) {
        unsigned char *text;
        size_t n;
        NL_TRY(read_all(files[i], &text, &n));
        if (!bpe) {
            u16_reserve(toks, n);
            for (size_t k = 0; k < n; k++) toks->v[toks->n++] = text[k];
            s->bytes += n;
            progress(o, s->bytes, total, t0, 0);
        } else {
            u16_reserve(toks, 1);
            toks->v[toks->n++] = (uint16_t)nl_bpe_eot(bpe);
            /* chunks cut before a "\n" that follows a printable ASCII character: the pre-tokeniser
             * always starts a piece there and no lookahead crosses it, so the tokens are those of
             * the whole file */
            for (size_t a = 0; a < n;) {
                size_t e = a + CHUNK < n ? a + CHUNK : n;
                while (e < n && !(text[e] == '\n' && text[e - 1] > 0x20 && text[e - 1] < 0x7F)) e++;
                ids.n = 0;
                nl_bpe_encode(bpe, text + a, e - a, &ids);
                u16_reserve(toks, ids.n);
                for (size_t k = 0; k < ids.n; k++) toks->v[toks->n++] = (uint16_t)ids.v[k];
                s->bytes += e - a;
                a = e;
                progress(o, s->bytes, total, t0, 0);
            }
        }
        free(text);
    }
    nl_ids_free(&ids);
    progress(o, s->bytes, total, t0, 1);
    return NL_OK;
}

nl_status nl_prepare(const nl_prepare_opts *o, nl_prepare_stats *s) {
    memset(s, 0, sizeof *s);
    const double t0 = nl_now();
    const int gpt2 = !strcmp(o->tokenizer, "gpt2");
    if (!gpt2 && strcmp(o->tokenizer, "byte"))
        return NL_FAIL(NL_ERR_ARG, "--tokenizer: '%s' is not gpt2|byte", o->tokenizer);
    if (o->nin == 0) return NL_FAIL(NL_ERR_ARG, "--in is required (one or more text files or globs)");
    if (!o->out || !o->out[0]) return NL_FAIL(NL_ERR_ARG, "--out is required (the shard directory)");
    if (!(o->val_frac >= 0 && o->val_frac < 1))
        return NL_FAIL(NL_ERR_ARG, "--val-frac %g: must be in [0, 1)", o->val_frac);
    if (o->shard_tokens < 1) return NL_FAIL(NL_ERR_ARG, "--shard-tokens %d: must be positive", o->shard_tokens);
    nl_bpe *bpe = NULL;
    if (gpt2) {
        NL_TRY(nl_bpe_load(&bpe, o->bpe_dir ? o->bpe_dir : ""));
        if (nl_bpe_vocab(bpe) > 65536 || nl_bpe_eot(bpe) < 0) {
            const int v = nl_bpe_vocab(bpe);
            nl_bpe_free(bpe);
            return NL_FAIL(NL_ERR_FORMAT,
                           "the tokenizer has %d tokens; uint16 shards need <= 65536 and an <|endoftext|> token", v);
        }
        s->vocab = nl_bpe_vocab(bpe);
    } else s->vocab = 256;
    char **files = NULL;
    int nfiles = 0;
    u16vec toks = { 0 };
    nl_status st = expand_inputs(o, &files, &nfiles);
    if (st == NL_OK) st = tokenize(o, bpe, files, nfiles, &toks, s);
    if (st == NL_OK && toks.n == 0) st = NL_FAIL(NL_ERR_FORMAT, "--in: the input files are empty");
    const size_t nval = (size_t)(o->val_frac * (double)toks.n + 0.5);
    if (st == NL_OK && o->val_frac > 0 && nval == 0)
        st = NL_FAIL(NL_ERR_ARG, "--val-frac %g of %zu tokens is no token; raise it or pass 0", o->val_frac, toks.n);
    if (st == NL_OK && nval == toks.n) st = NL_FAIL(NL_ERR_ARG, "--val-frac %g leaves no training tokens", o->val_frac);
    if (st == NL_OK) st = nl_mkdir_p(o->out);
    if (st == NL_OK) st = write_shards(o->out, "train", toks.v, toks.n - nval, o->shard_tokens, &s->train_shards);
    if (st == NL_OK) st = write_shards(o->out, "val", toks.v + toks.n - nval, nval, o->shard_tokens, &s->val_shards);
    s->train_tokens = toks.n - nval;
    s->val_tokens = nval;
    s->files = nfiles;
    s->seconds = nl_now() - t0;
    for (int i = 0; i < nfiles; i++) free(files[i]);
    free(files);
    free(toks.v);
    nl_bpe_free(bpe);
    return st;
}
