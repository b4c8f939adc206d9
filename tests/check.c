/* check.c -- see check.h. */
#include "check.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

int nl_check_rel(const char *label, const float *got, const double *want, size_t n, double rtol) {
    double num = 0, den = 0;
    size_t worst = 0;
    double wd = -1;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - want[i];
        num += d * d;
        den += want[i] * want[i];
        if (fabs(d) > wd || isnan(d)) wd = fabs(d), worst = i;
    }
    double rel = sqrt(num) / fmax(sqrt(den), 1e-12);
    if (rel <= rtol) return 0; /* NaN fails here too */
    printf("    %s: relative error %.3g > %.1g (element %zu: got %.9g want %.9g)\n", label, rel, rtol, worst,
           (double)got[worst], want[worst]);
    return 1;
}

int nl_check_scalar(const char *label, double got, double want, double rtol) {
    double rel = fabs(got - want) / fmax(fabs(want), 1e-12);
    if (rel <= rtol) return 0;
    printf("    %s: got %.9g want %.9g (relative error %.3g > %.1g)\n", label, got, want, rel, rtol);
    return 1;
}

void nl_fill(nl_rng *r, float *x, size_t n, double scale) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * nl_rng_normal(r));
}

void nl_to_double(const float *x, double *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i];
}

void nl_fd_grad(nl_lossfn f, void *ctx, double *x, size_t n, double *g) {
    const double h = 1e-6;
    for (size_t i = 0; i < n; i++) {
        double xi = x[i];
        x[i] = xi + h;
        double lp = f(ctx);
        x[i] = xi - h;
        double lm = f(ctx);
        x[i] = xi;
        g[i] = (lp - lm) / (2 * h);
    }
}

int nl_run_cmd(const char *cmd, char *out, size_t cap) {
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = 0;
    int c;
    while ((c = fgetc(p)) != EOF)
        if (n + 1 < cap) out[n++] = (char)c;
    if (cap) out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int nl_run_fmt(char *out, size_t cap, const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return nl_run_cmd(cmd, out, cap);
}

double nl_json_number(const char *s, const char *key) {
    const char *p = s ? strstr(s, key) : NULL;
    return p ? atof(p + strlen(key)) : NAN;
}

int nl_count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

int nl_expect_error(int code, const char *want, const char *args) {
    char out[8192];
    const int rc = nl_run_fmt(out, sizeof out, "%s %s 2>&1 >/dev/null", nl_test_bin(), args);
    int lines = 0;
    for (const char *p = out; *p; p++) lines += *p == '\n';
    const int ok = rc == code && lines == 1 && strstr(out, want);
    if (!ok) printf("    '%s': exit %d (want %d), stderr: %s", args, rc, code, out);
    return !ok;
}

int nl_metrics_curve(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    buf[0] = 0;
    if (!f) return -1;
    char line[512];
    size_t n = 0;
    int lines = 0;
    while (fgets(line, sizeof line, f)) {
        char *t = strstr(line, ", \"tok_per_s\"");
        if (t) *t = 0;
        if (n < cap) n += (size_t)snprintf(buf + n, cap - n, "%s|", line);
        lines++;
    }
    fclose(f);
    return lines;
}

int nl_test_rmdir(const char *dir) {
    char cmd[1024], out[256];
    NL_ASSERT(snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir) < (int)sizeof cmd);
    const int rc = nl_run_cmd(cmd, out, sizeof out);
    return NL_CHECK(rc == 0, "cleanup: cannot remove %s (exit %d): %s", dir, rc, out);
}

void nl_make_text(const char *path, int n) {
    static const char *const words[] = { "the ", "cat ", "sat ", "on ", "a ", "mat.\n", "and ", "dog ", "ran ", "far " };
    FILE *f = fopen(path, "w");
    NL_ASSERT(f);
    nl_rng r;
    nl_rng_seed(&r, 5);
    for (int i = 0; i < n; i++) fputs(words[nl_rng_below(&r, 10)], f);
    fclose(f);
}

