/* ckpt.c -- see ckpt.h. */
#include "ckpt.h"

#include "config.h"
#include "hf.h"
#include "llmc.h"
#include "loss_scaler.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { MAX_KV = NL_CONFIG_MAX_KV };

/* metadata = extra pairs + the resolved config */
static nl_status write_file(const nl_model *m, const char *path, const nl_st_entry *e, int n, const char *const *xk,
                            const char *const *xv, int nx) {
    nl_kv *kv = nl_xmalloc(MAX_KV * sizeof *kv);
    int nkv = nl_config_to_kv(&m->cfg, kv, MAX_KV);
    NL_ASSERT(nkv <= MAX_KV);
    const char *keys[MAX_KV + 16], *vals[MAX_KV + 16];
    int k = 0;
    for (int i = 0; i < nx; i++, k++) keys[k] = xk[i], vals[k] = xv[i];
    for (int i = 0; i < nkv; i++, k++) keys[k] = kv[i].key, vals[k] = kv[i].val;
    nl_status st = nl_st_write(path, e, n, keys, vals, k);
    free(kv);
    return st;
}

/* The n floats at p as host memory: p itself on the CPU backend, else a copy in *tmp (free it). */
static const float *host_view(const nl_model *m, const float *p, size_t n, float **tmp) {
    *tmp = NULL;
    if (m->be == nl_backend_cpu()) return p;
    *tmp = nl_xmalloc((n ? n : 1) * sizeof(float));
    m->be->to_host(*tmp, p, n * sizeof(float));
    return *tmp;
}

static void entry(nl_st_entry *e, const char *name, const nl_tensor *t, const float *base, int rows) {
    e->name = name;
    e->dtype = NL_ST_F32;
    e->ndim = t->cols ? 2 : 1;
    e->shape[0] = rows;
    e->shape[1] = t->cols;
    e->data = base + t->offset;
}

nl_status nl_ckpt_save_info(const nl_model *m, const char *path, const nl_ckpt_info *info) {
    const int nt = m->ntensors;
    const float *bufs[3] = { m->params, m->m, m->v };
    for (int b = 0; b < 3; b++) {
        size_t i = m->be->first_nonfinite(bufs[b], m->nparams);
        if (i == m->nparams) continue;
        const char *name = "?";
        float bad;
        m->be->to_host(&bad, bufs[b] + i, sizeof bad);
        for (int k = 0; k < nt; k++)
            if (i >= m->tensors[k].offset && i < m->tensors[k].offset + m->tensors[k].numel) name = m->tensors[k].name;
        return NL_FAIL(NL_ERR_FORMAT, "refusing to write checkpoint '%s': %s%s holds %g (NaN/Inf)", path,
                       b == 0   ? ""
                       : b == 1 ? "opt.m."
                                : "opt.v.",
                       name, (double)bad);
    }
    NL_ASSERT(info->nskip >= 0 && info->nskip <= NL_MAX_ROLLBACKS);
    nl_st_entry *e = nl_xmalloc(3 * (size_t)nt * sizeof *e);
    char(*names)[80] = nl_xmalloc(2 * (size_t)nt * sizeof *names);
    uint32_t crc = 0;
    float *tmp[3];
    const float *hb[3];
    for (int b = 0; b < 3; b++) hb[b] = host_view(m, bufs[b], m->nparams, &tmp[b]);
    for (int i = 0; i < nt; i++) {
        const nl_tensor *t = &m->tensors[i];
        snprintf(names[2 * i], 80, "opt.m.%s", t->name);
        snprintf(names[2 * i + 1], 80, "opt.v.%s", t->name);
        entry(&e[i], t->name, t, hb[0], t->rows);
        entry(&e[nt + 2 * i], names[2 * i], t, hb[1], t->rows);
        entry(&e[nt + 2 * i + 1], names[2 * i + 1], t, hb[2], t->rows);
    }
    for (int i = 0; i < 3 * nt; i++) crc = nl_crc32(crc, e[i].data, nl_st_entry_bytes(&e[i]));
    char ver[16], stp[32], rs[96], cs[16], dt[32], rb[16], sk[NL_MAX_ROLLBACKS * 12 + 1] = "", ls[40], lc[16], ss[32];
    const nl_rng *rng = &info->rng;
    snprintf(ver, sizeof ver, "%d", NL_CKPT_VERSION);
    snprintf(stp, sizeof stp, "%d", info->step);
    snprintf(rs, sizeof rs, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64, rng->s[0], rng->s[1], rng->s[2],
             rng->s[3]);
    snprintf(cs, sizeof cs, "%08" PRIx32, crc);
    snprintf(dt, sizeof dt, "%lld", info->data_tokens);
    snprintf(rb, sizeof rb, "%d", info->rollbacks);
    for (int i = 0, n = 0; i < info->nskip; i++)
        n += snprintf(sk + n, sizeof sk - (size_t)n, "%s%d", i ? "," : "", info->skip[i]);
    snprintf(ls, sizeof ls, "%.17g", info->loss_scale);
    snprintf(lc, sizeof lc, "%d", info->loss_scale_clean);
    snprintf(ss, sizeof ss, "%lld", info->skipped_steps);
    const char *xk[] = { "format",    "version",    "step",         "data_rng",     "crc32",        "data_tokens",
                         "rollbacks", "skip_steps", "scaler_scale", "scaler_clean", "skipped_steps" };
    const char *xv[] = { "normlab-checkpoint", ver, stp, rs, cs, dt, rb, sk, ls, lc, ss };
    nl_status st = write_file(m, path, e, 3 * nt, xk, xv, info->loss_scale > 0 ? 11 : 8);
    for (int b = 0; b < 3; b++) free(tmp[b]);
    free(names);
    free(e);
    return st;
}

