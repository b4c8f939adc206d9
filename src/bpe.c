/* bpe.c -- see bpe.h.
 *
 * Merging. GPT-2's reference loop finds the lowest-ranked adjacent pair, merges all its occurrences
 * left to right, and repeats: O(n^2) per piece. Here a min-heap of (rank, position) does the same in
 * O(n log n) when every merge's rank is above the ranks that created its two parts (true of any
 * trained vocabulary, GPT-2's included; checked at load): then a merge never creates a pair ranked
 * below the one being merged, nor another copy of it, so popping the leftmost lowest pair reproduces
 * the reference's left-to-right pass exactly. A vocabulary without that property uses the reference
 * loop. Pieces are cached, so common words cost one hash lookup. */
#include "bpe.h"

#include "common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define INVALID_CP 0xFFFFFFFFu

/* ---------------------------------------------------------------- Unicode classes and UTF-8 */

static int is_space(uint32_t c) { /* ECMAScript \s: WhiteSpace and LineTerminator */
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

int nl_uclass(uint32_t c) {
    if (c == INVALID_CP) return NL_UC_OTHER;
    if (is_space(c)) return NL_UC_SPACE;
    int lo = 0, hi = nl_uclass_count - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (c < nl_uclass_ranges[mid].lo) hi = mid - 1;
        else if (c > nl_uclass_ranges[mid].hi) lo = mid + 1;
        else return (int)nl_uclass_ranges[mid].cls;
    }
    return NL_UC_OTHER;
}

size_t nl_utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
    const unsigned c = s[0];
    if (c < 0x80) return *cp = c, 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) len = 2, v = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;      /* no overlong forms */
        else if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F; /* <= U+10FFFF */
    } else return *cp = INVALID_CP, 1; /* 80..C1, F5..FF */
    for (size_t k = 1; k < len; k++) {
        unsigned b = k < n ? s[k] : 0;
        if (k >= n || b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return *cp = INVALID_CP, k;
        v = v << 6 | (b & 0x3F);
    }
    *cp = v;
    return len;
}

/* class of the character at s[i]; *len its byte length */
static inline int class_at(const unsigned char *s, size_t n, size_t i, size_t *len) {
    const unsigned c = s[i];
    if (c < 0x80) {
        *len = 1;
        if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return NL_UC_LETTER;
        if (c >= '0' && c <= '9') return NL_UC_NUMBER;
        return c == ' ' || (c >= 0x09 && c <= 0x0D) ? NL_UC_SPACE : NL_UC_OTHER;
    }
    uint32_t cp;
    *len = nl_utf8_next(s + i, n - i, &cp);
    return nl_uclass(cp);
}

/* end of the run of class cls starting at i */
static size_t run_of(const unsigned char *s, size_t n, size_t i, int cls) {
    size_t len;
    while (i < n && class_at(s, n, i, &len) == cls) i += len;
    return i;
}

size_t nl_pretok_next(const unsigned char *s, size_t n, size_t i) {
    size_t len0, len1;
    if (s[i] == '\'' && i + 1 < n) { /* 's 't 're 've 'm 'll 'd */
        const unsigned char a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    }
    const int c0 = class_at(s, n, i, &len0);
    if (s[i] == ' ' && i + 1 < n) { /* ' ?' before a letter, number or other run */
        const int c1 = class_at(s, n, i + 1, &len1);
        if (c1 != NL_UC_SPACE) return run_of(s, n, i + 1 + len1, c1);
    }
    if (c0 != NL_UC_SPACE) return run_of(s, n, i + len0, c0);
    /* \s+(?!\S): the whitespace run, less its last character when a non-space follows; \s+ if that
     * leaves nothing */
    size_t j = i + len0, last = i;
    while (j < n && class_at(s, n, j, &len1) == NL_UC_SPACE) last = j, j += len1;
    return j == n || last == i ? j : last;
}

/* ---------------------------------------------------------------- tables */

typedef struct merge_slot {
    uint64_t key;
    int rank, id;
} merge_slot;
typedef struct cache_slot {
    uint32_t koff, klen, ioff, nids;
} cache_slot; /* klen 0: empty */

