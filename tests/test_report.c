/* test_report.c -- the JSON reader rejects malformed input; `normlab report` renders every expected
 * figure from runs, a sweep and an analysis into one self-contained page, which headless Chromium
 * (when installed: Debian's chromium, see .ci/run) renders to a non-blank PNG; malformed metrics fail
 * with one line naming the file and line. */
#include "check.h"
#include "json.h"
#include "tests.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int test_json_reader(void) {
    int fails = 0;
    static const char *const good[] = { "{}", "[]",
                                        "{\"a\": [1, -2.5e3, null, true, false, \"x\\\"y\\n\"], \"b\": {\"c\": []}}",
                                        " 3 " };
    static const char *const bad[] = { "",      "{",   "{\"a\" 1}", "[1,]",         "[1 2]",   "{\"a\": 1} x",
                                       "\"abc", "nan", "[1e999]",   "{\"a\": tru}", "\"\\q\"", "[\"\x01\"]" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        nl_json_doc d;
        if (nl_json_parse(&d, good[i], strlen(good[i]), "t") != NL_OK)
            fails += NL_CHECK(0, "rejected valid '%s': %s", good[i], nl_last_error());
        else nl_json_free(&d);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        nl_json_doc d;
        if (nl_json_parse(&d, bad[i], strlen(bad[i]), "t") == NL_OK)
            fails += NL_CHECK(0, "accepted invalid '%s'", bad[i]), nl_json_free(&d);
        else fails += NL_CHECK(strstr(nl_last_error(), "t: malformed JSON") != NULL, "message: %s", nl_last_error());
    }
    char deep[200];
    memset(deep, '[', sizeof deep);
    nl_json_doc d;
    fails += NL_CHECK(nl_json_parse(&d, deep, sizeof deep, "t") != NL_OK, "depth limit");
    const char *doc = "{\"a\": [1, null, 3], \"s\": \"hi\", \"o\": {\"k\": 2}}";
    if (nl_json_parse(&d, doc, strlen(doc), "t") == NL_OK) {
        double v[4];
        fails += NL_CHECK(nl_json_nums(nl_json_get(d.root, "a"), v, 4) == 3 && v[0] == 1 && v[1] != v[1] && v[2] == 3,
                          "array");
        fails += NL_CHECK(!strcmp(nl_json_str(nl_json_get(d.root, "s")), "hi"), "string");
        fails += NL_CHECK(nl_json_num(nl_json_get(nl_json_get(d.root, "o"), "k")) == 2, "nested");
        fails += NL_CHECK(nl_json_get(d.root, "zz") == NULL && nl_json_str(nl_json_get(d.root, "a")) == NULL,
                          "absent/mistyped");
        nl_json_free(&d);
    } else {
        fails += NL_CHECK(0, "parse doc");
    }
    /* \u escapes decode to UTF-8, a surrogate pair to one 4-byte sequence (task files use them) */
    const char *u = "[\"x\\u00e9\\u4e2d\\ud83d\\ude00\\u0041\"]";
    if (nl_json_parse(&d, u, strlen(u), "t") == NL_OK) {
        const char *got = nl_json_str(nl_json_at(d.root, 0));
        fails += NL_CHECK(got && !strcmp(got, "x\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80"
                                              "A"),
                          "\\u escapes to UTF-8: '%s'", got ? got : "(null)");
        nl_json_free(&d);
    } else {
        fails += NL_CHECK(0, "parse \\u escapes: %s", nl_last_error());
    }
    return fails;
}

static char out[1 << 16];

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

static long file_size(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 ? (long)sb.st_size : -1;
}

