/* analyze.h -- `normlab analyze`: layer redundancy of a trained model (docs/methods.md §5.1, §5.2).
 *
 * Over consecutive windows of a token stream (as nl_eval_windows):
 *   angular distance d(l, n) = arccos(cos(x_l[t*], x_{l+n}[t*])) / pi, t* the last token of each
 *     window, x_l the residual stream entering block l (x_{L+1}: after the last block, before the
 *     final norm), averaged over windows, for l = 1..L and n = 1..L+1-l;
 *   skip_delta[l] = mean loss with block l skipped (x_{l+1} := x_l) - mean loss of the full model. */
#ifndef NL_ANALYZE_H
#define NL_ANALYZE_H

#include "data.h"
#include "model.h"

#include <stdio.h>

typedef struct nl_analysis {
    int L;
    size_t windows;
    double loss;       /* full model */
    double *skip_loss; /* (L) */
    double *angular;   /* (L x L): angular[(l-1)*L + (n-1)] = d(l, n); NaN where l + n > L + 1 */
} nl_analysis;

nl_status nl_analyze(nl_model *m, const nl_tokens *t, int max_windows, int B, nl_analysis *a);
void nl_analysis_free(nl_analysis *a);
void nl_analysis_write_json(const nl_analysis *a, const nl_model *m, const char *ckpt, FILE *f);

#endif