struct nl_bpe {
    int V, eot;
    unsigned char *tok; /* token bytes, concatenated */
    size_t *tok_off;    /* (V + 1) */
    uint32_t *vmap;     /* bytes -> id + 1 (0: empty), open addressing */
    size_t vmask;
    int byte_id[256];
    merge_slot *mg;
    size_t mmask;
    int nmerges, heap_ok, reference;
    /* piece cache */
    cache_slot *cs;
    size_t cmask, ccount;
    unsigned char *ckeys;
    size_t ckeys_n, ckeys_cap;
    int *cids;
    size_t cids_n, cids_cap;
    /* merge scratch */
    int *sym, *prv, *nxt;
    uint64_t *heap;
    size_t scratch_cap;
};

static uint64_t hash_bytes(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static int vocab_find(const nl_bpe *b, const unsigned char *p, size_t n) {
    for (size_t h = hash_bytes(p, n) & b->vmask;; h = (h + 1) & b->vmask) {
        uint32_t e = b->vmap[h];
        if (!e) return -1;
        const int id = (int)e - 1;
        const size_t len = b->tok_off[id + 1] - b->tok_off[id];
        if (len == n && !memcmp(b->tok + b->tok_off[id], p, n)) return id;
    }
}

static const merge_slot *merge_find(const nl_bpe *b, int x, int y) {
    const uint64_t key = (uint64_t)(uint32_t)x << 32 | (uint32_t)y;
    for (size_t h = hash_u64(key) & b->mmask;; h = (h + 1) & b->mmask) {
        const merge_slot *s = &b->mg[h];
        if (s->key == UINT64_MAX) return NULL;
        if (s->key == key) return s;
    }
}

/* ---------------------------------------------------------------- loading */

/* GPT-2's byte <-> code point map: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in byte order. cp_byte[cp] = byte + 1 (0: no byte). */
static void byte_map(int cp_byte[324]) {
    memset(cp_byte, 0, 324 * sizeof(int));
    int n = 0;
    for (int c = 0; c < 256; c++) {
        int printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
        cp_byte[printable ? c : 256 + n++] = c + 1;
    }
}

typedef struct buf {
    unsigned char *p;
    size_t n;
} buf;

static nl_status read_file(const char *path, buf *out) {
    FILE *f = fopen(path, "rb");
    if (!f) return NL_FAIL(NL_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    unsigned char *p = nl_xmalloc(cap);
    for (size_t r; (r = fread(p + n, 1, cap - n, f)) > 0;) {
        n += r;
        if (n == cap) {
            cap *= 2;
            p = nl_xresize(p, n, cap, 1);
        }
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(p);
        return NL_FAIL(NL_ERR_IO, "cannot read '%s'", path);
    }
    out->p = p;
    out->n = n;
    return NL_OK;
}

/* converts the byte-level code points of UTF-8 text s[0..n) to bytes in out; returns the byte count or
 * -1 if a character is not one of the 256 byte characters */
static long unmap(const unsigned char *s, size_t n, const int cp_byte[324], unsigned char *out) {
    long k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += nl_utf8_next(s + i, n - i, &cp);
        if (cp >= 324 || !cp_byte[cp]) return -1;
        out[k++] = (unsigned char)(cp_byte[cp] - 1);
    }
    return k;
}

static size_t pow2_above(size_t n) {
    size_t c = 1;
    while (c < n) c <<= 1;
    return c;
}

/* encoder.json: one flat JSON object {"token": id, ...}; ids must be 0..V-1, each once */
static nl_status parse_encoder(nl_bpe *b, const char *path, const buf *f, const int cp_byte[324]) {
    const unsigned char *s = f->p;
    size_t i = 0, n = f->n, nent = 0;
    /* upper bound on the entries: the colons */
    for (size_t k = 0; k < n; k++) nent += s[k] == ':';
    unsigned char *keys = nl_xmalloc(n + 1);
    size_t *koff = nl_xmalloc((nent + 1) * sizeof(size_t)), kn = 0;
    long *ids = nl_xmalloc((nent + 1) * sizeof(long));
    size_t ne = 0;
    unsigned char *tmp = nl_xmalloc(n + 1), *raw = nl_xmalloc(n + 1);
    nl_status st = NL_OK;
#define WS()                                                                                                           \
    while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++
#define BAD(what)                                                                                                      \
    do {                                                                                                               \
        st = NL_FAIL(NL_ERR_FORMAT, "'%s': %s at byte %zu (expected a JSON object of token -> id)", path, what, i);    \
        goto done;                                                                                                     \
    } while (0)
    WS();
    if (i >= n || s[i++] != '{') BAD("no '{'");
    WS();
    if (i < n && s[i] == '}') BAD("empty vocabulary");
    for (;;) {
        WS();
        if (i >= n || s[i++] != '"') BAD("expected a string");
        size_t tn = 0;
        for (;;) {
            if (i >= n) BAD("unterminated string");
            unsigned char c = s[i++];
            if (c == '"') break;
            if (c != '\\') {
                tmp[tn++] = c;
                continue;
            }
            if (i >= n) BAD("bad escape");
            c = s[i++];
            const char *simple = strchr("\"\\/bfnrt", c);
            if (simple && c) {
                tmp[tn++] = (unsigned char)("\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"]);
                continue;
            }
            if (c != 'u' || i + 4 > n) BAD("bad escape");
            uint32_t cp = 0;
            for (int k = 0; k < 4; k++) {
                unsigned char h = s[i++];
                int d = h >= '0' && h <= '9'   ? h - '0'
                        : h >= 'a' && h <= 'f' ? h - 'a' + 10
                        : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                               : -1;
                if (d < 0) BAD("bad \\u escape");
                cp = cp << 4 | (uint32_t)d;
            }
            if (cp >= 324) BAD("token character outside GPT-2's byte alphabet");
            if (cp < 0x80) tmp[tn++] = (unsigned char)cp;
            else tmp[tn++] = (unsigned char)(0xC0 | cp >> 6), tmp[tn++] = (unsigned char)(0x80 | (cp & 0x3F));
        }
        long rn = unmap(tmp, tn, cp_byte, raw);
        if (rn <= 0) BAD("token character outside GPT-2's byte alphabet (not a byte-level BPE vocabulary)");
        WS();
        if (i >= n || s[i++] != ':') BAD("expected ':'");
        WS();
        char *end;
        errno = 0;
        long id = strtol((const char *)s + i, &end, 10);
        if (end == (const char *)s + i || errno || id < 0 || id > (1 << 24)) BAD("expected a token id");
        i = (size_t)(end - (const char *)s);
        koff[ne] = kn;
        memcpy(keys + kn, raw, (size_t)rn);
        kn += (size_t)rn;
        ids[ne++] = id;
        WS();
        if (i < n && s[i] == ',') {
            i++;
            continue;
        }
        if (i < n && s[i] == '}') break;
        BAD("expected ',' or '}'");
    }
    koff[ne] = kn;
    b->V = (int)ne;
    b->tok_off = nl_xcalloc((ne + 1) * sizeof(size_t));
    size_t *len = nl_xcalloc(ne * sizeof(size_t)), *src = nl_xmalloc(ne * sizeof(size_t));
    for (size_t e = 0; e < ne; e++) {
        if ((size_t)ids[e] >= ne || len[ids[e]]) {
            free(len), free(src);
            st = NL_FAIL(NL_ERR_FORMAT, "'%s': token id %ld is duplicated or not in 0..%zu (ids must be dense)", path,
                         ids[e], ne - 1);
            goto done;
        }
        len[ids[e]] = koff[e + 1] - koff[e];
        src[ids[e]] = koff[e];
    }
    b->tok = nl_xmalloc(kn + 1);
    for (size_t id = 0, o = 0; id < ne; id++) {
        b->tok_off[id] = o;
        memcpy(b->tok + o, keys + src[id], len[id]);
        o += len[id];
        b->tok_off[id + 1] = o;
    }
    free(len), free(src);
    b->vmask = pow2_above(2 * ne) - 1;
    b->vmap = nl_xcalloc((b->vmask + 1) * sizeof(uint32_t));
    for (size_t id = 0; id < ne; id++) {
        const unsigned char *p = b->tok + b->tok_off[id];
        const size_t l = b->tok_off[id + 1] - b->tok_off[id];
        if (vocab_find(b, p, l) >= 0) {
            st = NL_FAIL(NL_ERR_FORMAT, "'%s': token id %zu repeats the bytes of another token", path, id);
            goto done;
        }
        size_t h = hash_bytes(p, l) & b->vmask;
        while (b->vmap[h]) h = (h + 1) & b->vmask;
        b->vmap[h] = (uint32_t)id + 1;
    }
    for (int c = 0; c < 256; c++) {
        unsigned char byte = (unsigned char)c;
        b->byte_id[c] = vocab_find(b, &byte, 1);
        if (b->byte_id[c] < 0) {
            st = NL_FAIL(NL_ERR_FORMAT, "'%s': no token for byte 0x%02x (not a byte-level BPE vocabulary)", path, c);
            goto done;
        }
    }
    b->eot = vocab_find(b, (const unsigned char *)"<|endoftext|>", 13);
done:
#undef WS
#undef BAD
    free(keys), free(koff), free(ids), free(tmp), free(raw);
    return st;
}

