/* svg.c -- see svg.h. Coordinates: a plot area inside margins; axes map data to pixels linearly or
 * by log10. Tick values are "nice" (1, 2, 5 x 10^k) on linear axes and decades on log axes (with
 * 2 and 5 when the range spans less than two decades). */
#include "svg.h"

#include <math.h>
#include <string.h>

enum { ML = 72, MR = 16, MT = 34, MB = 50, LEG_ROW = 15 };

void nl_html_escape(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

typedef struct axis {
    double lo, hi; /* data range (log10 of it on a log axis) */
    int log;
    double p0, p1; /* pixel range */
} axis;

static int usable(double v, int log) { return isfinite(v) && (!log || v > 0); }

static double tr(const axis *a, double v) {
    const double t = a->log ? log10(v) : v;
    return a->p0 + (t - a->lo) / (a->hi - a->lo) * (a->p1 - a->p0);
}

static void set_range(axis *a, double mn, double mx, int pad) {
    if (!(mn <= mx)) mn = a->log ? 0.1 : 0.0, mx = a->log ? 10.0 : 1.0;
    if (a->log) mn = log10(mn), mx = log10(mx);
    if (mx - mn < 1e-12) {
        const double d = a->log ? 0.5 : fabs(mx) > 0 ? 0.1 * fabs(mx) : 1.0;
        mn -= d, mx += d;
    } else if (pad) {
        const double d = 0.04 * (mx - mn);
        mn -= d, mx += d;
    }
    a->lo = mn;
    a->hi = mx;
}

static void fmt_tick(char *b, size_t n, double v) {
    if (v != 0 && (fabs(v) >= 1e5 || fabs(v) < 1e-3)) snprintf(b, n, "%.0e", v);
    else snprintf(b, n, "%g", v);
}

/* tick values in data units */
static int ticks(const axis *a, double *t, int cap) {
    int n = 0;
    if (a->log) {
        const int d0 = (int)floor(a->lo), d1 = (int)ceil(a->hi);
        const int fine = a->hi - a->lo < 2.0;
        for (int d = d0; d <= d1 && n < cap; d++) {
            const double m[3] = { 1, 2, 5 };
            for (int k = 0; k < (fine ? 3 : 1) && n < cap; k++) {
                const double v = m[k] * pow(10.0, d), lv = log10(v);
                if (lv >= a->lo - 1e-9 && lv <= a->hi + 1e-9) t[n++] = v;
            }
        }
        return n;
    }
    const double span = a->hi - a->lo, raw = span / 6.0, mag = pow(10.0, floor(log10(raw)));
    const double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
    for (double v = ceil(a->lo / step) * step; v <= a->hi + 1e-9 * span && n < cap; v += step)
        t[n++] = fabs(v) < 1e-12 * span ? 0.0 : v;
    return n;
}

double nl_svg_title_size(const char *title, double avail) {
    const double n = title ? (double)strlen(title) : 0.0, size = n > 0 ? avail / (0.62 * n) : 13.0;
    return size > 13.0 ? 13.0 : size < 8.0 ? 8.0 : size;
}

static void title_text(FILE *f, const char *title, int x, int w) {
    fprintf(f, "<text x=\"%d\" y=\"18\" font-size=\"%.1f\" font-weight=\"bold\">", x,
            nl_svg_title_size(title, w - x - 6));
    nl_html_escape(f, title);
    fputs("</text>\n", f);
}

static void frame(FILE *f, const nl_plot *p, int w, int h, const axis *ax, const axis *ay, int xticks) {
    if (xticks && p->xint) xticks = 2;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"11\">\n",
            w, h, w, h);
    fputs("<title>", f);
    nl_html_escape(f, p->title);
    fputs("</title>\n", f);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n", w, h);
    title_text(f, p->title, 8, w);
    double t[64];
    int n = ticks(ay, t, 64);
    for (int i = 0; i < n; i++) {
        const double y = tr(ay, t[i]);
        char b[32];
        fmt_tick(b, sizeof b, t[i]);
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", ax->p0, ax->p1, y, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", ax->p0 - 4, y + 4, b);
    }
    if (xticks && p->xnames) {
        for (int i = 0; i < p->nxnames; i++) {
            const double x = tr(ax, i);
            fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>", x, x, ay->p0, ay->p1);
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", x, ay->p0 + 14);
            nl_html_escape(f, p->xnames[i]);
            fputs("</text>\n", f);
        }
    } else if (xticks) {
        n = ticks(ax, t, 64);
        if (xticks == 2) { /* integer ticks: drop fractional ones; when the step is below 1, use every integer */
            const int fine = n > 1 && t[1] - t[0] < 1;
            int k = 0;
            for (int i = 0; i < n; i++)
                if (t[i] == floor(t[i])) t[k++] = t[i];
            if (fine) {
                k = 0;
                for (double v = ceil(ax->lo); v <= ax->hi && k < 64; v += 1) t[k++] = v;
            }
            n = k;
        }
        for (int i = 0; i < n; i++) {
            const double x = tr(ax, t[i]);
            char b[32];
            fmt_tick(b, sizeof b, t[i]);
            fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>", x, x, ay->p0, ay->p1);
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x, ay->p0 + 14, b);
        }
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n", ax->p0,
            ay->p1, ax->p1 - ax->p0, ay->p0 - ay->p1);
    (void)h;
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", (ax->p0 + ax->p1) / 2, ay->p0 + 32);
    nl_html_escape(f, p->xlabel);
    fprintf(f, "%s</text>\n", ax->log ? " (log scale)" : "");
    fprintf(f, "<text transform=\"translate(14 %.1f) rotate(-90)\" text-anchor=\"middle\">", (ay->p0 + ay->p1) / 2);
    nl_html_escape(f, p->ylabel);
    fprintf(f, "%s</text>\n", ay->log ? " (log scale)" : "");
}