/* the heat map's <svg> holding this title: at least 300 x 300 px, and the title's font fits its width */
static int check_heatmap(const char *html, const char *title) {
    char want[256];
    snprintf(want, sizeof want, "<title>%s</title>", title);
    const char *t = strstr(html, want), *svg = NULL;
    for (const char *p = html; t && (p = strstr(p, "<svg")) && p < t; p++) svg = p;
    int w = 0, h = 0;
    double size = 0;
    const char *txt = t ? strstr(t, "font-size=\"") : NULL;
    if (!svg || sscanf(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\"", &w, &h) != 2 ||
        !txt || sscanf(txt, "font-size=\"%lf\"", &size) != 1)
        return NL_CHECK(0, "heat map '%s' not found", title);
    return NL_CHECK(w >= 300 && h >= 300 && size >= 8 && 8 + 0.62 * size * (double)strlen(title) <= w,
                    "heat map %d x %d px, title at %.1f px", w, h, size);
}

int test_report_render(void) {
    int fails = 0;
    char dir[] = "/tmp/nl_report_XXXXXX", cmd[8192];
    NL_ASSERT(mkdtemp(dir));
    const char *bin = nl_test_bin();
    snprintf(cmd, sizeof cmd,
             "awk 'BEGIN{srand(3); for(i=0;i<6000;i++) printf \"%%s \", (rand()<0.5?\"ab\":\"cde\")}' > %s/t.txt", dir);
    fails += NL_CHECK(system(cmd) == 0, "make text");
    const char *tiny = "--layers 3 --dim 32 --heads 2 --seq-len 32 --batch 4 --threads 1 --eval-every 4";
    snprintf(cmd, sizeof cmd,
             "%s train --norm pre %s --steps 8 --diag-every 4 --data %s/t.txt --out %s/pre && "
             "%s train --norm post %s --steps 8 --diag-every 4 --data %s/t.txt --out %s/post && "
             "%s train --norm pre %s --steps 8 --diag-every 4 --dtype fp16 --data %s/t.txt --out %s/fp16 && "
             "%s analyze --ckpt %s/pre --data %s/t.txt --max-windows 4 --threads 1 --out %s/pre/analyze.json && "
             "%s sweep --norm pre,peri --lr 1e-3,50 --seeds 2 --warmup 0 --diverge-window 2 %s --steps 6 --data %s/t.txt --out %s/sw 2>&1",
             bin, tiny, dir, dir, bin, tiny, dir, dir, bin, tiny, dir, dir, bin, dir, dir, dir, bin, tiny, dir, dir);
    fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 0, "inputs: %s", out);
    snprintf(cmd, sizeof cmd, "%s report %s/pre %s/post %s/fp16 %s/sw -o %s/r.html --title 'test report' 2>&1", bin,
             dir, dir, dir, dir, dir);
    fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 0, "report: %s", out);
    char path[256], *html = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/r.html", dir);
    if (nl_read_file(path, 1 << 24, &html, &len) != NL_OK) {
        fails += NL_CHECK(0, "no report: %s", nl_last_error());
    } else {
        /* 3 runs + 2 best-LR sweep runs: 5 variance panels; loss; gradient norm; 4 depth panels; norm gain and RMS;
         * overflow bars (the fp16 run); sweep: LR map, first failing LR, loss and gradient norm of each placement;
         * 1 heat map; skip bars */
        fails += NL_CHECK(count(html, "<svg") == 22, "%d <svg> elements, want 22", count(html, "<svg"));
        static const char *const titles[] = {
            "<title>Loss curves</title>", "<title>Hidden-state variance vs depth</title>",
            "<title>Max |x| vs depth (massive activations, fp16 headroom)</title>",
            "<title>Gradient norm per block vs depth</title>",
            "<title>LR stability map: final validation loss vs learning rate</title>",
            "<title>Angular distance d(l, n): pre",
            "<title>Validation-loss increase when block l alone is skipped</title>", "fp16 max 65504", "diverged",
            "<title>Gradient norm vs step</title>", "<title>Norm gain vs depth</title>",
            "<title>Norm output RMS vs depth</title>", "<title>Overflow counts per layer (bf16 / fp16 runs)</title>",
            "<title>First failing LR per placement</title>", "<title>pre: training loss by LR</title>",
            "<title>peri: gradient norm by LR</title>",
            /* legends: every LR of a placement, its seeds and divergences; the norm sites by kind */
            ">lr 0.001: 2 seeds</text>", ">lr 50: 2 seeds, diverged: 2</text>", ">a seed diverged</text>",
            ">peri lr 0.001 s1337 (best LR of sweep): OUT norms (step 6)</text>",
            ">post lr 0.002 s1337: POST norms (step 8)</text>", ">pre lr 0.002 s1337: emb / final norms (step 8)</text>",
            ">best LR (lowest mean val loss, no seed diverged)</text>", ">first LR where a seed diverged</text>",
            /* the first failing LR table, the fp16 run's loss scale (no step skipped) */
            ">peri</td><td>0.001 (", ")</td><td>50 (no seed finished)</td><td>50 (2 / 2)</td><td>50</td></tr>",
            "pre lr 0.002 s1337 fp16</td>", "<td>0</td><td>65536</td></tr>"
        };
        for (size_t i = 0; i < sizeof titles / sizeof titles[0]; i++)
            fails += NL_CHECK(strstr(html, titles[i]) != NULL, "missing '%s'", titles[i]);
        fails += NL_CHECK(strstr(html, "x' = x + F(N(x))") != NULL, "legend names the Pre-LN equation");
        fails += NL_CHECK(!strstr(html, "<script") && !strstr(html, "src=") && !strstr(html, "href=") &&
                                  !strstr(html, "@import"),
                          "self-contained: no scripts or external resources");
        fails += NL_CHECK(strstr(html, ">peri</td><td>50</td><td>2</td><td>0</td><td>2</td>") != NULL,
                          "sweep table marks lr 50 diverged");
        /* seeds as bands: loss and gradient norm at lr 1e-3 (2 seeds) and lr 50 (2 seeds for a few steps), 2 placements */
        fails += NL_CHECK(count(html, "fill-opacity=\"0.2\"") == 8, "%d seed bands, want 8",
                          count(html, "fill-opacity=\"0.2\""));
        fails += NL_CHECK(count(html, ">peri</td><td>0.001 (") == 1 && count(html, "stroke-dasharray=\"5 3\"") > 4,
                          "LR dashes");
        fails += check_heatmap(html, "Angular distance d(l, n): pre lr 0.002 s1337");
        free(html);
    }
    /* headless Chromium: the page renders to a PNG far larger than a blank page of the same size */
    if (nl_run_cmd("command -v chromium", out, sizeof out) == 0) {
        snprintf(cmd, sizeof cmd,
                 "echo '<html><body></body></html>' > %s/blank.html && cd %s && "
                 "chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1000,4000 --screenshot=%s/r.png file://%s/r.html >/dev/null 2>&1 && "
                 "chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1000,4000 --screenshot=%s/blank.png file://%s/blank.html >/dev/null 2>&1",
                 dir, dir, dir, dir, dir, dir);
        fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 0, "chromium failed");
        char png[256], blank[256];
        snprintf(png, sizeof png, "%s/r.png", dir);
        snprintf(blank, sizeof blank, "%s/blank.png", dir);
        FILE *f = fopen(png, "rb");
        unsigned char hdr[24] = { 0 };
        if (f) fails += NL_CHECK(fread(hdr, 1, 24, f) == 24, "png header"), fclose(f);
        fails += NL_CHECK(!memcmp(hdr, "\x89PNG", 4) && hdr[18] * 256 + hdr[19] == 1000, "a 1000-pixel-wide PNG");
        fails += NL_CHECK(file_size(png) > 5 * file_size(blank) && file_size(blank) > 0,
                          "PNG %ld bytes vs blank %ld: not blank", file_size(png), file_size(blank));
    } else {
        printf("    note: chromium not installed; PNG rendering not checked (CI installs it)\n");
    }
    /* malformed input: one line naming the file and line, exit 1 */
    snprintf(cmd, sizeof cmd,
             "sed -i '3s/.*/{\"step\": 3, \"loss\": /' %s/post/metrics.jsonl && %s report %s/post -o %s/bad.html 2>&1 >/dev/null",
             dir, bin, dir, dir);
    fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 1 && strstr(out, "post/metrics.jsonl:3: malformed JSON") &&
                              count(out, "\n") == 1,
                      "malformed: %s", out);
    snprintf(cmd, sizeof cmd,
             "sed -i '3s/.*/{\"diag\": 3, \"x_var\": [1, 2]}/' %s/post/metrics.jsonl && %s report %s/post -o %s/bad.html 2>&1 >/dev/null",
             dir, bin, dir, dir);
    fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 1 && strstr(out, "\"x_var\" must be an array of 4 numbers"),
                      "short array: %s", out);
    snprintf(cmd, sizeof cmd,
             "sed -i '3s/.*/{\"diag\": 3, \"x_var\": [1,1,1,1], \"x_max\": [1,1,1,1], \"x_max_over_median\": [1,1,1,1], "
             "\"grad_block\": [1,1,1], \"norms\": [{\"site\": \"emb_norm\"}]}/' %s/post/metrics.jsonl && %s report %s/post -o %s/bad.html 2>&1 >/dev/null",
             dir, bin, dir, dir);
    fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 1 &&
                              strstr(out, "post/metrics.jsonl:3: \"norms\" entries need site, gain_mean and out_rms"),
                      "bad norms: %s", out);
    snprintf(cmd, sizeof cmd, "%s report %s/nothing -o %s/bad.html 2>&1 >/dev/null", bin, dir, dir);
    fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 1 && strstr(out, "does not exist"), "missing: %s", out);
    snprintf(cmd, sizeof cmd, "%s report %s/pre 2>&1 >/dev/null", bin, dir);
    fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 2 && strstr(out, "-o report.html is required"), "no -o: %s",
                      out);
    fails += nl_test_rmdir(dir);
    return fails;
}