/* vocab.bpe: "#version" line, then "left right" merges, best first */
static nl_status parse_merges(nl_bpe *b, const char *path, const buf *f, const int cp_byte[324]) {
    size_t nl = 0;
    for (size_t k = 0; k < f->n; k++) nl += f->p[k] == '\n';
    b->mmask = pow2_above(2 * (nl + 1)) - 1;
    b->mg = nl_xmalloc((b->mmask + 1) * sizeof *b->mg);
    for (size_t k = 0; k <= b->mmask; k++) b->mg[k].key = UINT64_MAX;
    int *created = nl_xmalloc((size_t)b->V * sizeof(int)); /* rank of the merge that makes each token */
    for (int k = 0; k < b->V; k++) created[k] = -1;
    unsigned char *l = nl_xmalloc(f->n + 1), *r = nl_xmalloc(f->n + 1), *lr = nl_xmalloc(2 * f->n + 2);
    nl_status st = NL_OK;
    int line = 0, rank = 0;
    b->heap_ok = 1;
    for (size_t i = 0; i < f->n;) {
        size_t e = i;
        while (e < f->n && f->p[e] != '\n') e++;
        line++;
        size_t end = e > i && f->p[e - 1] == '\r' ? e - 1 : e;
        const unsigned char *s = f->p + i;
        size_t len = end - i;
        i = e + 1;
        if (len == 0 || (line == 1 && len >= 8 && !memcmp(s, "#version", 8))) continue;
        const unsigned char *sp = memchr(s, ' ', len);
        long ln = sp ? unmap(s, (size_t)(sp - s), cp_byte, l) : -1;
        long rn = sp ? unmap(sp + 1, len - (size_t)(sp - s) - 1, cp_byte, r) : -1;
        if (ln <= 0 || rn <= 0) {
            st = NL_FAIL(NL_ERR_FORMAT, "'%s' line %d: expected two byte-level tokens separated by one space", path,
                         line);
            break;
        }
        memcpy(lr, l, (size_t)ln);
        memcpy(lr + ln, r, (size_t)rn);
        int a = vocab_find(b, l, (size_t)ln), c = vocab_find(b, r, (size_t)rn), m = vocab_find(b, lr, (size_t)(ln + rn));
        if (a < 0 || c < 0 || m < 0) {
            st = NL_FAIL(NL_ERR_FORMAT, "'%s' line %d: the merge or one of its parts is not in encoder.json", path, line);
            break;
        }
        const uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)c;
        size_t h = hash_u64(key) & b->mmask;
        while (b->mg[h].key != UINT64_MAX && b->mg[h].key != key) h = (h + 1) & b->mmask;
        if (b->mg[h].key == key) continue; /* a repeated merge keeps its first (best) rank */
        b->mg[h] = (merge_slot){ key, rank, m };
        if (created[a] >= rank || created[c] >= rank) b->heap_ok = 0;
        if (created[m] < 0) created[m] = rank;
        rank++;
    }
    /* a token made by a later merge than one that uses it breaks the heap's assumption */
    for (size_t k = 0; k <= b->mmask && b->heap_ok; k++) {
        const merge_slot *s = &b->mg[k];
        if (s->key == UINT64_MAX) continue;
        if (created[s->key >> 32] > s->rank || created[s->key & 0xFFFFFFFFu] > s->rank) b->heap_ok = 0;
    }
    b->nmerges = rank;
    free(created), free(l), free(r), free(lr);
    return st;
}

