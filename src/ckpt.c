/* ckpt.c -- see ckpt.h. */
#include "ckpt.h"

#include "config.h"
#include "llmc.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { MAX_KV = 64 };

/* metadata = extra pairs + the resolved config */
static nl_status write_file(const nl_model *m, const char *path, const nl_st_entry *e, int n,
                            const char *const *xk, const char *const *xv, int nx) {
    nl_kv *kv = nl_xmalloc(MAX_KV * sizeof *kv);
    int nkv = nl_config_to_kv(&m->cfg, kv, MAX_KV);
    NL_ASSERT(nkv <= MAX_KV);
    const char *keys[MAX_KV + 8], *vals[MAX_KV + 8];
    int k = 0;
    for (int i = 0; i < nx; i++, k++) keys[k] = xk[i], vals[k] = xv[i];
    for (int i = 0; i < nkv; i++, k++) keys[k] = kv[i].key, vals[k] = kv[i].val;
    nl_status st = nl_st_write(path, e, n, keys, vals, k);
    free(kv);
    return st;
}

static void entry(nl_st_entry *e, const char *name, const nl_tensor *t, const float *base, int rows) {
    e->name = name;
    e->dtype = NL_ST_F32;
    e->ndim = t->cols ? 2 : 1;
    e->shape[0] = rows;
    e->shape[1] = t->cols;
    e->data = base + t->offset;
}

nl_status nl_ckpt_save(const nl_model *m, const char *path, int step, const nl_rng *rng) {
    const int nt = m->ntensors;
    nl_st_entry *e = nl_xmalloc(3 * (size_t)nt * sizeof *e);
    char(*names)[80] = nl_xmalloc(2 * (size_t)nt * sizeof *names);
    uint32_t crc = 0;
    for (int i = 0; i < nt; i++) {
        const nl_tensor *t = &m->tensors[i];
        snprintf(names[2 * i], 80, "opt.m.%s", t->name);
        snprintf(names[2 * i + 1], 80, "opt.v.%s", t->name);
        entry(&e[i], t->name, t, m->params, t->rows);
        entry(&e[nt + 2 * i], names[2 * i], t, m->m, t->rows);
        entry(&e[nt + 2 * i + 1], names[2 * i + 1], t, m->v, t->rows);
    }
    for (int i = 0; i < 3 * nt; i++) crc = nl_crc32(crc, e[i].data, nl_st_entry_bytes(&e[i]));
    char ver[16], stp[32], rs[96], cs[16];
    snprintf(ver, sizeof ver, "%d", NL_CKPT_VERSION);
    snprintf(stp, sizeof stp, "%d", step);
    snprintf(rs, sizeof rs, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64, rng->s[0], rng->s[1], rng->s[2], rng->s[3]);
    snprintf(cs, sizeof cs, "%08" PRIx32, crc);
    const char *xk[] = { "format", "version", "step", "data_rng", "crc32" };
    const char *xv[] = { "normlab-checkpoint", ver, stp, rs, cs };
    nl_status st = write_file(m, path, e, 3 * nt, xk, xv, 5);
    free(names);
    free(e);
    return st;
}

/* Sets c's options from the file's metadata (model options only, or all training options); other
 * keys (format, step, ...) are not options and are skipped. */
static nl_status config_from_meta(const nl_st_file *f, const char *path, nl_config *c, int model_only) {
    nl_args a;
    nl_args_defaults(&a);
    a.cfg = *c;
    for (int i = 0; i < f->nmeta; i++) {
        const int kind = nl_config_key_kind(f->meta[i].key);
        if (kind == 0 || (model_only && kind != 2)) continue;
        if (nl_args_set(&a, NL_CMD_TRAIN, f->meta[i].key, f->meta[i].val) != NL_OK)
            return NL_FAIL(NL_ERR_FORMAT, "'%s': bad config in metadata: %s", path, nl_last_error());
    }
    *c = a.cfg;
    return NL_OK;
}

/* copies F32 tensor `name` of exactly rows x cols (cols 0: vector) into dst */
static nl_status copy_tensor(const nl_st_file *f, const char *path, const char *name, int rows, int cols, float *dst) {
    const nl_st_tensor *s = nl_st_find(f, name);
    if (!s) return NL_FAIL(NL_ERR_FORMAT, "'%s': tensor '%s' is missing (a file of another placement or shape?)", path, name);
    int ok = s->dtype == NL_ST_F32 && s->ndim == (cols ? 2 : 1) && s->shape[0] == rows && (!cols || s->shape[1] == cols);
    if (!ok) return NL_FAIL(NL_ERR_FORMAT, "'%s': tensor '%s' has the wrong dtype or shape (expected F32 [%d%s%d])", path, name, rows, cols ? ", " : "", cols ? cols : 0);
    memcpy(dst, s->data, s->nbytes);
    return NL_OK;
}

