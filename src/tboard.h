/* tboard.h -- TensorBoard event files, written by hand (docs/file-formats.md, "TensorBoard event
 * files"): TFRecord framing (length, masked CRC-32C of the length, data, masked CRC-32C of the data)
 * around Event protocol buffers that hold scalar and histogram summaries. TensorBoard reads every
 * events.out.tfevents.* file of a directory in name order; a run writes a new file per session and
 * cuts the older ones back to what its checkpoint holds, so the directory reads as one run. */
#ifndef NL_TBOARD_H
#define NL_TBOARD_H

#include "diag.h"
#include "normlab.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct nl_tb {
    FILE *f;
    char path[NL_PATH_MAX + 96];
    unsigned char *buf; /* the Summary of the event being built */
    size_t len, cap;
    long long step;
    int failed; /* a write failed (the message is in nl_last_error) */
} nl_tb;

/* Opens a new event file in dir (created if missing) whose name sorts after every event file
 * already there. First it cuts the existing event files back to a run that continues after `step`
 * optimizer steps: it keeps the records of steps <= step, except diagnostic records ("diag_" tags)
 * of step `step` itself, which the continued run writes again; files left without a summary are
 * removed (step 0: a fresh run, nothing is kept; step -1: a fresh run that refuses, NL_ERR_ARG, a
 * directory already holding an event file). The new file starts with the file_version record and a
 * SessionLog START at step + 1. NL_ERR_IO naming the file on failure. */
nl_status nl_tb_open(nl_tb *w, const char *dir, int step);
void nl_tb_close(nl_tb *w);

/* One event: nl_tb_begin, any number of values, nl_tb_end (writes the record and flushes). */
void nl_tb_begin(nl_tb *w, long long step);
void nl_tb_scalar(nl_tb *w, const char *tag, double v);
/* A histogram of the finite values of v[0..n) (non-finite ones are left out; none finite: nothing
 * is written): up to 16 equal-width buckets from min to max; bucket i holds the values in
 * [limit[i-1], limit[i]) (bucket 0 from min; the last bucket, whose limit is max, includes max). */
void nl_tb_histogram(nl_tb *w, const char *tag, const double *v, int n);
nl_status nl_tb_end(nl_tb *w);

/* The scalars of one training step, tagged train/<metrics.jsonl key>: loss, val_loss (left out when
 * val is NaN: no evaluation this step), lr, grad_norm, tok_per_s. */
nl_status nl_tb_step(nl_tb *w, int step, double loss, double val, double lr, double grad_norm, double tok_per_s);

/* Every statistic of a diagnostic pass after `step` steps, as scalars (diag_<key>/<index> per
 * residual-stream point or block, diag_norm_<stat>/<site> per norm) and as histograms over depth
 * (diag_<key>); the keys are those of the "diag" records in metrics.jsonl. */
nl_status nl_tb_diag(nl_tb *w, const nl_diag *d, int step);

/* The cut of nl_tb_open on the bytes of one event file, in place: keeps the records a run continued
 * after `step` steps keeps, up to the first torn or corrupt record; returns the kept length and the
 * number of kept records holding a summary. */
size_t nl_tb_keep(unsigned char *p, size_t n, long long step, int *summaries);

/* TFRecord's masked CRC-32C: ((c >> 15) | (c << 17)) + 0xa282ead8 of c = CRC-32C(p[0..n)). */
uint32_t nl_tb_masked_crc(const void *p, size_t n);

#endif
