/* evalmc.c -- see evalmc.h. The prompt formats follow EleutherAI's lm-evaluation-harness task
 * definitions (hellaswag utils.py, arc_easy.yaml, piqa.yaml, siqa.yaml, winogrande
 * preprocess_winogrande.py), with the harness's default target delimiter " ". */
#include "evalmc.h"

#include "common.h"
#include "json.h"
#include "tokenize.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const nl_mc_task_names[NL_MC_COUNT] = { "hellaswag", "arc", "piqa", "siqa", "winogrande", "generic" };

int nl_mc_task_from_name(const char *s) {
    for (int i = 0; i < NL_MC_COUNT; i++)
        if (!strcmp(s, nl_mc_task_names[i])) return i;
    return -1;
}

/* ---------------------------------------------------------------- small string helpers */

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *d = nl_xmalloc(n + 1);
    memcpy(d, s, n + 1);
    return d;
}

static char *concat(const char *a, const char *b, const char *c) {
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *d = nl_xmalloc(la + lb + lc + 1);
    memcpy(d, a, la);
    memcpy(d + la, b, lb);
    memcpy(d + la + lb, c, lc + 1);
    return d;
}

/* replaces every non-overlapping occurrence of `from`, left to right (Python's str.replace) */
static char *replace_all(char *s, const char *from, const char *to) {
    size_t lf = strlen(from), lt = strlen(to), n = 0;
    for (const char *p = s; (p = strstr(p, from)); p += lf) n++;
    char *d = nl_xmalloc(strlen(s) + n * lt + 1), *o = d;
    for (const char *p = s, *q;; p = q + lf) {
        q = strstr(p, from);
        size_t k = q ? (size_t)(q - p) : strlen(p);
        memcpy(o, p, k);
        o += k;
        if (!q) break;
        memcpy(o, to, lt);
        o += lt;
    }
    *o = 0;
    free(s);
    return d;
}

/* ASCII whitespace strip (Python's str.strip on the ASCII range) */
static char *strip(char *s) {
    char *b = s, *e = s + strlen(s);
    while (*b && isspace((unsigned char)*b)) b++;
    while (e > b && isspace((unsigned char)e[-1])) e--;
    memmove(s, b, (size_t)(e - b));
    s[e - b] = 0;
    return s;
}

/* HellaSwag's preprocess: strip, " [title]" -> ". ", drop [...] groups, "  " -> " " */
static char *hs_preprocess(const char *in) {
    char *s = strip(dup_str(in));
    s = replace_all(s, " [title]", ". ");
    char *o = s;
    for (const char *p = s; *p;) { /* non-greedy \[.*?\] : from '[' to the next ']' */
        const char *close = *p == '[' ? strchr(p, ']') : NULL;
        if (close) p = close + 1;
        else *o++ = *p++;
    }
    *o = 0;
    return replace_all(s, "  ", " ");
}

/* Python's str.capitalize on ASCII: first character upper, the rest lower */
static char *capitalize(const char *in) {
    char *s = dup_str(in);
    for (char *p = s; *p; p++) *p = (char)(p == s ? toupper((unsigned char)*p) : tolower((unsigned char)*p));
    return s;
}

/* ---------------------------------------------------------------- layouts */

typedef struct pctx {
    const char *path;
    int line;
} pctx;

static nl_status missing(const pctx *c, const char *field) {
    return NL_FAIL(NL_ERR_FORMAT, "%s:%d: missing or invalid field '%s'", c->path, c->line, field);
}

/* field must be an array of 2..NL_MC_MAX_CHOICES choices; a count outside that is named as such */
static nl_status choice_array(const pctx *c, const nl_json *a, const char *field) {
    if (!a || a->type != NL_JARR) return missing(c, field);
    if (a->n < 2 || a->n > NL_MC_MAX_CHOICES)
        return NL_FAIL(NL_ERR_FORMAT, "%s:%d: '%s' holds %d choice%s; a multiple-choice item needs 2 to %d", c->path,
                       c->line, field, a->n, a->n == 1 ? "" : "s", NL_MC_MAX_CHOICES);
    return NL_OK;
}

static nl_status get_str(const pctx *c, const nl_json *o, const char *key, const char **out) {
    const nl_json *v = nl_json_get(o, key);
    if (!v || v->type != NL_JSTR) return missing(c, key);
    *out = v->str;
    return NL_OK;
}

/* a label given as an integer or as a string of digits */
static nl_status get_label(const pctx *c, const nl_json *o, const char *key, int *out) {
    const nl_json *v = nl_json_get(o, key);
    if (v && v->type == NL_JNUM && v->num == floor(v->num) && fabs(v->num) < 1e6) {
        *out = (int)v->num;
        return NL_OK;
    }
    if (v && v->type == NL_JSTR && v->str[0] && strlen(v->str) < 7 && strspn(v->str, "0123456789") == strlen(v->str)) {
        *out = atoi(v->str);
        return NL_OK;
    }
    return missing(c, key);
}

