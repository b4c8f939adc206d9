/* report.c -- see report.h. Reading (runs, sweeps, analyses, all validated) then writing (sections of
 * the HTML page, each figure an inline SVG from svg.c). */
#include "report.h"

#include "common.h"
#include "json.h"
#include "placement.h"
#include "safetensors.h"
#include "svg.h"
#include "sweep.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

enum { MAX_RUNS = 48, MAX_SWEEPS = 8, MAX_LAYERS = 1024, MAX_DIAG_SHOWN = 5 };

/* one colour per placement, in nl_placement_id order; placements beyond the list reuse it */
static const char *const palette[] = { "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd",
                                       "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f" };
static const char *placement_color(int placement) {
    return placement < 0 ? "#000000" : palette[placement % (int)(sizeof palette / sizeof palette[0])];
}

/* a norm site of the diagnostic record's "norms": position on the depth axis (block l's attention
 * norms at l, its MLP norms at l + 0.5; emb_norm at 0, final_norm at L + 1) and kind */
enum { SITE_IN, SITE_OUT, SITE_POST, SITE_END, SITE_KINDS };
typedef struct rp_site {
    double x, gain, out_rms;
    int kind;
} rp_site;

typedef struct rp_diag {
    int step;
    double *x_var, *x_max, *x_ratio; /* (L+1) */
    double *grad;                    /* (L) */
    double *ovf_fwd, *ovf_bwd;       /* (L+2) overflow counts of a bf16/fp16 pass, NULL for fp32 */
    rp_site *sites;
    int nsites;
} rp_diag;

typedef struct rp_analysis {
    int L;
    double loss, *skip_delta, *angular; /* angular (L x L), NaN outside the triangle */
} rp_analysis;

enum { MAX_EVALS = 32 };

/* one line of RUN/evals.jsonl (normlab eval-mc) */
typedef struct rp_eval {
    char task[16];
    int items;
    double acc, acc_token, acc_byte;
} rp_eval;

struct rp_run {
    char dir[NL_PATH_MAX], label[160];
    rp_eval evals[MAX_EVALS];
    int nevals;
    int placement, layers, dim, steps_cfg;
    char dtype[8];   /* fp32 | bf16 | fp16 (config.txt; runs from before --dtype: fp32) */
    char extras[16]; /* " +gpas", " +sdd": options on top of the placement, for the label */
    double lr;
    unsigned long long seed;
    double *step, *loss, *vstep, *vloss, *gstep, *gnorm;
    int n, nv, ng, cap, capv, capg;
    int skipped;  /* fp16 steps skipped for an overflow (loss-scale back-offs) */
    double scale; /* the last step's loss scale (fp16), NaN otherwise */
    int spikes, diverged_step;
    char diverged[16];
    rp_diag *diag;
    int nd, capd;
    rp_analysis an;
    int has_an;
    int has_samples; /* --arch dit: RUN/samples.png, written at the end of training */
};

typedef struct rp_run rp_run;
typedef struct rp_sweep {
    char dir[NL_PATH_MAX];
    nl_sweep_result *res;
    rp_run *runs; /* runs[i]: the run of res[i] (config and metrics) */
    int n;
} rp_sweep;

typedef struct report {
    rp_run runs[MAX_RUNS];
    int nruns;
    rp_sweep sweeps[MAX_SWEEPS];
    int nsweeps;
    rp_analysis extra[MAX_RUNS]; /* analyses given as files */
    int extra_placement[MAX_RUNS];
    char extra_label[MAX_RUNS][160];
    int nextra;
} report;

/* ---------------------------------------------------------------- reading */

static void push2(double **a, double **b, int *n, int *cap, double x, double y) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        *a = nl_xresize(*a, (size_t)*n, (size_t)*cap, sizeof **a);
        *b = nl_xresize(*b, (size_t)*n, (size_t)*cap, sizeof **b);
    }
    (*a)[*n] = x;
    (*b)[*n] = y;
    (*n)++;
}

static void free_analysis(rp_analysis *a) {
    free(a->skip_delta);
    free(a->angular);
    memset(a, 0, sizeof *a);
}

static void free_run(rp_run *r) {
    free(r->step);
    free(r->loss);
    free(r->vstep);
    free(r->vloss);
    free(r->gstep);
    free(r->gnorm);
    for (int i = 0; i < r->nd; i++) free(r->diag[i].x_var), free(r->diag[i].sites);
    free(r->diag);
    free_analysis(&r->an);
}

static nl_status read_config(rp_run *r) {
    char path[NL_PATH_MAX + 32], line[NL_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/config.txt", r->dir);
    FILE *f = fopen(path, "r");
    if (!f) return NL_FAIL(NL_ERR_IO, "cannot open '%s': %s (not a run directory?)", path, strerror(errno));
    r->placement = -1;
    snprintf(r->dtype, sizeof r->dtype, "fp32");
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n') continue;
        char key[64], val[NL_PATH_MAX];
        if (sscanf(line, "%63s = %1023[^\n]", key, val) != 2) {
            if (sscanf(line, "%63s =", key) == 1) continue; /* empty value */
            fclose(f);
            return NL_FAIL(NL_ERR_FORMAT, "%s:%d: expected 'key = value'", path, lineno);
        }
        if (!strcmp(key, "norm")) {
            r->placement = nl_placement_from_name(val);
            if (r->placement < 0) {
                fclose(f);
                return NL_FAIL(NL_ERR_FORMAT, "%s:%d: unknown placement '%s'", path, lineno, val);
            }
        } else if (!strcmp(key, "layers")) r->layers = atoi(val);
        else if (!strcmp(key, "dim")) r->dim = atoi(val);
        else if (!strcmp(key, "steps")) r->steps_cfg = atoi(val);
        else if (!strcmp(key, "lr")) r->lr = strtod(val, NULL);
        else if (!strcmp(key, "seed")) r->seed = strtoull(val, NULL, 10);
        else if (!strcmp(key, "dtype")) snprintf(r->dtype, sizeof r->dtype, "%.4s", val);
        else if ((!strcmp(key, "gpas") || !strcmp(key, "sdd")) && !strcmp(val, "on"))
            snprintf(r->extras + strlen(r->extras), sizeof r->extras - strlen(r->extras), " +%s", key);
    }
    fclose(f);
    if (r->placement < 0 || r->layers < 1 || r->layers > MAX_LAYERS)
        return NL_FAIL(NL_ERR_FORMAT, "%s: missing or invalid 'norm' or 'layers'", path);
    return NL_OK;
}

/* copies a JSON number array of exactly n entries (null -> NaN) */
static nl_status get_arr(const nl_json *o, const char *key, int n, double *out, const char *where) {
    const nl_json *a = nl_json_get(o, key);
    if (!a || a->type != NL_JARR || a->n != n)
        return NL_FAIL(NL_ERR_FORMAT, "%s: \"%s\" must be an array of %d numbers", where, key, n);
    int k = 0;
    for (const nl_json *c = a->child; c; c = c->next, k++) {
        if (c->type != NL_JNUM && c->type != NL_JNULL)
            return NL_FAIL(NL_ERR_FORMAT, "%s: \"%s\"[%d] is not a number", where, key, k);
        out[k] = nl_json_num(c);
    }
    return NL_OK;
}

/* where a norm site sits on the depth axis and its kind; 0 for sites off the residual path (q/k norms,
 * NormFormer's MLP norm) */
static int site_pos(const char *site, int L, double *x, int *kind) {
    if (!strcmp(site, "emb_norm") || !strcmp(site, "final_norm")) {
        *x = site[0] == 'e' ? 0.0 : L + 1.0;
        *kind = SITE_END;
        return 1;
    }
    int l, n = 0;
    char sub[8], pos[8];
    if (sscanf(site, "blocks.%d.%7[a-z]_norm_%7[a-z]%n", &l, sub, pos, &n) != 3 || site[n] || l < 0 || l >= L) return 0;
    if (strcmp(sub, "attn") && strcmp(sub, "mlp")) return 0;
    *kind = !strcmp(pos, "in") ? SITE_IN : !strcmp(pos, "out") ? SITE_OUT : !strcmp(pos, "post") ? SITE_POST : -1;
    *x = l + 1 + (sub[0] == 'm' ? 0.5 : 0.0);
    return *kind >= 0;
}

/* the diagnostic record's "norms" (absent in runs from before it): gain and output RMS of each site */
static nl_status read_sites(const nl_json *o, int L, rp_diag *d, const char *where) {
    const nl_json *a = nl_json_get(o, "norms");
    if (!a) return NL_OK;
    if (a->type != NL_JARR) return NL_FAIL(NL_ERR_FORMAT, "%s: \"norms\" must be an array", where);
    d->sites = nl_xmalloc((size_t)(a->n ? a->n : 1) * sizeof *d->sites);
    for (const nl_json *c = a->child; c; c = c->next) {
        const char *site = nl_json_str(nl_json_get(c, "site"));
        const nl_json *g = nl_json_get(c, "gain_mean"), *rms = nl_json_get(c, "out_rms");
        if (c->type != NL_JOBJ || !site || !g || !rms || (g->type != NL_JNUM && g->type != NL_JNULL) ||
            (rms->type != NL_JNUM && rms->type != NL_JNULL))
            return NL_FAIL(NL_ERR_FORMAT, "%s: \"norms\" entries need site, gain_mean and out_rms", where);
        rp_site *t = &d->sites[d->nsites];
        if (!site_pos(site, L, &t->x, &t->kind)) continue;
        t->gain = nl_json_num(g);
        t->out_rms = nl_json_num(rms);
        d->nsites++;
    }
    return NL_OK;
}