static void cache_clear(nl_bpe *b) {
    free(b->cs);
    b->cmask = (1u << 14) - 1;
    b->cs = nl_xcalloc((b->cmask + 1) * sizeof *b->cs);
    b->ccount = b->ckeys_n = b->cids_n = 0;
}

nl_status nl_bpe_find_dir(char *dir, size_t cap) {
    if (dir[0]) return NL_OK;
    char f[NL_PATH_MAX];
    if (nl_find_shipped("gpt2-bpe/encoder.json", f, sizeof f) && strlen(f) < cap) {
        *strrchr(f, '/') = 0;
        return snprintf(dir, cap, "%s", f), NL_OK;
    }
    return NL_FAIL(NL_ERR_IO,
                   "GPT-2 tokenizer files not found: data/gpt2-bpe/encoder.json is missing from the working directory "
                   "and the repository. HINT: pass --bpe-dir DIR holding GPT-2's encoder.json and vocab.bpe");
}

nl_status nl_bpe_load(nl_bpe **out, const char *dir_in) {
    *out = NULL;
    char dir[NL_PATH_MAX], path[NL_PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s", dir_in ? dir_in : "");
    NL_TRY(nl_bpe_find_dir(dir, sizeof dir));
    int cp_byte[324];
    byte_map(cp_byte);
    nl_bpe *b = nl_xcalloc(sizeof *b);
    buf f = { 0 };
    snprintf(path, sizeof path, "%s/encoder.json", dir);
    nl_status st = read_file(path, &f);
    if (st == NL_OK) st = parse_encoder(b, path, &f, cp_byte);
    free(f.p);
    f.p = NULL;
    if (st == NL_OK) {
        snprintf(path, sizeof path, "%s/vocab.bpe", dir);
        st = read_file(path, &f);
    }
    if (st == NL_OK) st = parse_merges(b, path, &f, cp_byte);
    free(f.p);
    if (st != NL_OK) {
        nl_bpe_free(b);
        return st;
    }
    cache_clear(b);
    *out = b;
    return NL_OK;
}

void nl_bpe_free(nl_bpe *b) {
    if (!b) return;
    free(b->tok), free(b->tok_off), free(b->vmap), free(b->mg);
    free(b->cs), free(b->ckeys), free(b->cids);
    free(b->sym), free(b->prv), free(b->nxt), free(b->heap);
    free(b);
}

int nl_bpe_vocab(const nl_bpe *b) { return b->V; }
int nl_bpe_heap_ok(const nl_bpe *b) { return b->heap_ok; }
int nl_bpe_eot(const nl_bpe *b) { return b->eot; }

void nl_bpe_set_reference_merge(nl_bpe *b, int on) {
    b->reference = on;
    cache_clear(b);
}

void nl_ids_push(nl_ids *a, int id) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 256;
        a->v = nl_xresize(a->v, a->n, a->cap, sizeof *a->v);
    }
    a->v[a->n++] = id;
}

