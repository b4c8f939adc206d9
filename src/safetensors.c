/* safetensors.c -- see safetensors.h. The JSON parser accepts exactly what a safetensors header
 * needs (objects, strings, integer arrays) and skips other values; it bounds depth and lengths. */
#include "safetensors.h"

#include "common.h"

#include <errno.h>
#include <libgen.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const dtype_names[NL_ST_DTYPE_COUNT] = { "F32", "I32", "F64", "I64", "U16" };
static const size_t dtype_size[NL_ST_DTYPE_COUNT] = { 4, 4, 8, 8, 2 };

enum { MAX_HEADER = 1 << 26, MAX_TENSORS = 1 << 16 };

/* ---------------------------------------------------------------- JSON subset */

typedef struct jp {
    const char *s;
    size_t i, n;
    const char *path;
} jp;

static void ws(jp *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\n' || p->s[p->i] == '\r' || p->s[p->i] == '\t')) p->i++;
}

static int lit(jp *p, char c) {
    ws(p);
    if (p->i < p->n && p->s[p->i] == c) {
        p->i++;
        return 1;
    }
    return 0;
}

static nl_status bad(jp *p, const char *what) {
    return NL_FAIL(NL_ERR_FORMAT, "'%s': malformed safetensors header (%s at byte %zu)", p->path, what, p->i + 8);
}

/* Parses a JSON string into a new heap buffer (*out). \u escapes become UTF-8. */
static nl_status str(jp *p, char **out) {
    if (!lit(p, '"')) return bad(p, "expected a string");
    size_t cap = 16, len = 0;
    char *b = nl_xmalloc(cap);
    for (;;) {
        if (p->i >= p->n) {
            free(b);
            return bad(p, "unterminated string");
        }
        unsigned char c = (unsigned char)p->s[p->i++];
        unsigned cp = c;
        if (c == '"') break;
        if (c < 0x20) {
            free(b);
            return bad(p, "control character in string");
        }
        if (c == '\\') {
            if (p->i >= p->n) {
                free(b);
                return bad(p, "bad escape");
            }
            char e = p->s[p->i++];
            switch (e) {
            case '"':
            case '\\':
            case '/': cp = (unsigned)e; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u': {
                if (p->n - p->i < 4) {
                    free(b);
                    return bad(p, "bad \\u escape");
                }
                cp = 0;
                for (int k = 0; k < 4; k++) {
                    char h = p->s[p->i++];
                    int v = h >= '0' && h <= '9'   ? h - '0'
                            : h >= 'a' && h <= 'f' ? h - 'a' + 10
                            : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                                   : -1;
                    if (v < 0) {
                        free(b);
                        return bad(p, "bad \\u escape");
                    }
                    cp = cp * 16 + (unsigned)v;
                }
                break;
            }
            default: free(b); return bad(p, "bad escape");
            }
        }
        if (len + 4 >= cap) {
            cap *= 2;
            b = nl_xresize(b, len, cap, 1);
        }
        if (c == '\\' && cp >= 0x80) { /* encode a \u code point (surrogates kept as-is) */
            if (cp < 0x800) {
                b[len++] = (char)(0xC0 | (cp >> 6));
            } else {
                b[len++] = (char)(0xE0 | (cp >> 12));
                b[len++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            }
            b[len++] = (char)(0x80 | (cp & 0x3F));
        } else {
            b[len++] = (char)cp;
        }
    }
    b[len] = 0;
    *out = b;
    return NL_OK;
}

static nl_status num(jp *p, int64_t *out) {
    ws(p);
    size_t start = p->i;
    int64_t v = 0;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
        if (v > (INT64_MAX - 9) / 10) return bad(p, "integer too large");
        v = v * 10 + (p->s[p->i++] - '0');
    }
    if (p->i == start) return bad(p, "expected a non-negative integer");
    *out = v;
    return NL_OK;
}

