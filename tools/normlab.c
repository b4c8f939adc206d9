/* normlab.c -- the command line: normlab train | eval | sample | export | prepare | info. Each command parses its
 * options from the table in src/config.c and calls the library; this is the only place that turns an
 * nl_status into an exit code (2: usage error, 1: runtime error). */
#include "analyze.h"
#include "bpe.h"
#include "ckpt.h"
#include "config.h"
#include "cpu/gemm.h"
#include "evalmc.h"
#include "norm.h"
#include "ops.h"
#include "prepare.h"
#include "report.h"
#include "sample.h"
#include "sweep.h"
#include "tokenize.h"
#include "train.h"

#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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

static int g_argc;
static char **g_argv;

/* options that leave the loss curve unchanged may be given with --resume; the rest come from the
 * checkpoint */
static const char *const resume_ok[] = { "resume", "threads", "log-every", "ckpt-every", "keep-ckpts", "on-nan", "max-rollbacks", NULL };

static int cmd_resume(nl_args *a) {
    const char *bad = nl_args_given_except(a, NL_CMD_TRAIN, resume_ok);
    if (bad) {
        nl_set_error("--%s cannot be combined with --resume: a resumed run continues with the config saved in its checkpoint "
                     "(allowed: --threads --log-every --ckpt-every --keep-ckpts --on-nan --max-rollbacks)", bad);
        return fail(NL_ERR_ARG);
    }
    static nl_args r;
    char dir[NL_PATH_MAX], ckpt[NL_PATH_MAX + 64];
    int help;
    snprintf(dir, sizeof dir, "%s", a->resume);
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') dir[--n] = 0;
    nl_args_defaults(&r);
    nl_status st = nl_resume_find(dir, ckpt, sizeof ckpt, &r.cfg);
    if (st != NL_OK) return fail(st);
    st = nl_args_parse(&r, NL_CMD_TRAIN, g_argc, g_argv, &help); /* the allowed options override */
    if (st != NL_OK) return fail(st);
    snprintf(r.cfg.out, sizeof r.cfg.out, "%s", dir);
    st = nl_train_resume(&r.cfg, ckpt);
    if (st != NL_OK) return fail(st);
    return nl_train_interrupted() ? 128 + nl_train_interrupted() : 0;
}

static int cmd_train(nl_args *a) {
    for (int i = 0; i < g_argc && !a->resume[0]; i++) /* "--resume=" or "--resume ''": not a fresh run */
        if (!strcmp(g_argv[i], "--resume") || !strncmp(g_argv[i], "--resume=", 9))
            return nl_set_error("--resume needs a run directory"), fail(NL_ERR_ARG);
    if (a->resume[0]) return cmd_resume(a);
    if (a->cfg.init_from[0] && a->model_opt_given[0]) {
        nl_set_error("--%s: the model's shape and placement come from --init-from '%s'; drop the option",
                     a->model_opt_given, a->cfg.init_from);
        return fail(NL_ERR_ARG);
    }
    nl_status st = nl_train(&a->cfg);
    if (st != NL_OK) return fail(st);
    return nl_train_interrupted() ? 128 + nl_train_interrupted() : 0; /* the shell's code for a signal */
}

static int cmd_eval(nl_args *a) {
    nl_model m;
    nl_tokens t;
    double nll, bytes;
    size_t n;
    if (a->max_windows < 0) return nl_set_error("--max-windows %d: must be >= 0", a->max_windows), fail(NL_ERR_ARG);
    if (a->stride < 0) return nl_set_error("--stride %d: must be >= 0", a->stride), fail(NL_ERR_ARG);
    if (strcmp(a->metric, "loss") && strcmp(a->metric, "ppl") && strcmp(a->metric, "bpb"))
        return nl_set_error("--metric: '%s' is not loss|ppl|bpb", a->metric), fail(NL_ERR_ARG);
    if (!a->cfg.data[0]) return nl_set_error("--data is required"), fail(NL_ERR_ARG);
    nl_status st = load_model(a, &m);
    if (st != NL_OK) return fail(st);
    if (!strcmp(a->metric, "bpb")) st = nl_tokenizer_check(&m.cfg); /* bytes per token: bytes or GPT-2 */
    if (st == NL_OK) st = nl_tokens_open(&t, a->cfg.data);
    if (st == NL_OK) {
        st = nl_eval_stride(&m, &t, a->max_windows, a->stride, 8, &nll, &n, &bytes);
        if (st == NL_OK) {
            const double loss = nll / (double)n;
            printf("{\"loss\": %.6f, \"tokens\": %zu", loss, n);
            if (!strcmp(a->metric, "ppl")) printf(", \"ppl\": %.6f", exp(loss));
            if (!strcmp(a->metric, "bpb")) printf(", \"bpb\": %.6f", nll / log(2.0) / bytes);
            printf("}\n");
        }
        nl_tokens_close(&t);
    }
    nl_model_free(&m);
    return st == NL_OK ? 0 : fail(st);
}