static nl_status read_record(rp_run *r, const nl_json *o, const char *where) {
    if (o->type != NL_JOBJ) return NL_FAIL(NL_ERR_FORMAT, "%s: not a JSON object", where);
    const nl_json *dg = nl_json_get(o, "diag");
    if (dg) {
        const double st = nl_json_num(dg);
        if (!(st >= 0 && st < 1e9)) return NL_FAIL(NL_ERR_FORMAT, "%s: \"diag\" must be a step number", where);
        const int L = r->layers;
        if (r->nd == r->capd) {
            r->capd = r->capd ? 2 * r->capd : 16;
            r->diag = nl_xresize(r->diag, (size_t)r->nd, (size_t)r->capd, sizeof *r->diag);
        }
        rp_diag *d = &r->diag[r->nd];
        d->step = (int)st;
        d->x_var = nl_xmalloc((size_t)(6 * L + 7) * sizeof(double));
        d->x_max = d->x_var + L + 1;
        d->x_ratio = d->x_max + L + 1;
        d->grad = d->x_ratio + L + 1;
        d->sites = NULL;
        d->nsites = 0;
        const int lowp = nl_json_get(o, "overflow_fwd") != NULL;
        d->ovf_fwd = lowp ? d->grad + L : NULL;
        d->ovf_bwd = lowp ? d->ovf_fwd + L + 2 : NULL;
        nl_status s = get_arr(o, "x_var", L + 1, d->x_var, where);
        if (s == NL_OK) s = get_arr(o, "x_max", L + 1, d->x_max, where);
        if (s == NL_OK) s = get_arr(o, "x_max_over_median", L + 1, d->x_ratio, where);
        if (s == NL_OK) s = get_arr(o, "grad_block", L, d->grad, where);
        if (s == NL_OK && lowp) s = get_arr(o, "overflow_fwd", L + 2, d->ovf_fwd, where);
        if (s == NL_OK && lowp) s = get_arr(o, "overflow_bwd", L + 2, d->ovf_bwd, where);
        if (s == NL_OK) s = read_sites(o, L, d, where);
        if (s != NL_OK) {
            free(d->x_var);
            free(d->sites);
            return s;
        }
        r->nd++;
        return NL_OK;
    }
    const nl_json *sj = nl_json_get(o, "step");
    const double step = nl_json_num(sj);
    if (!(step >= 0 && step < 1e9)) return NL_FAIL(NL_ERR_FORMAT, "%s: a record needs \"step\" or \"diag\"", where);
    const char *why = nl_json_str(nl_json_get(o, "diverged"));
    if (why) {
        r->diverged_step = (int)step;
        snprintf(r->diverged, sizeof r->diverged, "%s", why);
        return NL_OK;
    }
    const nl_json *l = nl_json_get(o, "loss"), *v = nl_json_get(o, "val_loss"), *sp = nl_json_get(o, "spikes");
    if (!l || (l->type != NL_JNUM && l->type != NL_JNULL))
        return NL_FAIL(NL_ERR_FORMAT, "%s: \"loss\" missing or not a number", where);
    push2(&r->step, &r->loss, &r->n, &r->cap, step, nl_json_num(l));
    const nl_json *gn = nl_json_get(o, "grad_norm"), *ls = nl_json_get(o, "loss_scale");
    if (gn && gn->type != NL_JNUM && gn->type != NL_JNULL)
        return NL_FAIL(NL_ERR_FORMAT, "%s: \"grad_norm\" is not a number", where);
    if (gn) push2(&r->gstep, &r->gnorm, &r->ng, &r->capg, step, nl_json_num(gn));
    if (nl_json_num(nl_json_get(o, "skipped")) == 1) r->skipped++;
    if (ls && ls->type == NL_JNUM) r->scale = ls->num;
    if (v) {
        if (v->type != NL_JNUM) return NL_FAIL(NL_ERR_FORMAT, "%s: \"val_loss\" is not a number", where);
        push2(&r->vstep, &r->vloss, &r->nv, &r->capv, step, v->num);
    }
    if (sp && sp->type == NL_JNUM && sp->num >= 0) r->spikes = (int)sp->num;
    return NL_OK;
}

/* Calls fn on every line of a JSON Lines file; a last line without its newline that does not parse
 * (the writer was interrupted) is skipped with a warning, any other bad line is an error. */
static nl_status read_jsonl(const char *path, size_t max,
                            nl_status (*fn)(rp_run *r, const nl_json *o, const char *where), rp_run *r) {
    char *buf;
    size_t len;
    NL_TRY(nl_read_file(path, max, &buf, &len));
    nl_status st = NL_OK;
    int lineno = 0;
    for (size_t i = 0; i < len && st == NL_OK;) {
        size_t j = i;
        while (j < len && buf[j] != '\n') j++;
        lineno++;
        const int last_cut = j == len;
        char where[NL_PATH_MAX + 64];
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        if (j > i) {
            nl_json_doc d;
            st = nl_json_parse(&d, buf + i, j - i, where);
            if (st != NL_OK && last_cut) {
                fprintf(stderr, "normlab report: warning: %s: last line is cut short; skipped\n", where);
                st = NL_OK;
            } else if (st == NL_OK) {
                st = fn(r, d.root, where);
                nl_json_free(&d);
            }
        }
        i = j + 1;
    }
    free(buf);
    return st;
}

static nl_status read_metrics(rp_run *r) {
    char path[NL_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/metrics.jsonl", r->dir);
    return read_jsonl(path, (size_t)1 << 30, read_record, r);
}

static nl_status read_analysis(const char *path, rp_analysis *a, int *placement) {
    nl_json_doc d;
    NL_TRY(nl_json_load(&d, path, (size_t)1 << 26));
    const nl_json *o = d.root;
    const double L = nl_json_num(nl_json_get(o, "layers"));
    const char *nm = nl_json_str(nl_json_get(o, "norm"));
    const nl_json *ang = nl_json_get(o, "angular");
    memset(a, 0, sizeof *a);
    if (nl_json_num(nl_json_get(o, "analyze")) != 1 || !(L >= 1 && L <= MAX_LAYERS) || !nm ||
        nl_placement_from_name(nm) < 0 || !ang || ang->type != NL_JARR || ang->n != (int)L) {
        nl_json_free(&d);
        return NL_FAIL(NL_ERR_FORMAT, "%s: not a 'normlab analyze' output (needs analyze, norm, layers, angular)", path);
    }
    a->L = (int)L;
    *placement = nl_placement_from_name(nm);
    a->loss = nl_json_num(nl_json_get(o, "loss"));
    a->skip_delta = nl_xmalloc((size_t)a->L * sizeof(double));
    a->angular = nl_xmalloc((size_t)a->L * a->L * sizeof(double));
    nl_status st = get_arr(o, "skip_delta", a->L, a->skip_delta, path);
    for (int l = 0; l < a->L && st == NL_OK; l++) {
        const nl_json *row = nl_json_at(ang, l);
        for (int n = 0; n < a->L; n++) a->angular[(size_t)l * a->L + n] = NAN;
        if (!row || row->type != NL_JARR || row->n != a->L - l) {
            st = NL_FAIL(NL_ERR_FORMAT, "%s: angular row %d must have %d entries", path, l + 1, a->L - l);
            break;
        }
        nl_json_nums(row, a->angular + (size_t)l * a->L, a->L - l);
    }
    nl_json_free(&d);
    if (st != NL_OK) free_analysis(a);
    return st;
}

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}
static int is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* one line of RUN/evals.jsonl; the newest MAX_EVALS are kept */
static nl_status read_eval(rp_run *r, const nl_json *o, const char *where) {
    const char *task = nl_json_str(nl_json_get(o, "task"));
    const double items = nl_json_num(nl_json_get(o, "items")), acc = nl_json_num(nl_json_get(o, "acc")),
                 at = nl_json_num(nl_json_get(o, "acc_norm_token")), ab = nl_json_num(nl_json_get(o, "acc_norm_byte"));
    if (!task || strlen(task) >= sizeof r->evals[0].task || !(items >= 1 && items < 1e9) || !(acc >= 0 && acc <= 1) ||
        !(at >= 0 && at <= 1) || !(ab >= 0 && ab <= 1))
        return NL_FAIL(NL_ERR_FORMAT, "%s: not an eval-mc result (task, items, acc, acc_norm_token, acc_norm_byte)",
                       where);
    if (r->nevals == MAX_EVALS) memmove(r->evals, r->evals + 1, (MAX_EVALS - 1) * sizeof r->evals[0]), r->nevals--;
    rp_eval *e = &r->evals[r->nevals++];
    snprintf(e->task, sizeof e->task, "%s", task);
    e->items = (int)items, e->acc = acc, e->acc_token = at, e->acc_byte = ab;
    return NL_OK;
}