static void add(nl_mc_item *it, char *ctx, char *cont) {
    it->ctx[it->n] = ctx;
    it->cont[it->n++] = cont;
}

/* candidates sharing one context: " " + each choice */
static void add_choices(nl_mc_item *it, const char *ctx, const char *const *choices, int n) {
    for (int i = 0; i < n; i++) add(it, dup_str(ctx), concat(" ", choices[i], ""));
}

static nl_status build(nl_mc_task task, const nl_json *o, const pctx *c, nl_mc_item *it) {
    const char *a, *b, *d, *e, *ch[NL_MC_MAX_CHOICES];
    switch (task) {
    case NL_MC_HELLASWAG: {
        const nl_json *ends = nl_json_get(o, "endings");
        NL_TRY(get_str(c, o, "activity_label", &a));
        NL_TRY(get_str(c, o, "ctx_a", &b));
        NL_TRY(get_str(c, o, "ctx_b", &d));
        NL_TRY(choice_array(c, ends, "endings"));
        NL_TRY(get_label(c, o, "label", &it->label));
        char *cap = capitalize(d), *t1 = concat(a, ": ", b), *t2 = concat(t1, " ", cap), *ctx = hs_preprocess(t2);
        free(cap), free(t1), free(t2);
        for (int i = 0; i < ends->n; i++) {
            if (nl_json_at(ends, i)->type != NL_JSTR) {
                free(ctx);
                return missing(c, "endings");
            }
            char *p = hs_preprocess(nl_json_at(ends, i)->str);
            add(it, dup_str(ctx), concat(" ", p, ""));
            free(p);
        }
        free(ctx);
        return NL_OK;
    }
    case NL_MC_ARC: { /* HF layout: question is a string, choices {text: [], label: []}; AI2 layout:
                         question {stem, choices: [{text, label}]} */
        const nl_json *q = nl_json_get(o, "question"), *chs = nl_json_get(o, "choices");
        const char *stem = NULL, *key;
        const char *labels[NL_MC_MAX_CHOICES];
        int n = 0;
        NL_TRY(get_str(c, o, "answerKey", &key));
        if (q && q->type == NL_JSTR && chs && chs->type == NL_JOBJ) {
            const nl_json *tx = nl_json_get(chs, "text"), *lb = nl_json_get(chs, "label");
            NL_TRY(choice_array(c, tx, "choices.text"));
            if (!lb || lb->type != NL_JARR || tx->n != lb->n) return missing(c, "choices.label");
            for (; n < tx->n; n++) {
                const nl_json *t = nl_json_at(tx, n), *l = nl_json_at(lb, n);
                if (t->type != NL_JSTR || l->type != NL_JSTR) return missing(c, "choices");
                ch[n] = t->str, labels[n] = l->str;
            }
            stem = q->str;
        } else if (q && q->type == NL_JOBJ) {
            NL_TRY(get_str(c, q, "stem", &stem));
            chs = nl_json_get(q, "choices");
            NL_TRY(choice_array(c, chs, "question.choices"));
            for (; n < chs->n; n++) {
                NL_TRY(get_str(c, nl_json_at(chs, n), "text", &ch[n]));
                NL_TRY(get_str(c, nl_json_at(chs, n), "label", &labels[n]));
            }
        } else {
            return missing(c, "question");
        }
        it->label = -1;
        for (int i = 0; i < n; i++)
            if (!strcmp(labels[i], key)) it->label = i;
        if (it->label < 0)
            return NL_FAIL(NL_ERR_FORMAT, "%s:%d: answerKey '%s' is not one of the choice labels", c->path, c->line, key);
        char *ctx = concat("Question: ", stem, "\nAnswer:");
        add_choices(it, ctx, ch, n);
        free(ctx);
        return NL_OK;
    }
    case NL_MC_PIQA: {
        NL_TRY(get_str(c, o, "goal", &a));
        NL_TRY(get_str(c, o, "sol1", &ch[0]));
        NL_TRY(get_str(c, o, "sol2", &ch[1]));
        NL_TRY(get_label(c, o, "label", &it->label));
        char *ctx = concat("Question: ", a, "\nAnswer:");
        add_choices(it, ctx, ch, 2);
        free(ctx);
        return NL_OK;
    }
    case NL_MC_SIQA: {
        NL_TRY(get_str(c, o, "context", &a));
        NL_TRY(get_str(c, o, "question", &b));
        NL_TRY(get_str(c, o, "answerA", &ch[0]));
        NL_TRY(get_str(c, o, "answerB", &ch[1]));
        NL_TRY(get_str(c, o, "answerC", &ch[2]));
        NL_TRY(get_label(c, o, "label", &it->label));
        it->label -= 1; /* "1".."3" */
        char *t = concat("Q: ", a, " "), *ctx = concat(t, b, "\nA:");
        add_choices(it, ctx, ch, 3);
        free(t), free(ctx);
        return NL_OK;
    }
    case NL_MC_WINOGRANDE: { /* partial evaluation: the option replaces "_", the rest is scored */
        NL_TRY(get_str(c, o, "sentence", &a));
        NL_TRY(get_str(c, o, "option1", &d));
        NL_TRY(get_str(c, o, "option2", &e));
        NL_TRY(get_label(c, o, "answer", &it->label));
        it->label -= 1; /* "1" / "2" */
        const char *blank = strchr(a, '_');
        if (!blank) return NL_FAIL(NL_ERR_FORMAT, "%s:%d: 'sentence' has no '_' blank", c->path, c->line);
        char *pre = nl_xmalloc((size_t)(blank - a) + 1), *rest = strip(dup_str(blank + 1));
        memcpy(pre, a, (size_t)(blank - a));
        pre[blank - a] = 0;
        add(it, concat(pre, d, ""), concat(" ", rest, ""));
        add(it, concat(pre, e, ""), concat(" ", rest, ""));
        free(pre), free(rest);
        return NL_OK;
    }
    case NL_MC_GENERIC: {
        const nl_json *chs = nl_json_get(o, "choices");
        NL_TRY(get_str(c, o, "context", &a));
        NL_TRY(get_label(c, o, "label", &it->label));
        NL_TRY(choice_array(c, chs, "choices"));
        for (int i = 0; i < chs->n; i++) {
            const nl_json *x = nl_json_at(chs, i);
            if (x->type != NL_JSTR) return missing(c, "choices");
            ch[i] = x->str;
        }
        add_choices(it, a, ch, chs->n);
        return NL_OK;
    }
    case NL_MC_COUNT: break;
    }
    NL_ASSERT(0);
    return NL_ERR_ARG;
}

