/* test_bpe.c -- the GPT-2 tokenizer against the reference encoder (tiktoken from PyPI, run by
 * tests/bpe_ref.py on the same encoder.json and vocab.bpe) on a written corpus (tests/data/bpe_corpus.txt), random text over many Unicode
 * classes, invalid UTF-8 and Tiny Shakespeare; round trips; the heap merge against GPT-2's loop;
 * malformed tokenizer files. */
#include "bpe.h"
#include "check.h"
#include "tests.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/nl_bpe_XXXXXX";

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = nl_xmalloc((size_t)len + 1);
    *n = fread(p, 1, (size_t)len, f);
    p[*n] = 0;
    fclose(f);
    return p;
}

static void spit(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    NL_ASSERT(f);
    fwrite(p, 1, n, f);
    fclose(f);
}

/* the reference's ids for the bytes of text (Python decodes each maximal invalid UTF-8 subpart to U+FFFD) */
static int reference_ids(const void *text, size_t n, nl_ids *out) {
    char in[64], ids[64], cmd[512], msg[4096];
    snprintf(in, sizeof in, "%s/in.txt", dir);
    snprintf(ids, sizeof ids, "%s/ids.txt", dir);
    spit(in, text, n);
    snprintf(cmd, sizeof cmd, "%s tests/bpe_ref.py encode data/gpt2-bpe %s %s 2>&1", nl_test_venv_python(), in, ids);
    int rc = nl_run_cmd(cmd, msg, sizeof msg);
    if (rc != 0) {
        printf("    the reference encoder failed (exit %d): %s    HINT: scripts/deps.sh installs tiktoken into build/venv\n",
               rc, msg);
        return 1;
    }
    size_t len;
    char *s = (char *)slurp(ids, &len), *p = s;
    if (!s) return 1;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        nl_ids_push(out, (int)v);
        p = end;
    }
    free(s);
    return 0;
}

/* our ids equal the reference's on text; decoding gives the text back */
static int compare(nl_bpe *b, const char *label, const void *text, size_t n) {
    nl_ids got = { 0 }, want = { 0 };
    nl_bpe_encode(b, text, n, &got);
    int fails = reference_ids(text, n, &want);
    if (!fails) {
        size_t k = 0;
        while (k < got.n && k < want.n && got.v[k] == want.v[k]) k++;
        fails += NL_CHECK(got.n == want.n && k == got.n,
                          "%s: %zu tokens vs the reference's %zu, first difference at token %zu (%d vs %d)", label,
                          got.n, want.n, k, k < got.n ? got.v[k] : -1, k < want.n ? want.v[k] : -1);
    }
    char *back;
    size_t blen;
    fails += NL_CHECK(nl_bpe_decode(b, got.v, got.n, &back, &blen) == NL_OK && blen == n && !memcmp(back, text, n),
                      "%s: decode(encode(text)) != text", label);
    free(back);
    printf("    %s: %zu bytes, %zu tokens%s\n", label, n, got.n, fails ? "" : ", identical to the reference");
    nl_ids_free(&got);
    nl_ids_free(&want);
    return fails;
}

/* random text: words of random classes joined by random whitespace */
static size_t random_text(unsigned char *out, size_t cap, uint64_t seed) {
    static const char *const pool[] = {
        "a",        "Z",    "é",    "ß",    "ж", "Ω", "漢", "字", "か", "한", "ع", "ह", "ि",  "्",         "ก",
        "\xcc\x81", "0",    "7",    "٣",    "①", "Ⅻ", "½",  "²",  "𝟙",  "𝐀",  ".", ",", "!",  "?",        "-",
        "_",        "'",    "\"",   "(",    ")", "/", "\\", "#",  "$",  "€",  "©", "→", "😀",  "👍🏽", "‍",
        "🇩",        "\x00", "\x1b", "\x7f", "s", "t", "re", "ve", "m",  "ll", "d", "S", "LL",
    };
    static const char *const space[] = { " ",   " ",   " ",      "  ",     "   ",    "\n",     "\n\n",   "\t",   "\r\n",
                                         " \n", "\n ", "\u00a0", "\u3000", "\u2028", "\u2009", "\ufeff", "\x0b", "" };
    nl_rng r;
    nl_rng_seed(&r, seed);
    size_t n = 0;
    while (n + 64 < cap) {
        int len = 1 + (int)nl_rng_below(&r, 6);
        int base = (int)nl_rng_below(&r, sizeof pool / sizeof pool[0]);
        for (int k = 0; k < len; k++) {
            /* mostly one class per word, sometimes a mix */
            int pick = nl_rng_below(&r, 4) ? base : (int)nl_rng_below(&r, sizeof pool / sizeof pool[0]);
            size_t l = strlen(pool[pick]);
            memcpy(out + n, pool[pick], l + (pool[pick][0] == 0)); /* "\x00" is one byte */
            n += l ? l : 1;
        }
        const char *sp = space[nl_rng_below(&r, sizeof space / sizeof space[0])];
        memcpy(out + n, sp, strlen(sp));
        n += strlen(sp);
    }
    return n;
}

