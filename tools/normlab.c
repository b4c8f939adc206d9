/* normlab.c -- the command line: normlab train | eval | sample | export. Each command parses its
 * options from the table in src/config.c and calls the library; this is the only place that turns an
 * nl_status into an exit code (2: usage error, 1: runtime error). */
#include "ckpt.h"
#include "config.h"
#include "norm.h"
#include "ops.h"
#include "analyze.h"
#include "report.h"
#include "sweep.h"
#include "train.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *cmd_name;

static int fail(nl_status st) {
    fprintf(stderr, "normlab %s: %s\n", cmd_name, nl_last_error());
    return st == NL_ERR_ARG ? 2 : 1;
}

static int usage_header(int cmd, const char *synopsis, const char *what) {
    printf("usage: normlab %s\n\n%s\n\n", synopsis, what);
    nl_args_help(stdout, cmd);
    return 0;
}

/* loads a checkpoint (file or run directory) for eval/sample/export */
static nl_status load_model(const nl_args *a, nl_model *m) {
    if (!a->ckpt[0]) return NL_FAIL(NL_ERR_ARG, "--ckpt is required");
    char path[NL_PATH_MAX + 300];
    int step;
    nl_rng rng;
    NL_TRY(nl_ckpt_find(a->ckpt, path, sizeof path));
    return nl_ckpt_load(m, path, &step, &rng);
}

static int cmd_train(nl_args *a) {
    if (a->cfg.init_from[0] && a->model_opt_given[0]) {
        nl_set_error("--%s: the model's shape and placement come from --init-from '%s'; drop the option",
                     a->model_opt_given, a->cfg.init_from);
        return fail(NL_ERR_ARG);
    }
    nl_status st = nl_train(&a->cfg);
    return st == NL_OK ? 0 : fail(st);
}

static int cmd_eval(nl_args *a) {
    nl_model m;
    nl_tokens t;
    double loss;
    size_t n;
    if (a->max_windows < 0) return nl_set_error("--max-windows %d: must be >= 0", a->max_windows), fail(NL_ERR_ARG);
    if (!a->cfg.data[0]) return nl_set_error("--data is required"), fail(NL_ERR_ARG);
    nl_status st = load_model(a, &m);
    if (st != NL_OK) return fail(st);
    st = nl_tokens_open(&t, a->cfg.data);
    if (st == NL_OK) {
        st = nl_eval_windows(&m, &t, a->max_windows, 8, &loss, &n);
        if (st == NL_OK) printf("{\"loss\": %.6f, \"tokens\": %zu}\n", loss, n);
        nl_tokens_close(&t);
    }
    nl_model_free(&m);
    return st == NL_OK ? 0 : fail(st);
}

static int cmd_sample(nl_args *a) {
    nl_model m;
    if (a->tokens < 0) return nl_set_error("--tokens %d: must be >= 0", a->tokens), fail(NL_ERR_ARG);
    if (a->top_k < 0) return nl_set_error("--top-k %d: must be >= 0", a->top_k), fail(NL_ERR_ARG);
    if (a->temperature < 0) return nl_set_error("--temperature %g: must be >= 0", a->temperature), fail(NL_ERR_ARG);
    nl_status st = load_model(a, &m);
    if (st == NL_OK) {
        fputs(a->prompt, stdout);
        st = nl_sample(&m, a->prompt, a->tokens, a->temperature, a->top_k, a->cfg.seed, stdout);
        putchar('\n');
    }
    nl_model_free(&m);
    return st == NL_OK ? 0 : fail(st);
}

static int cmd_export(nl_args *a) {
    nl_model m;
    if (!a->out_file[0]) return nl_set_error("--out is required"), fail(NL_ERR_ARG);
    nl_status st = load_model(a, &m);
    if (st == NL_OK) st = nl_export(&m, a->out_file);
    if (st == NL_OK) printf("wrote %s (%d tensors)\n", a->out_file, m.ntensors);
    nl_model_free(&m);
    return st == NL_OK ? 0 : fail(st);
}