void nl_ids_free(nl_ids *a) {
    free(a->v);
    memset(a, 0, sizeof *a);
}

/* ---------------------------------------------------------------- merging */

static void scratch(nl_bpe *b, size_t n) {
    if (n <= b->scratch_cap) return;
    free(b->sym), free(b->prv), free(b->nxt), free(b->heap);
    b->scratch_cap = n * 2;
    b->sym = nl_xmalloc(b->scratch_cap * sizeof(int));
    b->prv = nl_xmalloc(b->scratch_cap * sizeof(int));
    b->nxt = nl_xmalloc(b->scratch_cap * sizeof(int));
    b->heap = nl_xmalloc(3 * b->scratch_cap * sizeof(uint64_t));
}

/* heap entries: rank << 32 | position (the smallest is the lowest rank, then the leftmost) */
static void heap_push(uint64_t *h, size_t *n, uint64_t x) {
    size_t i = (*n)++;
    while (i > 0 && h[(i - 1) / 2] > x) h[i] = h[(i - 1) / 2], i = (i - 1) / 2;
    h[i] = x;
}

static uint64_t heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], x = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (h[c] >= x) break;
        h[i] = h[c], i = c;
    }
    h[i] = x;
    return top;
}

/* merges sym[0..m) (byte tokens) in place with the heap; returns the symbol count */
static size_t merge_heap(nl_bpe *b, size_t m) {
    int *sym = b->sym, *prv = b->prv, *nxt = b->nxt;
    uint64_t *h = b->heap;
    size_t hn = 0;
    for (size_t k = 0; k < m; k++) prv[k] = (int)k - 1, nxt[k] = k + 1 < m ? (int)k + 1 : -1;
    for (size_t k = 0; k + 1 < m; k++) {
        const merge_slot *s = merge_find(b, sym[k], sym[k + 1]);
        if (s) heap_push(h, &hn, (uint64_t)s->rank << 32 | k);
    }
    while (hn) {
        const uint64_t e = heap_pop(h, &hn);
        const int rank = (int)(e >> 32), k = (int)(e & 0xFFFFFFFFu);
        if (sym[k] < 0 || nxt[k] < 0) continue; /* k was merged away or is last */
        const merge_slot *s = merge_find(b, sym[k], sym[nxt[k]]);
        if (!s || s->rank != rank) continue; /* stale: the pair at k changed */
        const int r = nxt[k];
        sym[k] = s->id;
        sym[r] = -1;
        nxt[k] = nxt[r];
        if (nxt[k] >= 0) prv[nxt[k]] = k;
        if (prv[k] >= 0 && (s = merge_find(b, sym[prv[k]], sym[k])))
            heap_push(h, &hn, (uint64_t)s->rank << 32 | (uint32_t)prv[k]);
        if (nxt[k] >= 0 && (s = merge_find(b, sym[k], sym[nxt[k]])))
            heap_push(h, &hn, (uint64_t)s->rank << 32 | (uint32_t)k);
    }
    size_t n = 0;
    for (int k = 0; k >= 0; k = nxt[k]) sym[n++] = sym[k];
    return n;
}