nl_status nl_ckpt_save(const nl_model *m, const char *path, int step, const nl_rng *rng) {
    nl_ckpt_info info;
    memset(&info, 0, sizeof info);
    info.step = step;
    info.rng = *rng;
    info.data_tokens = -1;
    return nl_ckpt_save_info(m, path, &info);
}

/* a whole decimal integer in [lo, hi] */
static int parse_int(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

/* exactly n hex digits */
static int parse_hex(const char *s, int n, uint64_t *out) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        char h = s[i];
        int d = h >= '0' && h <= '9'   ? h - '0'
                : h >= 'a' && h <= 'f' ? h - 'a' + 10
                : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                       : -1;
        if (d < 0) return 0;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 1;
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
    if (!s)
        return NL_FAIL(NL_ERR_FORMAT, "'%s': tensor '%s' is missing (a file of another placement or shape?)", path, name);
    int ok = s->dtype == NL_ST_F32 && s->ndim == (cols ? 2 : 1) && s->shape[0] == rows && (!cols || s->shape[1] == cols);
    if (!ok)
        return NL_FAIL(NL_ERR_FORMAT, "'%s': tensor '%s' has the wrong dtype or shape (expected F32 [%d%s%d])", path,
                       name, rows, cols ? ", " : "", cols ? cols : 0);
    memcpy(dst, s->data, s->nbytes);
    return NL_OK;
}

static nl_status check_format(const nl_st_file *f, const char *path) {
    const char *fmt = nl_st_get_meta(f, "format"), *ver = nl_st_get_meta(f, "version");
    if (!fmt || strcmp(fmt, "normlab-checkpoint"))
        return NL_FAIL(NL_ERR_FORMAT, "'%s' is not a normlab checkpoint (format '%s')", path, fmt ? fmt : "none");
    long long v;
    if (!ver || !parse_int(ver, 0, 1000000, &v) || v != NL_CKPT_VERSION)
        return NL_FAIL(NL_ERR_FORMAT, "'%s': checkpoint version '%s' is not supported (expected %d)", path,
                       ver ? ver : "none", NL_CKPT_VERSION);
    return NL_OK;
}

