/* evalmc.h -- zero-shot multiple-choice evaluation by log-likelihood (lm-evaluation-harness style):
 * each candidate is a (context, continuation) pair; the model scores log P(continuation | context);
 * the prediction is the candidate with the highest total (acc), the highest total per continuation
 * token (acc_norm_token) or per continuation byte (acc_norm_byte). Prompt formats per task are in
 * docs/evaluation.md. */
#ifndef NL_EVALMC_H
#define NL_EVALMC_H

#include "model.h"

#include <stdio.h>

typedef enum nl_mc_task {
    NL_MC_HELLASWAG,
    NL_MC_ARC,
    NL_MC_PIQA,
    NL_MC_SIQA,
    NL_MC_WINOGRANDE,
    NL_MC_GENERIC,
    NL_MC_COUNT
} nl_mc_task;
extern const char *const nl_mc_task_names[NL_MC_COUNT];
int nl_mc_task_from_name(const char *s); /* -1 if unknown */

enum { NL_MC_MAX_CHOICES = 16 };

/* One item: n candidates; ctx[i] + cont[i] is candidate i's text. Strings are owned. */
typedef struct nl_mc_item {
    int n, label;
    char *ctx[NL_MC_MAX_CHOICES], *cont[NL_MC_MAX_CHOICES];
} nl_mc_item;

/* Builds the item of one JSONL line of the task's public layout. NL_ERR_FORMAT naming path:lineno
 * and the missing or bad field. */
nl_status nl_mc_parse(nl_mc_task task, const char *line, size_t len, const char *path, int lineno, nl_mc_item *it);
void nl_mc_item_free(nl_mc_item *it);

typedef struct nl_mc_result {
    int items;
    double acc, acc_norm_token, acc_norm_byte;
} nl_mc_result;

/* Scores every item of the JSONL file. per_item (may be NULL) receives one JSON line per item with the
 * log-likelihoods. progress: show a progress line on stderr. */
nl_status nl_mc_eval(nl_model *m, nl_mc_task task, const char *path, FILE *per_item, int progress, nl_mc_result *res);

#endif
