/* svg.h -- inline SVG charts for the report: line/scatter plots with linear or log axes, grouped
 * bars and heat maps. Each call writes one <svg> element (with a <title>) to f; no scripts, no
 * external resources. Non-finite values (and values <= 0 on a log axis) are skipped. */
#ifndef NL_SVG_H
#define NL_SVG_H

#include <stdio.h>

typedef struct nl_series {
    const char *label; /* legend text; NULL: not in the legend */
    const char *color;
    const double *x, *y;
    const double *err; /* optional +- error bars on y */
    int n;
    int dash;          /* 0 solid, 1 dashed, 2 dotted */
    int marker;        /* 0 none, 1 dots, 2 crosses (and no line) */
    double width;      /* stroke width, 0: 1.6 */
} nl_series;

typedef struct nl_plot {
    const char *title, *xlabel, *ylabel;
    int xlog, ylog;
    double hline;            /* > 0: a horizontal reference line */
    const char *hline_label;
    int w, h;                /* 0: 560 x 340 */
    double ymin_force;       /* if finite: include this value in the y range */
    int xint;                /* x ticks at integers only (layer indices) */
} nl_plot;

void nl_svg_lines(FILE *f, const nl_plot *p, const nl_series *s, int ns);
/* Grouped bars: series k's y[i] is bar k of group i (x[i] labels the group, integers). */
void nl_svg_bars(FILE *f, const nl_plot *p, const nl_series *s, int ns);
/* v[r * stride + c] for r < rows, c < cols; NaN cells blank; colour scale from lo to hi. */
void nl_svg_heatmap(FILE *f, const char *title, const char *rowlabel, const char *collabel, const double *v, int rows,
                    int cols, int stride, double lo, double hi, int row0, int col0);

/* Writes s with &, <, >, " escaped. */
void nl_html_escape(FILE *f, const char *s);

#endif