static const struct {
    const char *name;
    int cmd;
    int (*run)(nl_args *);
    const char *synopsis, *what;
} cmds[] = {
    { "train", NL_CMD_TRAIN, cmd_train, "train [options]",
      "Train a GPT on a text file (byte tokens) or llm.c token shards; writes a run directory with\n"
      "config.txt, metrics.jsonl (one JSON object per step) and ckpt-<step>.safetensors." },
    { "eval", NL_CMD_EVAL, cmd_eval, "eval --ckpt C --data F [options]",
      "Mean next-token cross-entropy over consecutive non-overlapping seq-len windows of F.\n"
      "The last line printed is one JSON object {\"loss\": ..., \"tokens\": ...}." },
    { "sample", NL_CMD_SAMPLE, cmd_sample, "sample --ckpt C [--prompt TEXT] [options]",
      "Continue a prompt with a byte-level model." },
    { "export", NL_CMD_EXPORT, cmd_export, "export --ckpt C --out model.safetensors",
      "Write the parameters as standard safetensors (F32, PyTorch Linear layout) with the config\n"
      "in __metadata__; 'normlab train --init-from' reads it back." },
};
enum { NCMDS = sizeof cmds / sizeof cmds[0] };

/* Commands with their own option parsing (src/sweep.c, src/report.c, src/analyze.c). */
static int cmd_sweep(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return nl_sweep_usage(), 0;
    char exe[NL_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return nl_set_error("cannot find the normlab binary (/proc/self/exe)"), fail(NL_ERR_IO);
    exe[n] = 0;
    nl_status st = nl_sweep_main(argc, argv, exe);
    return st == NL_OK ? 0 : fail(st);
}

static int cmd_analyze(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return nl_analyze_usage(), 0;
    nl_status st = nl_analyze_main(argc, argv);
    return st == NL_OK ? 0 : fail(st);
}

static int cmd_report(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return nl_report_usage(), 0;
    nl_status st = nl_report_main(argc, argv);
    return st == NL_OK ? 0 : fail(st);
}

static const struct {
    const char *name, *synopsis;
    int (*run)(int argc, char **argv);
} raw_cmds[] = {
    { "sweep", "sweep --norm A,B --lr X,Y [--seeds K] [--jobs N] [--out DIR] [train options]", cmd_sweep },
    { "analyze", "analyze --ckpt C --data F [--out FILE]", cmd_analyze },
    { "report", "report RUN_OR_SWEEP_DIR... -o report.html", cmd_report },
};
enum { NRAW = sizeof raw_cmds / sizeof raw_cmds[0] };

static void main_usage(FILE *f) {
    fprintf(f, "usage: normlab <command> [options]   (normlab <command> --help for its options)\n\ncommands:\n");
    for (int i = 0; i < NCMDS; i++) fprintf(f, "  %-8s %s\n", cmds[i].name, cmds[i].synopsis);
    for (int i = 0; i < NRAW; i++) fprintf(f, "  %-8s %s\n", raw_cmds[i].name, raw_cmds[i].synopsis);
    fprintf(f, "\nnormlab trains GPT-style transformers whose normalization placement is a switch (--norm).\n");
}

int main(int argc, char **argv) {
    cmd_name = "";
    if (argc < 2) return main_usage(stderr), 2; /* no command: the usage is the message */
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) return main_usage(stdout), 0;
    for (int i = 0; i < NCMDS; i++) {
        if (strcmp(argv[1], cmds[i].name)) continue;
        cmd_name = cmds[i].name;
        static nl_args a;
        int help;
        nl_args_defaults(&a);
        nl_status st = nl_args_parse(&a, cmds[i].cmd, argc - 2, argv + 2, &help);
        if (st != NL_OK) return fail(st);
        if (help) return usage_header(cmds[i].cmd, cmds[i].synopsis, cmds[i].what);
        if (a.cfg.threads < 0) return nl_set_error("--threads %d: must be >= 0", a.cfg.threads), fail(NL_ERR_ARG);
        if (a.cfg.threads > 0) nl_set_threads(a.cfg.threads);
        return cmds[i].run(&a);
    }
    for (int i = 0; i < NRAW; i++)
        if (!strcmp(argv[1], raw_cmds[i].name)) return cmd_name = raw_cmds[i].name, raw_cmds[i].run(argc - 2, argv + 2);
    fprintf(stderr, "normlab: unknown command '%s' (commands: train, eval, sample, export, sweep, report, analyze; see 'normlab --help')\n", argv[1]);
    return 2;
}
