/* test_family.c -- experiments/family.sh (issue 20's family studies) end to end at SMOKE sizes: every
 * part's sweeps, the classifier and the Fréchet distances, the reports and experiments/family.py's
 * tables, whose numbers are recomputed here from the runs' result.json files; a second invocation
 * resumes without training again; bad knobs give one line and exit 2. */
#include "check.h"
#include "images.h"
#include "tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char out[16384];

/* the smoke root's numbers recomputed from the runs, looked up in family.md: pre +sdd at 8e-3 (the seeds'
 * mean final val loss from result.json, three decimals as the table prints it) and nGPT's target (the
 * highest of the runs' lowest val_loss in metrics.jsonl); then the fid.json files and cpu.tsv's lines */
static const char *const
        RECOMPUTE = "import glob, json, os, sys\n"
                    "r = sys.argv[1]\n"
                    "md = open(os.path.join(r, 'family.md')).read()\n"
                    "def m(p):\n"
                    "    v = [json.load(open(f))['val_loss'] for f in glob.glob(os.path.join(r, p, 'result.json'))]\n"
                    "    return sum(v) / len(v), len(v)\n"
                    "sdd, n = m('sdd/pre_lr0.008_s*')\n"
                    "vals = [[json.loads(l)['val_loss'] for l in open(f) if '\"val_loss\"' in l and '\"diag\"' not in l]\n"
                    "        for p in ('lm/pre_lr0.002_s*', 'ngpt/ngpt_lr0.016_s*') for f in glob.glob(os.path.join(r, p, 'metrics.jsonl'))]\n"
                    "tgt = max(min(v) for v in vals)\n"
                    "for want in (f'| 0.008 | pre +sdd | 0/{n} | {sdd:.3f} +- ', f'Target: {tgt:.4f}, the highest'):\n"
                    "    if want not in md:\n"
                    "        sys.exit(f'family.md lacks {want!r}')\n"
                    "print('fid', len(glob.glob(os.path.join(r, 'dit', '*', 'fid.json'))),\n"
                    "      'cpu', len(open(os.path.join(r, 'cpu.tsv')).read().splitlines()))\n";

int test_family_sh(void) {
    int f = 0, rc;
    char dir[] = "/tmp/nl_family_XXXXXX", env[1024], p[1200];
    NL_ASSERT(mkdtemp(dir));
    const int fm = access(NL_FMNIST_DIR, R_OK) == 0;
    if (!fm) printf("    %s missing: the dit part is skipped\n", NL_FMNIST_DIR);
    snprintf(env, sizeof env, "BIN=%s ROOT=%s/r SMOKE=1 PARTS=ngpt,gpas,sdd%s", nl_test_bin(), dir, fm ? ",dit" : "");
    /* usage errors */
    rc = nl_run_fmt(out, sizeof out, "bash experiments/family.sh --help 2>&1");
    f += NL_CHECK(rc == 0 && strstr(out, "Knobs (environment)") && strstr(out, "ROOT/ngpt"), "--help (rc %d): %s", rc,
                  out);
    rc = nl_run_fmt(out, sizeof out, "bash experiments/family.sh extra 2>&1");
    f += NL_CHECK(rc == 2 && strstr(out, "family: no arguments"), "argument (rc %d): %s", rc, out);
    rc = nl_run_fmt(out, sizeof out, "%s PARTS=ngpt,grid bash experiments/family.sh 2>&1", env);
    f += NL_CHECK(rc == 2 && strstr(out, "unknown part 'grid'"), "PARTS (rc %d): %s", rc, out);
    rc = nl_run_fmt(out, sizeof out, "%s SEEDS=0 bash experiments/family.sh 2>&1", env);
    f += NL_CHECK(rc == 2 && strstr(out, "SEEDS must be a positive integer"), "SEEDS (rc %d): %s", rc, out);
    rc = nl_run_fmt(out, sizeof out, "%s DATA=%s/none bash experiments/family.sh 2>&1", env, dir);
    f += NL_CHECK(rc == 2 && strstr(out, "no data"), "DATA (rc %d): %s", rc, out);
    rc = nl_run_fmt(out, sizeof out, "%s experiments/family.py %s 2>&1", nl_test_python(), dir);
    f += NL_CHECK(rc == 1 && strstr(out, "holds no finished runs"), "family.py on nothing (rc %d): %s", rc, out);
    /* every part at smoke sizes */
    rc = nl_run_fmt(out, sizeof out, "%s bash experiments/family.sh 2>&1", env);
    f += NL_CHECK(rc == 0 && strstr(out, "family: wrote"), "smoke run (rc %d): %s", rc, out);
    static const char *const want[] = {
        "## nGPT against Pre-LN", "## GPAS on pre and peri", "| 0.008 | peri +gpas |", "## SDD on pre", "## CPU time",
        "| ngpt | 0.016 |"
    };
    snprintf(p, sizeof p, "%s/r/family.md", dir);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        rc = nl_run_fmt(out, sizeof out, "grep -cF -- '%s' %s", want[i], p);
        f += NL_CHECK(rc == 0, "family.md has no '%s'", want[i]);
    }
    for (int k = 0; k < 3 + fm; k++) {
        static const char *const rep[] = { "ngpt", "gpas", "sdd", "dit" };
        rc = nl_run_fmt(out, sizeof out, "test -s %s/r/report-%s.html", dir, rep[k]);
        f += NL_CHECK(rc == 0, "no report-%s.html", rep[k]);
    }
    if (fm) {
        rc = nl_run_fmt(out, sizeof out, "grep -c -e '### Fréchet distance' -e '| post |' %s", p);
        f += NL_CHECK(rc == 0, "family.md has no Fréchet distances");
    }
    /* the tables' numbers, recomputed from the runs */
    snprintf(p, sizeof p, "%s/recompute.py", dir);
    FILE *py = fopen(p, "w");
    NL_ASSERT(py);
    fputs(RECOMPUTE, py);
    fclose(py);
    int nfid = -1, ncpu = -1;
    rc = nl_run_fmt(out, sizeof out, "%s %s %s/r 2>&1", nl_test_python(), p, dir);
    f += NL_CHECK(rc == 0 && sscanf(out, "fid %d cpu %d", &nfid, &ncpu) == 2, "recomputed numbers (rc %d): %s", rc, out);
    f += NL_CHECK(nfid == (fm ? 6 : 0), "fid.json files: %d, want %d (2 seeds x 3 placements at their best LR)", nfid,
                  fm ? 6 : 0);
    f += NL_CHECK(ncpu == 3 + fm, "cpu.tsv lines: %d, want one per part", ncpu);
    /* a second invocation trains nothing again: the run's result.json is untouched, one more cpu.tsv line */
    rc = nl_run_fmt(out, sizeof out,
                    "cp %s/r/sdd/pre_lr0.008_s1337/result.json %s/keep.json && %s PARTS=sdd bash experiments/family.sh "
                    ">/dev/null 2>&1 && cmp %s/r/sdd/pre_lr0.008_s1337/result.json %s/keep.json && wc -l < %s/r/cpu.tsv",
                    dir, dir, env, dir, dir, dir);
    f += NL_CHECK(rc == 0 && atoi(out) == 4 + fm, "resume (rc %d): %s", rc, out);
    return f + nl_test_rmdir(dir);
}