static nl_status skip_value(jp *p, int depth) {
    if (depth > 32) return bad(p, "nesting too deep");
    ws(p);
    if (p->i >= p->n) return bad(p, "unexpected end");
    char c = p->s[p->i];
    if (c == '"') {
        char *s;
        NL_TRY(str(p, &s));
        free(s);
        return NL_OK;
    }
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        p->i++;
        if (lit(p, close)) return NL_OK;
        do {
            if (c == '{') {
                char *k;
                NL_TRY(str(p, &k));
                free(k);
                if (!lit(p, ':')) return bad(p, "expected ':'");
            }
            NL_TRY(skip_value(p, depth + 1));
        } while (lit(p, ','));
        return lit(p, close) ? NL_OK : bad(p, "unterminated object or array");
    }
    while (p->i < p->n && strchr("-+.eE0123456789truefalsn", p->s[p->i])) p->i++;
    return NL_OK;
}

static nl_status int_array(jp *p, int64_t *v, int cap, int *count) {
    if (!lit(p, '[')) return bad(p, "expected an array");
    *count = 0;
    if (lit(p, ']')) return NL_OK;
    do {
        if (*count >= cap) return bad(p, "array too long");
        NL_TRY(num(p, &v[(*count)++]));
    } while (lit(p, ','));
    return lit(p, ']') ? NL_OK : bad(p, "expected ']'");
}

static nl_status parse_meta(jp *p, nl_st_file *f) {
    if (!lit(p, '{')) return bad(p, "__metadata__ is not an object");
    if (lit(p, '}')) return NL_OK;
    int cap = 0;
    do {
        char *k, *v;
        NL_TRY(str(p, &k));
        if (!lit(p, ':')) {
            free(k);
            return bad(p, "expected ':'");
        }
        nl_status st = str(p, &v);
        if (st != NL_OK) {
            free(k);
            return st;
        }
        if (f->nmeta == cap) {
            cap = cap ? 2 * cap : 16;
            f->meta = nl_xresize(f->meta, (size_t)f->nmeta, (size_t)cap, sizeof *f->meta);
        }
        f->meta[f->nmeta].key = k;
        f->meta[f->nmeta++].val = v;
    } while (lit(p, ','));
    return lit(p, '}') ? NL_OK : bad(p, "expected '}'");
}

/* {"dtype": "F32", "shape": [..], "data_offsets": [b, e]} */
static nl_status parse_tensor(jp *p, nl_st_tensor *t, int64_t offs[2]) {
    int have = 0, n;
    if (!lit(p, '{')) return bad(p, "tensor entry is not an object");
    do {
        char *k;
        NL_TRY(str(p, &k));
        if (!lit(p, ':')) {
            free(k);
            return bad(p, "expected ':'");
        }
        nl_status st = NL_OK;
        if (!strcmp(k, "dtype")) {
            char *d;
            st = str(p, &d);
            if (st == NL_OK) {
                t->dtype = -1;
                for (int i = 0; i < NL_ST_DTYPE_COUNT; i++)
                    if (!strcmp(d, dtype_names[i])) t->dtype = i;
                if (t->dtype < 0)
                    st = NL_FAIL(NL_ERR_FORMAT, "'%s': tensor '%s' has unsupported dtype '%s'", p->path, t->name, d);
                free(d);
                have |= 1;
            }
        } else if (!strcmp(k, "shape")) {
            st = int_array(p, t->shape, NL_ST_MAXDIM, &t->ndim);
            have |= 2;
        } else if (!strcmp(k, "data_offsets")) {
            st = int_array(p, offs, 2, &n);
            if (st == NL_OK && n != 2) st = bad(p, "data_offsets needs two numbers");
            have |= 4;
        } else {
            st = skip_value(p, 1);
        }
        free(k);
        NL_TRY(st);
    } while (lit(p, ','));
    if (!lit(p, '}')) return bad(p, "expected '}'");
    if (have != 7)
        return NL_FAIL(NL_ERR_FORMAT, "'%s': tensor '%s' lacks dtype, shape or data_offsets", p->path, t->name);
    return NL_OK;
}

