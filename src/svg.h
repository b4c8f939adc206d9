/* svg.h -- inline SVG charts for the report: line/scatter plots with linear or log axes (optionally
 * with a shaded band per series, or named categories on the x axis), grouped bars and heat maps.
 * Each call writes one <svg> element (with a <title>) to f; no scripts, no external resources.
 * Non-finite values (and values <= 0 on a log axis) are skipped. A title wider than its chart is
 * set in a smaller font so that it is never clipped. */
#ifndef NL_SVG_H
#define NL_SVG_H

#include <stdio.h>

typedef struct nl_series {
    const char *label; /* legend text; NULL: not in the legend */
    const char *color;
    const double *x, *y;
    const double *err;     /* optional +- error bars on y */
    const double *lo, *hi; /* optional band: the area between lo[i] and hi[i] is shaded in the colour */
    int n;
    int dash;     /* 0 solid, 1 dashed, 2 dotted */
    int marker;   /* 0 none, 1 dots, 2 crosses (and no line), 3 larger dots (and no line) */
    double width; /* stroke width, 0: 1.6 */
} nl_series;

typedef struct nl_plot {
    const char *title, *xlabel, *ylabel;
    int xlog, ylog;
    double hline; /* > 0: a horizontal reference line */
    const char *hline_label;
    int w, h;                  /* 0: 560 x 340 */
    double ymin_force;         /* if finite: include this value in the y range */
    int xint;                  /* x ticks at integers only (layer indices) */
    const char *const *xnames; /* if set: x ticks at 0..nxnames-1 labelled with these names */
    int nxnames;
} nl_plot;

void nl_svg_lines(FILE *f, const nl_plot *p, const nl_series *s, int ns);
/* Grouped bars: series k's y[i] is bar k of group i (x[i] labels the group, integers). */
void nl_svg_bars(FILE *f, const nl_plot *p, const nl_series *s, int ns);
/* v[r * stride + c] for r < rows, c < cols; NaN cells blank; colour scale from lo to hi. The grid is
 * at least 300 px on its longer side. */
void nl_svg_heatmap(FILE *f, const char *title, const char *rowlabel, const char *collabel, const double *v, int rows,
                    int cols, int stride, double lo, double hi, int row0, int col0);

/* The font size (13 px at most, 8 at least) at which a bold title of this many characters fits in
 * avail pixels (an estimate for sans-serif: 0.62 em per character). */
double nl_svg_title_size(const char *title, double avail);

/* Writes s with &, <, >, " escaped. */
void nl_html_escape(FILE *f, const char *s);

#endif