/* replaces each maximal invalid UTF-8 subpart by U+FFFD (what the reference's decoder does) */
static size_t replace_invalid(const unsigned char *s, size_t n, unsigned char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t l = nl_utf8_next(s + i, n - i, &cp);
        if (cp == 0xFFFFFFFFu) memcpy(out + o, "\xef\xbf\xbd", 3), o += 3;
        else memcpy(out + o, s + i, l), o += l;
        i += l;
    }
    return o;
}

static size_t count_pieces(const unsigned char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; k++) i = nl_pretok_next(s, n, i);
    return k;
}

static int expect_load_error(const char *enc, const char *merges, const char *want) {
    char p[96];
    snprintf(p, sizeof p, "%s/bad/encoder.json", dir);
    spit(p, enc, strlen(enc));
    snprintf(p, sizeof p, "%s/bad/vocab.bpe", dir);
    spit(p, merges, strlen(merges));
    snprintf(p, sizeof p, "%s/bad", dir);
    nl_bpe *b;
    nl_status st = nl_bpe_load(&b, p);
    if (st == NL_OK) nl_bpe_free(b);
    return NL_CHECK(st != NL_OK && strstr(nl_last_error(), want), "expected a load error with '%s', got '%s'", want,
                    st == NL_OK ? "success" : nl_last_error());
}

/* a tiny byte-level vocabulary: the 256 byte characters, then the merges' tokens */
static char *tiny_encoder(const char *extra) {
    char *s = nl_xmalloc(8192);
    size_t n = (size_t)sprintf(s, "{");
    int id = 0;
    for (int c = 0; c < 256; c++) {
        int printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
        static int extra_n;
        if (c == 0) extra_n = 0;
        unsigned cp = printable ? (unsigned)c : 256u + (unsigned)extra_n++;
        if (cp == '"' || cp == '\\') n += (size_t)sprintf(s + n, "\"\\%c\": %d, ", cp, id++);
        else n += (size_t)sprintf(s + n, "\"\\u%04x\": %d, ", cp, id++);
    }
    sprintf(s + n, "%s}", extra);
    return s;
}