/* experiments/claims.py against a synthetic protocol root whose numbers are known (tests/claims_check.py) */
int test_claims_py(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s tests/claims_check.py 2>&1", nl_test_python());
    const int rc = nl_run_cmd(cmd, out, sizeof out);
    return NL_CHECK(rc == 0 && strstr(out, "claims_check: ok"), "claims_check.py (exit %d): %s", rc, out);
}

/* a run's label names the options on top of its placement (--gpas, --sdd): pre and pre +gpas stay apart */
int test_report_label(void) {
    int fails = 0;
    char dir[] = "/tmp/nl_replabel_XXXXXX", cmd[2048];
    NL_ASSERT(mkdtemp(dir));
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd,
                 "mkdir -p %s/r%d && printf 'norm = pre\\nlayers = 2\\ndim = 16\\nlr = 0.002\\nseed = 1\\nsteps = 2\\n%s' > %s/r%d/config.txt && "
                 "printf '{\"step\": 1, \"loss\": 3.0}\\n{\"step\": 2, \"loss\": 2.5, \"val_loss\": 2.6}\\n' > %s/r%d/metrics.jsonl",
                 dir, k, k ? "gpas = on\\nsdd = on\\n" : "", dir, k, dir, k);
        fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 0, "make run %d: %s", k, out);
    }
    snprintf(cmd, sizeof cmd,
             "%s report %s/r0 %s/r1 -o %s/r.html 2>&1 && grep -c 'pre +gpas +sdd lr 0.002 s1' %s/r.html && grep -c 'pre lr 0.002 s1' %s/r.html",
             nl_test_bin(), dir, dir, dir, dir, dir);
    fails += NL_CHECK(nl_run_cmd(cmd, out, sizeof out) == 0, "labels: %s", out);
    fails += nl_test_rmdir(dir);
    return fails;
}
