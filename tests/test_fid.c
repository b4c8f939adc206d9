/* test_fid.c -- the Fréchet distance against closed forms (identical sets, shifted sets, diagonal
 * Gaussians, rotations) and against PyTorch's symmetric eigensolver on a non-commuting pair; the feature
 * classifier on synthetic labelled images (it learns them, save/load keeps its features); the commands'
 * usage errors. */
#include "check.h"
#include "fid.h"
#include "tests.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { D = 6, NS = 400 };

/* a random orthogonal D x D matrix (Gram-Schmidt of Gaussian columns) */
static void orthogonal(nl_rng *r, double *Q) {
    for (int j = 0; j < D; j++) {
        for (int i = 0; i < D; i++) Q[i * D + j] = nl_rng_normal(r);
        for (int k = 0; k < j; k++) {
            double dot = 0;
            for (int i = 0; i < D; i++) dot += Q[i * D + j] * Q[i * D + k];
            for (int i = 0; i < D; i++) Q[i * D + j] -= dot * Q[i * D + k];
        }
        double nn = 0;
        for (int i = 0; i < D; i++) nn += Q[i * D + j] * Q[i * D + j];
        for (int i = 0; i < D; i++) Q[i * D + j] /= sqrt(nn);
    }
}

/* S = Q diag(e) Q^T */
static void spd(const double *Q, const double *e, double *S) {
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            double s = 0;
            for (int k = 0; k < D; k++) s += Q[i * D + k] * e[k] * Q[j * D + k];
            S[i * D + j] = s;
        }
}

static int frechet_cases(void) {
    int f = 0;
    nl_rng r;
    nl_rng_seed(&r, 21);
    double *fa = nl_xmalloc(NS * D * sizeof(double)), *fb = nl_xmalloc(NS * D * sizeof(double));
    for (int i = 0; i < NS * D; i++) fa[i] = nl_rng_normal(&r) * (1 + i % D);
    f += NL_CHECK(fabs(nl_frechet(fa, NS, fa, NS, D)) < 1e-9, "identical sets: %g", nl_frechet(fa, NS, fa, NS, D));
    double shift2 = 0;
    for (int j = 0; j < D; j++) shift2 += (0.5 + j) * (0.5 + j);
    for (int i = 0; i < NS * D; i++) fb[i] = fa[i] + 0.5 + i % D; /* the same covariance, the mean moved */
    f += nl_check_scalar("shifted sets = |shift|^2", nl_frechet(fa, NS, fb, NS, D), shift2, 1e-9);
    /* diagonal Gaussians: sum (sqrt a - sqrt b)^2 + |mu diff|^2; rotated by one Q: the same */
    double Q[D * D], I[D * D] = { 0 }, ea[D], eb[D], sa[D * D], sb[D * D], mua[D], mub[D], want = 0;
    for (int i = 0; i < D; i++) I[i * D + i] = 1, ea[i] = 0.5 + i, eb[i] = 2.0 / (1 + i), mua[i] = i, mub[i] = -0.5 * i;
    for (int i = 0; i < D; i++) want += pow(sqrt(ea[i]) - sqrt(eb[i]), 2) + pow(mua[i] - mub[i], 2);
    spd(I, ea, sa), spd(I, eb, sb);
    f += nl_check_scalar("diagonal Gaussians", nl_frechet_gauss(mua, sa, mub, sb, D), want, 1e-10);
    orthogonal(&r, Q);
    spd(Q, ea, sa), spd(Q, eb, sb);
    f += nl_check_scalar("rotated diagonal Gaussians", nl_frechet_gauss(mua, sa, mub, sb, D), want, 1e-10);
    /* a non-commuting pair against torch.linalg.eigvalsh (float64) */
    double Q2[D * D];
    orthogonal(&r, Q2);
    spd(Q2, eb, sb);
    char cmd[8192];
    int len = snprintf(cmd, sizeof cmd, "%s -c 'import torch\nA=torch.tensor([", nl_test_python());
    for (int i = 0; i < D * D; i++) len += snprintf(cmd + len, sizeof cmd - (size_t)len, "%.17g,", sa[i]);
    len += snprintf(cmd + len, sizeof cmd - (size_t)len, "],dtype=torch.float64).view(%d,%d)\nB=torch.tensor([", D, D);
    for (int i = 0; i < D * D; i++) len += snprintf(cmd + len, sizeof cmd - (size_t)len, "%.17g,", sb[i]);
    snprintf(cmd + len, sizeof cmd - (size_t)len,
             "],dtype=torch.float64).view(%d,%d)\n"
             "w,V=torch.linalg.eigh(A)\nR=V@torch.diag(w.clamp(min=0).sqrt())@V.T\n"
             "e=torch.linalg.eigvalsh(R@B@R)\nprint(repr(float(A.trace()+B.trace()-2*e.clamp(min=0).sqrt().sum())))' 2>&1",
             D, D);
    char out[256];
    const int rc = nl_run_cmd(cmd, out, sizeof out);
    double zero[D] = { 0 };
    if (rc != 0) f += NL_CHECK(0, "torch reference failed: %s", out);
    else f += nl_check_scalar("non-commuting pair vs torch", nl_frechet_gauss(zero, sa, zero, sb, D), atof(out), 1e-9);
    free(fa);
    free(fb);
    return f;
}

