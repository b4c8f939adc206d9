/* normlab.c -- the command line: normlab train | eval | eval-mc | sample | export | prepare | analyze |
 * report | sweep | info. Each command but sweep parses its options from the table in src/config.c and calls
 * the library; this is the only place that turns an nl_status into an exit code (2: usage error, 1:
 * runtime error). */
#include "analyze.h"
#include "backend.h"
#include "bpe.h"
#include "ckpt.h"
#include "comm.h"
#include "config.h"
#include "dit.h"
#include "fid.h"
#include "evaldata.h"
#include "evalmc.h"
#include "hf.h"
#include "json.h"
#include "placement.h"
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
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *cmd_name;

static int fail(nl_status st) {
    /* under mpirun every rank has a usage error (the same options): rank 0 says it */
    if (st != NL_ERR_ARG || nl_comm_rank() == 0) fprintf(stderr, "normlab %s: %s\n", cmd_name, nl_last_error());
    return st == NL_ERR_ARG ? 2 : 1;
}

static int usage_header(int cmd, const char *synopsis, const char *what) {
    printf("usage: normlab %s\n\n%s\n\n", synopsis, what);
    nl_args_help(stdout, cmd);
    return 0;
}

/* the checkpoint file --ckpt names (itself, or a run directory's newest) and the step it holds */
static char ckpt_path[NL_PATH_MAX + 300];
static int ckpt_step;

/* loads a checkpoint (file or run directory) for eval/sample/export */
static nl_status load_model(const nl_args *a, nl_model *m) {
    if (!a->ckpt[0]) return NL_FAIL(NL_ERR_ARG, "--ckpt is required");
    nl_rng rng;
    NL_TRY(nl_ckpt_find(a->ckpt, ckpt_path, sizeof ckpt_path));
    return nl_ckpt_load(m, ckpt_path, &ckpt_step, &rng);
}

/* load_model for the commands of the language models: an --arch dit checkpoint is refused in one line */
static nl_status load_lm(const nl_args *a, nl_model *m, const char *cmd) {
    NL_TRY(load_model(a, m));
    if (m->cfg.arch != NL_ARCH_DIT) return NL_OK;
    nl_model_free(m);
    return NL_FAIL(NL_ERR_ARG,
                   "normlab %s: '%s' is an --arch dit model (images); its held-out loss is train's val_loss, its "
                   "samples come from 'normlab sample', its quality from 'normlab fid'",
                   cmd, ckpt_path);
}

static int g_argc;
static char **g_argv;

/* options that leave the loss curve unchanged may be given with --resume; the rest come from the
 * checkpoint */
static const char *const resume_ok[] = { "resume",        "threads", "log-every", "ckpt-every", "keep-ckpts", "on-nan",
                                         "max-rollbacks", "steps",   "zero",      "overlap",    "dp-timeout", NULL };