/* a run's config.txt and metrics.jsonl (a run of a sweep that has none yet: no records) */
static nl_status load_run(rp_run *r, const char *dir) {
    memset(r, 0, sizeof *r);
    r->scale = NAN;
    if (strlen(dir) >= sizeof r->dir) return NL_FAIL(NL_ERR_ARG, "'%s': path too long", dir);
    snprintf(r->dir, sizeof r->dir, "%.*s", (int)sizeof r->dir - 1, dir);
    nl_status st = read_config(r);
    char mp[NL_PATH_MAX + 32];
    snprintf(mp, sizeof mp, "%s/metrics.jsonl", r->dir);
    if (st == NL_OK && is_file(mp)) st = read_metrics(r);
    return st;
}

static nl_status add_run(report *rp, const char *dir, const char *note) {
    if (rp->nruns == MAX_RUNS) return NL_FAIL(NL_ERR_ARG, "more than %d runs; pass fewer directories", MAX_RUNS);
    rp_run *r = &rp->runs[rp->nruns];
    memset(r, 0, sizeof *r);
    r->scale = NAN;
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    nl_status st = read_config(r);
    if (st == NL_OK) st = read_metrics(r);
    char ep[NL_PATH_MAX + 32];
    snprintf(ep, sizeof ep, "%s/evals.jsonl", dir);
    if (st == NL_OK && is_file(ep)) st = read_jsonl(ep, (size_t)1 << 26, read_eval, r);
    char ap[NL_PATH_MAX + 32];
    snprintf(ap, sizeof ap, "%s/analyze.json", dir);
    if (st == NL_OK && is_file(ap)) {
        int nm;
        st = read_analysis(ap, &r->an, &nm);
        r->has_an = st == NL_OK;
        if (st == NL_OK && r->an.L != r->layers)
            st = NL_FAIL(NL_ERR_FORMAT, "%s: %d layers, but the run has %d", ap, r->an.L, r->layers);
    }
    if (st != NL_OK) {
        free_run(r);
        return st;
    }
    char sp[NL_PATH_MAX + 32];
    snprintf(sp, sizeof sp, "%s/samples.png", dir);
    r->has_samples = is_file(sp);
    char extras[sizeof r->extras]; /* a copy: gcc's -Wrestrict sees r->label and r->extras in one object */
    memcpy(extras, r->extras, sizeof extras);
    snprintf(r->label, sizeof r->label, "%s%s lr %g s%llu%s%s%s", nl_placements[r->placement].name, extras, r->lr,
             r->seed, strcmp(r->dtype, "fp32") ? " " : "", strcmp(r->dtype, "fp32") ? r->dtype : "", note);
    rp->nruns++;
    return NL_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static nl_status add_sweep(report *rp, const char *dir) {
    if (rp->nsweeps == MAX_SWEEPS) return NL_FAIL(NL_ERR_ARG, "more than %d sweeps", MAX_SWEEPS);
    DIR *dp = opendir(dir);
    if (!dp) return NL_FAIL(NL_ERR_IO, "cannot open '%s': %s", dir, strerror(errno));
    char **names = NULL;
    int nn = 0, cap = 0;
    for (struct dirent *e; (e = readdir(dp));) {
        if (e->d_name[0] == '.') continue;
        if (nn == cap) {
            cap = cap ? 2 * cap : 64;
            names = nl_xresize(names, (size_t)nn, (size_t)cap, sizeof *names);
        }
        names[nn] = nl_xmalloc(strlen(e->d_name) + 1);
        strcpy(names[nn++], e->d_name);
    }
    closedir(dp);
    qsort(names, (size_t)nn, sizeof *names, cmp_str);
    rp_sweep *s = &rp->sweeps[rp->nsweeps];
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    s->res = nl_xcalloc((size_t)(nn ? nn : 1) * sizeof *s->res);
    s->runs = nl_xcalloc((size_t)(nn ? nn : 1) * sizeof *s->runs);
    nl_status st = NL_OK;
    for (int i = 0; i < nn && st == NL_OK; i++) {
        char sub[2 * NL_PATH_MAX + 64], rj[2 * NL_PATH_MAX + 80];
        snprintf(sub, sizeof sub, "%s/%s", dir, names[i]);
        snprintf(rj, sizeof rj, "%s/result.json", sub);
        if (!is_file(rj)) continue;
        st = nl_sweep_read_result(sub, &s->res[s->n]);
        if (st == NL_OK) st = load_run(&s->runs[s->n], sub);
        if (st == NL_OK) s->n++;
        else free_run(&s->runs[s->n]);
    }
    /* each placement's best LR (lowest mean final val loss over finished seeds): its lowest seed's run */
    for (int i = 0; i < s->n && st == NL_OK; i++) {
        int first = 1;
        for (int k = 0; k < i; k++) first &= strcmp(s->res[k].placement, s->res[i].placement) != 0;
        if (!first) continue;
        double best = INFINITY, best_lr = NAN;
        for (int k = 0; k < s->n; k++) {
            if (strcmp(s->res[k].placement, s->res[i].placement)) continue;
            double sum = 0;
            int cnt = 0, div = 0;
            for (int j = 0; j < s->n; j++)
                if (!strcmp(s->res[j].placement, s->res[i].placement) && s->res[j].lr == s->res[k].lr) {
                    if (!strcmp(s->res[j].status, "done") && isfinite(s->res[j].val_loss))
                        sum += s->res[j].val_loss, cnt++;
                    else div++;
                }
            if (cnt && !div && sum / cnt < best) best = sum / cnt, best_lr = s->res[k].lr;
        }
        if (!isfinite(best)) continue;
        unsigned long long seed = ~0ull;
        int pick = -1;
        for (int k = 0; k < s->n; k++)
            if (!strcmp(s->res[k].placement, s->res[i].placement) && s->res[k].lr == best_lr && s->res[k].seed < seed)
                seed = s->res[k].seed, pick = k;
        char sub[NL_PATH_MAX + 160];
        snprintf(sub, sizeof sub, "%s/%s_lr%g_s%llu", dir, s->res[pick].placement, best_lr, seed);
        if (is_dir(sub)) st = add_run(rp, sub, " (best LR of sweep)");
    }
    for (int i = 0; i < nn; i++) free(names[i]);
    free(names);
    if (st == NL_OK && s->n == 0)
        st = NL_FAIL(NL_ERR_FORMAT, "'%s' holds neither config.txt nor sweep runs (*/result.json)", dir);
    if (st != NL_OK) {
        for (int i = 0; i < s->n; i++) free_run(&s->runs[i]);
        free(s->runs);
        free(s->res);
        return st;
    }
    rp->nsweeps++;
    return NL_OK;
}

static nl_status add_path(report *rp, const char *p) {
    char q[NL_PATH_MAX + 32];
    snprintf(q, sizeof q, "%s/config.txt", p);
    if (is_dir(p) && is_file(q)) return add_run(rp, p, "");
    if (is_dir(p)) return add_sweep(rp, p);
    if (is_file(p)) {
        if (rp->nextra == MAX_RUNS) return NL_FAIL(NL_ERR_ARG, "too many analyze files");
        int k = rp->nextra;
        NL_TRY(read_analysis(p, &rp->extra[k], &rp->extra_placement[k]));
        snprintf(rp->extra_label[k], sizeof rp->extra_label[k], "%s (%s)", nl_placements[rp->extra_placement[k]].name, p);
        rp->nextra++;
        return NL_OK;
    }
    return NL_FAIL(NL_ERR_IO, "'%s' does not exist", p);
}

/* ---------------------------------------------------------------- writing */

/* placement colour mixed with white: t = 0 full colour, 1 white */
static void tint(const char *hex, double t, char out[8]) {
    unsigned rgb[3];
    sscanf(hex + 1, "%2x%2x%2x", &rgb[0], &rgb[1], &rgb[2]);
    for (int c = 0; c < 3; c++) rgb[c] = (unsigned)lround(rgb[c] + t * (255 - rgb[c]));
    snprintf(out, 8, "#%02x%02x%02x", rgb[0] & 255, rgb[1] & 255, rgb[2] & 255);
}

static void fig_open(FILE *f) { fputs("<figure>\n", f); }
static void fig_close(FILE *f, const char *caption) {
    fputs("<figcaption>", f);
    nl_html_escape(f, caption);
    fputs("</figcaption></figure>\n", f);
}

/* a w x h chart with this title and axis labels; linear axes, the y range from the data alone (the
 * caller sets the other fields of nl_plot) */
static nl_plot plot_of(const char *title, const char *xlabel, const char *ylabel, int w, int h) {
    return (nl_plot){ .title = title, .xlabel = xlabel, .ylabel = ylabel, .w = w, .h = h, .ymin_force = NAN };
}

/* one figure: the ns series of s drawn on p as lines (or as grouped bars), then the caption */
static void line_figure(FILE *f, const nl_plot *p, const nl_series *s, int ns, const char *caption) {
    fig_open(f);
    nl_svg_lines(f, p, s, ns);
    fig_close(f, caption);
}
static void bar_figure(FILE *f, const nl_plot *p, const nl_series *s, int ns, const char *caption) {
    fig_open(f);
    nl_svg_bars(f, p, s, ns);
    fig_close(f, caption);
}

static void eq_label(char *b, size_t n, const rp_run *r, const char *extra) {
    snprintf(b, n, "%s%s: %s", r->label, extra, nl_placements[r->placement].eq);
}

static void legend_table(FILE *f, const report *rp) {
    int used[64] = { 0 };
    for (int i = 0; i < rp->nruns; i++) used[rp->runs[i].placement % 64] = 1;
    for (int i = 0; i < rp->nextra; i++) used[rp->extra_placement[i] % 64] = 1;
    for (int s = 0; s < rp->nsweeps; s++)
        for (int i = 0; i < rp->sweeps[s].n; i++) {
            int k = nl_placement_from_name(rp->sweeps[s].res[i].placement);
            if (k >= 0) used[k % 64] = 1;
        }
    fputs("<table><tr><th></th><th>placement</th><th>block equation</th><th>source</th></tr>\n", f);
    for (int k = 0; k < NL_PLACE_COUNT && k < 64; k++) {
        if (!used[k]) continue;
        fprintf(f, "<tr><td><span class=\"sw\" style=\"background:%s\"></span></td><td>%s</td><td>", placement_color(k),
                nl_placements[k].name);
        nl_html_escape(f, nl_placements[k].eq);
        fputs("</td><td>", f);
        nl_html_escape(f, nl_placements[k].ref);
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
}

static double last_finite(const double *v, int n) {
    for (int i = n - 1; i >= 0; i--)
        if (isfinite(v[i])) return v[i];
    return NAN;
}

static void runs_table(FILE *f, const report *rp) {
    fputs("<table><tr><th>run</th><th>directory</th><th>L</th><th>d</th><th>dtype</th><th>steps</th><th>final train loss</th>"
          "<th>final val loss</th><th>grad spikes</th><th>status</th><th>max |x| at end</th><th>skipped steps (fp16)</th><th>loss scale</th></tr>\n",
          f);
    for (int i = 0; i < rp->nruns; i++) {
        const rp_run *r = &rp->runs[i];
        fprintf(f, "<tr><td style=\"color:%s\">", placement_color(r->placement));
        nl_html_escape(f, r->label);
        fputs("</td><td>", f);
        nl_html_escape(f, r->dir);
        fprintf(f, "</td><td>%d</td><td>%d</td><td>", r->layers, r->dim);
        nl_html_escape(f, r->dtype);
        fprintf(f, "</td><td>%d</td><td>%.4f</td><td>%.4f</td><td>%d</td><td>", r->n ? (int)r->step[r->n - 1] : 0,
                r->n ? last_finite(r->loss, r->n) : NAN, r->nv ? r->vloss[r->nv - 1] : NAN, r->spikes);
        if (r->diverged[0]) fprintf(f, "diverged (%s) at step %d", r->diverged, r->diverged_step);
        else fputs(r->n && r->steps_cfg && (int)r->step[r->n - 1] == r->steps_cfg ? "finished" : "incomplete", f);
        double mx = NAN;
        if (r->nd) {
            mx = 0;
            for (int l = 0; l <= r->layers; l++) mx = fmax(mx, r->diag[r->nd - 1].x_max[l]);
        }
        fprintf(f, "</td><td>%.4g</td><td>", mx);
        if (isfinite(r->scale)) fprintf(f, "%d</td><td>%g</td></tr>\n", r->skipped, r->scale);
        else fputs("-</td><td>-</td></tr>\n", f);
    }
    fputs("</table>\n", f);
}

/* zero-shot multiple-choice results (normlab eval-mc), one row per run and task */
static void evals_section(FILE *f, const report *rp) {
    int any = 0;
    for (int i = 0; i < rp->nruns; i++) any += rp->runs[i].nevals;
    if (!any) return;
    fputs("<h2>Zero-shot evaluations</h2>\n<p>From each run's <code>evals.jsonl</code> (<code>normlab eval-mc</code>; "
          "formats in docs/evaluation.md). Accuracy in [0, 1]; the length-normalised variants divide the "
          "log-likelihood by the continuation's tokens or bytes.</p>\n<table><tr><th>run</th><th>task</th><th>items</th>"
          "<th>acc</th><th>acc_norm_token</th><th>acc_norm_byte</th></tr>\n",
          f);
    for (int i = 0; i < rp->nruns; i++)
        for (int k = 0; k < rp->runs[i].nevals; k++) {
            const rp_run *r = &rp->runs[i];
            const rp_eval *e = &r->evals[k];
            fprintf(f, "<tr><td style=\"color:%s\">", placement_color(r->placement));
            nl_html_escape(f, r->label);
            fputs("</td><td>", f);
            nl_html_escape(f, e->task);
            fprintf(f, "</td><td>%d</td><td>%.4f</td><td>%.4f</td><td>%.4f</td></tr>\n", e->items, e->acc, e->acc_token,
                    e->acc_byte);
        }
    fputs("</table>\n", f);
}

/* 0, 1, 2 for the first, second, third... run of the same placement: solid, dashed, dotted */
static int run_dash(const report *rp, int i) {
    int k = 0;
    for (int j = 0; j < i; j++) k += rp->runs[j].placement == rp->runs[i].placement;
    return k % 3;
}

/* a curve of run i against the step: its placement's colour, its dash (run_dash) */
static nl_series run_series(const report *rp, int i, const char *label, const double *x, const double *y, int n,
                            double width) {
    return (nl_series){ .label = label,
                        .color = placement_color(rp->runs[i].placement),
                        .x = x,
                        .y = y,
                        .n = n,
                        .width = width,
                        .dash = run_dash(rp, i) };
}

static void loss_section(FILE *f, const report *rp) {
    nl_series s[2 * MAX_RUNS];
    char lab[MAX_RUNS][400];
    int ns = 0;
    for (int i = 0; i < rp->nruns; i++) {
        const rp_run *r = &rp->runs[i];
        eq_label(lab[i], sizeof lab[i], r, "");
        s[ns++] = run_series(rp, i, NULL, r->step, r->loss, r->n, 0.8);
        s[ns] = run_series(rp, i, lab[i], r->vstep, r->vloss, r->nv, 2.2);
        s[ns++].marker = 1;
    }
    const nl_plot p = plot_of("Loss curves", "optimizer step", "cross-entropy (nats/token)", 900, 380);
    line_figure(f, &p, s, ns,
                "Thin lines: training loss of each step; thick lines with dots: validation loss. One colour per placement; "
                "runs of the same placement solid, dashed, dotted in turn.");
    ns = 0;
    for (int i = 0; i < rp->nruns; i++) {
        const rp_run *r = &rp->runs[i];
        if (r->ng) s[ns++] = run_series(rp, i, lab[i], r->gstep, r->gnorm, r->ng, 1);
    }
    if (!ns) return;
    nl_plot g = plot_of("Gradient norm vs step", "optimizer step", "||gradient||_2 before clipping", 900, 380);
    g.ylog = 1;
    line_figure(f, &g, s, ns,
                "The global gradient norm of each step (metrics.jsonl grad_norm, of the unscaled gradients, before clipping); "
                "non-finite values are gaps.");
}

/* the norm sites' gain and output RMS against depth at the last diagnostic pass, per run */
static void sites_section(FILE *f, const report *rp) {
    static const char *const kind_name[SITE_KINDS] = { "IN", "OUT", "POST", "emb / final" };
    int any = 0;
    for (int i = 0; i < rp->nruns; i++) any |= rp->runs[i].nd > 0 && rp->runs[i].diag[rp->runs[i].nd - 1].nsites > 0;
    if (!any) return;
    enum { CAP = 2 * MAX_LAYERS + 4 };
    double *xs = nl_xmalloc((size_t)SITE_KINDS * MAX_RUNS * CAP * sizeof(double)),
           *ys = nl_xmalloc((size_t)SITE_KINDS * MAX_RUNS * CAP * sizeof(double));
    char(*lab)[420] = nl_xmalloc((size_t)SITE_KINDS * MAX_RUNS * sizeof *lab);
    for (int which = 0; which < 2; which++) {
        nl_series s[SITE_KINDS * MAX_RUNS];
        int ns = 0;
        for (int i = 0; i < rp->nruns; i++) {
            const rp_run *r = &rp->runs[i];
            if (!r->nd) continue;
            const rp_diag *d = &r->diag[r->nd - 1];
            for (int k = 0; k < SITE_KINDS; k++) {
                int n = 0;
                double *x = xs + (size_t)ns * CAP, *y = ys + (size_t)ns * CAP;
                for (int j = 0; j < d->nsites && n < CAP; j++)
                    if (d->sites[j].kind == k)
                        x[n] = d->sites[j].x, y[n++] = which ? d->sites[j].out_rms : d->sites[j].gain;
                if (!n) continue;
                snprintf(lab[ns], sizeof lab[ns], "%s: %s norms (step %d)", r->label, kind_name[k], d->step);
                s[ns] = (nl_series){ .label = lab[ns],
                                     .color = placement_color(r->placement),
                                     .x = x,
                                     .y = y,
                                     .n = n,
                                     .dash = k == SITE_END ? 0 : k,
                                     .marker = k == SITE_END ? 2 : 1,
                                     .width = 1.6 };
                ns++;
            }
        }
        nl_plot p = plot_of(which ? "Norm output RMS vs depth" : "Norm gain vs depth",
                            "block l (attention norms at l, MLP norms at l + 0.5; embedding norm at 0, final norm at L + 1)",
                            which ? "RMS of the norm's output" : "mean gain of the norm", 900, 360);
        p.ylog = which;
        line_figure(f, &p, s, ns,
                    which ? "RMS over all entries of each norm's output on the diagnostic batch at the last pass (for lns it includes the "
                            "1/sqrt(l) scale). Solid: IN (branch input) norms, dashed: OUT (branch output), dotted: POST (after the add), "
                            "crosses: embedding and final norms."
                          : "Mean of each norm's gain vector at the last diagnostic pass (1 at init; gemma stores 1 + s and shows the "
                            "applied gain). Solid: IN norms, dashed: OUT, dotted: POST, crosses: embedding and final norms.");
    }
    free(xs);
    free(ys);
    free(lab);
}

/* bars of overflow counts per part (0: embedding, 1..L: blocks, L+1: head) summed over the diagnostic
 * passes of each group of runs: one bar series per group and direction with any overflow */
static void overflow_chart(FILE *f, const char *title, const rp_run *const *runs, const int *group, int nruns,
                           const char *const *glabel, const char *const *gcolor, int ngroups) {
    int L = 0;
    for (int i = 0; i < nruns; i++) L = runs[i]->layers > L ? runs[i]->layers : L;
    double *part = nl_xmalloc((size_t)(L + 2) * sizeof(double)),
           *cnt = nl_xcalloc((size_t)ngroups * 2 * (L + 2) * sizeof(double));
    for (int l = 0; l < L + 2; l++) part[l] = l;
    for (int i = 0; i < nruns; i++)
        for (int k = 0; k < runs[i]->nd; k++) {
            const rp_diag *d = &runs[i]->diag[k];
            if (!d->ovf_fwd) continue;
            for (int l = 0; l < runs[i]->layers + 2; l++) {
                const int at = l == runs[i]->layers + 1 ? L + 1 : l; /* heads of shallower runs line up */
                cnt[(size_t)(2 * group[i]) * (L + 2) + at] += isfinite(d->ovf_fwd[l]) ? d->ovf_fwd[l] : 0;
                cnt[(size_t)(2 * group[i] + 1) * (L + 2) + at] += isfinite(d->ovf_bwd[l]) ? d->ovf_bwd[l] : 0;
            }
        }
    nl_series *s = nl_xcalloc((size_t)2 * ngroups * sizeof *s);
    char(*lab)[320] = nl_xcalloc((size_t)2 * ngroups * sizeof *lab),
    (*col)[8] = nl_xcalloc((size_t)2 * ngroups * sizeof *col);
    int ns = 0;
    double total = 0;
    for (int g = 0; g < 2 * ngroups; g++) {
        double sum = 0;
        for (int l = 0; l < L + 2; l++) sum += cnt[(size_t)g * (L + 2) + l];
        total += sum;
        if (sum == 0) continue;
        snprintf(lab[ns], sizeof lab[ns], "%s: %s (%.0f)", glabel[g / 2], g % 2 ? "backward" : "forward", sum);
        tint(gcolor[g / 2], g % 2 ? 0.5 : 0.0, col[ns]);
        s[ns] = (nl_series){ .label = lab[ns], .color = col[ns], .x = part, .y = cnt + (size_t)g * (L + 2), .n = L + 2 };
        ns++;
    }
    if (!ns) { /* an empty chart still says where overflow was looked for */
        s[0] = (nl_series){ .label = "no overflow in any pass", .color = "#7f7f7f", .x = part, .y = cnt, .n = L + 2 };
        ns = 1;
    }
    const nl_plot p = plot_of(title, "part: 0 embedding, 1..L blocks, L + 1 final norm and head",
                              "values overflowed to inf", 900, 320);
    char cap[400];
    snprintf(cap, sizeof cap,
             "Values that storing an activation (forward; full colour) or an activation gradient (backward; light) in the "
             "run's dtype turned from finite to inf, summed over the diagnostic passes (%.0f in all). Groups with none are left out.",
             total);
    bar_figure(f, &p, s, ns, cap);
    free(part);
    free(cnt);
    free(s);
    free(lab);
    free(col);
}

static void lowp_section(FILE *f, const report *rp) {
    const rp_run *runs[MAX_RUNS];
    int group[MAX_RUNS], n = 0;
    const char *labels[MAX_RUNS], *colors[MAX_RUNS];
    for (int i = 0; i < rp->nruns; i++) {
        int lowp = 0;
        for (int k = 0; k < rp->runs[i].nd; k++) lowp |= rp->runs[i].diag[k].ovf_fwd != NULL;
        if (!lowp) continue;
        runs[n] = &rp->runs[i], group[n] = n, labels[n] = rp->runs[i].label,
        colors[n] = placement_color(rp->runs[i].placement);
        n++;
    }
    if (n) overflow_chart(f, "Overflow counts per layer (bf16 / fp16 runs)", runs, group, n, labels, colors, n);
}

static const double *diag_field(const rp_diag *d, int which) {
    return which == 0 ? d->x_var : which == 1 ? d->x_max : which == 2 ? d->x_ratio : d->grad;
}

static void depth_sections(FILE *f, const report *rp) {
    int any = 0;
    for (int i = 0; i < rp->nruns; i++) any |= rp->runs[i].nd > 0;
    if (!any) {
        fputs("<p>No diagnostics in these runs (train with <code>--diag-every N</code>).</p>\n", f);
        return;
    }
    double *depth = nl_xmalloc((MAX_LAYERS + 1) * sizeof(double));
    for (int l = 0; l <= MAX_LAYERS; l++) depth[l] = l + 1;
    /* variance vs depth at several steps, one panel per run */
    fputs("<h3>Hidden-state variance vs depth during training</h3>\n<div class=\"row\">\n", f);
    for (int i = 0; i < rp->nruns; i++) {
        const rp_run *r = &rp->runs[i];
        if (!r->nd) continue;
        nl_series s[MAX_DIAG_SHOWN];
        char lab[MAX_DIAG_SHOWN][48], col[MAX_DIAG_SHOWN][8], title[400];
        int ns = 0;
        for (int k = 0; k < MAX_DIAG_SHOWN && k < r->nd; k++) {
            const int di = r->nd <= MAX_DIAG_SHOWN ? k : (int)lround((double)k * (r->nd - 1) / (MAX_DIAG_SHOWN - 1));
            const int shown = r->nd < MAX_DIAG_SHOWN ? r->nd : MAX_DIAG_SHOWN;
            snprintf(lab[ns], sizeof lab[ns], "step %d", r->diag[di].step);
            tint(placement_color(r->placement), shown > 1 ? 0.75 * (1.0 - (double)k / (shown - 1)) : 0.0, col[ns]);
            s[ns] = (nl_series){
                .label = lab[ns], .color = col[ns], .x = depth, .y = r->diag[di].x_var, .n = r->layers + 1, .marker = 1
            };
            ns++;
        }
        snprintf(title, sizeof title, "%s", r->label);
        nl_plot p = plot_of(title, "stream index l (x_l enters block l; L+1: after the last block)",
                            "Var(x_l), mean per-token variance", 440, 300);
        p.ylog = 1, p.xint = 1;
        char cap[400];
        snprintf(cap, sizeof cap, "%s: %s. Lighter: earlier steps; darkest: the last diagnostic step.",
                 nl_placements[r->placement].name, nl_placements[r->placement].eq);
        line_figure(f, &p, s, ns, cap);
    }
    fputs("</div>\n", f);
    /* combined panels at init (dashed) and end (solid) */
    static const struct {
        const char *title, *ylabel, *caption;
        int which, log;
    } panels[] = {
        { "Hidden-state variance vs depth", "Var(x_l) (squared activation units)",
          "Solid: last diagnostic step; dashed: step 0 (init).", 0, 1 },
        { "Max |x| vs depth (massive activations, fp16 headroom)", "max |x_l| over tokens and channels",
          "Solid: last diagnostic step; dashed: init. The dashed black line is the fp16 maximum 65504.", 1, 1 },
        { "Max |x| / median |x| vs depth", "max |x_l| / median |x_l|",
          "Ratios of ~1000 mark 'massive' activations (Sun et al. 2024). Solid: end; dashed: init.", 2, 1 },
        { "Gradient norm per block vs depth", "||grad of block l||_2",
          "L2 norm of all parameter gradients of block l on the fixed diagnostic batch. Solid: end; dashed: init.", 3, 1 },
    };
    for (size_t pi = 0; pi < sizeof panels / sizeof panels[0]; pi++) {
        nl_series s[2 * MAX_RUNS];
        char lab[MAX_RUNS][400];
        int ns = 0;
        for (int i = 0; i < rp->nruns; i++) {
            const rp_run *r = &rp->runs[i];
            if (!r->nd) continue;
            const int n = panels[pi].which == 3 ? r->layers : r->layers + 1;
            char st[32];
            snprintf(st, sizeof st, " (step %d)", r->diag[r->nd - 1].step);
            eq_label(lab[i], sizeof lab[i], r, st);
            s[ns++] = (nl_series){ .label = lab[i],
                                   .color = placement_color(r->placement),
                                   .x = depth,
                                   .y = diag_field(&r->diag[r->nd - 1], panels[pi].which),
                                   .n = n,
                                   .marker = 1,
                                   .width = 2 };
            if (r->nd > 1 && r->diag[0].step == 0)
                s[ns++] = (nl_series){ .label = NULL,
                                       .color = placement_color(r->placement),
                                       .x = depth,
                                       .y = diag_field(&r->diag[0], panels[pi].which),
                                       .n = n,
                                       .dash = 1 };
        }
        nl_plot p = plot_of(panels[pi].title,
                            panels[pi].which == 3 ? "block l"
                                                  : "stream index l (L+1: after the last block, before the final norm)",
                            panels[pi].ylabel, 900, 360);
        p.ylog = panels[pi].log, p.xint = 1;
        if (panels[pi].which == 1) p.hline = 65504.0, p.hline_label = "fp16 max 65504";
        line_figure(f, &p, s, ns, panels[pi].caption);
    }
    free(depth);
}

/* a placement's runs at one LR in a sweep's plots: placement colour, lighter for lower LRs; and dashes */
static double lr_shade(int b, int nl) { return nl > 1 ? 0.6 * (1.0 - (double)b / (nl - 1)) : 0.0; }
static int lr_dash(int b, int nl) { return (nl - 1 - b) % 3; }

/* "Degraded": a mean final val loss more than this many nats above the placement's best (experiments/claims.py --margin) */
static const double fail_margin = 0.05;

/* Per placement: the best LR, the first LR where a seed diverged, the first LR above the best whose
 * mean val loss is worse than the best by more than fail_margin (or where no seed finished). */
static void failing_section(FILE *f, const int *placements, int np, const double *lrs, int nl, const double *mean,
                            const int *ndiv, const int *nrun, const int *nfin) {
    double *px = nl_xmalloc((size_t)(np * nl + 3 * np) * 2 * sizeof(double)), *py = px + np * nl + 3 * np;
    double *bx = px + np * nl, *dgx = bx + np, *dvx = dgx + np, *by = py + np * nl, *dgy = by + np, *dvy = dgy + np;
    int *best = nl_xmalloc((size_t)np * 3 * sizeof(int)), *fdeg = best + np, *fdiv = fdeg + np, npts = 0;
    const char **names = nl_xmalloc((size_t)(np ? np : 1) * sizeof *names);
    for (int a = 0; a < np; a++) {
        const int *dv = ndiv + a * nl, *nr = nrun + a * nl, *nf = nfin + a * nl;
        const double *m = mean + a * nl;
        names[a] = nl_placements[placements[a]].name;
        best[a] = fdeg[a] = fdiv[a] = -1;
        for (int b = 0; b < nl; b++) {
            if (!nr[b]) continue;
            px[npts] = a, py[npts++] = lrs[b];
            if (dv[b] && fdiv[a] < 0) fdiv[a] = b;
            if (!dv[b] && nf[b] == nr[b] && (best[a] < 0 || m[b] < m[best[a]])) best[a] = b;
        }
        for (int b = best[a] + 1; best[a] >= 0 && b < nl && fdeg[a] < 0; b++)
            if (nr[b] && (!nf[b] || m[b] > m[best[a]] + fail_margin)) fdeg[a] = b;
        bx[a] = a - 0.15, by[a] = best[a] >= 0 ? lrs[best[a]] : NAN;
        dgx[a] = a, dgy[a] = fdeg[a] >= 0 ? lrs[fdeg[a]] : NAN;
        dvx[a] = a + 0.15, dvy[a] = fdiv[a] >= 0 ? lrs[fdiv[a]] : NAN;
    }
    char deg_label[96];
    snprintf(deg_label, sizeof deg_label, "first LR degraded by > %g nats over the best", fail_margin);
    const nl_series s[4] = {
        { .label = "LRs run", .color = "#c7c7c7", .x = px, .y = py, .n = npts, .marker = 3 },
        { .label = "best LR (lowest mean val loss, no seed diverged)",
          .color = "#2ca02c",
          .x = bx,
          .y = by,
          .n = np,
          .marker = 3 },
        { .label = deg_label, .color = "#ff7f0e", .x = dgx, .y = dgy, .n = np, .marker = 3 },
        { .label = "first LR where a seed diverged", .color = "#d62728", .x = dvx, .y = dvy, .n = np, .marker = 2 },
    };
    nl_plot p = plot_of("First failing LR per placement", "placement", "peak learning rate", 900, 340);
    p.ylog = 1, p.xnames = names, p.nxnames = np;
    line_figure(f, &p, s, 4,
                "For each placement: every LR of the sweep (grey), its best LR, the first LR above the best whose mean final val loss "
                "is worse by more than the margin (or where no seed finished), and the lowest LR at which any seed diverged. "
                "A placement without an orange dot or red cross did not fail up to its highest LR.");
    fputs("<table><tr><th>placement</th><th>best LR (mean val loss)</th><th>first degraded LR (mean val loss)</th>"
          "<th>first diverging LR (diverged / runs)</th><th>highest LR run</th></tr>\n",
          f);
    for (int a = 0; a < np; a++) {
        fprintf(f, "<tr><td style=\"color:%s\">%s</td><td>", placement_color(placements[a]), names[a]);
        if (best[a] >= 0) fprintf(f, "%g (%.4f)", lrs[best[a]], mean[a * nl + best[a]]);
        else fputs("-", f);
        fputs("</td><td>", f);
        if (fdeg[a] >= 0 && isfinite(mean[a * nl + fdeg[a]]))
            fprintf(f, "%g (%.4f)", lrs[fdeg[a]], mean[a * nl + fdeg[a]]);
        else if (fdeg[a] >= 0) fprintf(f, "%g (no seed finished)", lrs[fdeg[a]]);
        else fputs("none", f);
        fputs("</td><td>", f);
        if (fdiv[a] >= 0) fprintf(f, "%g (%d / %d)", lrs[fdiv[a]], ndiv[a * nl + fdiv[a]], nrun[a * nl + fdiv[a]]);
        else fputs("none", f);
        double hi = NAN;
        for (int b = 0; b < nl; b++)
            if (nrun[a * nl + b]) hi = lrs[b];
        fprintf(f, "</td><td>%g</td></tr>\n", hi);
    }
    fputs("</table>\n", f);
    free(px);
    free(best);
    free(names);
}

/* One panel per placement: training loss (field 0) or gradient norm (1) against the step, one curve
 * per LR (shade and dash), each the mean over seeds with a band from the lowest to the highest seed,
 * after a trailing mean over a window of steps; a cross where a seed diverged. */
static void sweep_curves(FILE *f, const rp_sweep *sw, int placement, const double *lrs, int nl, int field) {
    int maxstep = 0;
    for (int i = 0; i < sw->n; i++) {
        const rp_run *r = &sw->runs[i];
        const int n = field ? r->ng : r->n;
        if (r->placement == placement && n) maxstep = (int)fmax(maxstep, (field ? r->gstep : r->step)[n - 1]);
    }
    if (maxstep < 1) return;
    const int win = maxstep / 60 > 1 ? maxstep / 60 : 1, W = maxstep + 1;
    double *x = nl_xmalloc((size_t)W * sizeof(double)), *tmp = nl_xmalloc((size_t)W * sizeof(double));
    double *mean = nl_xmalloc((size_t)nl * W * 3 * sizeof(double)), *lo = mean + (size_t)nl * W,
           *hi = lo + (size_t)nl * W;
    double *dx = nl_xmalloc((size_t)(sw->n + 1) * 2 * sizeof(double)), *dy = dx + sw->n + 1;
    int *cnt = nl_xmalloc((size_t)W * sizeof(int)), nd = 0;
    nl_series *s = nl_xcalloc((size_t)(nl + 1) * sizeof *s);
    char(*lab)[96] = nl_xcalloc((size_t)nl * sizeof *lab), (*col)[8] = nl_xcalloc((size_t)nl * sizeof *col);
    int ns = 0;
    for (int t = 0; t < W; t++) x[t] = t;
    for (int b = 0; b < nl; b++) {
        double *m = mean + (size_t)b * W, *l = lo + (size_t)b * W, *h = hi + (size_t)b * W;
        int seeds = 0, div = 0;
        for (int t = 0; t < W; t++) m[t] = 0, l[t] = INFINITY, h[t] = -INFINITY, cnt[t] = 0;
        for (int i = 0; i < sw->n; i++) {
            const rp_run *r = &sw->runs[i];
            if (r->placement != placement || sw->res[i].lr != lrs[b]) continue;
            const double *st = field ? r->gstep : r->step, *v = field ? r->gnorm : r->loss;
            const int n = field ? r->ng : r->n;
            seeds++;
            for (int t = 0; t < W; t++) tmp[t] = NAN;
            double last = NAN;
            for (int k = 0; k < n; k++) {
                double sum = 0;
                int c = 0;
                for (int j = k; j >= 0 && j > k - win; j--)
                    if (isfinite(v[j])) sum += v[j], c++;
                const int t = (int)st[k];
                if (t >= 0 && t < W && c && isfinite(v[k])) tmp[t] = last = sum / c;
            }
            for (int t = 0; t < W; t++)
                if (isfinite(tmp[t])) m[t] += tmp[t], cnt[t]++, l[t] = fmin(l[t], tmp[t]), h[t] = fmax(h[t], tmp[t]);
            if (!strcmp(sw->res[i].status, "diverged") && isfinite(last))
                dx[nd] = r->diverged_step, dy[nd++] = last, div++;
            else if (!strcmp(sw->res[i].status, "diverged")) div++;
        }
        if (!seeds) continue;
        for (int t = 0; t < W; t++) {
            m[t] = cnt[t] ? m[t] / cnt[t] : NAN;
            if (!cnt[t]) l[t] = h[t] = NAN;
        }
        snprintf(lab[b], sizeof lab[b], "lr %g: %d seed%s%s", lrs[b], seeds, seeds == 1 ? "" : "s",
                 div ? ", diverged:" : "");
        if (div) snprintf(lab[b] + strlen(lab[b]), sizeof lab[b] - strlen(lab[b]), " %d", div);
        tint(placement_color(placement), lr_shade(b, nl), col[b]);
        s[ns++] = (nl_series){ .label = lab[b],
                               .color = col[b],
                               .x = x,
                               .y = m,
                               .lo = seeds > 1 ? l : NULL,
                               .hi = seeds > 1 ? h : NULL,
                               .n = W,
                               .dash = lr_dash(b, nl),
                               .width = 1.4 };
    }
    if (nd)
        s[ns++] = (nl_series){ .label = "a seed diverged", .color = "#000000", .x = dx, .y = dy, .n = nd, .marker = 2 };
    char title[160], cap[400];
    snprintf(title, sizeof title, "%s: %s by LR", nl_placements[placement].name,
             field ? "gradient norm" : "training loss");
    nl_plot p = plot_of(title, "optimizer step", field ? "||gradient||_2" : "training loss (nats/token)", 440, 300);
    p.ylog = field, p.xint = 1;
    snprintf(cap, sizeof cap,
             "Mean over seeds of the %s (trailing mean over %d step%s), band: lowest to highest seed; "
             "lighter and dashed in turn: lower LRs.",
             field ? "gradient norm" : "training loss", win, win == 1 ? "" : "s");
    line_figure(f, &p, s, ns, cap);
    free(x);
    free(tmp);
    free(mean);
    free(dx);
    free(cnt);
    free(s);
    free(lab);
    free(col);
}

static void sweep_section(FILE *f, const rp_sweep *sw) {
    fputs("<h3>Sweep ", f);
    nl_html_escape(f, sw->dir);
    fputs("</h3>\n", f);
    /* per placement: mean +- sd of the final val loss over finished seeds at each LR; crosses: LRs with diverged runs */
    enum { MAXP = 32, MAXL = 64 };
    int placements[MAXP], np = 0;
    double lrs[MAXL];
    int nl = 0;
    for (int i = 0; i < sw->n; i++) {
        const int k = nl_placement_from_name(sw->res[i].placement);
        int seen = 0;
        for (int j = 0; j < np; j++) seen |= placements[j] == k;
        if (!seen && np < MAXP) placements[np++] = k;
        seen = 0;
        for (int j = 0; j < nl; j++) seen |= lrs[j] == sw->res[i].lr;
        if (!seen && nl < MAXL) lrs[nl++] = sw->res[i].lr;
    }
    for (int a = 0; a < nl; a++) /* sort LRs */
        for (int b = a + 1; b < nl; b++)
            if (lrs[b] < lrs[a]) {
                double t = lrs[a];
                lrs[a] = lrs[b];
                lrs[b] = t;
            }
    double *mean = nl_xmalloc((size_t)np * nl * 4 * sizeof(double)), *sd = mean + np * nl, *dx = sd + np * nl,
           *dy = dx + np * nl;
    int *ndiv = nl_xcalloc((size_t)np * nl * 3 * sizeof(int)), *nrun = ndiv + np * nl, *nfin = nrun + np * nl;
    double top = -INFINITY;
    for (int a = 0; a < np; a++)
        for (int b = 0; b < nl; b++) {
            double s1 = 0, s2 = 0;
            int c = 0;
            for (int i = 0; i < sw->n; i++) {
                if (nl_placement_from_name(sw->res[i].placement) != placements[a] || sw->res[i].lr != lrs[b]) continue;
                nrun[a * nl + b]++;
                if (!strcmp(sw->res[i].status, "diverged")) ndiv[a * nl + b]++;
                else if (!strcmp(sw->res[i].status, "done") && isfinite(sw->res[i].val_loss))
                    s1 += sw->res[i].val_loss, s2 += sw->res[i].val_loss * sw->res[i].val_loss, c++;
            }
            nfin[a * nl + b] = c;
            mean[a * nl + b] = c ? s1 / c : NAN;
            sd[a * nl + b] = c > 1 ? sqrt(fmax(0.0, (s2 - c * (s1 / c) * (s1 / c)) / (c - 1))) : c ? 0.0 : NAN;
            if (c) top = fmax(top, mean[a * nl + b] + sd[a * nl + b]);
        }
    if (!isfinite(top)) top = 1.0;
    nl_series s[2 * MAXP];
    char lab[MAXP][300], labd[MAXP][300];
    int ns = 0;
    for (int a = 0; a < np; a++) {
        snprintf(lab[a], sizeof lab[a], "%s: %s", nl_placements[placements[a]].name, nl_placements[placements[a]].eq);
        s[ns++] = (nl_series){ .label = lab[a],
                               .color = placement_color(placements[a]),
                               .x = lrs,
                               .y = mean + a * nl,
                               .err = sd + a * nl,
                               .n = nl,
                               .marker = 1,
                               .width = 2 };
        int any = 0;
        for (int b = 0; b < nl; b++) {
            dx[a * nl + b] = lrs[b];
            dy[a * nl + b] = ndiv[a * nl + b] ? top * (1.02 + 0.015 * a) : NAN;
            any |= ndiv[a * nl + b] > 0;
        }
        snprintf(labd[a], sizeof labd[a], "%s: LR with diverged runs", nl_placements[placements[a]].name);
        if (any)
            s[ns++] = (nl_series){ .label = labd[a],
                                   .color = placement_color(placements[a]),
                                   .x = dx + a * nl,
                                   .y = dy + a * nl,
                                   .n = nl,
                                   .marker = 2 };
    }
    nl_plot p = plot_of("LR stability map: final validation loss vs learning rate", "peak learning rate",
                        "final val loss (nats/token), mean +- sd over seeds", 900, 380);
    p.xlog = 1;
    line_figure(f, &p, s, ns,
                "Dots: mean over the seeds that finished, bars: sample sd. Crosses above the curves: learning rates where at least one seed diverged (count in the table).");
    fputs("<table><tr><th>placement</th><th>LR</th><th>runs</th><th>finished</th><th>diverged</th><th>final val loss (mean +- sd)</th></tr>\n",
          f);
    for (int a = 0; a < np; a++)
        for (int b = 0; b < nl; b++) {
            if (!nrun[a * nl + b]) continue;
            fprintf(f, "<tr><td style=\"color:%s\">%s</td><td>%g</td><td>%d</td><td>%d</td><td>%d</td><td>",
                    placement_color(placements[a]), nl_placements[placements[a]].name, lrs[b], nrun[a * nl + b],
                    nrun[a * nl + b] - ndiv[a * nl + b], ndiv[a * nl + b]);
            if (isfinite(mean[a * nl + b])) fprintf(f, "%.4f +- %.4f", mean[a * nl + b], sd[a * nl + b]);
            else fputs("-", f);
            fputs("</td></tr>\n", f);
        }
    fputs("</table>\n", f);
    failing_section(f, placements, np, lrs, nl, mean, ndiv, nrun, nfin);
    for (int field = 0; field < 2; field++) {
        fputs("<div class=\"row\">\n", f);
        for (int a = 0; a < np; a++) sweep_curves(f, sw, placements[a], lrs, nl, field);
        fputs("</div>\n", f);
    }
    const rp_run **lp = nl_xmalloc((size_t)(sw->n ? sw->n : 1) * sizeof *lp);
    int *group = nl_xmalloc((size_t)(sw->n ? sw->n : 1) * sizeof *group), nlp = 0;
    const char **glab = nl_xmalloc((size_t)np * nl * sizeof *glab), **gcol = nl_xmalloc((size_t)np * nl * sizeof *gcol);
    char(*gl)[64] = nl_xmalloc((size_t)np * nl * sizeof *gl), (*gc)[8] = nl_xmalloc((size_t)np * nl * sizeof *gc);
    for (int a = 0; a < np; a++)
        for (int b = 0; b < nl; b++) {
            snprintf(gl[a * nl + b], sizeof gl[0], "%s lr %g", nl_placements[placements[a]].name, lrs[b]);
            tint(placement_color(placements[a]), lr_shade(b, nl), gc[a * nl + b]);
            glab[a * nl + b] = gl[a * nl + b], gcol[a * nl + b] = gc[a * nl + b];
        }
    for (int i = 0; i < sw->n; i++) {
        int lowp = 0;
        for (int k = 0; k < sw->runs[i].nd; k++) lowp |= sw->runs[i].diag[k].ovf_fwd != NULL;
        if (!lowp) continue;
        int a = 0, b = 0;
        while (a < np && placements[a] != sw->runs[i].placement) a++;
        while (b < nl && lrs[b] != sw->res[i].lr) b++;
        if (a < np && b < nl) lp[nlp] = &sw->runs[i], group[nlp++] = a * nl + b;
    }
    if (nlp)
        overflow_chart(f, "Overflow counts per layer, summed over seeds (bf16 / fp16)", lp, group, nlp, glab, gcol,
                       np * nl);
    free(lp);
    free(group);
    free(glab);
    free(gcol);
    free(gl);
    free(gc);
    free(mean);
    free(ndiv);
}

static void analysis_section(FILE *f, const report *rp) {
    const rp_analysis *as[2 * MAX_RUNS];
    const char *labels[2 * MAX_RUNS];
    int placements[2 * MAX_RUNS], na = 0, maxL = 0;
    for (int i = 0; i < rp->nruns; i++)
        if (rp->runs[i].has_an)
            as[na] = &rp->runs[i].an, labels[na] = rp->runs[i].label, placements[na++] = rp->runs[i].placement;
    for (int i = 0; i < rp->nextra; i++)
        as[na] = &rp->extra[i], labels[na] = rp->extra_label[i], placements[na++] = rp->extra_placement[i];
    if (!na) return;
    fputs("<h2>Layer redundancy (normlab analyze)</h2>\n<div class=\"row\">\n", f);
    double lo = 0.0, hi = -INFINITY; /* one colour scale for all models, from 0 */
    for (int k = 0; k < na; k++)
        for (int i = 0; i < as[k]->L * as[k]->L; i++)
            if (isfinite(as[k]->angular[i])) hi = fmax(hi, as[k]->angular[i]);
    for (int k = 0; k < na; k++) {
        maxL = as[k]->L > maxL ? as[k]->L : maxL;
        char title[400];
        snprintf(title, sizeof title, "Angular distance d(l, n): %s", labels[k]);
        fig_open(f);
        nl_svg_heatmap(f, title, "block l", "offset n (compares x_l with x_{l+n})", as[k]->angular, as[k]->L, as[k]->L,
                       as[k]->L, lo, isfinite(hi) ? hi : 1, 1, 1);
        fig_close(f,
                  "arccos(cos(x_l, x_{l+n}))/pi at the last token of each window, averaged; small d(l,1) = a near-identity block. One colour scale (0 to the largest value) for all models.");
    }
    fputs("</div>\n", f);
    double *blocks = nl_xmalloc((size_t)maxL * sizeof(double));
    for (int l = 0; l < maxL; l++) blocks[l] = l + 1;
    nl_series s[2 * MAX_RUNS];
    char lab[2 * MAX_RUNS][400];
    for (int k = 0; k < na; k++) {
        snprintf(lab[k], sizeof lab[k], "%s: %s", labels[k], nl_placements[placements[k]].eq);
        s[k] = (nl_series){
            .label = lab[k], .color = placement_color(placements[k]), .x = blocks, .y = as[k]->skip_delta, .n = as[k]->L
        };
    }
    const nl_plot p = plot_of("Validation-loss increase when block l alone is skipped", "skipped block l",
                              "delta loss (nats/token)", 900, 340);
    bar_figure(f, &p, s, na,
               "loss(model without block l, x_{l+1} = x_l) - loss(full model) on the same validation windows.");
    free(blocks);
}

/* --arch dit runs: each run's samples.png, inline (base64), beside its label */
static nl_status samples_section(FILE *f, const report *rp) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int any = 0;
    for (int i = 0; i < rp->nruns; i++) any |= rp->runs[i].has_samples;
    if (!any) return NL_OK;
    fputs("<h2>Samples</h2>\n<p>Images generated at the end of each --arch dit run (samples.png: Heun, 16 steps, guidance 2; row r "
          "shows class r).</p>\n<div class=\"row\">\n",
          f);
    for (int i = 0; i < rp->nruns; i++) {
        const rp_run *r = &rp->runs[i];
        if (!r->has_samples) continue;
        char p[NL_PATH_MAX + 32];
        snprintf(p, sizeof p, "%s/samples.png", r->dir);
        FILE *in = fopen(p, "rb");
        if (!in) return NL_FAIL(NL_ERR_IO, "cannot read '%s'", p);
        fig_open(f);
        fputs("<img alt=\"samples\" style=\"image-rendering:pixelated;width:320px\" src=\"data:image/png;base64,", f);
        unsigned char b[3];
        size_t n;
        while ((n = fread(b, 1, 3, in)) > 0) {
            const unsigned v = (unsigned)b[0] << 16 | (n > 1 ? (unsigned)b[1] << 8 : 0) | (n > 2 ? b[2] : 0);
            fputc(b64[v >> 18 & 63], f), fputc(b64[v >> 12 & 63], f);
            fputc(n > 1 ? b64[v >> 6 & 63] : '=', f), fputc(n > 2 ? b64[v & 63] : '=', f);
        }
        fclose(in);
        fputs("\">\n", f);
        fig_close(f, r->label);
    }
    fputs("</div>\n", f);
    return NL_OK;
}

static nl_status write_report(const report *rp, const char *out, const char *title, int argc, char **argv) {
    char tmp[NL_PATH_MAX + 64];
    FILE *f;
    NL_TRY(nl_write_atomic_begin(out, tmp, sizeof tmp, &f));
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>", f);
    nl_html_escape(f, title);
    fputs("</title>\n<style>\nbody{font-family:sans-serif;max-width:1000px;margin:1em auto;color:#222}\n"
          "table{border-collapse:collapse;margin:.5em 0;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}\n"
          "figure{margin:.6em 0;break-inside:avoid;page-break-inside:avoid;display:inline-block;vertical-align:top}"
          "figcaption{font-size:11px;color:#555;max-width:880px}\n.row figure{margin-right:10px}.row figcaption{max-width:440px}\n"
          ".sw{display:inline-block;width:14px;height:14px}\n@media print{body{max-width:none}h2{page-break-before:auto}}\n</style></head><body>\n<h1>",
          f);
    nl_html_escape(f, title);
    time_t now = time(NULL);
    char stamp[64];
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
    fprintf(f, "</h1>\n<p>Generated by <code>normlab report</code> on %s from:", stamp);
    for (int i = 0; i < argc; i++) {
        fputs(" <code>", f);
        nl_html_escape(f, argv[i]);
        fputs("</code>", f);
    }
    fputs("</p>\n<h2>Placements</h2>\n", f);
    legend_table(f, rp);
    if (rp->nruns) {
        fputs("<h2>Runs</h2>\n", f);
        runs_table(f, rp);
        loss_section(f, rp);
        fputs("<h2>Diagnostics vs depth</h2>\n", f);
        depth_sections(f, rp);
        sites_section(f, rp);
        lowp_section(f, rp);
        nl_status st = samples_section(f, rp);
        if (st != NL_OK) {
            fclose(f);
            remove(tmp);
            return st;
        }
        evals_section(f, rp);
    }
    if (rp->nsweeps) {
        fputs("<h2>Learning-rate sweeps</h2>\n", f);
        for (int i = 0; i < rp->nsweeps; i++) sweep_section(f, &rp->sweeps[i]);
    }
    analysis_section(f, rp);
    fputs("</body></html>\n", f);
    return nl_write_atomic_commit(out, tmp, f);
}

nl_status nl_report(char **paths, int np, const char *out, const char *title) {
    nl_status st = NL_OK;
    if (!np) st = NL_FAIL(NL_ERR_ARG, "no run, sweep or analyze path given (see 'normlab report --help')");
    if (st == NL_OK && !out[0]) st = NL_FAIL(NL_ERR_ARG, "-o report.html is required");
    report *rp = nl_xcalloc(sizeof *rp);
    for (int i = 0; i < np && st == NL_OK; i++) st = add_path(rp, paths[i]);
    if (st == NL_OK) st = write_report(rp, out, title, np, paths);
    if (st == NL_OK) {
        int nd = 0, na = rp->nextra;
        for (int i = 0; i < rp->nruns; i++) nd += rp->runs[i].nd > 0, na += rp->runs[i].has_an;
        printf("wrote %s: %d runs (%d with diagnostics), %d sweeps, %d analyses\n", out, rp->nruns, nd, rp->nsweeps, na);
    }
    for (int i = 0; i < rp->nruns; i++) free_run(&rp->runs[i]);
    for (int i = 0; i < rp->nsweeps; i++) {
        for (int k = 0; k < rp->sweeps[i].n; k++) free_run(&rp->sweeps[i].runs[k]);
        free(rp->sweeps[i].runs);
        free(rp->sweeps[i].res);
    }
    for (int i = 0; i < rp->nextra; i++) free_analysis(&rp->extra[i]);
    free(rp);
    return st;
}
