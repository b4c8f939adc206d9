/* json.c -- see json.h. */
#include "json.h"

#include "common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_DEPTH = 64 };

typedef struct jr {
    const char *s;
    size_t i, n;
    char *err;
    size_t errcap;
} jr;

static int fail(jr *p, const char *what) {
    snprintf(p->err, p->errcap, "%s at byte %zu", what, p->i);
    return 0;
}

static void ws(jr *p) {
    while (p->i < p->n && strchr(" \t\r\n", p->s[p->i]) && p->s[p->i]) p->i++;
}

static void put_utf8(char *b, size_t *len, unsigned cp) {
    if (cp < 0x80) b[(*len)++] = (char)cp;
    else if (cp < 0x800) {
        b[(*len)++] = (char)(0xC0 | cp >> 6);
        b[(*len)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        b[(*len)++] = (char)(0xE0 | cp >> 12);
        b[(*len)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[(*len)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        b[(*len)++] = (char)(0xF0 | cp >> 18);
        b[(*len)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[(*len)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[(*len)++] = (char)(0x80 | (cp & 0x3F));
    }
}

static int hex4(jr *p, unsigned *cp) {
    if (p->n - p->i < 4) return fail(p, "truncated \\u escape");
    *cp = 0;
    for (int k = 0; k < 4; k++) {
        char h = p->s[p->i++];
        int v = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
        if (v < 0) return fail(p, "bad \\u escape");
        *cp = *cp * 16 + (unsigned)v;
    }
    return 1;
}

/* the string starting at the opening quote; decoded length never exceeds the raw length */
static int string(jr *p, char **out, size_t *outlen) {
    p->i++;
    size_t start = p->i;
    while (p->i < p->n && p->s[p->i] != '"') p->i += p->s[p->i] == '\\' ? 2 : 1;
    if (p->i >= p->n) return fail(p, "unterminated string");
    size_t end = p->i;
    char *b = nl_xmalloc(end - start + 1);
    size_t len = 0;
    p->i = start;
    while (p->i < end) {
        unsigned char c = (unsigned char)p->s[p->i++];
        if (c < 0x20) {
            free(b);
            return fail(p, "control character in string");
        }
        if (c != '\\') {
            b[len++] = (char)c;
            continue;
        }
        char e = p->s[p->i++];
        unsigned cp;
        switch (e) {
        case '"': case '\\': case '/': b[len++] = e; break;
        case 'b': b[len++] = '\b'; break;
        case 'f': b[len++] = '\f'; break;
        case 'n': b[len++] = '\n'; break;
        case 'r': b[len++] = '\r'; break;
        case 't': b[len++] = '\t'; break;
        case 'u':
            if (!hex4(p, &cp)) { free(b); return 0; }
            if (cp >= 0xD800 && cp < 0xDC00 && end - p->i >= 6 && p->s[p->i] == '\\' && p->s[p->i + 1] == 'u') {
                unsigned lo;
                size_t save = p->i;
                p->i += 2;
                if (!hex4(p, &lo)) { free(b); return 0; }
                if (lo >= 0xDC00 && lo < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                else p->i = save; /* a lone high surrogate: kept as its own 3-byte sequence */
            }
            put_utf8(b, &len, cp);
            break;
        default: free(b); return fail(p, "bad escape");
        }
    }
    p->i = end + 1;
    b[len] = 0;
    *out = b;
    *outlen = len;
    return 1;
}

static int value(jr *p, nl_json *v, int depth);

static int push(nl_json *v, int *cap) {
    if (v->n == *cap) {
        *cap = *cap ? 2 * *cap : 4;
        nl_json *items = nl_xcalloc((size_t)*cap * sizeof *items);
        if (v->n) memcpy(items, v->items, (size_t)v->n * sizeof *items);
        free(v->items);
        v->items = items;
        if (v->type == NL_J_OBJ) {
            char **keys = nl_xcalloc((size_t)*cap * sizeof *keys);
            if (v->n) memcpy(keys, v->keys, (size_t)v->n * sizeof *keys);
            free(v->keys);
            v->keys = keys;
        }
    }
    return v->n++;
}

static int container(jr *p, nl_json *v, int depth) {
    const int obj = p->s[p->i] == '{';
    const char close = obj ? '}' : ']';
    v->type = obj ? NL_J_OBJ : NL_J_ARR;
    p->i++;
    ws(p);
    if (p->i < p->n && p->s[p->i] == close) {
        p->i++;
        return 1;
    }
    int cap = 0;
    for (;;) {
        ws(p);
        int k = push(v, &cap);
        if (obj) {
            size_t kl;
            if (p->i >= p->n || p->s[p->i] != '"') return fail(p, "expected a key");
            if (!string(p, &v->keys[k], &kl)) return 0;
            ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') return fail(p, "expected ':'");
            p->i++;
        }
        if (!value(p, &v->items[k], depth + 1)) return 0;
        ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == close) {
            p->i++;
            return 1;
        }
        return fail(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int value(jr *p, nl_json *v, int depth) {
    memset(v, 0, sizeof *v);
    if (depth > MAX_DEPTH) return fail(p, "nesting too deep");
    ws(p);
    if (p->i >= p->n) return fail(p, "unexpected end of input");
    const char c = p->s[p->i];
    if (c == '{' || c == '[') return container(p, v, depth);
    if (c == '"') {
        v->type = NL_J_STR;
        return string(p, &v->str, &v->len);
    }
    static const struct { const char *word; nl_jtype t; double num; } lits[] = {
        { "true", NL_J_BOOL, 1 }, { "false", NL_J_BOOL, 0 }, { "null", NL_J_NULL, 0 } };
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(lits[k].word);
        if (p->n - p->i >= l && !memcmp(p->s + p->i, lits[k].word, l)) {
            p->i += l;
            v->type = lits[k].t;
            v->num = lits[k].num;
            return 1;
        }
    }
    /* number: validate the JSON grammar, then convert */
    size_t st = p->i;
    if (p->i < p->n && p->s[p->i] == '-') p->i++;
    size_t d0 = p->i;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    if (p->i == d0) return fail(p, "unexpected character");
    if (p->i < p->n && p->s[p->i] == '.') {
        size_t f0 = ++p->i;
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
        if (p->i == f0) return fail(p, "bad number");
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        size_t e0 = p->i;
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
        if (p->i == e0) return fail(p, "bad number");
    }
    char buf[64];
    size_t l = p->i - st;
    if (l >= sizeof buf) return fail(p, "number too long");
    memcpy(buf, p->s + st, l);
    buf[l] = 0;
    v->type = NL_J_NUM;
    v->num = strtod(buf, NULL);
    return 1;
}

nl_status nl_json_parse(const char *s, size_t n, nl_json *out, char *err, size_t errcap) {
    jr p = { s, 0, n, err, errcap };
    int ok = value(&p, out, 0);
    if (ok) {
        ws(&p);
        if (p.i != n) ok = fail(&p, "trailing characters");
    }
    if (ok) return NL_OK;
    nl_json_free(out);
    return NL_ERR_FORMAT;
}

void nl_json_free(nl_json *v) {
    if (!v) return;
    for (int i = 0; i < v->n; i++) {
        nl_json_free(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof *v);
}

const nl_json *nl_json_get(const nl_json *obj, const char *key) {
    if (!obj || obj->type != NL_J_OBJ) return NULL;
    for (int i = 0; i < obj->n; i++)
        if (obj->keys[i] && !strcmp(obj->keys[i], key)) return &obj->items[i];
    return NULL;
}