static nl_status read_info(const nl_st_file *f, const char *path, nl_ckpt_info *info) {
    memset(info, 0, sizeof *info);
    const char *sp = nl_st_get_meta(f, "step"), *rs = nl_st_get_meta(f, "data_rng"),
               *dt = nl_st_get_meta(f, "data_tokens"), *rb = nl_st_get_meta(f, "rollbacks"),
               *sk = nl_st_get_meta(f, "skip_steps"), *ls = nl_st_get_meta(f, "scaler_scale"),
               *lc = nl_st_get_meta(f, "scaler_clean"), *ss = nl_st_get_meta(f, "skipped_steps");
    long long v;
    if (!sp || !parse_int(sp, 0, 2147483647LL, &v))
        return NL_FAIL(NL_ERR_FORMAT, "'%s': checkpoint step '%s' is not a step count", path, sp ? sp : "none");
    info->step = (int)v;
    if (!rs || strlen(rs) != 64)
        return NL_FAIL(NL_ERR_FORMAT, "'%s': checkpoint data_rng is missing or not 64 hex digits", path);
    for (int i = 0; i < 4; i++)
        if (!parse_hex(rs + 16 * i, 16, &info->rng.s[i]))
            return NL_FAIL(NL_ERR_FORMAT, "'%s': checkpoint data_rng is not hexadecimal", path);
    if (!(info->rng.s[0] | info->rng.s[1] | info->rng.s[2] | info->rng.s[3]))
        return NL_FAIL(NL_ERR_FORMAT, "'%s': checkpoint data_rng is all zero (not a valid generator state)", path);
    info->data_tokens = -1;
    if (dt && !parse_int(dt, -1, 1LL << 62, &info->data_tokens))
        return NL_FAIL(NL_ERR_FORMAT, "'%s': bad data_tokens '%s'", path, dt);
    if (rb) {
        if (!parse_int(rb, 0, NL_MAX_ROLLBACKS, &v))
            return NL_FAIL(NL_ERR_FORMAT, "'%s': bad rollbacks '%s'", path, rb);
        info->rollbacks = (int)v;
    }
    for (const char *p = sk; p && *p;) { /* "12,40,41" */
        char num[16];
        size_t n = strcspn(p, ",");
        if (n == 0 || n >= sizeof num || info->nskip == NL_MAX_ROLLBACKS)
            return NL_FAIL(NL_ERR_FORMAT, "'%s': bad skip_steps '%s'", path, sk);
        memcpy(num, p, n);
        num[n] = 0;
        if (!parse_int(num, 1, 2147483647LL, &v)) return NL_FAIL(NL_ERR_FORMAT, "'%s': bad skip_steps '%s'", path, sk);
        info->skip[info->nskip++] = (int)v;
        p += n;
        if (*p == ',' && !*++p) return NL_FAIL(NL_ERR_FORMAT, "'%s': bad skip_steps '%s'", path, sk);
    }
    if (ls) {
        char *end;
        info->loss_scale = strtod(ls, &end);
        if (end == ls || *end || !(info->loss_scale >= NL_LOSS_SCALE_MIN && info->loss_scale <= NL_LOSS_SCALE_MAX))
            return NL_FAIL(NL_ERR_FORMAT, "'%s': bad scaler_scale '%s'", path, ls);
        if (!lc || !parse_int(lc, 0, 2147483647LL, &v))
            return NL_FAIL(NL_ERR_FORMAT, "'%s': bad scaler_clean '%s'", path, lc ? lc : "none");
        info->loss_scale_clean = (int)v;
        if (!ss || !parse_int(ss, 0, 1LL << 62, &info->skipped_steps))
            return NL_FAIL(NL_ERR_FORMAT, "'%s': bad skipped_steps '%s'", path, ss ? ss : "none");
    }
    return NL_OK;
}

static nl_status load_ckpt(nl_model *m, const nl_st_file *f, const char *path, nl_ckpt_info *info) {
    NL_TRY(check_format(f, path));
    const char *cs = nl_st_get_meta(f, "crc32");
    uint64_t crc;
    if (!cs || strlen(cs) != 8 || !parse_hex(cs, 8, &crc))
        return NL_FAIL(NL_ERR_FORMAT, "'%s': checkpoint crc32 is missing or not 8 hex digits", path);
    NL_TRY(read_info(f, path, info));
    int crc_ok = crc == nl_crc32(0, f->data, f->data_len);
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION /* the fuzzer explores what lies behind the checksum */
    crc_ok = 1;
#endif
    if (!crc_ok) return NL_FAIL(NL_ERR_FORMAT, "'%s': checksum mismatch (the file is corrupt)", path);
    nl_config c;
    nl_config_defaults(&c);
    c.vocab = 256;
    NL_TRY(config_from_meta(f, path, &c, 0));
    c.device = NL_DEVICE_CPU; /* checkpoints load into host memory (copy_tensor) */
    if (nl_config_resolve(&c) != NL_OK)
        return NL_FAIL(NL_ERR_FORMAT, "'%s': bad config in checkpoint: %s", path, nl_last_error());
    /* the tensors must be there before the model is allocated: a lower bound on the parameters
     * (embeddings, head and block matrices) times three (params, m, v) fits in the data section */
    const double need = 3.0 * 4.0 * nl_config_matrix_params(&c);
    if (need > (double)f->data_len)
        return NL_FAIL(NL_ERR_FORMAT,
                       "'%s': the config in the metadata (L=%d d=%d V=%d T=%d) needs more than the %zu data bytes the file holds",
                       path, c.layers, c.dim, c.vocab, c.seq_len, f->data_len);
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

nl_status nl_ckpt_load_info(nl_model *m, const char *path, nl_ckpt_info *info) {
    nl_st_file f;
    memset(m, 0, sizeof *m);
    NL_TRY(nl_st_read(path, &f));
    nl_status st = load_ckpt(m, &f, path, info);
    nl_st_free(&f);
    if (st != NL_OK) nl_model_free(m);
    return st;
}

nl_status nl_ckpt_load(nl_model *m, const char *path, int *step, nl_rng *rng) {
    nl_ckpt_info info;
    NL_TRY(nl_ckpt_load_info(m, path, &info));
    *step = info.step;
    *rng = info.rng;
    return NL_OK;
}

nl_status nl_ckpt_read_config(const char *path, nl_config *c) {
    nl_st_file f;
    NL_TRY(nl_st_read(path, &f));
    nl_status st = check_format(&f, path);
    if (st == NL_OK) {
        nl_config_defaults(c);
        c->vocab = 256;
        st = config_from_meta(&f, path, c, 0);
    }
    nl_st_free(&f);
    return st;
}

/* step of "ckpt-<digits>.safetensors", or -1 */
static long long ckpt_name_step(const char *name) {
    size_t n = strlen(name), d = n > 17 ? n - 17 : 0;
    if (n < 18 || n > 17 + 10 || strncmp(name, "ckpt-", 5) || strcmp(name + 5 + d, ".safetensors")) return -1;
    long long v = 0;
    for (size_t i = 5; i < 5 + d; i++) {
        if (name[i] < '0' || name[i] > '9') return -1;
        v = v * 10 + (name[i] - '0');
    }
    return v <= 2147483647LL ? v : -1;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

nl_status nl_ckpt_list(const char *dir, int **steps, int *n) {
    *steps = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return NL_FAIL(NL_ERR_IO, "cannot read directory '%s': %s", dir, strerror(errno));
    int cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        long long s = ckpt_name_step(de->d_name);
        if (s < 0) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            *steps = nl_xresize(*steps, (size_t)*n, (size_t)cap, sizeof **steps);
        }
        (*steps)[(*n)++] = (int)s;
    }
    closedir(d);
    if (*n) qsort(*steps, (size_t)*n, sizeof **steps, cmp_int);
    return NL_OK;
}