const char *nl_test_bin(void) {
    const char *b = getenv("NORMLAB_BIN");
    return b ? b : "build/release/normlab";
}

const char *nl_test_python(void) {
    const char *p = getenv("NORMLAB_PYTHON");
    return p ? p : "/usr/bin/python3";
}

const char *nl_test_venv_python(void) {
    static char py[NL_PATH_MAX + 16];
    const char *v = getenv("NORMLAB_VENV");
    snprintf(py, sizeof py, "%s/bin/python", v ? v : "build/venv");
    return py;
}

nl_config nl_test_config(int vocab, int layers, int dim, int heads, int seq_len, uint64_t seed) {
    nl_config c;
    nl_config_defaults(&c);
    if (vocab) c.vocab = vocab;
    c.layers = layers;
    c.dim = dim;
    c.heads = heads;
    if (seq_len) c.seq_len = seq_len;
    c.seed = seed;
    c.clip = 1.0;
    return c;
}

void nl_twin_case_dir(char *dir, size_t cap, const char *root, int i) {
    snprintf(dir, cap, "%s/case%02d", root, i);
    NL_ASSERT(mkdir(dir, 0755) == 0);
}

nl_status nl_twin_write_batch(const char *path, const nl_st_entry *e, int n, const nl_config *c) {
    char wd[32], cl[32], b1[32], b2[32], ae[32];
    snprintf(wd, sizeof wd, "%.17g", c->weight_decay);
    snprintf(cl, sizeof cl, "%.17g", c->clip);
    snprintf(b1, sizeof b1, "%.17g", NL_ADAM_BETA1);
    snprintf(b2, sizeof b2, "%.17g", NL_ADAM_BETA2);
    snprintf(ae, sizeof ae, "%.17g", NL_ADAM_EPS);
    const char *mk[] = { "weight_decay", "clip", "beta1", "beta2", "adam_eps" }, *mv[] = { wd, cl, b1, b2, ae };
    return nl_st_write(path, e, n, mk, mv, 5);
}

int nl_twin_run(const char *script, const char *root, int n, char *out, size_t cap) {
    const size_t ccap = 256 + (size_t)n * (strlen(root) + 16);
    char *cmd = nl_xmalloc(ccap);
    int len = snprintf(cmd, ccap, "%s %s", nl_test_python(), script);
    for (int i = 0; i < n; i++) len += snprintf(cmd + len, ccap - (size_t)len, " %s/case%02d", root, i);
    snprintf(cmd + len, ccap - (size_t)len, " 2>&1");
    const int rc = nl_run_cmd(cmd, out, cap);
    free(cmd);
    if (rc == 0) return 0;
    printf("    the PyTorch twin failed (exit %d); HINT: apt-get install python3-torch\n%s\n", rc, out);
    return 1;
}

int nl_twin_grads(const nl_model *m, const nl_st_file *ref, nl_twin_cmp cmp, void *ctx) {
    char label[160];
    int fails = 0, ngrad = 0, nref = 0;
    for (int i = 0; i < m->ntensors; i++) {
        const nl_tensor *t = &m->tensors[i];
        snprintf(label, sizeof label, "grad.%s", t->name);
        const nl_st_tensor *g = nl_st_find(ref, label);
        if (!t->trainable) {
            fails += NL_CHECK(!g, "%s: frozen tensor has a gradient in the twin", label);
            continue;
        }
        const size_t n = (size_t)t->export_rows * (t->cols ? (size_t)t->cols : 1);
        if (!g || g->nbytes != n * sizeof(float)) {
            fails += NL_CHECK(0, "%s missing or of the wrong size in the twin", label);
            continue;
        }
        double *want = nl_xmalloc(n * sizeof(double));
        nl_to_double((const float *)g->data, want, n);
        fails += cmp(ctx, label, m->grads + t->offset, want, n);
        free(want);
        ngrad++;
    }
    for (int i = 0; i < ref->nt; i++) nref += !strncmp(ref->t[i].name, "grad.", 5);
    fails += NL_CHECK(nref == ngrad, "twin has %d gradients, model %d trainable tensors", nref, ngrad);
    return fails;
}
