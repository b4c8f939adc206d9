/* test_evalmc.c -- the multiple-choice task layouts and prompt formats, and
 * eval-mc / eval --stride against the PyTorch twin (tests/ref_check.py, which formats the prompts
 * with its own implementation of lm-evaluation-harness's rules). */
#include "check.h"
#include "evalmc.h"
#include "tests.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char out[1 << 16];
#define run(...) nl_run_fmt(out, sizeof out, __VA_ARGS__)

/* one line of each layout and the exact candidates the harness builds from it */
int test_mc_layouts(void) {
    struct {
        nl_mc_task task;
        const char *line;
        int n, label;
        const char *ctx0, *cont0, *ctx1, *cont1;
    } cases[] = {
        { NL_MC_HELLASWAG,
          "{\"activity_label\": \"Baking\", \"ctx_a\": \"A man [header] mixes.\", \"ctx_b\": \"then HE\", "
          "\"endings\": [\"pours [title] it.\", \"  eats  it\"], \"label\": \"1\"}",
          2, 1, "Baking: A man mixes. Then he", " pours. it.", "Baking: A man mixes. Then he", " eats it" },
        { NL_MC_ARC,
          "{\"question\": \"Why?\", \"choices\": {\"text\": [\"x\", \"y\", \"z\"], \"label\": [\"A\", \"B\", \"C\"]}, \"answerKey\": \"C\"}",
          3, 2, "Question: Why?\nAnswer:", " x", "Question: Why?\nAnswer:", " y" },
        { NL_MC_ARC,
          "{\"question\": {\"stem\": \"How?\", \"choices\": [{\"text\": \"p\", \"label\": \"1\"}, {\"text\": \"q\", \"label\": \"2\"}]}, \"answerKey\": \"2\"}",
          2, 1, "Question: How?\nAnswer:", " p", "Question: How?\nAnswer:", " q" },
        { NL_MC_PIQA, "{\"goal\": \"open a jar\", \"sol1\": \"twist\", \"sol2\": \"pull\", \"label\": 0}", 2, 0,
          "Question: open a jar\nAnswer:", " twist", "Question: open a jar\nAnswer:", " pull" },
        { NL_MC_SIQA,
          "{\"context\": \"Sam ran.\", \"question\": \"Why?\", \"answerA\": \"late\", \"answerB\": \"fun\", \"answerC\": \"cold\", \"label\": \"2\"}",
          3, 1, "Q: Sam ran. Why?\nA:", " late", "Q: Sam ran. Why?\nA:", " fun" },
        { NL_MC_WINOGRANDE,
          "{\"sentence\": \"The cup beat the jar because _ was  strong. \", \"option1\": \"the cup\", \"option2\": \"the jar\", \"answer\": \"1\"}",
          2, 0, "The cup beat the jar because the cup", " was  strong.", "The cup beat the jar because the jar",
          " was  strong." },
        { NL_MC_GENERIC, "{\"context\": \"2+2=\", \"choices\": [\"4\", \"5\"], \"label\": 0}", 2, 0, "2+2=", " 4",
          "2+2=", " 5" },
    };
    int fails = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nl_mc_item it;
        nl_status st = nl_mc_parse(cases[i].task, cases[i].line, strlen(cases[i].line), "t.jsonl", 7, &it);
        if (NL_CHECK(st == NL_OK, "%s parses: %s", nl_mc_task_names[cases[i].task], nl_last_error())) {
            fails++;
            continue;
        }
        fails += NL_CHECK(it.n == cases[i].n && it.label == cases[i].label, "%s: %d choices, label %d",
                          nl_mc_task_names[cases[i].task], it.n, it.label);
        fails += NL_CHECK(!strcmp(it.ctx[0], cases[i].ctx0) && !strcmp(it.cont[0], cases[i].cont0) &&
                                  !strcmp(it.ctx[1], cases[i].ctx1) && !strcmp(it.cont[1], cases[i].cont1),
                          "%s candidates: [%s|%s] [%s|%s]", nl_mc_task_names[cases[i].task], it.ctx[0], it.cont[0],
                          it.ctx[1], it.cont[1]);
        nl_mc_item_free(&it);
    }
    /* bad lines: the message names the file, the line and the field */
    struct {
        nl_mc_task task;
        const char *line, *want;
    } bad[] = {
        { NL_MC_PIQA, "{\"goal\": \"g\", \"sol1\": \"a\", \"label\": 0}", "t.jsonl:3: missing or invalid field 'sol2'" },
        { NL_MC_PIQA, "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\", \"label\": 2}",
          "t.jsonl:3: label 2 is outside the 2 choices" },
        { NL_MC_SIQA,
          "{\"context\": \"c\", \"question\": \"q\", \"answerA\": \"a\", \"answerB\": \"b\", \"answerC\": \"c\", \"label\": \"x\"}",
          "field 'label'" },
        { NL_MC_WINOGRANDE, "{\"sentence\": \"no blank\", \"option1\": \"a\", \"option2\": \"b\", \"answer\": \"1\"}",
          "has no '_' blank" },
        { NL_MC_ARC,
          "{\"question\": \"q\", \"choices\": {\"text\": [\"a\", \"b\"], \"label\": [\"A\", \"B\"]}, \"answerKey\": \"E\"}",
          "answerKey 'E'" },
        { NL_MC_GENERIC, "{\"context\": \"c\", \"choices\": [\"a\"], \"label\": 0}",
          "t.jsonl:3: 'choices' holds 1 choice; a multiple-choice item needs 2 to 16" },
        { NL_MC_HELLASWAG,
          "{\"activity_label\": \"a\", \"ctx_a\": \"b\", \"ctx_b\": \"c\", \"endings\": [\"x\"], \"label\": 0}",
          "'endings' holds 1 choice" },
        { NL_MC_GENERIC, "[1, 2]", "t.jsonl:3: not a JSON object" },
        { NL_MC_GENERIC, "{\"context\": ", "t.jsonl:3: malformed JSON" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        nl_mc_item it;
        nl_status st = nl_mc_parse(bad[i].task, bad[i].line, strlen(bad[i].line), "t.jsonl", 3, &it);
        fails += NL_CHECK(st == NL_ERR_FORMAT && strstr(nl_last_error(), bad[i].want), "bad line %zu: got '%s'", i,
                          st == NL_OK ? "success" : nl_last_error());
    }
    return fails;
}