static void legend(FILE *f, const nl_series *s, int ns, double x, double y) {
    int row = 0;
    for (int k = 0; k < ns; k++) {
        if (!s[k].label) continue;
        const double yy = y + row * LEG_ROW;
        int dup = 0; /* one entry per label */
        for (int j = 0; j < k; j++) dup |= s[j].label && !strcmp(s[j].label, s[k].label);
        if (dup) continue;
        if (s[k].marker == 2)
            fprintf(f, "<path d=\"M%.1f %.1fl8 8m0 -8l-8 8\" stroke=\"%s\" stroke-width=\"2\"/>", x + 4, yy - 8,
                    s[k].color);
        else if (s[k].marker == 3)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>", x + 9, yy - 4, s[k].color);
        else
            fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2.5\"%s/>",
                    x, x + 18, yy - 4, yy - 4, s[k].color,
                    s[k].dash == 1   ? " stroke-dasharray=\"5 3\""
                    : s[k].dash == 2 ? " stroke-dasharray=\"1.5 2.5\""
                                     : "");
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", x + 24, yy);
        nl_html_escape(f, s[k].label);
        fputs("</text>\n", f);
        row++;
    }
}

static int legend_rows(const nl_series *s, int ns) {
    int rows = 0;
    for (int k = 0; k < ns; k++) {
        if (!s[k].label) continue;
        int dup = 0;
        for (int j = 0; j < k; j++) dup |= s[j].label && !strcmp(s[j].label, s[k].label);
        rows += !dup;
    }
    return rows;
}

/* the shaded area between q->lo and q->hi, one polygon per run of usable points */
static void band(FILE *f, const nl_series *q, const axis *ax, const axis *ay) {
    for (int i = 0; i < q->n;) {
        int j = i;
        while (j < q->n && usable(q->x[j], ax->log) && usable(q->lo[j], ay->log) && usable(q->hi[j], ay->log)) j++;
        if (j > i) {
            fprintf(f, "<path fill=\"%s\" fill-opacity=\"0.2\" stroke=\"none\" d=\"", q->color);
            for (int k = i; k < j; k++)
                fprintf(f, "%c%.1f %.1f", k == i ? 'M' : 'L', tr(ax, q->x[k]), tr(ay, q->hi[k]));
            for (int k = j - 1; k >= i; k--) fprintf(f, "L%.1f %.1f", tr(ax, q->x[k]), tr(ay, q->lo[k]));
            fputs("Z\"/>\n", f);
        }
        i = j > i ? j : i + 1;
    }
}

