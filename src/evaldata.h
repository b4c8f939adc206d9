/* evaldata.h -- the tokens `normlab eval` and `normlab analyze` score: a file named on the command line
 * or, without one, the data of the run the checkpoint came from (its saved config: data, val_data,
 * val_frac), and which split of it.
 *   all    the whole stream
 *   train  what training drew its windows from: all of the run's --data when it had --val-data, else
 *          the first 1 - val_frac of the stream
 *   val    the held-out tokens training evaluated on: the run's --val-data (when no file is named),
 *          else the last val_frac of the stream (the run's --val-frac)
 * A text file is encoded with the GPT-2 tokenizer (<|endoftext|> first, as `normlab prepare` does)
 * for a GPT-2-vocabulary model (50257) and read as bytes for any other, as training reads it; token
 * shards are read as they are. */
#ifndef NL_EVALDATA_H
#define NL_EVALDATA_H

#include "data.h"

typedef enum nl_split { NL_SPLIT_ALL, NL_SPLIT_TRAIN, NL_SPLIT_VAL } nl_split;

typedef struct nl_eval_data {
    nl_tokens src, train, val; /* the opened stream and the views of its split */
    const nl_tokens *t;        /* the tokens to score */
    char path[NL_PATH_MAX];    /* the file or glob they came from */
} nl_eval_data;

/* "all" | "train" | "val" -> nl_split; -1 otherwise. */
int nl_split_from_name(const char *name);
extern const char *const nl_split_names[3];

/* Opens the tokens to score for the model of config model, saved in checkpoint ckpt_path. data: a file
 * or glob, or "" for the run's own data. NL_ERR_ARG naming the problem (a split the run did not hold
 * out, a vocabulary without a tokenizer), NL_ERR_IO/FORMAT naming the file. */
nl_status nl_eval_data_open(nl_eval_data *d, const char *ckpt_path, const nl_config *model, const char *data,
                            nl_split split);
void nl_eval_data_close(nl_eval_data *d);

#endif