static void write_str(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    NL_ASSERT(f);
    fputs(s, f);
    fclose(f);
}

/* reads the "ll" arrays of a JSONL file into ll (at most cap values), returns the count */
static int read_lls(const char *path, double *ll, int cap) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, "\"ll\": [");
        if (!p) continue;
        for (p += 7; *p && *p != ']' && n < cap; p++) {
            ll[n++] = strtod(p, &p);
            if (*p == ']') break;
        }
    }
    fclose(f);
    return n;
}

static const char *const task_files[][2] = {
    { "hellaswag",
      "{\"activity_label\": \"Cooking\", \"ctx_a\": \"the cat sat on [step] a mat.\", \"ctx_b\": \"THE dog\", \"endings\": [\"ran far.\", \"sat [title] on a cat.\", \"and the mat\", \"dog dog\"], \"label\": 1}\n"
      "{\"activity_label\": \"Pets\", \"ctx_a\": \"a dog ran\", \"ctx_b\": \"and\", \"endings\": [\"the cat sat.\", \"far far far\", \"on the mat\", \"a\"], \"label\": \"0\"}\n" },
    { "arc",
      "{\"question\": \"Where did the cat sit?\", \"choices\": {\"text\": [\"on a mat\", \"far\", \"the dog\"], \"label\": [\"A\", \"B\", \"C\"]}, \"answerKey\": \"A\"}\n"
      "{\"question\": {\"stem\": \"Who ran?\", \"choices\": [{\"text\": \"the dog\", \"label\": \"1\"}, {\"text\": \"a mat\", \"label\": \"2\"}]}, \"answerKey\": \"1\"}\n" },
    { "piqa", "{\"goal\": \"sit on a mat\", \"sol1\": \"the cat sat\", \"sol2\": \"far ran dog\", \"label\": 0}\n\n"
              "{\"goal\": \"run\", \"sol1\": \"mat mat\", \"sol2\": \"and ran far\", \"label\": 1}\n" },
    { "siqa",
      "{\"context\": \"The dog ran far.\", \"question\": \"What did the cat do?\", \"answerA\": \"sat on a mat\", \"answerB\": \"ran\", \"answerC\": \"the\", \"label\": \"1\"}\n" },
    { "winogrande",
      "{\"sentence\": \"The cat sat on the mat because _ was soft.\", \"option1\": \"the mat\", \"option2\": \"the cat\", \"answer\": \"1\"}\n"
      "{\"sentence\": \"_ ran far and the cat sat.\", \"option1\": \"The dog\", \"option2\": \"A mat\", \"answer\": \"1\"}\n" },
    { "generic",
      "{\"context\": \"caf\\u00e9 \\ud83d\\ude00 the cat\", \"choices\": [\"sat on a mat.\", \"ran dog\"], \"label\": 0}\n" },
};