void nl_svg_lines(FILE *f, const nl_plot *p, const nl_series *s, int ns) {
    const int w = p->w ? p->w : 560, rows = legend_rows(s, ns), h0 = p->h ? p->h : 340, h = h0 + rows * LEG_ROW + 6;
    axis ax = { 0, 0, p->xlog, ML, w - MR }, ay = { 0, 0, p->ylog, h0 - MB, MT };
    double xmn = INFINITY, xmx = -INFINITY, ymn = INFINITY, ymx = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            if (!usable(s[k].x[i], ax.log) || !usable(s[k].y[i], ay.log)) continue;
            xmn = fmin(xmn, s[k].x[i]), xmx = fmax(xmx, s[k].x[i]);
            const double e = s[k].err && isfinite(s[k].err[i]) ? s[k].err[i] : 0.0;
            ymn = fmin(ymn, s[k].y[i] - (ay.log ? 0 : e)), ymx = fmax(ymx, s[k].y[i] + e);
            if (s[k].lo && usable(s[k].lo[i], ay.log)) ymn = fmin(ymn, s[k].lo[i]);
            if (s[k].hi && usable(s[k].hi[i], ay.log)) ymx = fmax(ymx, s[k].hi[i]);
        }
    if (p->xnames && p->nxnames > 0) xmn = fmin(xmn, 0.0), xmx = fmax(xmx, p->nxnames - 1.0);
    if (p->hline > 0 && usable(p->hline, ay.log)) ymn = fmin(ymn, p->hline), ymx = fmax(ymx, p->hline);
    if (isfinite(p->ymin_force) && usable(p->ymin_force, ay.log)) ymn = fmin(ymn, p->ymin_force);
    set_range(&ax, xmn, xmx, 1);
    if (p->xnames) { /* half a category of room on each side */
        const double pad = 0.5 - 0.04 * (ax.hi - ax.lo) / 1.08;
        if (pad > 0) ax.lo -= pad, ax.hi += pad;
    }
    set_range(&ay, ymn, ymx, 1);
    frame(f, p, w, h, &ax, &ay, 1);
    for (int k = 0; k < ns; k++) /* bands first, under every line */
        if (s[k].lo && s[k].hi) band(f, &s[k], &ax, &ay);
    if (p->hline > 0 && usable(p->hline, ay.log)) {
        const double y = tr(&ay, p->hline);
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"black\" stroke-dasharray=\"6 3\"/>",
                ax.p0, ax.p1, y, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", ax.p1 - 4, y - 4);
        nl_html_escape(f, p->hline_label);
        fputs("</text>\n", f);
    }
    for (int k = 0; k < ns; k++) {
        const nl_series *q = &s[k];
        const double sw = q->width > 0 ? q->width : 1.6;
        if (q->marker < 2) {
            fprintf(f, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"%.2f\"%s d=\"", q->color, sw,
                    q->dash == 1   ? " stroke-dasharray=\"5 3\""
                    : q->dash == 2 ? " stroke-dasharray=\"1.5 2.5\""
                                   : "");
            int pen = 0;
            for (int i = 0; i < q->n; i++) {
                if (!usable(q->x[i], ax.log) || !usable(q->y[i], ay.log)) {
                    pen = 0;
                    continue;
                }
                fprintf(f, "%c%.1f %.1f", pen ? 'L' : 'M', tr(&ax, q->x[i]), tr(&ay, q->y[i]));
                pen = 1;
            }
            fputs("\"/>\n", f);
        }
        for (int i = 0; i < q->n; i++) {
            if (!usable(q->x[i], ax.log) || !usable(q->y[i], ay.log)) continue;
            const double x = tr(&ax, q->x[i]), y = tr(&ay, q->y[i]);
            if (q->marker == 1 || q->marker == 3)
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%d\" fill=\"%s\"/>", x, y, q->marker == 3 ? 4 : 3,
                        q->color);
            if (q->marker == 2)
                fprintf(f, "<path d=\"M%.1f %.1fl10 10m0 -10l-10 10\" stroke=\"%s\" stroke-width=\"2.2\"/>", x - 5,
                        y - 5, q->color);
            if (q->err && isfinite(q->err[i]) && q->err[i] > 0) {
                const double y0 = tr(&ay, q->y[i] + q->err[i]), e1 = q->y[i] - q->err[i];
                const double y1 = usable(e1, ay.log) ? tr(&ay, e1) : ay.p0;
                fprintf(f, "<path d=\"M%.1f %.1fV%.1fM%.1f %.1fh8M%.1f %.1fh8\" stroke=\"%s\"/>", x, y0, y1, x - 4, y0,
                        x - 4, y1, q->color);
            }
        }
        fputc('\n', f);
    }
    legend(f, s, ns, ML, h0 + 6);
    fputs("</svg>\n", f);
}