/* 6x6 images of 3 classes: a bright row band at the top, middle or bottom, plus noise */
static void synth(nl_images *im, int n, uint64_t seed) {
    nl_rng r;
    nl_rng_seed(&r, seed);
    memset(im, 0, sizeof *im);
    im->n = n, im->h = 6, im->w = 6, im->ch = 1, im->nclass = 3;
    im->pix = nl_xmalloc((size_t)n * 36 * sizeof(float));
    im->label = nl_xmalloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) {
        im->label[i] = (int)nl_rng_below(&r, 3);
        for (int p = 0; p < 36; p++)
            im->pix[i * 36 + p] = (p / 6 / 2 == im->label[i] ? 0.8f : -0.8f) + 0.3f * (float)nl_rng_normal(&r);
    }
}

int test_fid(void) {
    int f = frechet_cases();
    nl_images tr, te;
    synth(&tr, 600, 1);
    synth(&te, 300, 2);
    nl_clf c = { 0 }, d = { 0 };
    f += NL_CHECK(nl_clf_train(&c, &tr, &te, 150, 3) == NL_OK && c.acc > 0.95, "classifier accuracy %.3f: %s", c.acc,
                  nl_last_error());
    char path[] = "/tmp/nl_clf_XXXXXX";
    const int fd = mkstemp(path);
    close(fd);
    f += NL_CHECK(nl_clf_save(&c, path) == NL_OK && nl_clf_load(&d, path) == NL_OK, "save/load: %s", nl_last_error());
    double fc[10 * NL_CLF_FEAT], fdd[10 * NL_CLF_FEAT];
    nl_clf_features(&c, te.pix, 10, fc);
    if (d.be) nl_clf_features(&d, te.pix, 10, fdd);
    f += NL_CHECK(d.be && !memcmp(fc, fdd, sizeof fc) && d.acc == c.acc && nl_clf_accuracy(&d, &te) == c.acc,
                  "loaded classifier differs");
    /* held-out images of the training distribution are closer than images of another class mix */
    nl_images other;
    synth(&other, 300, 4);
    for (int i = 0; i < other.n; i++) /* only class 0 */
        for (int p = 0; p < 36; p++)
            other.pix[i * 36 + p] = (p / 12 == 0 ? 0.8f : -0.8f) + 0.3f * other.pix[i * 36 + p] / 3;
    double *ft = nl_xmalloc(300 * NL_CLF_FEAT * sizeof(double)), *fo = nl_xmalloc(300 * NL_CLF_FEAT * sizeof(double));
    double *fr = nl_xmalloc(300 * NL_CLF_FEAT * sizeof(double));
    nl_clf_features(&c, te.pix, 300, ft);
    nl_clf_features(&c, tr.pix, 300, fr);
    nl_clf_features(&c, other.pix, 300, fo);
    const double same = nl_frechet(ft, 300, fr, 300, NL_CLF_FEAT), diff = nl_frechet(ft, 300, fo, 300, NL_CLF_FEAT);
    printf("  synthetic: classifier accuracy %.3f; FD(test, train) %.4g < FD(test, one class) %.4g\n", c.acc, same, diff);
    f += NL_CHECK(same < 0.1 * diff, "FD separates: %g vs %g", same, diff);
    /* a file that is not a classifier */
    FILE *t = fopen(path, "w");
    fputs("nonsense", t);
    fclose(t);
    nl_clf e = { 0 };
    f += NL_CHECK(nl_clf_load(&e, path) != NL_OK, "garbage loads as a classifier");
    unlink(path);
    {
        nl_images u = tr;
        u.label = NULL;
        nl_clf g = { 0 };
        f += NL_CHECK(nl_clf_train(&g, &u, &te, 1, 1) == NL_ERR_ARG && strstr(nl_last_error(), "labelled"),
                      "unlabelled: %s", nl_last_error());
    }
    free(ft), free(fo), free(fr);
    nl_clf_free(&c), nl_clf_free(&d);
    nl_images_free(&tr), nl_images_free(&te), nl_images_free(&other);
    /* the commands' usage errors: one line, exit 2 */
    char out[4096];
    int rc = nl_run_fmt(out, sizeof out, "%s fid --ckpt /nonexistent 2>&1", nl_test_bin());
    f += NL_CHECK(rc == 2 && strstr(out, "--classifier is required"), "fid without --classifier (rc %d): %s", rc, out);
    rc = nl_run_fmt(out, sizeof out, "%s classifier --data /tmp --out /tmp/x.safetensors 2>&1", nl_test_bin());
    f += NL_CHECK(rc == 2 && strstr(out, "--data '/tmp'"), "classifier on a non-labelled set (rc %d): %s", rc, out);
    rc = nl_run_fmt(out, sizeof out, "%s classifier --help 2>&1", nl_test_bin());
    f += NL_CHECK(rc == 0 && strstr(out, "--steps"), "classifier --help: %s", out);
    return f;
}
