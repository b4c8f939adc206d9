/* json.c -- see json.h. A recursive-descent parser; every value takes at least one byte of input, so
 * len + 1 nodes and len + 1 string bytes always suffice and are allocated up front. */
#include "json.h"

#include "common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_DEPTH = 64 };

typedef struct parser {
    const char *s, *what;
    size_t i, len;
    nl_json_doc *d;
} parser;

static nl_status perr(parser *p, const char *why) {
    return NL_FAIL(NL_ERR_FORMAT, "%s: malformed JSON (%s) at byte %zu", p->what, why, p->i);
}

static void ws(parser *p) {
    while (p->i < p->len && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static nl_json *node(parser *p, nl_json_type t) {
    NL_ASSERT(p->d->nnodes < p->d->cap_nodes);
    nl_json *n = &p->d->nodes[p->d->nnodes++];
    memset(n, 0, sizeof *n);
    n->type = t;
    return n;
}

static int hexval(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static nl_status hex4(parser *p, unsigned *v) {
    if (p->i + 4 > p->len) return perr(p, "short \\u escape");
    *v = 0;
    for (int j = 0; j < 4; j++) {
        int h = hexval(p->s[p->i + j]);
        if (h < 0) return perr(p, "bad \\u escape");
        *v = *v * 16 + (unsigned)h;
    }
    p->i += 4;
    return NL_OK;
}

static nl_status parse_string(parser *p, char **out) {
    p->i++; /* opening quote */
    char *o = p->d->strs + p->d->nstrs;
    size_t k = 0;
    for (;;) {
        if (p->i >= p->len) return perr(p, "unterminated string");
        unsigned char c = (unsigned char)p->s[p->i++];
        if (c == '"') break;
        if (c < 0x20) return perr(p, "control character in string");
        if (c == '\\') {
            if (p->i >= p->len) return perr(p, "unterminated escape");
            char e = p->s[p->i++];
            switch (e) {
            case '"':
            case '\\':
            case '/': o[k++] = e; break;
            case 'b': o[k++] = '\b'; break;
            case 'f': o[k++] = '\f'; break;
            case 'n': o[k++] = '\n'; break;
            case 'r': o[k++] = '\r'; break;
            case 't': o[k++] = '\t'; break;
            case 'u': { /* to UTF-8; a surrogate pair joins into one code point (never longer than the escape) */
                unsigned v;
                NL_TRY(hex4(p, &v));
                if (v >= 0xD800 && v < 0xDC00 && p->i + 6 <= p->len && p->s[p->i] == '\\' && p->s[p->i + 1] == 'u') {
                    unsigned lo;
                    size_t save = p->i;
                    p->i += 2;
                    NL_TRY(hex4(p, &lo));
                    if (lo >= 0xDC00 && lo < 0xE000) v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
                    else p->i = save; /* a lone high surrogate stays a 3-byte sequence */
                }
                if (v < 0x80) {
                    o[k++] = (char)v;
                } else if (v < 0x800) {
                    o[k++] = (char)(0xC0 | v >> 6);
                    o[k++] = (char)(0x80 | (v & 0x3F));
                } else if (v < 0x10000) {
                    o[k++] = (char)(0xE0 | v >> 12);
                    o[k++] = (char)(0x80 | ((v >> 6) & 0x3F));
                    o[k++] = (char)(0x80 | (v & 0x3F));
                } else {
                    o[k++] = (char)(0xF0 | v >> 18);
                    o[k++] = (char)(0x80 | ((v >> 12) & 0x3F));
                    o[k++] = (char)(0x80 | ((v >> 6) & 0x3F));
                    o[k++] = (char)(0x80 | (v & 0x3F));
                }
                break;
            }
            default: return perr(p, "bad escape");
            }
        } else {
            o[k++] = (char)c;
        }
    }
    o[k++] = 0;
    p->d->nstrs += k;
    *out = o;
    return NL_OK;
}

static nl_status parse_value(parser *p, nl_json **out, int depth);

static nl_status parse_container(parser *p, nl_json *n, int depth) {
    const int obj = n->type == NL_JOBJ;
    const char close = obj ? '}' : ']';
    p->i++;
    ws(p);
    if (p->i < p->len && p->s[p->i] == close) return p->i++, NL_OK;
    nl_json **tail = &n->child;
    for (;;) {
        char *key = NULL;
        if (obj) {
            ws(p);
            if (p->i >= p->len || p->s[p->i] != '"') return perr(p, "expected a member name");
            NL_TRY(parse_string(p, &key));
            ws(p);
            if (p->i >= p->len || p->s[p->i] != ':') return perr(p, "expected ':'");
            p->i++;
        }
        nl_json *v;
        NL_TRY(parse_value(p, &v, depth + 1));
        v->key = key;
        *tail = v;
        tail = &v->next;
        n->n++;
        ws(p);
        if (p->i >= p->len) return perr(p, "unterminated container");
        if (p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->s[p->i] == close) return p->i++, NL_OK;
        return perr(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int lit(parser *p, const char *w) {
    size_t n = strlen(w);
    if (p->i + n > p->len || memcmp(p->s + p->i, w, n)) return 0;
    p->i += n;
    return 1;
}

static nl_status parse_value(parser *p, nl_json **out, int depth) {
    if (depth > MAX_DEPTH) return perr(p, "nested too deeply");
    ws(p);
    if (p->i >= p->len) return perr(p, "unexpected end");
    const char c = p->s[p->i];
    nl_json *n;
    if (c == '{' || c == '[') {
        n = node(p, c == '{' ? NL_JOBJ : NL_JARR);
        NL_TRY(parse_container(p, n, depth));
    } else if (c == '"') {
        n = node(p, NL_JSTR);
        NL_TRY(parse_string(p, &n->str));
    } else if (lit(p, "null")) {
        n = node(p, NL_JNULL);
    } else if (lit(p, "true") || lit(p, "false")) {
        n = node(p, NL_JBOOL);
        n->num = p->s[p->i - 1] == 'e' && p->s[p->i - 2] == 'u';
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        char buf[64];
        size_t k = 0;
        while (p->i < p->len && k + 1 < sizeof buf && strchr("+-.eE0123456789", p->s[p->i])) buf[k++] = p->s[p->i++];
        buf[k] = 0;
        char *end;
        errno = 0;
        double v = strtod(buf, &end);
        if (*end || k == 0 || !isfinite(v)) return perr(p, "bad number");
        n = node(p, NL_JNUM);
        n->num = v;
    } else {
        return perr(p, "unexpected character");
    }
    *out = n;
    return NL_OK;
}

nl_status nl_json_parse(nl_json_doc *d, const char *text, size_t len, const char *what) {
    memset(d, 0, sizeof *d);
    d->cap_nodes = len + 1;
    d->cap_strs = len + 1;
    d->nodes = nl_xmalloc(d->cap_nodes * sizeof(nl_json));
    d->strs = nl_xmalloc(d->cap_strs);
    parser p = { text, what, 0, len, d };
    nl_status st = parse_value(&p, &d->root, 0);
    if (st == NL_OK) {
        ws(&p);
        if (p.i != len) st = perr(&p, "trailing characters");
    }
    if (st != NL_OK) nl_json_free(d);
    return st;
}

void nl_json_free(nl_json_doc *d) {
    free(d->nodes);
    free(d->strs);
    memset(d, 0, sizeof *d);
}

const nl_json *nl_json_get(const nl_json *obj, const char *key) {
    if (!obj || obj->type != NL_JOBJ) return NULL;
    for (const nl_json *c = obj->child; c; c = c->next)
        if (!strcmp(c->key, key)) return c;
    return NULL;
}

const nl_json *nl_json_at(const nl_json *arr, int i) {
    if (!arr || (arr->type != NL_JARR && arr->type != NL_JOBJ) || i < 0) return NULL;
    const nl_json *c = arr->child;
    while (c && i--) c = c->next;
    return c;
}

double nl_json_num(const nl_json *v) { return v && v->type == NL_JNUM ? v->num : NAN; }
const char *nl_json_str(const nl_json *v) { return v && v->type == NL_JSTR ? v->str : NULL; }

int nl_json_nums(const nl_json *v, double *out, int cap) {
    if (!v || v->type != NL_JARR) return -1;
    int k = 0;
    for (const nl_json *c = v->child; c && k < cap; c = c->next) out[k++] = nl_json_num(c);
    return k;
}

nl_status nl_read_file(const char *path, size_t max, char **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NL_FAIL(NL_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *b = nl_xmalloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap >= max) {
                free(b);
                fclose(f);
                return NL_FAIL(NL_ERR_FORMAT, "'%s' is larger than %zu bytes", path, max);
            }
            cap *= 2;
            b = nl_xresize(b, n, cap + 1, 1);
        }
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    const int err = ferror(f);
    fclose(f);
    if (err) {
        free(b);
        return NL_FAIL(NL_ERR_IO, "cannot read '%s'", path);
    }
    b[n] = 0;
    *buf = b;
    *len = n;
    return NL_OK;
}

void nl_json_write_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        const unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

nl_status nl_json_load(nl_json_doc *d, const char *path, size_t max) {
    char *buf;
    size_t len;
    NL_TRY(nl_read_file(path, max, &buf, &len));
    nl_status st = nl_json_parse(d, buf, len, path);
    free(buf);
    return st;
}