nl_status nl_mc_parse(nl_mc_task task, const char *line, size_t len, const char *path, int lineno, nl_mc_item *it) {
    memset(it, 0, sizeof *it);
    nl_json_doc d;
    char where[NL_PATH_MAX + 16];
    snprintf(where, sizeof where, "%s:%d", path, lineno);
    NL_TRY(nl_json_parse(&d, line, len, where));
    pctx c = { path, lineno };
    nl_status st = d.root->type == NL_JOBJ ? build(task, d.root, &c, it)
                                           : NL_FAIL(NL_ERR_FORMAT, "%s: not a JSON object", where);
    nl_json_free(&d);
    if (st == NL_OK && (it->label < 0 || it->label >= it->n))
        st = NL_FAIL(NL_ERR_FORMAT, "%s:%d: label %d is outside the %d choices", path, lineno, it->label, it->n);
    for (int i = 0; st == NL_OK && i < it->n; i++)
        if (!it->ctx[i][0] || !it->cont[i][0])
            st = NL_FAIL(NL_ERR_FORMAT, "%s:%d: empty context or continuation", path, lineno);
    if (st != NL_OK) nl_mc_item_free(it);
    return st;
}

void nl_mc_item_free(nl_mc_item *it) {
    for (int i = 0; i < it->n; i++) free(it->ctx[i]), free(it->cont[i]);
    memset(it, 0, sizeof *it);
}

/* ---------------------------------------------------------------- scoring */

/* log P(cont | ctx) of every candidate, all candidates in one forward pass. The sequence is
 * ctx + cont truncated on the left to seq_len + 1 tokens. */