static int cmd_resume(nl_args *a) {
    const char *bad = nl_args_given_except(a, NL_CMD_TRAIN, resume_ok);
    if (bad) {
        nl_set_error("--%s cannot be combined with --resume: a resumed run continues with the config saved in its checkpoint "
                     "(allowed: --steps --threads --log-every --ckpt-every --keep-ckpts --on-nan --max-rollbacks --zero --overlap --dp-timeout)",
                     bad);
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
    const int planned = r.cfg.steps;
    r.cfg.zero = 0; /* how the moments are held is this launch's choice: --zero is given again or not at all */
    st = nl_args_parse(&r, NL_CMD_TRAIN, g_argc, g_argv, &help); /* the allowed options override */
    if (st != NL_OK) return fail(st);
    if (r.cfg.steps != planned && r.cfg.lr_steps == 0)
        r.cfg.lr_steps = planned; /* the schedule stays; then the floor */
    snprintf(r.cfg.out, sizeof r.cfg.out, "%s", dir);
    st = nl_train_resume(&r.cfg, ckpt);
    if (st != NL_OK) return fail(st);
    return nl_train_interrupted() ? 128 + nl_train_interrupted() : 0;
}

static int cmd_train_run(nl_args *a) {
    for (int i = 0; i < g_argc && !a->resume[0]; i++) /* "--resume=" or "--resume ''": not a fresh run */
        if (!strcmp(g_argv[i], "--resume") || !strncmp(g_argv[i], "--resume=", 9))
            return nl_set_error("--resume needs a run directory"), fail(NL_ERR_ARG);
    if (a->resume[0]) return cmd_resume(a);
    if (a->cfg.init_from[0] && a->model_opt_given[0]) {
        nl_set_error("--%s: the model's shape and placement come from --init-from '%s'; drop the option",
                     a->model_opt_given, a->cfg.init_from);
        return fail(NL_ERR_ARG);
    }
    nl_status st = a->overwrite ? nl_train_overwrite(&a->cfg) : nl_train(&a->cfg);
    if (st != NL_OK) return fail(st);
    return nl_train_interrupted() ? 128 + nl_train_interrupted() : 0; /* the shell's code for a signal */
}

/* under mpirun each rank trains (src/dp.h); MPI ends with the command */
static int cmd_train(nl_args *a) {
    const int rc = cmd_train_run(a);
    nl_comm_finalize();
    return rc;
}

/* --split of eval and analyze (dflt when not given); -1 after setting the error */
static int parse_split(const nl_args *a, int dflt) {
    const int s = a->split[0] ? nl_split_from_name(a->split) : dflt;
    if (s < 0) nl_set_error("--split: '%s' is not all|train|val", a->split);
    return s;
}

static int cmd_eval(nl_args *a) {
    nl_model m;
    nl_eval_data d;
    double nll, bytes;
    size_t n;
    if (a->max_windows < 0) return nl_set_error("--max-windows %d: must be >= 0", a->max_windows), fail(NL_ERR_ARG);
    if (a->stride < 0) return nl_set_error("--stride %d: must be >= 0", a->stride), fail(NL_ERR_ARG);
    if (strcmp(a->metric, "loss") && strcmp(a->metric, "ppl") && strcmp(a->metric, "bpb"))
        return nl_set_error("--metric: '%s' is not loss|ppl|bpb", a->metric), fail(NL_ERR_ARG);
    const int split = parse_split(a, a->cfg.data[0] ? NL_SPLIT_ALL : NL_SPLIT_VAL);
    if (split < 0) return fail(NL_ERR_ARG);
    nl_status st = load_lm(a, &m, "eval");
    if (st != NL_OK) return fail(st);
    if (!strcmp(a->metric, "bpb")) st = nl_tokenizer_check(&m.cfg); /* bytes per token: bytes or GPT-2 */
    if (st == NL_OK) st = nl_eval_data_open(&d, ckpt_path, &m.cfg, a->cfg.data, split);
    if (st == NL_OK) {
        st = nl_eval_stride(&m, d.t, a->max_windows, a->stride, 8, &nll, &n, &bytes);
        if (st == NL_OK) {
            const double loss = nll / (double)n;
            printf("{\"loss\": %.6f, \"tokens\": %zu", loss, n);
            if (!strcmp(a->metric, "ppl")) printf(", \"ppl\": %.6f", exp(loss));
            if (!strcmp(a->metric, "bpb")) printf(", \"bpb\": %.6f", nll / log(2.0) / bytes);
            printf(", \"data\": ");
            nl_json_write_str(stdout, d.path);
            printf(", \"split\": \"%s\", \"step\": %d}\n", nl_split_names[split], ckpt_step);
        }
        nl_eval_data_close(&d);
    }
    nl_model_free(&m);
    return st == NL_OK ? 0 : fail(st);
}

/* one eval-mc result line: what was scored (task, data file, checkpoint and its step) and the accuracies */
static void mc_json(FILE *f, const nl_args *a, int task, const nl_model *m, const nl_mc_result *r) {
    fprintf(f, "{\"task\": \"%s\", \"norm\": \"%s\", \"data\": ", nl_mc_task_names[task],
            nl_placements[m->cfg.placement].name);
    nl_json_write_str(f, a->cfg.data);
    fputs(", \"ckpt\": ", f);
    nl_json_write_str(f, ckpt_path);
    fprintf(f, ", \"step\": %d, \"items\": %d, \"acc\": %.6f, \"acc_norm_token\": %.6f, \"acc_norm_byte\": %.6f}\n",
            ckpt_step, r->items, r->acc, r->acc_norm_token, r->acc_norm_byte);
}

/* appends the result line to RUN_DIR/evals.jsonl when --ckpt names a run directory */
static nl_status append_eval(const nl_args *a, int task, const nl_model *m, const nl_mc_result *r) {
    struct stat sb;
    if (stat(a->ckpt, &sb) != 0 || !S_ISDIR(sb.st_mode)) return NL_OK;
    char path[NL_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/evals.jsonl", a->ckpt);
    FILE *f = fopen(path, "a");
    if (!f) return NL_FAIL(NL_ERR_IO, "cannot append to '%s'", path);
    mc_json(f, a, task, m, r);
    return fclose(f) == 0 ? NL_OK : NL_FAIL(NL_ERR_IO, "writing '%s' failed", path);
}

static int cmd_evalmc(nl_args *a) {
    const int task = nl_mc_task_from_name(a->task);
    if (task < 0)
        return nl_set_error("--task: '%s' is not hellaswag|arc|piqa|siqa|winogrande|generic", a->task), fail(NL_ERR_ARG);
    if (!a->cfg.data[0]) return nl_set_error("--data is required"), fail(NL_ERR_ARG);
    nl_model m;
    nl_status st = load_lm(a, &m, "eval-mc");
    if (st != NL_OK) return fail(st);
    FILE *per = NULL;
    if (a->out_file[0] && !(per = fopen(a->out_file, "w"))) st = NL_FAIL(NL_ERR_IO, "cannot write '%s'", a->out_file);
    nl_mc_result r;
    if (st == NL_OK) st = nl_mc_eval(&m, task, a->cfg.data, per, isatty(STDERR_FILENO), &r);
    if (per && fclose(per) != 0 && st == NL_OK) st = NL_FAIL(NL_ERR_IO, "writing '%s' failed", a->out_file);
    if (st == NL_OK) {
        mc_json(stdout, a, task, &m, &r);
        st = append_eval(a, task, &m, &r);
    }
    nl_model_free(&m);
    return st == NL_OK ? 0 : fail(st);
}

typedef struct bpe_out {
    const nl_bpe *b;
    FILE *f;
} bpe_out;

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
        st = NL_FAIL(NL_ERR_ARG,
                     "the model's vocabulary (%d) is not the tokenizer's (%d); byte models have 256, GPT-2 models 50257",
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

/* --arch dit: a ROWSxCOLS grid of generated images as one PNG (docs/dit.md §3) */
static nl_status sample_dit(const nl_args *a, nl_model *m) {
    const nl_config *c = &m->cfg;
    int rows, cols;
    char extra;
    if (sscanf(a->grid, "%dx%d%c", &rows, &cols, &extra) != 2 || rows < 1 || cols < 1 || rows * cols > 4096)
        return NL_FAIL(NL_ERR_ARG, "--grid '%s': must be ROWSxCOLS, e.g. 8x8 (at most 4096 images)", a->grid);
    if (!a->out_file[0]) return NL_FAIL(NL_ERR_ARG, "--out FILE.png is required to sample an --arch dit model");
    if (strcmp(a->sampler, "euler") && strcmp(a->sampler, "heun"))
        return NL_FAIL(NL_ERR_ARG, "--sampler '%s': euler | heun", a->sampler);
    if (a->ode_steps < 1 || a->ode_steps > 10000)
        return NL_FAIL(NL_ERR_ARG, "--steps %d: must be in 1..10000", a->ode_steps);
    if (a->class_id < -1 || a->class_id > c->classes)
        return NL_FAIL(NL_ERR_ARG, "--class %d: must be -1 (by row), a class 0..%d or %d (the null class)", a->class_id,
                       c->classes - 1, c->classes);
    if (!(a->cfg_scale >= 0 && a->cfg_scale < 1e3))
        return NL_FAIL(NL_ERR_ARG, "--cfg %g: must be in [0, 1000)", a->cfg_scale);
    const int n = rows * cols;
    int *y = malloc((size_t)n * sizeof *y);
    float *img = malloc((size_t)n * c->img_h * c->img_w * c->img_ch * sizeof *img);
    if (!y || !img) return free(y), free(img), NL_FAIL(NL_ERR_IO, "out of memory for %d images", n);
    for (int i = 0; i < n; i++) y[i] = a->class_id >= 0 ? a->class_id : c->classes ? i / cols % c->classes : 0;
    nl_dit_sample(m, n, y, a->cfg_scale, a->ode_steps, !strcmp(a->sampler, "heun"), a->cfg.seed, img);
    nl_status st = nl_dit_grid_png(a->out_file, img, rows, cols, c->img_h, c->img_w, c->img_ch);
    if (st == NL_OK)
        printf("wrote %s: %dx%d grid of %dx%d images, %s, %d steps, cfg %g, %s\n", a->out_file, rows, cols, c->img_w,
               c->img_h, a->sampler, a->ode_steps, c->classes ? a->cfg_scale : 1.0,
               a->class_id >= 0 ? "one class" : "class r mod classes in row r");
    free(y);
    free(img);
    return st;
}

static int cmd_sample(nl_args *a) {
    nl_model m;
    if (a->tokens < 0) return nl_set_error("--tokens %d: must be >= 0", a->tokens), fail(NL_ERR_ARG);
    if (a->top_k < 0) return nl_set_error("--top-k %d: must be >= 0", a->top_k), fail(NL_ERR_ARG);
    if (a->temperature < 0) return nl_set_error("--temperature %g: must be >= 0", a->temperature), fail(NL_ERR_ARG);
    nl_status st = load_model(a, &m);
    if (st == NL_OK && m.cfg.arch == NL_ARCH_DIT) st = sample_dit(a, &m);
    else if (st == NL_OK && m.cfg.vocab > 256) st = sample_bpe(a, &m);
    else if (st == NL_OK) {
        fputs(a->prompt, stdout);
        st = nl_sample(&m, a->prompt, a->tokens, a->temperature, a->top_k, a->cfg.seed, stdout);
        putchar('\n');
    }
    nl_model_free(&m);
    return st == NL_OK ? 0 : fail(st);
}

/* normlab classifier: the feature classifier of 'normlab fid', trained on labelled images */
static int cmd_classifier(nl_args *a) {
    if (!a->cfg.data[0]) return nl_set_error("--data is required (fashion-mnist)"), fail(NL_ERR_ARG);
    if (!a->out_file[0])
        return nl_set_error("--out is required (the classifier's .safetensors file)"), fail(NL_ERR_ARG);
    if (a->clf_steps < 1) return nl_set_error("--steps %d: must be >= 1", a->clf_steps), fail(NL_ERR_ARG);
    if (!nl_images_is_fmnist(a->cfg.data))
        return nl_set_error("--data '%s': the classifier needs labelled images with a test split (fashion-mnist)",
                            a->cfg.data),
               fail(NL_ERR_ARG);
    nl_images tr, te = { 0 };
    nl_status st = nl_images_open(&tr, a->cfg.data, 0);
    if (st != NL_OK) return fail(st);
    st = nl_images_open(&te, a->cfg.data, 1);
    nl_clf c = { 0 };
    const double t0 = nl_now();
    if (st == NL_OK) st = nl_clf_train(&c, &tr, &te, a->clf_steps, a->cfg.seed);
    if (st == NL_OK) st = nl_clf_save(&c, a->out_file);
    if (st == NL_OK)
        printf("{\"classifier\": \"%s\", \"data\": \"%s\", \"steps\": %d, \"test_images\": %d, \"test_accuracy\": %.4f, \"seconds\": %.1f}\n",
               a->out_file, a->cfg.data, a->clf_steps, te.n, c.acc, nl_now() - t0);
    nl_clf_free(&c);
    nl_images_free(&tr);
    nl_images_free(&te);
    return st == NL_OK ? 0 : fail(st);
}

/* normlab fid: the Fréchet distance between generated and held-out images in the classifier's features */
static int cmd_fid(nl_args *a) {
    if (!a->classifier[0])
        return nl_set_error("--classifier is required (a file from 'normlab classifier')"), fail(NL_ERR_ARG);
    if (a->samples < 2 || a->samples > 100000)
        return nl_set_error("--samples %d: must be in 2..100000", a->samples), fail(NL_ERR_ARG);
    if (strcmp(a->sampler, "euler") && strcmp(a->sampler, "heun"))
        return nl_set_error("--sampler '%s': euler | heun", a->sampler), fail(NL_ERR_ARG);
    if (a->ode_steps < 1 || a->ode_steps > 10000)
        return nl_set_error("--steps %d: must be in 1..10000", a->ode_steps), fail(NL_ERR_ARG);
    if (!(a->cfg_scale >= 0 && a->cfg_scale < 1e3))
        return nl_set_error("--cfg %g: must be in [0, 1000)", a->cfg_scale), fail(NL_ERR_ARG);
    nl_model m;
    nl_status st = load_model(a, &m);
    if (st != NL_OK) return fail(st);
    const nl_config *c = &m.cfg;
    nl_clf clf = { 0 };
    nl_images ho = { 0 };
    if (c->arch != NL_ARCH_DIT) st = NL_FAIL(NL_ERR_ARG, "normlab fid: '%s' is not an --arch dit model", ckpt_path);
    if (st == NL_OK) st = nl_clf_load(&clf, a->classifier);
    if (st == NL_OK && (clf.h != c->img_h || clf.w != c->img_w || clf.ch != c->img_ch || clf.classes != c->classes))
        st = NL_FAIL(NL_ERR_ARG,
                     "--classifier '%s' was trained on %dx%dx%d images with %d classes; the model makes %dx%dx%d with %d",
                     a->classifier, clf.w, clf.h, clf.ch, clf.classes, c->img_w, c->img_h, c->img_ch, c->classes);
    const char *data = a->cfg.data[0] ? a->cfg.data : c->data; /* default: the run's own data, its held-out images */
    if (st == NL_OK && nl_images_is_fmnist(data)) st = nl_images_open(&ho, data, 1); /* the test split */
    else if (st == NL_OK) { /* a folder: its last --val-frac, as train held it out */ nl_images all;
        st = nl_images_open(&all, data, 0);
        if (st == NL_OK) nl_images_split(&all, (int)lround(c->val_frac * all.n), &ho);
        nl_images_free(&all);
    }
    if (st == NL_OK && ho.n < a->samples)
        st = NL_FAIL(NL_ERR_ARG, "--samples %d: '%s' holds only %d held-out images", a->samples, data, ho.n);
    if (st == NL_OK) {
        const int n = a->samples;
        const size_t per = (size_t)c->img_h * c->img_w * c->img_ch;
        int *y = nl_xmalloc((size_t)n * sizeof *y);
        float *img = nl_xmalloc((size_t)n * per * sizeof *img);
        double *fg = nl_xmalloc((size_t)n * NL_CLF_FEAT * sizeof *fg),
               *fh = nl_xmalloc((size_t)n * NL_CLF_FEAT * sizeof *fh);
        for (int i = 0; i < n; i++) y[i] = c->classes ? i % c->classes : 0; /* balanced classes, as the test split */
        const double t0 = nl_now();
        nl_dit_sample(&m, n, y, a->cfg_scale, a->ode_steps, !strcmp(a->sampler, "heun"), a->cfg.seed, img);
        nl_clf_features(&clf, img, n, fg);
        nl_clf_features(&clf, ho.pix, n, fh);
        const double fd = nl_frechet(fg, n, fh, n, NL_CLF_FEAT);
        printf("{\"fid\": %.4f, \"samples\": %d, \"sampler\": \"%s\", \"steps\": %d, \"cfg\": %g, \"classifier_accuracy\": %.4f, "
               "\"ckpt\": \"%s\", \"step\": %d, \"data\": \"%s\", \"seconds\": %.1f}\n",
               fd, n, a->sampler, a->ode_steps, c->classes ? a->cfg_scale : 1.0, clf.acc, ckpt_path, ckpt_step, data,
               nl_now() - t0);
        free(y), free(img), free(fg), free(fh);
    }
    nl_images_free(&ho);
    nl_clf_free(&clf);
    nl_model_free(&m);
    return st == NL_OK ? 0 : fail(st);
}

static int cmd_export(nl_args *a) {
    nl_model m;
    if (!a->out_file[0]) return nl_set_error("--out is required"), fail(NL_ERR_ARG);
    const int hf = !strcmp(a->format, "hf");
    if (!hf && strcmp(a->format, "safetensors"))
        return nl_set_error("--format: '%s' is not safetensors|hf", a->format), fail(NL_ERR_ARG);
    const char *cls = NULL;
    nl_status st = hf ? load_lm(a, &m, "export --format hf") : load_model(a, &m);
    if (st == NL_OK) st = hf ? nl_hf_export(&m, a->out_file, &cls) : nl_export(&m, a->out_file);
    if (st == NL_OK && hf)
        printf("wrote %s (config.json and model.safetensors for transformers' %s%s)\n", a->out_file, cls,
               m.cfg.vocab == 50257 ? "; GPT-2's tokenizer: vocab.json, merges.txt, tokenizer_config.json" : "");
    else if (st == NL_OK) printf("wrote %s (%d tensors)\n", a->out_file, m.ntensors);
    nl_model_free(&m);
    return st == NL_OK ? 0 : fail(st);
}

/* the analysis goes to --out, by default analyze.json beside the checkpoint ('normlab report' picks it
 * up from a run directory), or to standard output with --out - */
static nl_status write_analysis(const nl_args *a, const nl_analysis *an, const nl_model *m, const nl_eval_data *d,
                                int split) {
    char out[NL_PATH_MAX + 320], tmp[NL_PATH_MAX + 400];
    if (!strcmp(a->out_file, "-")) return nl_analysis_write_json(an, m, ckpt_path, stdout), NL_OK;
    if (a->out_file[0]) snprintf(out, sizeof out, "%s", a->out_file);
    else {
        const char *slash = strrchr(ckpt_path, '/');
        snprintf(out, sizeof out, "%.*sanalyze.json", slash ? (int)(slash - ckpt_path + 1) : 0, ckpt_path);
    }
    FILE *f;
    NL_TRY(nl_write_atomic_begin(out, tmp, sizeof tmp, &f));
    nl_analysis_write_json(an, m, ckpt_path, f);
    NL_TRY(nl_write_atomic_commit(out, tmp, f));
    printf("wrote %s: %zu windows of the %s split of %s, loss %.4f\n", out, an->windows, nl_split_names[split], d->path,
           an->loss);
    return NL_OK;
}

static int cmd_analyze(nl_args *a) {
    if (a->an_windows < 0) return nl_set_error("--max-windows %d: must be >= 0", a->an_windows), fail(NL_ERR_ARG);
    if (a->an_batch < 1) return nl_set_error("--batch %d: must be >= 1", a->an_batch), fail(NL_ERR_ARG);
    const int split = parse_split(a, NL_SPLIT_VAL);
    if (split < 0) return fail(NL_ERR_ARG);
    nl_model m;
    nl_status st = load_lm(a, &m, "analyze");
    if (st != NL_OK) return fail(st);
    nl_eval_data d;
    st = nl_eval_data_open(&d, ckpt_path, &m.cfg, a->cfg.data, split);
    if (st == NL_OK) {
        nl_analysis an;
        st = nl_analyze(&m, d.t, a->an_windows, a->an_batch, &an);
        if (st == NL_OK) {
            st = write_analysis(a, &an, &m, &d, split);
            nl_analysis_free(&an);
        }
        nl_eval_data_close(&d);
    }
    nl_model_free(&m);
    return st == NL_OK ? 0 : fail(st);
}

static int cmd_report(nl_args *a) {
    char *paths[4096];
    int np = 0;
    for (char *s = a->paths; *s;) {
        if (np == 4096) return nl_set_error("more than 4096 paths"), fail(NL_ERR_ARG);
        paths[np++] = s;
        char *e = strchr(s, '\n');
        if (!e) break;
        *e = 0;
        s = e + 1;
    }
    nl_status st = nl_report(paths, np, a->out_file, a->title);
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
           s.files, (double)s.bytes / 1e6, s.train_tokens, s.train_shards, s.val_tokens, s.val_shards, s.vocab,
           s.seconds, a->prep_out, a->prep_out);
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
      "shards; writes a run directory with config.txt, metrics.jsonl (one JSON object per step),\n"
      "ckpt-<step>.safetensors and TensorBoard event files (tensorboard --logdir runs/; --tensorboard DIR).\n"
      "Presets: --config configs/NAME.conf (gpt2-124m, periln-400m/1.5b/3.2b, repro-d128-gpt2/llama).\n"
      "'normlab train --resume DIR' continues a run from its newest checkpoint (bit-identical losses;\n"
      "--steps N extends it: the first plan's LR schedule, then the floor LR). A --out holding a run is\n"
      "refused unless --overwrite.\n"
      "SIGINT/SIGTERM finish the step, write a checkpoint and exit with 128 + the signal number." },
    { "eval", NL_CMD_EVAL, cmd_eval, "eval --ckpt C [--data F] [--split all|train|val] [options]",
      "Mean next-token cross-entropy over seq-len windows (consecutive and non-overlapping, or sliding\n"
      "with --stride) of F, or without --data of the data the run C was trained on (by default its\n"
      "held-out val split: --val-data, or the last --val-frac of --data, as 'train' evaluated it).\n"
      "A text file is GPT-2-BPE-encoded (<|endoftext|> first) for GPT-2-vocabulary models (50257) and\n"
      "read as bytes for any other. The last line printed is one JSON object {\"loss\", \"tokens\",\n"
      "\"data\", \"split\", \"step\"} plus \"ppl\" or \"bpb\" with --metric." },
    { "eval-mc", NL_CMD_EVALMC, cmd_evalmc, "eval-mc --ckpt C --task T --data FILE.jsonl [options]",
      "Zero-shot multiple choice by log-likelihood, in lm-evaluation-harness's prompt formats\n"
      "(docs/evaluation.md). Prints {\"task\", \"norm\", \"data\", \"ckpt\", \"step\", \"items\", \"acc\",\n"
      "\"acc_norm_token\", \"acc_norm_byte\"} and, when C is a run directory, appends it to C/evals.jsonl." },
    { "sample", NL_CMD_SAMPLE, cmd_sample, "sample --ckpt C [--prompt TEXT] [options]",
      "Continue a prompt: byte-level models (vocabulary 256) by bytes, GPT-2-vocabulary models (50257)\n"
      "through the GPT-2 tokenizer (prompt encoded, tokens decoded; an empty prompt starts at <|endoftext|>).\n"
      "An --arch dit model: a ROWSxCOLS grid of generated images as a PNG (--grid, --out, --sampler, --steps,\n"
      "--class, --cfg; docs/dit.md)." },
    { "classifier", NL_CMD_CLF, cmd_classifier, "classifier --data fashion-mnist --out clf.safetensors [--steps N]",
      "Train the feature classifier of 'normlab fid' on labelled images (an MLP, pixels -> 256 -> 64 ->\n"
      "classes, SiLU; AdamW lr 1e-3, batches of 128) and write it with its accuracy on the test split.\n"
      "Prints one JSON object {\"classifier\", \"data\", \"steps\", \"test_images\", \"test_accuracy\", \"seconds\"}." },
    { "fid", NL_CMD_FID, cmd_fid, "fid --ckpt C --classifier clf.safetensors [--samples N] [options]",
      "Frechet distance between N images an --arch dit model generates (classes balanced, --sampler,\n"
      "--steps, --cfg) and the first N held-out images of its data (Fashion-MNIST's test split; a folder's\n"
      "last --val-frac), in the 64 features of the classifier (docs/dit.md section 4). Prints one JSON\n"
      "object {\"fid\", \"samples\", ..., \"classifier_accuracy\"}." },
    { "export", NL_CMD_EXPORT, cmd_export, "export --ckpt C --out model.safetensors | --format hf --out DIR",
      "Write the parameters as standard safetensors (F32, PyTorch Linear layout) with the config\n"
      "in __metadata__, or (--format hf) a directory that Hugging Face transformers loads with\n"
      "AutoModelForCausalLM.from_pretrained (GPT2, Llama, Gemma2 or Olmo2 classes, where one computes the\n"
      "model exactly; anything else is refused). 'normlab train --init-from' reads both back." },
    { "prepare", NL_CMD_PREPARE, cmd_prepare, "prepare --in FILE... --out DIR [options]",
      "Tokenize text files (GPT-2 BPE or bytes) into llm.c uint16 shards DIR/train_NNNNNN.bin and\n"
      "DIR/val_NNNNNN.bin for 'normlab train --data'. With gpt2 each file starts with <|endoftext|>." },
    { "analyze", NL_CMD_ANALYZE, cmd_analyze, "analyze --ckpt C [--data F] [--split val|train|all] [--out FILE] [options]",
      "Layer redundancy of a trained model over consecutive seq-len windows of the data (by default the\n"
      "held-out val split of the run C was trained on, read from its checkpoint: --val-data, or the\n"
      "last --val-frac of --data): the angular distance d(l, n) = arccos(cos(x_l, x_{l+n}))/pi between\n"
      "residual streams at the last token of each window (x_l enters block l, x_{L+1} is before the\n"
      "final norm), averaged over windows, and the validation-loss increase when block l alone is\n"
      "skipped (x_{l+1} = x_l). Writes one JSON object to analyze.json beside the checkpoint (or --out)\n"
      "and prints where it went; 'normlab report' draws it (docs/methods.md section 5)." },
    { "report", NL_CMD_REPORT, cmd_report, "report PATH... -o report.html [--title TEXT]",
      "One self-contained HTML page (inline SVG, no scripts, printable) from run directories, sweep\n"
      "directories and 'normlab analyze' JSON files: loss and gradient-norm curves; hidden-state variance,\n"
      "max |x| (with the fp16 limit) and gradient norm vs depth; the norms' gain and output RMS vs depth;\n"
      "overflow counts per layer of bf16/fp16 runs; per sweep the LR-stability map and table, the first\n"
      "failing LR of each placement (first diverged seed; mean val loss > 0.05 nats above its best) and\n"
      "every run's loss and gradient norm by LR (shade and dash) with the seeds as a band; angular-distance\n"
      "heat maps and layer-skip bars. Run plots need 'normlab train --diag-every N'; a run directory's\n"
      "analyze.json ('normlab analyze --ckpt RUN') is included automatically." },
};
enum { NCMDS = sizeof cmds / sizeof cmds[0] };

/* A command that parses its own command line: src/sweep.c (its options from the table plus train's,
 * passed through). */
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
    printf("normlab %s\nmatmul: %s\n", NL_VERSION, nl_backend_cpu()->gemm_info());
    printf("bf16 matmul: %s\n", nl_backend_cpu_dtype(NL_DTYPE_BF16)->gemm_info());
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
                   "(NL_GEMM=onednn|openblas chooses; default onednn) and those of --dtype bf16 (NL_GEMM_BF16=onednn:\n"
                   "oneDNN's bf16 kernels, the default where the CPU has avx512_bf16 or AMX; f32: the f32 kernels on\n"
                   "rounded operands), the default thread count and the CPU model.\n"
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
    { "sweep", "sweep --norm A,B --lr X,Y [--seeds K] [--jobs N] [--out DIR] [--launcher local|slurm] [train options]",
      cmd_sweep },
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
    if (argc < 2) return main_usage(stderr), 2;       /* no command: the usage is the message */
    nl_backend_cpu()->gemm_info();                    /* a bad NL_GEMM is a usage error before any work */
    nl_backend_cpu_dtype(NL_DTYPE_BF16)->gemm_info(); /* and a bad NL_GEMM_BF16 */
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
    fprintf(stderr,
            "normlab: unknown command '%s' (commands: train, eval, eval-mc, sample, export, prepare, sweep, report, analyze, info; see 'normlab --help')\n",
            argv[1]);
    return 2;
}