void nl_ckpt_path(char *out, size_t cap, const char *dir, int step) {
    snprintf(out, cap, "%s/ckpt-%08d.safetensors", dir, step);
}

nl_status nl_ckpt_find(const char *p, char *out, size_t cap) {
    struct stat sb;
    if (stat(p, &sb) != 0) return NL_FAIL(NL_ERR_IO, "cannot open '%s': %s", p, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) {
        if ((size_t)snprintf(out, cap, "%s", p) >= cap) return NL_FAIL(NL_ERR_IO, "'%s': path too long", p);
        return NL_OK;
    }
    int *steps, n;
    NL_TRY(nl_ckpt_list(p, &steps, &n));
    int best = n ? steps[n - 1] : -1;
    free(steps);
    if (best < 0) return NL_FAIL(NL_ERR_IO, "'%s' holds no checkpoint (ckpt-*.safetensors)", p);
    if (strlen(p) + 32 >= cap) return NL_FAIL(NL_ERR_IO, "'%s': path too long", p);
    nl_ckpt_path(out, cap, p, best);
    return NL_OK;
}

nl_status nl_export(const nl_model *m, const char *path) {
    nl_st_entry *e = nl_xmalloc((size_t)m->ntensors * sizeof *e);
    float *tmp;
    const float *hp = host_view(m, m->params, m->nparams, &tmp);
    for (int i = 0; i < m->ntensors; i++)
        entry(&e[i], m->tensors[i].name, &m->tensors[i], hp, m->tensors[i].export_rows);
    const char *xk[] = { "format" }, *xv[] = { "normlab" };
    nl_status st = write_file(m, path, e, m->ntensors, xk, xv, 1);
    free(tmp);
    free(e);
    return st;
}

nl_status nl_read_model_config(const char *path, nl_config *c) {
    if (nl_llmc_is_model(path)) return nl_llmc_read_config(path, c); /* llm.c's GPT-2 .bin */
    if (nl_hf_is_dir(path)) return nl_hf_read_config(path, c);       /* a transformers directory */
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
    if (nl_hf_is_dir(path)) return nl_hf_import(m, path);
    nl_st_file f;
    NL_TRY(nl_st_read(path, &f));
    nl_status st = NL_OK;
    for (int i = 0; i < m->ntensors && st == NL_OK; i++) {
        const nl_tensor *t = &m->tensors[i];
        memset(m->params + t->offset, 0, t->numel * sizeof(float));
        st = copy_tensor(&f, path, t->name, t->export_rows, t->cols, m->params + t->offset);
    }
    if (st == NL_OK && f.nt != m->ntensors)
        st = NL_FAIL(NL_ERR_FORMAT, "'%s' holds %d tensors, the model has %d (another placement?)", path, f.nt,
                     m->ntensors);
    nl_st_free(&f);
    return st;
}