static nl_status load_ckpt(nl_model *m, const nl_st_file *f, const char *path, int *step, nl_rng *rng) {
    const char *fmt = nl_st_get_meta(f, "format"), *ver = nl_st_get_meta(f, "version");
    if (!fmt || strcmp(fmt, "normlab-checkpoint"))
        return NL_FAIL(NL_ERR_FORMAT, "'%s' is not a normlab checkpoint (format '%s')", path, fmt ? fmt : "none");
    if (!ver || atoi(ver) != NL_CKPT_VERSION)
        return NL_FAIL(NL_ERR_FORMAT, "'%s': checkpoint version '%s' is not supported (expected %d)", path, ver ? ver : "none", NL_CKPT_VERSION);
    const char *cs = nl_st_get_meta(f, "crc32"), *sp = nl_st_get_meta(f, "step"), *rs = nl_st_get_meta(f, "data_rng");
    if (!cs || !sp || !rs || strlen(rs) != 64) return NL_FAIL(NL_ERR_FORMAT, "'%s': checkpoint metadata incomplete", path);
    char hex[17] = { 0 };
    for (int i = 0; i < 4; i++) {
        memcpy(hex, rs + 16 * i, 16);
        rng->s[i] = strtoull(hex, NULL, 16);
    }
    *step = atoi(sp);
    if (strtoul(cs, NULL, 16) != nl_crc32(0, f->data, f->data_len))
        return NL_FAIL(NL_ERR_FORMAT, "'%s': checksum mismatch (the file is corrupt)", path);
    nl_config c;
    nl_config_defaults(&c);
    c.vocab = 256;
    NL_TRY(config_from_meta(f, path, &c, 0));
    nl_status st = nl_model_init(m, &c);
    if (st != NL_OK) return NL_FAIL(NL_ERR_FORMAT, "'%s': bad config in checkpoint: %s", path, nl_last_error());
    for (int i = 0; i < m->ntensors; i++) {
        const nl_tensor *t = &m->tensors[i];
        char name[80];
        NL_TRY(copy_tensor(f, path, t->name, t->rows, t->cols, m->params + t->offset));
        snprintf(name, sizeof name, "opt.m.%s", t->name);
        NL_TRY(copy_tensor(f, path, name, t->rows, t->cols, m->m + t->offset));
        snprintf(name, sizeof name, "opt.v.%s", t->name);
        NL_TRY(copy_tensor(f, path, name, t->rows, t->cols, m->v + t->offset));
    }
    return NL_OK;
}

nl_status nl_ckpt_load(nl_model *m, const char *path, int *step, nl_rng *rng) {
    nl_st_file f;
    memset(m, 0, sizeof *m);
    NL_TRY(nl_st_read(path, &f));
    nl_status st = load_ckpt(m, &f, path, step, rng);
    nl_st_free(&f);
    if (st != NL_OK) nl_model_free(m);
    return st;
}

nl_status nl_ckpt_find(const char *p, char *out, size_t cap) {
    struct stat sb;
    if (stat(p, &sb) != 0) return NL_FAIL(NL_ERR_IO, "cannot open '%s': %s", p, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) {
        snprintf(out, cap, "%s", p);
        return NL_OK;
    }
    DIR *d = opendir(p);
    if (!d) return NL_FAIL(NL_ERR_IO, "cannot read directory '%s': %s", p, strerror(errno));
    char best[256] = "";
    struct dirent *de;
    while ((de = readdir(d))) { /* ckpt-%08d.safetensors: the name order is the step order */
        size_t n = strlen(de->d_name);
        if (n == 25 && !strncmp(de->d_name, "ckpt-", 5) && !strcmp(de->d_name + 13, ".safetensors") && strcmp(de->d_name, best) > 0)
            snprintf(best, sizeof best, "%s", de->d_name);
    }
    closedir(d);
    if (!best[0]) return NL_FAIL(NL_ERR_IO, "'%s' holds no checkpoint (ckpt-*.safetensors)", p);
    if ((size_t)snprintf(out, cap, "%s/%s", p, best) >= cap) return NL_FAIL(NL_ERR_IO, "'%s': path too long", p);
    return NL_OK;
}

nl_status nl_export(const nl_model *m, const char *path) {
    nl_st_entry *e = nl_xmalloc((size_t)m->ntensors * sizeof *e);
    for (int i = 0; i < m->ntensors; i++) entry(&e[i], m->tensors[i].name, &m->tensors[i], m->params, m->tensors[i].export_rows);
    const char *xk[] = { "format" }, *xv[] = { "normlab" };
    nl_status st = write_file(m, path, e, m->ntensors, xk, xv, 1);
    free(e);
    return st;
}

nl_status nl_read_model_config(const char *path, nl_config *c) {
    if (nl_llmc_is_model(path)) return nl_llmc_read_config(path, c); /* llm.c's GPT-2 .bin */
    nl_st_file f;
    NL_TRY(nl_st_read(path, &f));
    nl_status st = NL_OK;
    const char *fmt = nl_st_get_meta(&f, "format");
    if (!fmt || (strcmp(fmt, "normlab") && strcmp(fmt, "normlab-checkpoint")))
        st = NL_FAIL(NL_ERR_FORMAT, "'%s': not a normlab model (metadata format '%s')", path, fmt ? fmt : "none");
    if (st == NL_OK) st = config_from_meta(&f, path, c, 1);
    nl_st_free(&f);
    return st;
}

nl_status nl_import(nl_model *m, const char *path) {
    if (nl_llmc_is_model(path)) return nl_llmc_import(m, path);
    nl_st_file f;
    NL_TRY(nl_st_read(path, &f));
    nl_status st = NL_OK;
    for (int i = 0; i < m->ntensors && st == NL_OK; i++) {
        const nl_tensor *t = &m->tensors[i];
        memset(m->params + t->offset, 0, t->numel * sizeof(float));
        st = copy_tensor(&f, path, t->name, t->export_rows, t->cols, m->params + t->offset);
    }
    if (st == NL_OK && f.nt != m->ntensors)
        st = NL_FAIL(NL_ERR_FORMAT, "'%s' holds %d tensors, the model has %d (another placement?)", path, f.nt, m->ntensors);
    nl_st_free(&f);
    return st;
}
