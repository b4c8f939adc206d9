/* report.h -- `normlab report PATH... -o report.html`: one self-contained HTML file (inline SVG, no
 * scripts, no external resources) from run directories, sweep directories and analyze JSON files.
 *
 * A PATH is
 *   a run directory (config.txt + metrics.jsonl; its analyze.json is picked up when present),
 *   a sweep directory (subdirectories with result.json): the LR-stability map and the sweep table,
 *     plus the runs at each placement's best learning rate (lowest seed) for the run plots, or
 *   an analyze output (.json with "analyze": 1).
 * Every file is validated while read; a malformed one fails the report with one line naming the file
 * and line (a last metrics line cut short by a crash is skipped). */
#ifndef NL_REPORT_H
#define NL_REPORT_H

#include "normlab.h"

/* Writes the page for paths[0..np) to out (atomically) and prints one summary line. */
nl_status nl_report(char **paths, int np, const char *out, const char *title);

#endif