static nl_status score_item(nl_model *m, const nl_mc_item *it, const char *path, int lineno, int *buf, int *inp,
                            int *tgt, float *losses, double *ll, int *ntok) {
    const int T = m->cfg.seq_len;
    int len[NL_MC_MAX_CHOICES], Tmax = 0;
    for (int i = 0; i < it->n; i++) {
        int nc, nk;
        int *seq = buf + (size_t)i * 2 * (T + 1);
        /* the continuation is encoded on its own (byte tokens: identical to splitting the whole) */
        NL_TRY(nl_encode(&m->cfg, it->cont[i], seq + (T + 1), T + 1, &nk));
        if (nk > T)
            return NL_FAIL(NL_ERR_ARG, "%s:%d: continuation of %d tokens does not fit seq-len %d", path, lineno, nk, T);
        NL_TRY(nl_encode_tail(&m->cfg, it->ctx[i], seq, T + 1 - nk, &nc));
        memmove(seq + nc, seq + (T + 1), (size_t)nk * sizeof(int));
        len[i] = nc + nk;
        ntok[i] = nk;
        if (len[i] - 1 > Tmax) Tmax = len[i] - 1;
    }
    for (int i = 0; i < it->n; i++) {
        const int *seq = buf + (size_t)i * 2 * (T + 1);
        for (int t = 0; t < Tmax; t++) { /* right padding: causal attention never looks at it */
            inp[(size_t)i * Tmax + t] = t < len[i] - 1 ? seq[t] : 0;
            tgt[(size_t)i * Tmax + t] = t < len[i] - 1 ? seq[t + 1] : 0;
        }
    }
    nl_model_forward(m, inp, tgt, it->n, Tmax, 0.0f);
    m->be->to_host(losses, m->losses, (size_t)it->n * Tmax * sizeof(float));
    for (int i = 0; i < it->n; i++) {
        double s = 0;
        for (int t = len[i] - 1 - ntok[i]; t < len[i] - 1; t++) s -= losses[(size_t)i * Tmax + t];
        ll[i] = s;
    }
    return NL_OK;
}

static int argmax(const double *v, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

nl_status nl_mc_eval(nl_model *m, nl_mc_task task, const char *path, FILE *per_item, int progress, nl_mc_result *res) {
    FILE *f = fopen(path, "rb");
    if (!f) return NL_FAIL(NL_ERR_IO, "cannot open '%s'", path);
    const int T = m->cfg.seq_len;
    nl_model_alloc_acts(m, NL_MC_MAX_CHOICES, T);
    int *buf = nl_xmalloc((size_t)NL_MC_MAX_CHOICES * 2 * (T + 1) * sizeof(int));
    int *inp = nl_xmalloc((size_t)NL_MC_MAX_CHOICES * T * sizeof(int)),
        *tgt = nl_xmalloc((size_t)NL_MC_MAX_CHOICES * T * sizeof(int));
    float *losses = nl_xmalloc((size_t)NL_MC_MAX_CHOICES * T * sizeof(float));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0, correct[3] = { 0 };
    nl_status st = NL_OK;
    memset(res, 0, sizeof *res);
    while (st == NL_OK && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t k = strspn(line, " \t\r\n");
        if ((ssize_t)k == n) continue; /* blank line */
        nl_mc_item it;
        st = nl_mc_parse(task, line, (size_t)n, path, lineno, &it);
        if (st != NL_OK) break;
        double ll[NL_MC_MAX_CHOICES], per_tok[NL_MC_MAX_CHOICES], per_byte[NL_MC_MAX_CHOICES];
        int ntok[NL_MC_MAX_CHOICES];
        st = score_item(m, &it, path, lineno, buf, inp, tgt, losses, ll, ntok);
        if (st == NL_OK) {
            for (int i = 0; i < it.n; i++) {
                per_tok[i] = ll[i] / ntok[i];
                per_byte[i] = ll[i] /
                              (double)(strlen(it.cont[i]) > 1 ? strlen(it.cont[i]) - 1 : 1); /* without the delimiter */
            }
            correct[0] += argmax(ll, it.n) == it.label;
            correct[1] += argmax(per_tok, it.n) == it.label;
            correct[2] += argmax(per_byte, it.n) == it.label;
            res->items++;
            if (per_item) {
                fprintf(per_item, "{\"line\": %d, \"label\": %d, \"ll\": [", lineno, it.label);
                for (int i = 0; i < it.n; i++) fprintf(per_item, "%s%.9g", i ? ", " : "", ll[i]);
                fprintf(per_item, "], \"tokens\": [");
                for (int i = 0; i < it.n; i++) fprintf(per_item, "%s%d", i ? ", " : "", ntok[i]);
                fprintf(per_item, "]}\n");
            }
            if (progress && res->items % 10 == 0)
                fprintf(stderr, "\r\033[K%s: %d items, acc %.4f", nl_mc_task_names[task], res->items,
                        (double)correct[0] / res->items);
        }
        nl_mc_item_free(&it);
    }
    if (progress) fprintf(stderr, "\r\033[K");
    free(line);
    free(buf);
    free(inp);
    free(tgt);
    free(losses);
    fclose(f);
    if (st == NL_OK && res->items == 0) st = NL_FAIL(NL_ERR_FORMAT, "'%s' holds no items", path);
    if (st != NL_OK) return st;
    res->acc = (double)correct[0] / res->items;
    res->acc_norm_token = (double)correct[1] / res->items;
    res->acc_norm_byte = (double)correct[2] / res->items;
    return NL_OK;
}
