/* tboard.c -- see tboard.h. The protocol buffer fields (tensorboard/compat/proto event.proto and
 * summary.proto): Event {1 wall_time double, 2 step int64, 3 file_version string, 5 summary,
 * 7 session_log}; SessionLog {1 status enum, START = 1}; Summary {1 repeated Value}; Value {1 tag,
 * 2 simple_value float, 5 histo}; HistogramProto {1 min, 2 max, 3 num, 4 sum, 5 sum_squares (double),
 * 6 bucket_limit, 7 bucket (packed repeated double)}. */
#include "tboard.h"

#include "common.h"
#include "safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { WT_VARINT = 0, WT_F64 = 1, WT_LEN = 2, WT_F32 = 5 };
enum { HIST_BUCKETS = 16 };
static const char event_prefix[] = "events.out.tfevents.";
static const char cut_tmp[] = ".tb-cut.tmp."; /* not a "tfevents" name: TensorBoard never reads it */
static const char diag_prefix[] = "diag_";

/* ---------------------------------------------------------------- encoding */

typedef struct bytes {
    unsigned char *p;
    size_t n, cap;
} bytes;

static void put(bytes *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        b->p = nl_xresize(b->p, b->n, cap, 1);
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_varint(bytes *b, uint64_t v) {
    unsigned char t[10];
    size_t k = 0;
    do {
        t[k++] = (unsigned char)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        v >>= 7;
    } while (v);
    put(b, t, k);
}

static void put_key(bytes *b, int field, int wt) { put_varint(b, (uint64_t)field << 3 | (uint64_t)wt); }

static void put_le(bytes *b, uint64_t v, int n) {
    unsigned char t[8];
    for (int i = 0; i < n; i++) t[i] = (unsigned char)(v >> (8 * i));
    put(b, t, (size_t)n);
}

static void put_f64(bytes *b, int field, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    put_key(b, field, WT_F64);
    put_le(b, u, 8);
}

static void put_f32(bytes *b, int field, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    put_key(b, field, WT_F32);
    put_le(b, u, 4);
}

static void put_len(bytes *b, int field, const void *p, size_t n) {
    put_key(b, field, WT_LEN);
    put_varint(b, n);
    put(b, p, n);
}

uint32_t nl_tb_masked_crc(const void *p, size_t n) {
    const uint32_t c = nl_crc32c(0, p, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

static double wall_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Writes one TFRecord holding the Event {wall_time, step, <field>: payload}. */
static nl_status write_event(nl_tb *w, long long step, int field, const void *payload, size_t n) {
    bytes ev = { 0 }, rec = { 0 };
    put_f64(&ev, 1, wall_time());
    put_key(&ev, 2, WT_VARINT);
    put_varint(&ev, (uint64_t)step);
    put_len(&ev, field, payload, n);
    put_le(&rec, ev.n, 8);
    put_le(&rec, nl_tb_masked_crc(rec.p, 8), 4);
    put(&rec, ev.p, ev.n);
    put_le(&rec, nl_tb_masked_crc(ev.p, ev.n), 4);
    const int bad = fwrite(rec.p, 1, rec.n, w->f) != rec.n || fflush(w->f) != 0;
    free(ev.p);
    free(rec.p);
    if (bad && !w->failed) {
        w->failed = 1;
        return NL_FAIL(NL_ERR_IO, "writing '%s' failed: %s", w->path, strerror(errno));
    }
    return w->failed ? NL_ERR_IO : NL_OK;
}

/* ---------------------------------------------------------------- reading back (the cut) */

static int get_varint(const unsigned char *p, size_t n, size_t *i, uint64_t *v) {
    *v = 0;
    for (int s = 0; s < 64 && *i < n; s += 7) {
        const unsigned char c = p[(*i)++];
        *v |= (uint64_t)(c & 0x7F) << s;
        if (!(c & 0x80)) return 0;
    }
    return -1;
}

/* Step, and whether the event holds a summary whose first value is a diagnostic, of one Event;
 * -1 if it is not a well-formed one. */
static int parse_event(const unsigned char *p, size_t n, long long *step, int *summary, int *diag) {
    *step = 0;
    *summary = *diag = 0;
    size_t i = 0;
    while (i < n) {
        uint64_t key, v;
        if (get_varint(p, n, &i, &key)) return -1;
        const int field = (int)(key >> 3), wt = (int)(key & 7);
        if (wt == WT_VARINT) {
            if (get_varint(p, n, &i, &v)) return -1;
            if (field == 2) *step = (long long)v;
        } else if (wt == WT_F64 || wt == WT_F32) {
            const size_t k = wt == WT_F64 ? 8 : 4;
            if (n - i < k) return -1;
            i += k;
        } else if (wt == WT_LEN) {
            if (get_varint(p, n, &i, &v) || v > n - i) return -1;
            if (field == 5) { /* Summary: look at the tag of its first Value */
                const unsigned char *s = p + i;
                size_t j = 0, sn = (size_t)v;
                uint64_t k2, l2, k3, l3;
                *summary = 1;
                if (!get_varint(s, sn, &j, &k2) && k2 == (1 << 3 | WT_LEN) && !get_varint(s, sn, &j, &l2) &&
                    l2 <= sn - j) {
                    const unsigned char *val = s + j;
                    size_t m = 0;
                    if (!get_varint(val, (size_t)l2, &m, &k3) && k3 == (1 << 3 | WT_LEN) &&
                        !get_varint(val, (size_t)l2, &m, &l3) && l3 <= l2 - m && l3 >= sizeof diag_prefix - 1 &&
                        !memcmp(val + m, diag_prefix, sizeof diag_prefix - 1))
                        *diag = 1;
                }
            }
            i += (size_t)v;
        } else {
            return -1;
        }
    }
    return 0;
}

static uint64_t get_le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static nl_status read_all(const char *path, unsigned char **out, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NL_FAIL(NL_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
    bytes b = { 0 };
    unsigned char chunk[1 << 15];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) put(&b, chunk, got);
    const int err = ferror(f);
    fclose(f);
    if (err) {
        free(b.p);
        return NL_FAIL(NL_ERR_IO, "cannot read '%s'", path);
    }
    *out = b.p;
    *n = b.n;
    return NL_OK;
}

/* the masked CRC-32C of a record's length or data matches the stored one */
static int crc_ok(const unsigned char *p, size_t n, const unsigned char *stored) {
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION /* the fuzzer explores what lies behind the checksums */
    (void)p, (void)n, (void)stored;
    return 1;
#else
    return (uint32_t)get_le(stored, 4) == nl_tb_masked_crc(p, n);
#endif
}

size_t nl_tb_keep(unsigned char *p, size_t n, long long step, int *summaries) {
    size_t i = 0, out = 0;
    *summaries = 0;
    while (n - i >= 16) {
        const uint64_t len = get_le(p + i, 8);
        if (!crc_ok(p + i, 8, p + i + 8) || len > n - i - 16) break;
        const unsigned char *data = p + i + 12;
        long long s;
        int summary, diag;
        if (!crc_ok(data, (size_t)len, data + len) || parse_event(data, (size_t)len, &s, &summary, &diag)) break;
        if (s < step || (s == step && !(summary && diag))) {
            memmove(p + out, p + i, (size_t)len + 16);
            out += (size_t)len + 16;
            *summaries += summary;
        }
        i += (size_t)len + 16;
    }
    return out;
}

/* Cuts one event file back (nl_tb_keep): rewritten when that changes it, removed when no summary
 * is left. */
static nl_status cut_file(const char *dir, const char *path, long long step) {
    unsigned char *p = NULL;
    size_t n = 0;
    NL_TRY(read_all(path, &p, &n));
    int summaries;
    const size_t kept = nl_tb_keep(p, n, step, &summaries);
    nl_status st = NL_OK;
    if (!summaries) {
        if (unlink(path) != 0) st = NL_FAIL(NL_ERR_IO, "cannot remove '%s': %s", path, strerror(errno));
    } else if (kept < n) {
        char tmp[NL_PATH_MAX + 64];
        snprintf(tmp, sizeof tmp, "%s/%s%ld", dir, cut_tmp, (long)getpid());
        FILE *f = fopen(tmp, "wb");
        if (!f) st = NL_FAIL(NL_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
        else {
            fwrite(p, 1, kept, f);
            st = nl_write_atomic_commit(path, tmp, f);
        }
    }
    free(p);
    return st;
}

/* Cuts every event file of dir (step < 0: refuses if there is one), removes stale cut files, and
 * returns the largest timestamp in an event file's name (0: none). */
static nl_status cut_dir(const char *dir, long long step, long long *max_stamp) {
    *max_stamp = 0;
    DIR *d = opendir(dir);
    if (!d) return NL_FAIL(NL_ERR_IO, "cannot read directory '%s': %s", dir, strerror(errno));
    nl_status st = NL_OK;
    struct dirent *de;
    char path[NL_PATH_MAX + 300];
    while (st == NL_OK && (de = readdir(d))) {
        const char *name = de->d_name;
        if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) continue;
        if (!strncmp(name, cut_tmp, sizeof cut_tmp - 1)) {
            unlink(path);
            continue;
        }
        if (strncmp(name, event_prefix, sizeof event_prefix - 1)) continue;
        const long long stamp = strtoll(name + sizeof event_prefix - 1, NULL, 10);
        if (stamp > *max_stamp) *max_stamp = stamp;
        if (step < 0)
            st = NL_FAIL(NL_ERR_ARG,
                         "--tensorboard '%s' already holds event files (%s): a new run needs a directory of its own",
                         dir, name);
        else st = cut_file(dir, path, step);
    }
    closedir(d);
    return st;
}

/* ---------------------------------------------------------------- the writer */

nl_status nl_tb_open(nl_tb *w, const char *dir, int step) {
    memset(w, 0, sizeof *w);
    NL_TRY(nl_mkdir_p(dir));
    long long stamp;
    NL_TRY(cut_dir(dir, step, &stamp));
    const long long now = (long long)time(NULL);
    stamp = now > stamp ? now : stamp + 1; /* the new file sorts last */
    char host[41] = "localhost";
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = 0;
    for (char *h = host; *h; h++)
        if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') || (*h >= '0' && *h <= '9') || *h == '-' || *h == '.'))
            *h = '_';
    if (snprintf(w->path, sizeof w->path, "%s/%s%010lld.%s", dir, event_prefix, stamp, host) >= (int)sizeof w->path)
        return NL_FAIL(NL_ERR_IO, "--tensorboard '%s': path too long", dir);
    w->f = fopen(w->path, "wb");
    if (!w->f) return NL_FAIL(NL_ERR_IO, "cannot write '%s': %s", w->path, strerror(errno));
    static const char version[] = "brain.Event:2";
    const unsigned char start[] = { 1 << 3 | WT_VARINT, 1 }; /* SessionLog {status: START} */
    NL_TRY(write_event(w, 0, 3, version, sizeof version - 1));
    return write_event(w, step < 0 ? 1 : (long long)step + 1, 7, start, sizeof start);
}

void nl_tb_close(nl_tb *w) {
    if (w->f) fclose(w->f);
    free(w->buf);
    memset(w, 0, sizeof *w);
}

void nl_tb_begin(nl_tb *w, long long step) {
    w->len = 0;
    w->step = step;
}

static bytes take(nl_tb *w) { return (bytes){ w->buf, w->len, w->cap }; }

static void give(nl_tb *w, bytes b) {
    w->buf = b.p;
    w->len = b.n;
    w->cap = b.cap;
}

void nl_tb_scalar(nl_tb *w, const char *tag, double v) {
    bytes val = { 0 }, s = take(w);
    put_len(&val, 1, tag, strlen(tag));
    put_f32(&val, 2, (float)v);
    put_len(&s, 1, val.p, val.n);
    give(w, s);
    free(val.p);
}

void nl_tb_histogram(nl_tb *w, const char *tag, const double *v, int n) {
    double lo = INFINITY, hi = -INFINITY, sum = 0.0, sq = 0.0;
    int nf = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(v[i])) continue;
        nf++;
        lo = v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
        sum += v[i];
        sq += v[i] * v[i];
    }
    if (!nf) return;
    const int nb = hi > lo ? (nf < HIST_BUCKETS ? nf : HIST_BUCKETS) : 1;
    double limit[HIST_BUCKETS], count[HIST_BUCKETS] = { 0 };
    for (int b = 0; b < nb; b++) limit[b] = b == nb - 1 ? hi : lo + (hi - lo) * (b + 1) / nb;
    for (int i = 0; i < n; i++) {
        if (!isfinite(v[i])) continue;
        int b = nb == 1 ? 0 : (int)((v[i] - lo) / (hi - lo) * nb);
        b = b < 0 ? 0 : b >= nb ? nb - 1 : b;
        while (b > 0 && v[i] < limit[b - 1]) b--; /* the computed edges decide, not the division */
        while (b < nb - 1 && v[i] >= limit[b]) b++;
        count[b] += 1.0;
    }
    bytes h = { 0 }, packed = { 0 }, val = { 0 }, s = take(w);
    put_f64(&h, 1, lo);
    put_f64(&h, 2, hi);
    put_f64(&h, 3, nf);
    put_f64(&h, 4, sum);
    put_f64(&h, 5, sq);
    for (int b = 0; b < nb; b++) {
        uint64_t u;
        memcpy(&u, &limit[b], 8);
        put_le(&packed, u, 8);
    }
    put_len(&h, 6, packed.p, packed.n);
    packed.n = 0;
    for (int b = 0; b < nb; b++) {
        uint64_t u;
        memcpy(&u, &count[b], 8);
        put_le(&packed, u, 8);
    }
    put_len(&h, 7, packed.p, packed.n);
    put_len(&val, 1, tag, strlen(tag));
    put_len(&val, 5, h.p, h.n);
    put_len(&s, 1, val.p, val.n);
    give(w, s);
    free(h.p);
    free(packed.p);
    free(val.p);
}

nl_status nl_tb_end(nl_tb *w) {
    if (!w->f) return NL_OK;
    return write_event(w, w->step, 5, w->buf, w->len);
}

nl_status nl_tb_step(nl_tb *w, int step, double loss, double val, double lr, double grad_norm, double tok_per_s) {
    nl_tb_begin(w, step);
    nl_tb_scalar(w, "train/loss", loss);
    if (!isnan(val)) nl_tb_scalar(w, "train/val_loss", val);
    nl_tb_scalar(w, "train/lr", lr);
    nl_tb_scalar(w, "train/grad_norm", grad_norm);
    nl_tb_scalar(w, "train/tok_per_s", tok_per_s);
    return nl_tb_end(w);
}

/* ---------------------------------------------------------------- diagnostics */

/* scalars diag_<key>/<i> (zero-padded to sort) and the histogram diag_<key> */
static void series(nl_tb *w, const char *key, const double *v, int n) {
    char tag[96];
    int width = 2;
    for (int m = n - 1; m >= 100; m /= 10) width++;
    for (int i = 0; i < n; i++) {
        NL_ASSERT(snprintf(tag, sizeof tag, "%s%s/%0*d", diag_prefix, key, width, i) < (int)sizeof tag);
        nl_tb_scalar(w, tag, v[i]);
    }
    snprintf(tag, sizeof tag, "%s%s", diag_prefix, key);
    nl_tb_histogram(w, tag, v, n);
}

nl_status nl_tb_diag(nl_tb *w, const nl_diag *d, int step) {
    static const struct {
        const char *key;
        size_t off;
    } stream[] = { { "x_var", offsetof(nl_stream_stat, var) },
                   { "x_rms", offsetof(nl_stream_stat, rms) },
                   { "x_max", offsetof(nl_stream_stat, maxabs) } };
    static const struct {
        const char *key;
        size_t off;
    } site[] = { { "in_rms", offsetof(nl_diag_site, in_rms) },
                 { "out_rms", offsetof(nl_diag_site, out_rms) },
                 { "gain_mean", offsetof(nl_diag_site, gain) } };
    const struct {
        const char *key;
        const double *v;
    } block[] = { { "grad_block", d->g_block },
                  { "grad_qkv", d->g_qkv },
                  { "grad_proj", d->g_proj },
                  { "grad_fc", d->g_fc },
                  { "grad_mlp_proj", d->g_mproj } };
    const int L1 = d->L + 1;
    double *v = nl_xmalloc((size_t)(L1 > d->nsites ? L1 : d->nsites + 1) * sizeof(double));
    nl_tb_begin(w, step);
    nl_tb_scalar(w, "diag_loss", d->loss);
    nl_tb_scalar(w, "diag_grad_total", d->g_total);
    for (size_t k = 0; k < sizeof stream / sizeof stream[0]; k++) {
        for (int l = 0; l < L1; l++) v[l] = *(const double *)((const char *)&d->x[l] + stream[k].off);
        series(w, stream[k].key, v, L1);
    }
    for (size_t k = 0; k < sizeof block / sizeof block[0]; k++) series(w, block[k].key, block[k].v, d->L);
    char tag[160];
    for (size_t k = 0; k < sizeof site / sizeof site[0]; k++) {
        for (int i = 0; i < d->nsites; i++) {
            v[i] = *(const double *)((const char *)&d->sites[i] + site[k].off);
            snprintf(tag, sizeof tag, "%snorm_%s/%s", diag_prefix, site[k].key, d->sites[i].name);
            nl_tb_scalar(w, tag, v[i]);
        }
        snprintf(tag, sizeof tag, "%snorm_%s", diag_prefix, site[k].key);
        nl_tb_histogram(w, tag, v, d->nsites);
    }
    free(v);
    return nl_tb_end(w);
}
