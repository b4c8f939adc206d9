/* progress.h -- the terminal progress line of `normlab train`: step, loss and a sparkline of the
 * recent loss, the latest validation loss and its change since the previous evaluation, tok/s, ETA.
 * Only drawn on a terminal; the plain log lines do not use it. */
#ifndef NL_PROGRESS_H
#define NL_PROGRESS_H

#include <stddef.h>

enum { NL_SPARK_POINTS = 16 };

typedef struct nl_progress {
    double pts[NL_SPARK_POINTS]; /* means of completed groups of `group` steps, oldest first */
    int npts;
    double acc; /* the group in progress */
    int nacc, group;
    double val, prev_val; /* the latest two validation losses, NAN until there are */
} nl_progress;

/* Each sparkline character is the mean loss of `group` (>= 1) consecutive steps. */
void nl_progress_init(nl_progress *p, int group);
void nl_progress_loss(nl_progress *p, double loss);
void nl_progress_val(nl_progress *p, double val);

/* The sparkline of v[0..n): one block character (U+2581..U+2588) per value, scaled from the smallest
 * to the largest finite value (all equal: the lowest block), a space for a non-finite value.
 * Writes a NUL-terminated string (truncated at a character boundary to fit cap); returns its bytes. */
size_t nl_sparkline(const double *v, int n, char *out, size_t cap);

/* The line (no \r or \n) into out, at most `cols` display columns: "step S/N | loss X <spark> |
 * val V <arrow><change> | R tok/s | ETA E". Fields that do not fit are shortened: the sparkline loses
 * its oldest points first, then the validation trend goes, then the line is cut at `cols`. Returns
 * the display columns used. */
int nl_progress_format(const nl_progress *p, int step, int steps, double loss, double tok_s, const char *eta, int cols,
                       char *out, size_t cap);

/* Display columns of a UTF-8 string (one per character; every character the line uses is narrow). */
int nl_utf8_cols(const char *s);

#endif
