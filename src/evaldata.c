/* evaldata.c -- see evaldata.h. */
#include "evaldata.h"

#include "ckpt.h"
#include "common.h"
#include "config.h"
#include "tokenize.h"

#include <stdlib.h>
#include <string.h>

const char *const nl_split_names[3] = { "all", "train", "val" };

int nl_split_from_name(const char *name) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, nl_split_names[i])) return i;
    return -1;
}

nl_status nl_eval_data_open(nl_eval_data *d, const char *ckpt_path, const nl_config *model, const char *data,
                            nl_split split) {
    memset(d, 0, sizeof *d);
    nl_config run;
    nl_config_defaults(&run);
    NL_TRY(nl_ckpt_read_config(ckpt_path, &run));
    const int own = !data[0]; /* the run's own data */
    const char *src = own && split == NL_SPLIT_VAL && run.val_data[0] ? run.val_data : own ? run.data : data;
    if (!src[0])
        return NL_FAIL(NL_ERR_ARG, "--data is required: '%s' does not record the data it was trained on", ckpt_path);
    const double frac = split == NL_SPLIT_ALL || (own && run.val_data[0]) ? 0.0 : run.val_frac;
    if (split == NL_SPLIT_VAL && !(own && run.val_data[0]) && frac <= 0)
        return NL_FAIL(NL_ERR_ARG, "--split val: the run held out no validation data (--val-frac 0); use --split all");
    snprintf(d->path, sizeof d->path, "%s", src);
    nl_status st = nl_tokens_open(&d->src, src);
    if (st == NL_OK) st = nl_tokens_encode(&d->src, model);
    if (st != NL_OK) {
        nl_tokens_close(&d->src);
        return st;
    }
    nl_tokens_split(&d->src, frac, &d->train, &d->val);
    d->t = split == NL_SPLIT_VAL && frac > 0 ? &d->val : &d->train;
    return NL_OK;
}

void nl_eval_data_close(nl_eval_data *d) {
    nl_tokens_close(&d->train);
    nl_tokens_close(&d->val);
    nl_tokens_close(&d->src);
}