void nl_svg_bars(FILE *f, const nl_plot *p, const nl_series *s, int ns) {
    const int w = p->w ? p->w : 560, rows = legend_rows(s, ns), h0 = p->h ? p->h : 340, h = h0 + rows * LEG_ROW + 6;
    int ng = 0;
    double ymn = 0.0, ymx = 0.0;
    for (int k = 0; k < ns; k++) {
        ng = s[k].n > ng ? s[k].n : ng;
        for (int i = 0; i < s[k].n; i++)
            if (isfinite(s[k].y[i])) ymn = fmin(ymn, s[k].y[i]), ymx = fmax(ymx, s[k].y[i]);
    }
    axis ax = { 0, 1, 0, ML, w - MR }, ay = { 0, 0, 0, h0 - MB, MT };
    if (ymn == 0 && ymx == 0) ymx = 1; /* all bars zero: an axis from 0, not around it */
    set_range(&ay, ymn, ymx, 1);
    frame(f, p, w, h, &ax, &ay, 0);
    const double gw = (ax.p1 - ax.p0) / (ng ? ng : 1), bw = gw * 0.8 / (ns ? ns : 1), y0 = tr(&ay, 0.0);
    for (int i = 0; i < ng; i++) {
        const double gx = ax.p0 + i * gw;
        char b[32];
        snprintf(b, sizeof b, "%g", s[0].x ? s[0].x[i] : (double)i);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", gx + gw / 2, ay.p0 + 14, b);
        for (int k = 0; k < ns; k++) {
            if (i >= s[k].n || !isfinite(s[k].y[i])) continue;
            const double y = tr(&ay, s[k].y[i]);
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>",
                    gx + gw * 0.1 + k * bw, fmin(y, y0), bw * 0.92, fabs(y0 - y), s[k].color);
        }
        fputc('\n', f);
    }
    fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n", ax.p0, ax.p1, y0, y0);
    legend(f, s, ns, ML, h0 + 6);
    fputs("</svg>\n", f);
}

/* a perceptual ramp (dark blue -> teal -> yellow), t in [0, 1] */
static void ramp(double t, int rgb[3]) {
    static const int stops[5][3] = { { 68, 1, 84 }, { 59, 82, 139 }, { 33, 145, 140 }, { 94, 201, 98 }, { 253, 231, 37 } };
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    const double u = t * 4;
    const int i = u >= 4 ? 3 : (int)u;
    const double a = u - i;
    for (int c = 0; c < 3; c++) rgb[c] = (int)lround(stops[i][c] + a * (stops[i + 1][c] - stops[i][c]));
}

void nl_svg_heatmap(FILE *f, const char *title, const char *rowlabel, const char *collabel, const double *v, int rows,
                    int cols, int stride, double lo, double hi, int row0, int col0) {
    const int side = rows > cols ? rows : cols, c0 = side > 0 ? (300 + side - 1) / side : 24, cell = c0 > 10 ? c0 : 10;
    const int w0 = ML + cols * cell + 90, tw = (int)(0.62 * 13 * (double)strlen(title ? title : "")) + 16;
    const int w = w0 > tw ? w0 : tw > 640 ? 640 : tw, h = MT + rows * cell + MB, lab = cell < 16 ? 2 : 1;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"11\">\n",
            w, h, w, h);
    fputs("<title>", f);
    nl_html_escape(f, title);
    fprintf(f, "</title>\n<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", w, h);
    title_text(f, title, 8, w);
    if (!(hi > lo)) hi = lo + 1;
    for (int r = 0; r < rows; r++) { /* below 16-px cells every second index is labelled */
        if ((r + row0) % lab == 0)
            fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%d</text>", ML - 4, MT + r * cell + cell / 2 + 4,
                    r + row0);
        for (int c = 0; c < cols; c++) {
            const double x = v[(size_t)r * stride + c];
            if (!isfinite(x)) continue;
            int rgb[3];
            ramp((x - lo) / (hi - lo), rgb);
            fprintf(f,
                    "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"rgb(%d,%d,%d)\"><title>%.4f</title></rect>",
                    ML + c * cell, MT + r * cell, cell, cell, rgb[0], rgb[1], rgb[2], x);
        }
        fputc('\n', f);
    }
    for (int c = 0; c < cols; c++)
        if ((c + col0) % lab == 0)
            fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%d</text>", ML + c * cell + cell / 2,
                    MT + rows * cell + 14, c + col0);
    fprintf(f, "\n<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", ML + cols * cell / 2, h - 8);
    nl_html_escape(f, collabel);
    fprintf(f, "</text><text transform=\"translate(14 %d) rotate(-90)\" text-anchor=\"middle\">", MT + rows * cell / 2);
    nl_html_escape(f, rowlabel);
    fputs("</text>\n", f);
    /* colour bar */
    const int bx = ML + cols * cell + 16, bh = rows * cell;
    for (int i = 0; i < 20; i++) {
        int rgb[3];
        ramp(1.0 - (i + 0.5) / 20.0, rgb);
        fprintf(f, "<rect x=\"%d\" y=\"%.1f\" width=\"12\" height=\"%.1f\" fill=\"rgb(%d,%d,%d)\"/>", bx,
                MT + i * bh / 20.0, bh / 20.0 + 0.5, rgb[0], rgb[1], rgb[2]);
    }
    fprintf(f, "\n<text x=\"%d\" y=\"%d\">%.3g</text><text x=\"%d\" y=\"%d\">%.3g</text>\n", bx + 16, MT + 10, hi,
            bx + 16, MT + bh, lo);
    fputs("</svg>\n", f);
}