/* GPT-2's loop: the lowest-ranked pair, every occurrence left to right, until no pair merges */
static size_t merge_reference(nl_bpe *b, size_t m) {
    int *sym = b->sym;
    while (m > 1) {
        const merge_slot *best = NULL;
        for (size_t k = 0; k + 1 < m; k++) {
            const merge_slot *s = merge_find(b, sym[k], sym[k + 1]);
            if (s && (!best || s->rank < best->rank)) best = s;
        }
        if (!best) break;
        const int x = (int)(best->key >> 32), y = (int)(best->key & 0xFFFFFFFFu);
        size_t o = 0;
        for (size_t k = 0; k < m;) {
            if (k + 1 < m && sym[k] == x && sym[k + 1] == y) sym[o++] = best->id, k += 2;
            else sym[o++] = sym[k++];
        }
        m = o;
    }
    return m;
}

static void grow_bytes(unsigned char **p, size_t *cap, size_t need) {
    if (need <= *cap) return;
    size_t c = *cap ? *cap : 1 << 16;
    while (c < need) c *= 2;
    unsigned char *q = nl_xmalloc(c);
    if (*p) memcpy(q, *p, *cap);
    free(*p);
    *p = q;
    *cap = c;
}

static void cache_grow(nl_bpe *b) {
    const size_t ncap = 2 * (b->cmask + 1);
    cache_slot *cs = nl_xcalloc(ncap * sizeof *cs);
    for (size_t k = 0; k <= b->cmask; k++) {
        const cache_slot *s = &b->cs[k];
        if (!s->klen) continue;
        size_t h = hash_bytes(b->ckeys + s->koff, s->klen) & (ncap - 1);
        while (cs[h].klen) h = (h + 1) & (ncap - 1);
        cs[h] = *s;
    }
    free(b->cs);
    b->cs = cs;
    b->cmask = ncap - 1;
}

