/* progress.c -- see progress.h. */
#include "progress.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void nl_progress_init(nl_progress *p, int group) {
    memset(p, 0, sizeof *p);
    p->group = group < 1 ? 1 : group;
    p->val = p->prev_val = NAN;
}

void nl_progress_loss(nl_progress *p, double loss) {
    p->acc += loss;
    if (++p->nacc < p->group) return;
    if (p->npts == NL_SPARK_POINTS) memmove(p->pts, p->pts + 1, (NL_SPARK_POINTS - 1) * sizeof p->pts[0]);
    else p->npts++;
    p->pts[p->npts - 1] = p->acc / p->nacc;
    p->acc = 0.0;
    p->nacc = 0;
}

void nl_progress_val(nl_progress *p, double val) {
    p->prev_val = p->val;
    p->val = val;
}

int nl_utf8_cols(const char *s) {
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

size_t nl_sparkline(const double *v, int n, char *out, size_t cap) {
    static const char *const blocks[8] = { "\u2581", "\u2582", "\u2583", "\u2584",
                                           "\u2585", "\u2586", "\u2587", "\u2588" };
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) {
            lo = v[i] < lo ? v[i] : lo;
            hi = v[i] > hi ? v[i] : hi;
        }
    size_t len = 0;
    if (cap) out[0] = 0;
    for (int i = 0; i < n; i++) {
        const char *ch = " ";
        if (isfinite(v[i])) {
            int k = hi > lo ? (int)lround((v[i] - lo) / (hi - lo) * 7.0) : 0;
            ch = blocks[k < 0 ? 0 : k > 7 ? 7 : k];
        }
        const size_t m = strlen(ch);
        if (len + m + 1 > cap) break;
        memcpy(out + len, ch, m + 1);
        len += m;
    }
    return len;
}

/* the line with the last `spark` sparkline points and (trend) the validation change */
static void assemble(const nl_progress *p, int step, int steps, double loss, double tok_s, const char *eta, int spark,
                     int trend, char *out, size_t cap) {
    double pts[NL_SPARK_POINTS + 1];
    int n = 0;
    for (int i = 0; i < p->npts; i++) pts[n++] = p->pts[i];
    if (p->nacc) pts[n++] = p->acc / p->nacc; /* the group in progress */
    if (spark > n) spark = n;
    char sp[8 * (NL_SPARK_POINTS + 1)] = "", val[64] = "";
    if (spark > 0) {
        sp[0] = ' ';
        nl_sparkline(pts + n - spark, spark, sp + 1, sizeof sp - 1);
    }
    if (!isnan(p->val)) {
        int k = snprintf(val, sizeof val, " | val %.4f", p->val);
        if (trend && isfinite(p->val) && isfinite(p->prev_val)) {
            const double d = p->val - p->prev_val;
            snprintf(val + k, sizeof val - (size_t)k, " %s%.4f",
                     d < 0   ? "\u2193"
                     : d > 0 ? "\u2191"
                             : "\u2192",
                     fabs(d));
        }
    }
    snprintf(out, cap, "step %d/%d | loss %.4f%s%s | %.0f tok/s | ETA %s", step, steps, loss, sp, val, tok_s, eta);
}

int nl_progress_format(const nl_progress *p, int step, int steps, double loss, double tok_s, const char *eta, int cols,
                       char *out, size_t cap) {
    if (!cap) return 0;
    for (int trend = 1; trend >= 0; trend--)
        for (int spark = NL_SPARK_POINTS + 1; spark >= 0; spark--) {
            assemble(p, step, steps, loss, tok_s, eta, spark, trend, out, cap);
            const int w = nl_utf8_cols(out);
            if (w <= cols) return w;
        }
    /* still too wide: cut at a character boundary */
    int w = 0;
    size_t i = 0;
    for (; out[i]; i++) {
        if (((unsigned char)out[i] & 0xC0) != 0x80 && ++w > cols) break;
    }
    out[i] = 0;
    return nl_utf8_cols(out);
}