int test_evalmc_twin(void) {
    int fails = 0;
    char dir[] = "/tmp/nl_mc_XXXXXX", txt[64], p[128];
    NL_ASSERT(mkdtemp(dir));
    snprintf(txt, sizeof txt, "%s/t.txt", dir);
    nl_make_text(txt, 6000);
    int rc = run("%s train --layers 2 --dim 32 --heads 2 --seq-len 32 --batch 4 --threads 2 --steps 20 --lr 3e-3 --data %s --out %s/run 2>&1",
                 nl_test_bin(), txt, dir);
    fails += NL_CHECK(rc == 0, "train: %s", out);
    rc = run("%s export --ckpt %s/run --out %s/m.safetensors 2>&1", nl_test_bin(), dir, dir);
    fails += NL_CHECK(rc == 0, "export: %s", out);
    for (size_t k = 0; k < sizeof task_files / sizeof task_files[0]; k++) {
        const char *task = task_files[k][0];
        char data[96], per[96];
        snprintf(data, sizeof data, "%s/%s.jsonl", dir, task);
        snprintf(per, sizeof per, "%s/%s.out", dir, task);
        write_str(data, task_files[k][1]);
        rc = run("%s eval-mc --ckpt %s/run --task %s --data %s --out %s 2>&1", nl_test_bin(), dir, task, data, per);
        fails += NL_CHECK(rc == 0 && strstr(out, "\"acc\": "), "eval-mc %s: %s", task, out);
        rc = run("%s tests/ref_check.py mc --model %s/m.safetensors --task %s --data %s > %s/%s.ref 2>&1",
                 nl_test_python(), dir, task, data, dir, task);
        snprintf(p, sizeof p, "%s/%s.ref", dir, task);
        double got[64], want[64];
        int ng = read_lls(per, got, 64), nw = read_lls(p, want, 64);
        fails += NL_CHECK(rc == 0 && ng > 0 && ng == nw, "%s: %d log-likelihoods, twin %d", task, ng, nw);
        float gotf[64];
        for (int i = 0; i < ng && i < 64; i++) gotf[i] = (float)got[i];
        char label[64];
        snprintf(label, sizeof label, "%s log-likelihoods vs the twin", task);
        if (ng == nw && ng > 0) fails += nl_check_rel(label, gotf, want, (size_t)ng, 1e-4);
    }
    snprintf(p, sizeof p, "%s/run/evals.jsonl", dir);
    FILE *f = fopen(p, "r");
    int lines = 0, named = 0;
    if (f) {
        char line[1024], want[160];
        snprintf(want, sizeof want, "\"ckpt\": \"%s/run/ckpt-00000020.safetensors\", \"step\": 20, ", dir);
        while (fgets(line, sizeof line, f)) {
            lines += strstr(line, "\"task\": ") != NULL;
            const char *task = strstr(line, "\"task\": \"");
            char data[160];
            snprintf(data, sizeof data, "\"data\": \"%s/%.*s.jsonl\"", dir, task ? (int)strcspn(task + 9, "\"") : 0,
                     task ? task + 9 : "");
            named += strstr(line, want) && strstr(line, data); /* which data file and checkpoint step it scored */
        }
        fclose(f);
    }
    fails += NL_CHECK(lines == 6, "evals.jsonl holds one line per eval-mc run (%d)", lines);
    fails += NL_CHECK(named == 6, "each evals.jsonl line names its data file, checkpoint and step (%d of 6)", named);
    /* the report shows them, one row per task */
    rc = run("%s report %s/run -o %s/r.html >/dev/null 2>&1 && grep -c '<td>\\(hellaswag\\|arc\\|piqa\\|siqa\\|winogrande\\|generic\\)</td>' %s/r.html",
             nl_test_bin(), dir, dir, dir);
    fails += NL_CHECK(rc == 0 && atoi(out) == 6, "report lists the 6 evaluations: %s", out);
    f = fopen(p, "a");
    NL_ASSERT(f);
    fputs("{\"task\": \"piqa\", \"items\": 3, \"acc\": 7}\n", f);
    fclose(f);
    rc = run("%s report %s/run -o %s/r2.html 2>&1", nl_test_bin(), dir, dir);
    fails += NL_CHECK(rc == 1 && strstr(out, "evals.jsonl:7: not an eval-mc result"), "bad evals.jsonl line: %s", out);
    /* a bad task file: one line on stderr naming the line, exit 1 */
    char bad[96];
    snprintf(bad, sizeof bad, "%s/bad.jsonl", dir);
    write_str(bad,
              "{\"goal\": \"a\", \"sol1\": \"b\", \"sol2\": \"c\", \"label\": 0}\n{\"goal\": \"a\", \"sol1\": \"b\"}\n");
    rc = run("%s eval-mc --ckpt %s/run --task piqa --data %s 2>&1 >/dev/null", nl_test_bin(), dir, bad);
    fails += NL_CHECK(rc == 1 && strstr(out, "bad.jsonl:2: missing or invalid field 'sol2'"),
                      "bad task file: exit %d, %s", rc, out);
    rc = run("%s eval-mc --ckpt %s/run --task mmlu --data %s 2>&1 >/dev/null", nl_test_bin(), dir, bad);
    fails += NL_CHECK(rc == 2 && strstr(out, "--task: 'mmlu'"), "unknown task: exit %d, %s", rc, out);

    /* eval: sliding windows against the twin; ppl and bpb follow from the loss */
    double c_loss = NAN, t_loss = NAN;
    rc = run("%s eval --ckpt %s/run --data %s --stride 12 --max-windows 30 --metric ppl 2>&1", nl_test_bin(), dir, txt);
    fails += NL_CHECK(rc == 0, "eval --stride: %s", out);
    char *q = strstr(out, "\"loss\": ");
    if (q) c_loss = atof(q + 8);
    q = strstr(out, "\"ppl\": ");
    fails += NL_CHECK(q && fabs(atof(q + 7) - exp(c_loss)) < 1e-4 * exp(c_loss), "ppl = exp(loss): %s", out);
    fails += NL_CHECK(strstr(out, "\"tokens\": 380,") != NULL, "32 + 29 x 12 scored tokens: %s", out);
    rc = run("%s tests/ref_check.py eval --model %s/m.safetensors --data %s --stride 12 --max-windows 30 2>&1",
             nl_test_python(), dir, txt);
    q = strstr(out, "\"loss\": ");
    if (q) t_loss = atof(q + 8);
    fails += NL_CHECK(rc == 0, "twin eval --stride: %s", out);
    fails += nl_check_scalar("eval --stride 12 vs the twin", c_loss, t_loss, 1e-4);
    rc = run("%s eval --ckpt %s/run --data %s --max-windows 30 --metric bpb 2>&1", nl_test_bin(), dir, txt);
    q = strstr(out, "\"loss\": ");
    double l = q ? atof(q + 8) : NAN;
    q = strstr(out, "\"bpb\": ");
    fails += NL_CHECK(rc == 0 && q && fabs(atof(q + 7) - l / log(2.0)) < 1e-5, "bpb = loss / ln 2 for bytes: %s", out);
    rc = run("%s eval --ckpt %s/run --data %s --stride 33 2>&1", nl_test_bin(), dir, txt);
    fails += NL_CHECK(rc == 2 && strstr(out, "--stride 33: must not exceed seq-len 32"), "stride > T: %s", out);
    rc = run("%s eval --ckpt %s/run --data %s --metric acc 2>&1", nl_test_bin(), dir, txt);
    fails += NL_CHECK(rc == 2 && strstr(out, "--metric: 'acc'"), "bad metric: %s", out);
    fails += nl_test_rmdir(dir);
    return fails;
}