enum { CACHE_MAX_PIECE = 256, CACHE_MAX_ENTRIES = 1 << 20 };

static void encode_piece(nl_bpe *b, const unsigned char *p, size_t m, nl_ids *out) {
    if (m == 1) {
        nl_ids_push(out, b->byte_id[p[0]]);
        return;
    }
    const int cacheable = m <= CACHE_MAX_PIECE;
    size_t h = 0;
    if (cacheable) {
        for (h = hash_bytes(p, m) & b->cmask; b->cs[h].klen; h = (h + 1) & b->cmask) {
            const cache_slot *s = &b->cs[h];
            if (s->klen == m && !memcmp(b->ckeys + s->koff, p, m)) {
                for (uint32_t k = 0; k < s->nids; k++) nl_ids_push(out, b->cids[s->ioff + k]);
                return;
            }
        }
    }
    scratch(b, m);
    for (size_t k = 0; k < m; k++) b->sym[k] = b->byte_id[p[k]];
    const size_t n = b->reference || !b->heap_ok ? merge_reference(b, m) : merge_heap(b, m);
    for (size_t k = 0; k < n; k++) nl_ids_push(out, b->sym[k]);
    if (!cacheable) return;
    if (b->ccount >= CACHE_MAX_ENTRIES) { /* bounded memory: start over */
        cache_clear(b);
        for (h = hash_bytes(p, m) & b->cmask; b->cs[h].klen; h = (h + 1) & b->cmask) {}
    }
    grow_bytes(&b->ckeys, &b->ckeys_cap, b->ckeys_n + m);
    size_t icap = b->cids_cap * sizeof(int);
    unsigned char *ci = (unsigned char *)b->cids;
    grow_bytes(&ci, &icap, (b->cids_n + n) * sizeof(int));
    b->cids = (int *)ci;
    b->cids_cap = icap / sizeof(int);
    memcpy(b->ckeys + b->ckeys_n, p, m);
    memcpy(b->cids + b->cids_n, b->sym, n * sizeof(int));
    b->cs[h] = (cache_slot){ (uint32_t)b->ckeys_n, (uint32_t)m, (uint32_t)b->cids_n, (uint32_t)n };
    b->ckeys_n += m;
    b->cids_n += n;
    if (++b->ccount * 2 > b->cmask) cache_grow(b);
}

void nl_bpe_encode(nl_bpe *b, const void *text, size_t n, nl_ids *out) {
    const unsigned char *s = text;
    for (size_t i = 0; i < n;) {
        const size_t e = nl_pretok_next(s, n, i);
        encode_piece(b, s + i, e - i, out);
        i = e;
    }
}

size_t nl_bpe_token(const nl_bpe *b, int id, const unsigned char **p) {
    NL_ASSERT(id >= 0 && id < b->V);
    *p = b->tok + b->tok_off[id];
    return b->tok_off[id + 1] - b->tok_off[id];
}

nl_status nl_bpe_decode(const nl_bpe *b, const int *ids, size_t n, char **text, size_t *len) {
    size_t total = 0;
    for (size_t k = 0; k < n; k++) {
        if (ids[k] < 0 || ids[k] >= b->V) {
            *text = NULL;
            return NL_FAIL(NL_ERR_ARG, "token id %d is outside the vocabulary of %d", ids[k], b->V);
        }
        total += b->tok_off[ids[k] + 1] - b->tok_off[ids[k]];
    }
    char *t = nl_xmalloc(total + 1);
    size_t o = 0;
    for (size_t k = 0; k < n; k++) {
        const size_t l = b->tok_off[ids[k] + 1] - b->tok_off[ids[k]];
        memcpy(t + o, b->tok + b->tok_off[ids[k]], l);
        o += l;
    }
    t[o] = 0;
    *text = t;
    *len = o;
    return NL_OK;
}