/* appends one JSON line to RUN_DIR/evals.jsonl when --ckpt names a run directory */
static nl_status append_eval(const char *ckpt, const char *json) {
    struct stat sb;
    if (stat(ckpt, &sb) != 0 || !S_ISDIR(sb.st_mode)) return NL_OK;
    char path[NL_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/evals.jsonl", ckpt);
    FILE *f = fopen(path, "a");
    if (!f) return NL_FAIL(NL_ERR_IO, "cannot append to '%s'", path);
    fprintf(f, "%s\n", json);
    return fclose(f) == 0 ? NL_OK : NL_FAIL(NL_ERR_IO, "writing '%s' failed", path);
}

static int cmd_evalmc(nl_args *a) {
    const int task = nl_mc_task_from_name(a->task);
    if (task < 0) return nl_set_error("--task: '%s' is not hellaswag|arc|piqa|siqa|winogrande|generic", a->task), fail(NL_ERR_ARG);
    if (!a->cfg.data[0]) return nl_set_error("--data is required"), fail(NL_ERR_ARG);
    nl_model m;
    nl_status st = load_model(a, &m);
    if (st != NL_OK) return fail(st);
    FILE *per = NULL;
    if (a->out_file[0] && !(per = fopen(a->out_file, "w"))) st = NL_FAIL(NL_ERR_IO, "cannot write '%s'", a->out_file);
    nl_mc_result r;
    if (st == NL_OK) st = nl_mc_eval(&m, task, a->cfg.data, per, isatty(STDERR_FILENO), &r);
    if (per && fclose(per) != 0 && st == NL_OK) st = NL_FAIL(NL_ERR_IO, "writing '%s' failed", a->out_file);
    if (st == NL_OK) {
        char json[NL_PATH_MAX + 256];
        snprintf(json, sizeof json, "{\"task\": \"%s\", \"norm\": \"%s\", \"items\": %d, \"acc\": %.6f, \"acc_norm_token\": %.6f, \"acc_norm_byte\": %.6f}",
                 nl_mc_task_names[task], nl_placements[m.cfg.norm].name, r.items, r.acc, r.acc_norm_token, r.acc_norm_byte);
        printf("%s\n", json);
        st = append_eval(a->ckpt, json);
    }
    nl_model_free(&m);
    return st == NL_OK ? 0 : fail(st);
}

typedef struct bpe_out { const nl_bpe *b; FILE *f; } bpe_out;

static void emit_bpe(int token, void *ctx) {
    const bpe_out *o = ctx;
    const unsigned char *p;
    size_t n = nl_bpe_token(o->b, token, &p);
    fwrite(p, 1, n, o->f);
    fflush(o->f);
}

/* a GPT-2-vocabulary model: the prompt is BPE-encoded (empty: <|endoftext|>), tokens decoded */
static nl_status sample_bpe(nl_args *a, nl_model *m) {
    nl_bpe *b;
    NL_TRY(nl_bpe_load(&b, a->bpe_dir));
    nl_status st = NL_OK;
    if (nl_bpe_vocab(b) != m->cfg.vocab) {
        st = NL_FAIL(NL_ERR_ARG, "the model's vocabulary (%d) is not the tokenizer's (%d); byte models have 256, GPT-2 models 50257",
                     m->cfg.vocab, nl_bpe_vocab(b));
    } else {
        nl_ids ids = { 0 };
        nl_bpe_encode(b, a->prompt, strlen(a->prompt), &ids);
        if (ids.n == 0) nl_ids_push(&ids, nl_bpe_eot(b) >= 0 ? nl_bpe_eot(b) : 0);
        fputs(a->prompt, stdout);
        bpe_out o = { b, stdout };
        nl_generate(m, ids.v, (int)ids.n, a->tokens, a->temperature, a->top_k, a->cfg.seed, emit_bpe, &o);
        putchar('\n');
        nl_ids_free(&ids);
    }
    nl_bpe_free(b);
    return st;
}

static int cmd_sample(nl_args *a) {
    nl_model m;
    if (a->tokens < 0) return nl_set_error("--tokens %d: must be >= 0", a->tokens), fail(NL_ERR_ARG);
    if (a->top_k < 0) return nl_set_error("--top-k %d: must be >= 0", a->top_k), fail(NL_ERR_ARG);
    if (a->temperature < 0) return nl_set_error("--temperature %g: must be >= 0", a->temperature), fail(NL_ERR_ARG);
    nl_status st = load_model(a, &m);
    if (st == NL_OK && m.cfg.vocab > 256) st = sample_bpe(a, &m);
    else if (st == NL_OK) {
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

static int cmd_prepare(nl_args *a) {
    const char *in[4096];
    int nin = 0;
    for (char *s = a->prep_in; *s;) {
        if (nin == 4096) return nl_set_error("--in: more than 4096 files or globs (use a glob)"), fail(NL_ERR_ARG);
        in[nin++] = s;
        char *e = strchr(s, '\n');
        if (!e) break;
        *e = 0;
        s = e + 1;
    }
    nl_prepare_opts o = { a->tokenizer, in, nin, a->prep_out, a->prep_val_frac, a->shard_tokens, a->bpe_dir, isatty(2) };
    nl_prepare_stats s;
    nl_status st = nl_prepare(&o, &s);
    if (st != NL_OK) return fail(st);
    printf("prepared %d file(s), %.2f MB: %zu train tokens in %d shard(s), %zu val tokens in %d shard(s), vocabulary %d, "
           "%.1fs; train with: normlab train --data '%s/train_*.bin' --val-data '%s/val_*.bin'\n",
           s.files, (double)s.bytes / 1e6, s.train_tokens, s.train_shards, s.val_tokens, s.val_shards, s.vocab, s.seconds,
           a->prep_out, a->prep_out);
    return 0;
}

static const struct {
    const char *name;
    int cmd;
    int (*run)(nl_args *);
    const char *synopsis, *what;
} cmds[] = {
    { "train", NL_CMD_TRAIN, cmd_train, "train [options]",
      "Train a GPT-2- or LLaMA-style transformer (--arch) on a text file (byte tokens) or llm.c token\n"
      "shards; writes a run directory with config.txt, metrics.jsonl (one JSON object per step) and\n"
      "ckpt-<step>.safetensors.\n"
      "'normlab train --resume DIR' continues a run from its newest checkpoint (bit-identical losses);\n"
      "SIGINT/SIGTERM finish the step, write a checkpoint and exit with 128 + the signal number." },
    { "eval", NL_CMD_EVAL, cmd_eval, "eval --ckpt C --data F [options]",
      "Mean next-token cross-entropy over seq-len windows of F (consecutive and non-overlapping, or\n"
      "sliding with --stride). The last line printed is one JSON object {\"loss\": ..., \"tokens\": ...}\n"
      "plus \"ppl\" or \"bpb\" with --metric." },
    { "eval-mc", NL_CMD_EVALMC, cmd_evalmc, "eval-mc --ckpt C --task T --data FILE.jsonl [options]",
      "Zero-shot multiple choice by log-likelihood, in lm-evaluation-harness's prompt formats\n"
      "(docs/evaluation.md). Prints {\"task\", \"items\", \"acc\", \"acc_norm_token\", \"acc_norm_byte\"}\n"
      "and, when C is a run directory, appends it to C/evals.jsonl." },
    { "sample", NL_CMD_SAMPLE, cmd_sample, "sample --ckpt C [--prompt TEXT] [options]",
      "Continue a prompt: byte-level models (vocabulary 256) by bytes, GPT-2-vocabulary models (50257)\n"
      "through the GPT-2 tokenizer (prompt encoded, tokens decoded; an empty prompt starts at <|endoftext|>)." },
    { "export", NL_CMD_EXPORT, cmd_export, "export --ckpt C --out model.safetensors",
      "Write the parameters as standard safetensors (F32, PyTorch Linear layout) with the config\n"
      "in __metadata__; 'normlab train --init-from' reads it back." },
    { "prepare", NL_CMD_PREPARE, cmd_prepare, "prepare --in FILE... --out DIR [options]",
      "Tokenize text files (GPT-2 BPE or bytes) into llm.c uint16 shards DIR/train_NNNNNN.bin and\n"
      "DIR/val_NNNNNN.bin for 'normlab train --data'. With gpt2 each file starts with <|endoftext|>." },
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

/* the CPU's model name from /proc/cpuinfo ("unknown" elsewhere) */
static void cpu_model(char *buf, size_t cap) {
    snprintf(buf, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) || !colon) continue;
        snprintf(buf, cap, "%s", colon + 1 + (colon[1] == ' '));
        buf[strcspn(buf, "\n")] = 0;
        break;
    }
    fclose(f);
}

/* normlab info and normlab --version: what runs the numbers on this machine */
static void print_info(void) {
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    printf("normlab %s\nmatmul: %s\n", NL_VERSION, nl_gemm_info());
#ifdef _OPENMP
    printf("threads: %d (OpenMP; --threads or OMP_NUM_THREADS)\n", omp_get_max_threads());
#else
    printf("threads: 1 (built without OpenMP)\n");
#endif
    printf("cpu: %s\n", cpu);
}

static int cmd_info(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: normlab info\n\nPrint the version, the library and kernel ISA that run the matrix products\n"
                   "(NL_GEMM=onednn|openblas chooses; default onednn), the default thread count and the CPU model.\n"
                   "'normlab --version' prints the same.\n");
            return 0;
        }
        fprintf(stderr, "normlab info: unknown option '%s' (see 'normlab info --help')\n", argv[i]);
        return 2;
    }
    print_info();
    return 0;
}

