/* check.h -- test helpers: tolerance checks that print what they compared, random fills, and
 * central finite differences over double-precision reference functions. Checks never exit; they
 * return 1 on failure so a test can count its failures. */
#ifndef NL_CHECK_H
#define NL_CHECK_H

#include "common.h"
#include "config.h"
#include "model.h"
#include "safetensors.h"

#include <stddef.h>

/* Norm-wise relative error ||got - want|| / max(||want||, 1e-12) <= rtol; prints the label, the
 * error and the first mismatching element on failure. */
int nl_check_rel(const char *label, const float *got, const double *want, size_t n, double rtol);
int nl_check_scalar(const char *label, double got, double want, double rtol);
#define NL_CHECK(cond, ...) ((cond) ? 0 : (printf("    check failed: " __VA_ARGS__), printf("\n"), 1))

void nl_fill(nl_rng *r, float *x, size_t n, double scale); /* N(0, scale) */
void nl_to_double(const float *x, double *y, size_t n);

/* g[i] = (f(x + h e_i) - f(x - h e_i)) / 2h for i < n, h = 1e-6 (f evaluated in double). */
typedef double (*nl_lossfn)(void *ctx);
void nl_fd_grad(nl_lossfn f, void *ctx, double *x, size_t n, double *g);

/* Runs a shell command, captures up to cap-1 bytes of its stdout+stderr; returns the exit status. */
int nl_run_cmd(const char *cmd, char *out, size_t cap);

/* nl_run_cmd on a printf-formatted command line. */
int nl_run_fmt(char *out, size_t cap, const char *fmt, ...);
/* The number after `key` in s (e.g. key "\"val_loss\": "), NAN when s is NULL or lacks key. */
double nl_json_number(const char *s, const char *key);
/* How many times needle occurs in s, not overlapping. */
int nl_count(const char *s, const char *needle);
/* Runs "normlab ARGS" and checks that it exits with `code` and prints exactly one line on stderr,
 * containing `want`: 0, or 1 with what it got printed. */
int nl_expect_error(int code, const char *want, const char *args);
/* A metrics.jsonl file without the timing fields (from ", \"tok_per_s\"" on), each line ended by
 * '|', into buf; returns the number of lines, -1 if the file cannot be read. */
int nl_metrics_curve(const char *path, char *buf, size_t cap);
/* rm -rf dir (a test's temporary directory): 0, or 1 with a message when it cannot. */
int nl_test_rmdir(const char *dir);
/* Writes a text file of n pseudo-random words (a fixed seed). */
void nl_make_text(const char *path, int n);

/* Path of the normlab binary under test and of the Python interpreter with torch. */
const char *nl_test_bin(void);
const char *nl_test_python(void);
/* The Python of the tests' virtual environment (PyPI packages, scripts/deps.sh): $NORMLAB_VENV/bin/python,
 * default build/venv/bin/python. */
const char *nl_test_venv_python(void);

/* ---- tiny models and their PyTorch-twin cases (tests/ref_check.py, tests/dit_ref.py) */

/* nl_config_defaults, then these sizes and seed (vocab, seq_len 0: the default's, from the data or,
 * with --arch dit, the image) and clip 1.0; the caller sets the rest. */
nl_config nl_test_config(int vocab, int layers, int dim, int heads, int seq_len, uint64_t seed);
/* Makes the case directory root/caseNN (NN = i) into dir (cap bytes); the twin scripts read them. */
void nl_twin_case_dir(char *dir, size_t cap, const char *root, int i);
/* Writes a case's batch file: the n tensors of e, and as metadata the optimizer settings the twin
 * repeats (c's weight_decay and clip, AdamW's beta1, beta2 and eps). */
nl_status nl_twin_write_batch(const char *path, const nl_st_entry *e, int n, const nl_config *c);
/* Runs "python SCRIPT root/case00 ... root/caseNN" over the first n case directories, its output in
 * out; 0, or 1 with the output and a hint printed. */
int nl_twin_run(const char *script, const char *root, int n, char *out, size_t cap);
/* Every gradient of m against the twin's "grad.<name>" tensors of ref: cmp(ctx, label, got, want, n)
 * for each trainable tensor (of its exported rows); a frozen tensor must have none, a trainable one
 * one of its size, and ref no others. Returns the failures (cmp's included). */
typedef int (*nl_twin_cmp)(void *ctx, const char *label, const float *got, const double *want, size_t n);
int nl_twin_grads(const nl_model *m, const nl_st_file *ref, nl_twin_cmp cmp, void *ctx);

#endif