int test_bpe(void) {
    int fails = 0;
    NL_ASSERT(mkdtemp(dir));
    nl_bpe *b;
    if (nl_bpe_load(&b, "") != NL_OK) {
        printf("    cannot load the GPT-2 tokenizer: %s\n", nl_last_error());
        return 1;
    }
    fails += NL_CHECK(nl_bpe_vocab(b) == 50257 && nl_bpe_eot(b) == 50256, "GPT-2 vocabulary: %d tokens, eot %d",
                      nl_bpe_vocab(b), nl_bpe_eot(b));
    /* known ids, independent of the reference */
    nl_ids ids = { 0 };
    nl_bpe_encode(b, "Hello world", 11, &ids);
    fails += NL_CHECK(ids.n == 2 && ids.v[0] == 15496 && ids.v[1] == 995, "'Hello world' -> 15496 995");
    nl_ids_free(&ids);
    /* pieces of the regex, by hand */
    static const struct {
        const char *text;
        int pieces;
    } seg[] = {
        { "I'm here", 3 },
        { "a  b", 3 },
        { "a \n b", 3 },
        { "  x", 2 },
        { "x   ", 2 },
        { "'''s", 2 },
        { "a\xff\xfe"
          "b",
          3 },
        { "\xe2\x82", 1 },
    };
    for (size_t k = 0; k < sizeof seg / sizeof seg[0]; k++) {
        size_t got = count_pieces((const unsigned char *)seg[k].text, strlen(seg[k].text));
        fails += NL_CHECK(got == (size_t)seg[k].pieces, "'%s': %zu pieces, want %d", seg[k].text, got, seg[k].pieces);
    }
    /* the written corpus */
    size_t n;
    unsigned char *corpus = slurp("tests/data/bpe_corpus.txt", &n);
    fails += NL_CHECK(corpus != NULL, "tests/data/bpe_corpus.txt missing");
    if (corpus) fails += compare(b, "corpus", corpus, n);
    /* random text over many classes */
    enum { RN = 200000 };
    unsigned char *rt = nl_xmalloc(RN), *rep = nl_xmalloc(3 * RN);
    size_t rn = random_text(rt, RN, 42);
    fails += compare(b, "random text", rt, rn);
    /* invalid UTF-8 mixed into text: the pieces are the reference's on the U+FFFD-replaced text */
    static const char *const bad[] = { "\xff",         "\xfe\xfe",         "\xc0\xaf",     "\xe0\x80\x80",
                                       "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf5",         "\x80",
                                       "\xbf\xbf",     "\xe2\x82",         "\xf0\x9f\x98", "\xc3",
                                       "\xe2\x28\xa1" };
    nl_rng r;
    nl_rng_seed(&r, 7);
    for (size_t i = 0; i + 8 < rn; i += 1 + nl_rng_below(&r, 40)) {
        const char *s = bad[nl_rng_below(&r, sizeof bad / sizeof bad[0])];
        memcpy(rt + i, s, strlen(s));
    }
    size_t repn = replace_invalid(rt, rn, rep);
    fails += NL_CHECK(count_pieces(rt, rn) == count_pieces(rep, repn),
                      "invalid bytes split like U+FFFD: %zu vs %zu pieces", count_pieces(rt, rn),
                      count_pieces(rep, repn));
    fails += compare(b, "invalid UTF-8 (replaced, vs the reference)", rep, repn);
    ids = (nl_ids){ 0 };
    nl_bpe_encode(b, rt, rn, &ids);
    char *back;
    size_t blen;
    fails += NL_CHECK(nl_bpe_decode(b, ids.v, ids.n, &back, &blen) == NL_OK && blen == rn && !memcmp(back, rt, rn),
                      "raw invalid UTF-8 round-trips byte for byte");
    free(back);
    /* the heap merge (used for GPT-2's vocabulary) equals GPT-2's loop */
    fails += NL_CHECK(nl_bpe_heap_ok(b), "GPT-2's merges are in creation order: the heap merge is used");
    nl_ids ref = { 0 };
    nl_bpe_set_reference_merge(b, 1);
    nl_bpe_encode(b, rt, rn, &ref);
    nl_bpe_set_reference_merge(b, 0);
    fails += NL_CHECK(ref.n == ids.n && !memcmp(ref.v, ids.v, ids.n * sizeof(int)), "heap merge == reference merge loop");
    nl_ids_free(&ids);
    nl_ids_free(&ref);
    free(rt);
    free(rep);
    free(corpus);
    /* Tiny Shakespeare */
    unsigned char *ts = slurp("data/tinyshakespeare.txt", &n);
    fails += NL_CHECK(ts != NULL, "data/tinyshakespeare.txt not found");
    if (ts) fails += compare(b, "tinyshakespeare.txt", ts, n);
    free(ts);
    fails += NL_CHECK(nl_bpe_decode(b, (const int[]){ 50257 }, 1, &back, &blen) == NL_ERR_ARG, "decode rejects id 50257");
    nl_bpe_free(b);
    /* malformed tokenizer files: one message naming the problem */
    char p[128];
    snprintf(p, sizeof p, "%s/bad", dir);
    NL_ASSERT(mkdir(p, 0700) == 0);
    char *enc = tiny_encoder("\"ab\": 256");
    snprintf(p, sizeof p, "%s/bad/encoder.json", dir);
    spit(p, enc, strlen(enc));
    snprintf(p, sizeof p, "%s/bad/vocab.bpe", dir);
    spit(p, "#version: 0.2\r\na b\r\n", 20);
    snprintf(p, sizeof p, "%s/bad", dir);
    ids = (nl_ids){ 0 };
    if (nl_bpe_load(&b, p) == NL_OK) {
        nl_bpe_encode(b, "cab", 3, &ids);
        fails += NL_CHECK(nl_bpe_vocab(b) == 257 && nl_bpe_eot(b) == -1 && ids.n == 2 && ids.v[1] == 256,
                          "a tiny vocabulary (CRLF lines) loads and merges");
        nl_bpe_free(b);
    } else fails += NL_CHECK(0, "tiny vocabulary: %s", nl_last_error());
    nl_ids_free(&ids);
    fails += expect_load_error(enc, "#version: 0.2\na b\nx y\n",
                               "line 3: the merge or one of its parts is not in encoder.json");
    fails += expect_load_error(enc, "#version: 0.2\na c\n",
                               "line 2: the merge or one of its parts is not in encoder.json");
    fails += expect_load_error(enc, "#version: 0.2\nab\n", "line 2: expected two byte-level tokens");
    fails += expect_load_error("{\"a\": 0", "", "expected ',' or '}'");
    fails += expect_load_error("[1]", "", "no '{'");
    fails += expect_load_error("{\"a\": 0, \"b\": 0}", "", "duplicated");
    fails += expect_load_error("{\"\\u4e00\": 0}", "", "outside GPT-2's byte alphabet");
    free(enc);
    fails += NL_CHECK(nl_bpe_load(&b, "/nonexistent") == NL_ERR_IO && strstr(nl_last_error(), "/nonexistent/encoder.json"),
                      "missing files");
    fails += nl_test_rmdir(dir);
    return fails;
}