static nl_status parse_header(jp *p, nl_st_file *f) {
    if (!lit(p, '{')) return bad(p, "header is not a JSON object");
    if (lit(p, '}')) return NL_OK;
    int cap = 0;
    do {
        char *k;
        NL_TRY(str(p, &k));
        if (!lit(p, ':')) {
            free(k);
            return bad(p, "expected ':'");
        }
        if (!strcmp(k, "__metadata__")) {
            free(k);
            NL_TRY(parse_meta(p, f));
            continue;
        }
        if (strlen(k) >= sizeof f->t[0].name || f->nt >= MAX_TENSORS) {
            free(k);
            return bad(p, "tensor name too long or too many tensors");
        }
        if (f->nt == cap) {
            cap = cap ? 2 * cap : 64;
            f->t = nl_xresize(f->t, (size_t)f->nt, (size_t)cap, sizeof *f->t);
        }
        nl_st_tensor *t = &f->t[f->nt++];
        memset(t, 0, sizeof *t);
        strcpy(t->name, k);
        free(k);
        int64_t offs[2];
        NL_TRY(parse_tensor(p, t, offs));
        /* validate size and placement before anyone touches the bytes */
        uint64_t count = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] > (int64_t)1 << 40 || (t->shape[d] && count > UINT64_MAX / (uint64_t)t->shape[d] / 8))
                return NL_FAIL(NL_ERR_FORMAT, "'%s': tensor '%s' has an absurd shape", p->path, t->name);
            count *= (uint64_t)t->shape[d];
        }
        uint64_t want = count * dtype_size[t->dtype];
        if (offs[0] > offs[1] || (uint64_t)offs[1] > f->data_len || (uint64_t)(offs[1] - offs[0]) != want)
            return NL_FAIL(NL_ERR_FORMAT,
                           "'%s': tensor '%s' data_offsets [%lld, %lld] do not fit its shape or the file (%zu data bytes)",
                           p->path, t->name, (long long)offs[0], (long long)offs[1], f->data_len);
        t->data = f->data + offs[0];
        t->nbytes = (size_t)want;
    } while (lit(p, ','));
    if (!lit(p, '}')) return bad(p, "expected '}'");
    return NL_OK;
}

nl_status nl_st_parse(unsigned char *buf, size_t size, const char *path, nl_st_file *f) {
    memset(f, 0, sizeof *f);
    f->buf = buf;
    f->size = size;
    if (size < 8) {
        nl_st_free(f);
        return NL_FAIL(NL_ERR_FORMAT, "'%s': %zu bytes is too short for a safetensors file", path, size);
    }
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | f->buf[i];
    if (hl > MAX_HEADER || hl > f->size - 8) {
        nl_st_free(f);
        return NL_FAIL(NL_ERR_FORMAT,
                       "'%s': header length %llu exceeds the file (%zu bytes): truncated or not safetensors", path,
                       (unsigned long long)hl, size);
    }
    f->data = f->buf + 8 + hl;
    f->data_len = f->size - 8 - (size_t)hl;
    jp p = { (const char *)f->buf + 8, 0, (size_t)hl, path };
    nl_status st = parse_header(&p, f);
    if (st != NL_OK) nl_st_free(f);
    return st;
}

nl_status nl_st_read(const char *path, nl_st_file *f) {
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) return NL_FAIL(NL_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(fp);
        return NL_FAIL(NL_ERR_IO, "'%s' is not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8) {
        fclose(fp);
        return NL_FAIL(NL_ERR_FORMAT, "'%s': %zu bytes is too short for a safetensors file", path, size);
    }
    unsigned char *buf = malloc(size + 1);
    if (!buf) {
        fclose(fp);
        return NL_FAIL(NL_ERR_IO, "'%s': cannot allocate %zu bytes to read it", path, size);
    }
    size_t got = fread(buf, 1, size, fp);
    fclose(fp);
    if (got != size) {
        free(buf);
        return NL_FAIL(NL_ERR_IO, "'%s': read error (the file changed size while being read?)", path);
    }
    return nl_st_parse(buf, size, path, f);
}

void nl_st_free(nl_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->nmeta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].val);
    }
    free(f->meta);
    free(f->t);
    free(f->buf);
    memset(f, 0, sizeof *f);
}

const char *nl_st_get_meta(const nl_st_file *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta[i].key, key)) return f->meta[i].val;
    return NULL;
}

