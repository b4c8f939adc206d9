/* config.h -- defaults, validation and resolution of nl_config; the option table that drives the
 * command line, --help, saved configs and checkpoint metadata (one table, four uses). */
#ifndef NL_CONFIG_H
#define NL_CONFIG_H

#include "normlab.h"

#include <stdio.h>

/* Commands an option belongs to (bit mask). */
enum {
    NL_CMD_TRAIN = 1,
    NL_CMD_EVAL = 2,
    NL_CMD_SAMPLE = 4,
    NL_CMD_EXPORT = 8,
    NL_CMD_EVALMC = 16,
    NL_CMD_PREPARE = 32,
    NL_CMD_SWEEP = 64,
    NL_CMD_ANALYZE = 128,
    NL_CMD_REPORT = 256,
    NL_CMD_CLF = 512,
    NL_CMD_FID = 1024
};

/* Everything the CLI can set: the run config plus the options of eval/sample/export. */
typedef struct nl_args {
    nl_config cfg;
    char ckpt[NL_PATH_MAX];
    char out_file[NL_PATH_MAX];
    char prompt[4096];
    int tokens, top_k, max_windows, stride;
    char metric[16]; /* eval: loss | ppl | bpb (same size as task: T_WORD options) */
    char task[16];   /* eval-mc task */
    char format[16]; /* export: safetensors | hf (T_WORD: same size as task) */
    double temperature;
    char model_opt_given[32]; /* the last model option set on the command line, "" if none */
    /* issue 5: train --config, prepare, the GPT-2 tokenizer's directory */
    char config[NL_PATH_MAX]; /* train --config FILE */
    char prep_in[1 << 16];    /* prepare --in: files or globs, '\n'-separated */
    char prep_out[NL_PATH_MAX];
    char tokenizer[16];
    double prep_val_frac;
    int shard_tokens;
    char bpe_dir[NL_PATH_MAX];
    char resume[NL_PATH_MAX]; /* train --resume RUN_DIR */
    int overwrite;            /* train --overwrite: replace the run in --out */
    char split[16];           /* eval, analyze: all | train | val ("": the command's default) */
    int an_windows, an_batch; /* analyze --max-windows, --batch */
    char title[4096];         /* report --title (a T_TEXT option: the size of prompt) */
    char paths[1 << 16];      /* report: its PATH arguments, '\n'-separated (a list: the size of prep_in) */
    /* sweep's own options (src/sweep.c); the train options it passes on are parsed as train's */
    struct {
        char placements[4096], lrs[4096]; /* comma-separated lists, checked by sweep.c */
        char out[NL_PATH_MAX], launcher[16], partition[NL_PATH_MAX], time[NL_PATH_MAX];
        int seeds, jobs, cpus_per_task, run_index;
    } sweep;
    /* sample, --arch dit: the grid (RxC), euler | heun, ODE steps, class (-1: by row), guidance scale */
    char grid[16], sampler[16];
    int ode_steps, class_id;
    double cfg_scale;
    /* classifier --steps; fid --classifier, --samples */
    int clf_steps, samples;
    char classifier[NL_PATH_MAX];
    unsigned char given[128]; /* given[i]: option i of the table was on the command line */
} nl_args;

extern const char *const nl_arch_names[NL_ARCH_COUNT]; /* "gpt2", "llama" */

void nl_config_defaults(nl_config *c);
void nl_args_defaults(nl_args *a);

/* Checks every field and fixes the derived ones (vocab_padded, auto switches). NL_ERR_ARG with a
 * message naming the option on failure. Idempotent. */
nl_status nl_config_resolve(nl_config *c);

/* The parameters in the matrices of a resolved config (embeddings, head, block weights): all but the
 * norms, biases and scalars. */
double nl_config_matrix_params(const nl_config *c);

/* Parses argv (after the command word) into a. "--help" sets *help. NL_ERR_ARG on a bad option. */
nl_status nl_args_parse(nl_args *a, int cmd, int argc, char **argv, int *help);
/* Sets one option from a key (dashes or underscores) and a string value, as in config files. */
nl_status nl_args_set(nl_args *a, int cmd, const char *key, const char *val);
/* Reads a config file of `key = value` lines (option names with dashes or underscores, '#' comments,
 * blank lines) into a, as nl_args_set does; NL_ERR_ARG naming the file and line on a bad line. */
nl_status nl_args_load_file(nl_args *a, int cmd, const char *path);
/* The first option of cmd given on the command line whose name is not in allowed (NULL-terminated),
 * or NULL if there is none. */
const char *nl_args_given_except(const nl_args *a, int cmd, const char *const *allowed);
/* 1: --key of cmd takes a value, 0: it is a flag, -1: no such option. */
int nl_option_takes_value(int cmd, const char *key);
/* Prints the options of cmd with their defaults and help. */
void nl_args_help(FILE *f, int cmd);

/* Iterates the model and training options of a resolved config as (key, value) strings, in table
 * order; keys use underscores. Returns the number of entries; fills at most n of them. */
typedef struct nl_kv {
    char key[32];
    char val[NL_PATH_MAX];
} nl_kv;
enum { NL_CONFIG_MAX_KV = 128 }; /* room for every training option (callers assert the count fits) */
int nl_config_to_kv(const nl_config *c, nl_kv *kv, int n);
/* 2: key is a model option (fixed by a checkpoint), 1: another training option, 0: neither. */
int nl_config_key_kind(const char *key);

#endif