static const struct {
    const char *name, *synopsis;
    int (*run)(int argc, char **argv);
} raw_cmds[] = {
    { "sweep", "sweep --norm A,B --lr X,Y [--seeds K] [--jobs N] [--out DIR] [train options]", cmd_sweep },
    { "analyze", "analyze --ckpt C --data F [--out FILE]", cmd_analyze },
    { "report", "report RUN_OR_SWEEP_DIR... -o report.html", cmd_report },
    { "info", "info   (version, matmul library and ISA, threads, CPU; = normlab --version)", cmd_info },
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
    nl_gemm_info();                             /* a bad NL_GEMM is a usage error before any work */
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) return main_usage(stdout), 0;
    if (!strcmp(argv[1], "--version")) return print_info(), 0;
    for (int i = 0; i < NCMDS; i++) {
        if (strcmp(argv[1], cmds[i].name)) continue;
        cmd_name = cmds[i].name;
        static nl_args a;
        int help;
        g_argc = argc - 2;
        g_argv = argv + 2;
        nl_args_defaults(&a);
        nl_status st = nl_args_parse(&a, cmds[i].cmd, argc - 2, argv + 2, &help);
        if (st == NL_OK && !help && a.config[0]) { /* the file first, then the command line over it */
            char cfgfile[NL_PATH_MAX];
            snprintf(cfgfile, sizeof cfgfile, "%s", a.config);
            nl_args_defaults(&a);
            st = nl_args_load_file(&a, cmds[i].cmd, cfgfile);
            if (st == NL_OK) st = nl_args_parse(&a, cmds[i].cmd, argc - 2, argv + 2, &help);
        }
        if (st != NL_OK) return fail(st);
        if (help) return usage_header(cmds[i].cmd, cmds[i].synopsis, cmds[i].what);
        if (a.cfg.threads < 0) return nl_set_error("--threads %d: must be >= 0", a.cfg.threads), fail(NL_ERR_ARG);
        if (a.cfg.threads > 0) nl_set_threads(a.cfg.threads);
        return cmds[i].run(&a);
    }
    for (int i = 0; i < NRAW; i++)
        if (!strcmp(argv[1], raw_cmds[i].name)) return cmd_name = raw_cmds[i].name, raw_cmds[i].run(argc - 2, argv + 2);
    fprintf(stderr, "normlab: unknown command '%s' (commands: train, eval, eval-mc, sample, export, prepare, sweep, report, analyze, info; see 'normlab --help')\n", argv[1]);
    return 2;
}