const nl_st_tensor *nl_st_find(const nl_st_file *f, const char *name) {
    for (int i = 0; i < f->nt; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}

/* ---------------------------------------------------------------- writing */

size_t nl_st_entry_bytes(const nl_st_entry *e) {
    size_t n = dtype_size[e->dtype];
    for (int d = 0; d < e->ndim; d++) n *= (size_t)e->shape[d];
    return n;
}

/* appends s as a JSON string to the growing buffer */
static void put(char **b, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n + 1 > *cap) {
        while (*len + n + 1 > *cap) *cap = *cap ? 2 * *cap : 4096;
        *b = nl_xresize(*b, *len, *cap, 1);
    }
    memcpy(*b + *len, s, n);
    *len += n;
    (*b)[*len] = 0;
}

static void put_json_str(char **b, size_t *len, size_t *cap, const char *s) {
    put(b, len, cap, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(b, len, cap, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(b, len, cap, esc, 6);
        } else {
            put(b, len, cap, (const char *)&c, 1);
        }
    }
    put(b, len, cap, "\"", 1);
}

nl_status nl_write_atomic_begin(const char *path, char *tmp, size_t tmpcap, FILE **f) {
    if ((size_t)snprintf(tmp, tmpcap, "%s.tmp.%ld", path, (long)getpid()) >= tmpcap)
        return NL_FAIL(NL_ERR_IO, "'%s': path too long", path);
    *f = fopen(tmp, "wb");
    if (!*f) return NL_FAIL(NL_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
    return NL_OK;
}

nl_status nl_write_atomic_commit(const char *path, const char *tmp, FILE *f) {
    int err = ferror(f) || fflush(f) != 0 || fsync(fileno(f)) != 0;
    int e = errno;
    if (fclose(f) != 0 && !err) {
        err = 1;
        e = errno;
    }
    if (err) {
        unlink(tmp);
        return NL_FAIL(NL_ERR_IO, "writing '%s' failed: %s", path, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        return NL_FAIL(NL_ERR_IO, "cannot rename to '%s': %s", path, strerror(e));
    }
    char dir[NL_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return NL_OK;
}

static int die_mid_write;
void nl_st_fault_die_mid_write(void) { die_mid_write = 1; }

nl_status nl_st_write(const char *path, const nl_st_entry *e, int n, const char *const *meta_keys,
                      const char *const *meta_vals, int nmeta) {
    char *h = NULL;
    size_t len = 0, cap = 0, off = 0;
    char tmp[64 + NL_PATH_MAX];
    put(&h, &len, &cap, "{\"__metadata__\":{", 17);
    for (int i = 0; i < nmeta; i++) {
        if (i) put(&h, &len, &cap, ",", 1);
        put_json_str(&h, &len, &cap, meta_keys[i]);
        put(&h, &len, &cap, ":", 1);
        put_json_str(&h, &len, &cap, meta_vals[i]);
    }
    put(&h, &len, &cap, "}", 1);
    for (int i = 0; i < n; i++) {
        char num[128];
        put(&h, &len, &cap, ",", 1);
        put_json_str(&h, &len, &cap, e[i].name);
        snprintf(num, sizeof num, ":{\"dtype\":\"%s\",\"shape\":[", dtype_names[e[i].dtype]);
        put(&h, &len, &cap, num, strlen(num));
        for (int d = 0; d < e[i].ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)e[i].shape[d]);
            put(&h, &len, &cap, num, strlen(num));
        }
        size_t nb = nl_st_entry_bytes(&e[i]);
        snprintf(num, sizeof num, "],\"data_offsets\":[%zu,%zu]}", off, off + nb);
        put(&h, &len, &cap, num, strlen(num));
        off += nb;
    }
    put(&h, &len, &cap, "}", 1);
    while (len % 8) put(&h, &len, &cap, " ", 1);

    FILE *f;
    nl_status st = nl_write_atomic_begin(path, tmp, sizeof tmp, &f);
    if (st != NL_OK) {
        free(h);
        return st;
    }
    unsigned char hl[8];
    for (int i = 0; i < 8; i++) hl[i] = (unsigned char)((uint64_t)len >> (8 * i));
    fwrite(hl, 1, 8, f);
    fwrite(h, 1, len, f);
    free(h);
    for (int i = 0; i < n; i++) {
        if (die_mid_write && i == n / 2) { /* fault injection: a kill -9 half-way through the data */
            fflush(f);
            raise(SIGKILL);
        }
        fwrite(e[i].data, 1, nl_st_entry_bytes(&e[i]), f);
    }
    return nl_write_atomic_commit(path, tmp, f);
}
