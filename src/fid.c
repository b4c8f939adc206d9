/* fid.c -- the feature classifier and the Fréchet distance of docs/dit.md §4 (see fid.h). The classifier
 * computes through the backend table; the statistics (means, covariances, eigenvalues by cyclic Jacobi
 * rotations) are double precision on the host. */
#include "fid.h"

#include "common.h"
#include "safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- the classifier */

static void clf_layout(nl_clf *c, int B) {
    const int in = c->in, H = NL_CLF_HID, F = NL_CLF_FEAT, K = c->classes;
    const nl_backend *be = c->be;
    c->n = (size_t)H * in + H + (size_t)F * H + F + (size_t)K * F + K;
    c->params = be->alloc(c->n * sizeof(float));
    c->grads = be->alloc(c->n * sizeof(float));
    c->m = be->alloc(c->n * sizeof(float));
    c->v = be->alloc(c->n * sizeof(float));
    float *p = c->params;
    c->w1 = p, p += (size_t)H * in;
    c->b1 = p, p += H;
    c->w2 = p, p += (size_t)F * H;
    c->b2 = p, p += F;
    c->w3 = p, p += (size_t)K * F;
    c->b3 = p;
    c->B = B;
    const size_t nact = (size_t)B * (2 * in + 3 * H + 3 * F + K + 1);
    c->x = be->alloc(nact * sizeof(float));
    c->h1 = c->x + (size_t)B * 2 * in; /* x, then dx */
    c->s1 = c->h1 + (size_t)B * H;
    c->d1 = c->s1 + (size_t)B * H;
    c->h2 = c->d1 + (size_t)B * H;
    c->s2 = c->h2 + (size_t)B * F;
    c->d2 = c->s2 + (size_t)B * F;
    c->logits = c->d2 + (size_t)B * F;
    c->losses = c->logits + (size_t)B * K;
    c->tgt = be->alloc((size_t)B * sizeof(int));
}

void nl_clf_free(nl_clf *c) {
    if (c->be) {
        c->be->free(c->params), c->be->free(c->grads), c->be->free(c->m), c->be->free(c->v);
        c->be->free(c->x), c->be->free(c->tgt);
    }
    memset(c, 0, sizeof *c);
}

static void clf_init(nl_clf *c, const nl_images *im, int B) {
    memset(c, 0, sizeof *c);
    c->be = nl_backend_cpu();
    c->h = im->h, c->w = im->w, c->ch = im->ch, c->in = im->h * im->w * im->ch, c->classes = im->nclass;
    clf_layout(c, B);
}

/* forward of nb rows staged in c->x: logits (nb, classes) */
static void clf_forward(nl_clf *c, int nb) {
    const nl_backend *be = c->be;
    be->linear_forward(c->h1, c->x, c->w1, c->b1, (size_t)nb, c->in, NL_CLF_HID);
    be->silu_forward(c->s1, c->h1, (size_t)nb * NL_CLF_HID);
    be->linear_forward(c->h2, c->s1, c->w2, c->b2, (size_t)nb, NL_CLF_HID, NL_CLF_FEAT);
    be->silu_forward(c->s2, c->h2, (size_t)nb * NL_CLF_FEAT);
    be->linear_forward(c->logits, c->s2, c->w3, c->b3, (size_t)nb, NL_CLF_FEAT, c->classes);
}

/* images idx[0..nb) of im into c->x (and their labels into c->tgt) */
static void clf_stage(nl_clf *c, const nl_images *im, const int *idx, int nb) {
    const size_t per = (size_t)c->in;
    float *host = nl_xmalloc((size_t)nb * per * sizeof(float));
    int *lab = nl_xmalloc((size_t)nb * sizeof(int));
    for (int b = 0; b < nb; b++) {
        memcpy(host + (size_t)b * per, im->pix + (size_t)idx[b] * per, per * sizeof(float));
        lab[b] = im->label ? im->label[idx[b]] : 0;
    }
    c->be->from_host(c->x, host, (size_t)nb * per * sizeof(float));
    c->be->from_host(c->tgt, lab, (size_t)nb * sizeof(int));
    free(host);
    free(lab);
}

double nl_clf_accuracy(nl_clf *c, const nl_images *im) {
    int *idx = nl_xmalloc((size_t)c->B * sizeof(int)), right = 0;
    float *lg = nl_xmalloc((size_t)c->B * c->classes * sizeof(float));
    for (int i0 = 0; i0 < im->n; i0 += c->B) {
        const int nb = im->n - i0 < c->B ? im->n - i0 : c->B;
        for (int b = 0; b < nb; b++) idx[b] = i0 + b;
        clf_stage(c, im, idx, nb);
        clf_forward(c, nb);
        c->be->to_host(lg, c->logits, (size_t)nb * c->classes * sizeof(float));
        for (int b = 0; b < nb; b++) {
            int best = 0;
            for (int k = 1; k < c->classes; k++)
                if (lg[(size_t)b * c->classes + k] > lg[(size_t)b * c->classes + best]) best = k;
            right += best == im->label[i0 + b];
        }
    }
    free(idx);
    free(lg);
    return im->n ? (double)right / im->n : NAN;
}

nl_status nl_clf_train(nl_clf *c, const nl_images *train, const nl_images *test, int steps, uint64_t seed) {
    if (!train->label || train->nclass < 2)
        return NL_FAIL(NL_ERR_ARG,
                       "the feature classifier needs labelled images (--data fashion-mnist); a PNG folder has no labels");
    if (!test->label || test->nclass != train->nclass || test->h != train->h || test->w != train->w ||
        test->ch != train->ch)
        return NL_FAIL(NL_ERR_ARG,
                       "the classifier's held-out images must be labelled images of the training images' shape");
    const int B = 128;
    clf_init(c, train, B);
    const nl_backend *be = c->be;
    nl_rng rng;
    nl_rng_seed(&rng, seed);
    float *host = nl_xmalloc(c->n * sizeof(float));
    const int in = c->in, H = NL_CLF_HID, F = NL_CLF_FEAT, K = c->classes;
    const size_t ofs[6] = { 0,
                            (size_t)H * in,
                            (size_t)H * in + H,
                            (size_t)H * in + H + (size_t)F * H,
                            (size_t)H * in + H + (size_t)F * H + F,
                            (size_t)H * in + H + (size_t)F * H + F + (size_t)K * F };
    const int fan[3] = { in, H, F };
    for (int k = 0; k < 3; k++) { /* weights N(0, 1/fan_in), biases 0 */
        for (size_t j = ofs[2 * k]; j < ofs[2 * k + 1]; j++)
            host[j] = (float)(nl_rng_normal(&rng) / sqrt((double)fan[k]));
        for (size_t j = ofs[2 * k + 1]; j < (k < 2 ? ofs[2 * k + 2] : c->n); j++) host[j] = 0.0f;
    }
    be->from_host(c->params, host, c->n * sizeof(float));
    free(host);
    int *idx = nl_xmalloc(B * sizeof(int));
    nl_adamw_hp hp = { 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 1.0f, 1.0f, 1.0f };
    for (int s = 1; s <= steps; s++) {
        for (int b = 0; b < B; b++) idx[b] = (int)nl_rng_below(&rng, (uint64_t)train->n);
        clf_stage(c, train, idx, B);
        be->enter();
        be->zero(c->grads, c->n * sizeof(float));
        clf_forward(c, B);
        be->xent(c->losses, c->logits, c->tgt, (size_t)B, K, K, 1.0f / B);
        be->linear_backward(c->d2, c->w3 - c->params + c->grads, c->b3 - c->params + c->grads, c->logits, c->s2, c->w3,
                            (size_t)B, F, K);
        be->silu_backward(c->d2, c->h2, c->d2, (size_t)B * F);
        be->linear_backward(c->d1, c->w2 - c->params + c->grads, c->b2 - c->params + c->grads, c->d2, c->s1, c->w2,
                            (size_t)B, H, F);
        be->silu_backward(c->d1, c->h1, c->d1, (size_t)B * H);
        be->linear_backward(c->x + (size_t)B * in, c->grads, c->b1 - c->params + c->grads, c->d1, c->x, c->w1,
                            (size_t)B, in, H);
        hp.ic1 = (float)(1.0 / (1.0 - pow(0.9, s)));
        hp.ic2 = (float)(1.0 / (1.0 - pow(0.999, s)));
        be->adamw(c->params, c->m, c->v, c->grads, c->n, &hp);
    }
    free(idx);
    c->acc = nl_clf_accuracy(c, test);
    return NL_OK;
}

void nl_clf_features(nl_clf *c, const float *img, int n, double *feat) {
    float *f = nl_xmalloc((size_t)c->B * NL_CLF_FEAT * sizeof(float));
    for (int i0 = 0; i0 < n; i0 += c->B) {
        const int nb = n - i0 < c->B ? n - i0 : c->B;
        c->be->from_host(c->x, img + (size_t)i0 * c->in, (size_t)nb * c->in * sizeof(float));
        clf_forward(c, nb);
        c->be->to_host(f, c->s2, (size_t)nb * NL_CLF_FEAT * sizeof(float));
        for (size_t j = 0; j < (size_t)nb * NL_CLF_FEAT; j++) feat[(size_t)i0 * NL_CLF_FEAT + j] = f[j];
    }
    free(f);
}

nl_status nl_clf_save(const nl_clf *c, const char *path) {
    char sh[64], sw[64], sc[64], sk[64], sa[64];
    snprintf(sh, sizeof sh, "%d", c->h), snprintf(sw, sizeof sw, "%d", c->w), snprintf(sc, sizeof sc, "%d", c->ch);
    snprintf(sk, sizeof sk, "%d", c->classes), snprintf(sa, sizeof sa, "%.6f", c->acc);
    const char *keys[] = { "format", "img_h", "img_w", "img_ch", "classes", "accuracy" };
    const char *vals[] = { "normlab-classifier", sh, sw, sc, sk, sa };
    float *host = nl_xmalloc(c->n * sizeof(float));
    c->be->to_host(host, c->params, c->n * sizeof(float));
    const nl_st_entry e[1] = { { "params", NL_ST_F32, 1, { (int64_t)c->n }, host } };
    nl_status st = nl_st_write(path, e, 1, keys, vals, 6);
    free(host);
    return st;
}

static int meta_int(const nl_st_file *f, const char *key, int lo, int hi, int *out) {
    const char *v = nl_st_get_meta(f, key);
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || x < lo || x > hi) return 0;
    *out = (int)x;
    return 1;
}

nl_status nl_clf_load(nl_clf *c, const char *path) {
    nl_st_file f;
    NL_TRY(nl_st_read(path, &f));
    const char *fmt = nl_st_get_meta(&f, "format"), *acc = nl_st_get_meta(&f, "accuracy");
    nl_images shape = { 0 };
    nl_status st = NL_OK;
    if (!fmt || strcmp(fmt, "normlab-classifier") || !acc || !meta_int(&f, "img_h", 1, 4096, &shape.h) ||
        !meta_int(&f, "img_w", 1, 4096, &shape.w) || !meta_int(&f, "img_ch", 1, 4, &shape.ch) ||
        !meta_int(&f, "classes", 2, 1 << 20, &shape.nclass))
        st = NL_FAIL(NL_ERR_FORMAT, "'%s': not a normlab feature classifier (normlab classifier writes one)", path);
    if (st == NL_OK) {
        clf_init(c, &shape, 128);
        const nl_st_tensor *t = nl_st_find(&f, "params");
        if (!t || t->dtype != NL_ST_F32 || t->nbytes != c->n * sizeof(float)) {
            nl_clf_free(c);
            st = NL_FAIL(NL_ERR_FORMAT, "'%s': the classifier's parameters are missing or of the wrong size", path);
        } else {
            c->be->from_host(c->params, t->data, c->n * sizeof(float));
            c->acc = atof(acc);
        }
    }
    nl_st_free(&f);
    return st;
}

/* ---------------------------------------------------------------- Fréchet distance */

/* Eigenvalues w (and eigenvectors, the columns of V, when V != NULL) of the symmetric d x d matrix A
 * (destroyed): cyclic Jacobi rotations until the off-diagonal mass is below 1e-30 of the total. */
static void sym_eig(double *A, int d, double *w, double *V) {
    if (V)
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++) V[i * d + j] = i == j;
    double tot = 0.0;
    for (int i = 0; i < d * d; i++) tot += A[i] * A[i];
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0;
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++)
                if (i != j) off += A[i * d + j] * A[i * d + j];
        if (off <= 1e-30 * tot) break;
        for (int p = 0; p < d - 1; p++)
            for (int q = p + 1; q < d; q++) {
                const double apq = A[p * d + q];
                if (apq == 0.0) continue;
                const double th = (A[q * d + q] - A[p * d + p]) / (2.0 * apq);
                const double t = (th >= 0 ? 1.0 : -1.0) / (fabs(th) + sqrt(th * th + 1.0));
                const double cs = 1.0 / sqrt(t * t + 1.0), sn = t * cs;
                for (int k = 0; k < d; k++) { /* A = J^T A J, J the rotation in the (p, q) plane */
                    const double akp = A[k * d + p], akq = A[k * d + q];
                    A[k * d + p] = cs * akp - sn * akq;
                    A[k * d + q] = sn * akp + cs * akq;
                }
                for (int k = 0; k < d; k++) {
                    const double apk = A[p * d + k], aqk = A[q * d + k];
                    A[p * d + k] = cs * apk - sn * aqk;
                    A[q * d + k] = sn * apk + cs * aqk;
                }
                if (V)
                    for (int k = 0; k < d; k++) {
                        const double vkp = V[k * d + p], vkq = V[k * d + q];
                        V[k * d + p] = cs * vkp - sn * vkq;
                        V[k * d + q] = sn * vkp + cs * vkq;
                    }
            }
    }
    for (int i = 0; i < d; i++) w[i] = A[i * d + i];
}

double nl_frechet_gauss(const double *mua, const double *sa, const double *mub, const double *sb, int d) {
    const size_t dd = (size_t)d * d;
    double *A = nl_xmalloc(dd * sizeof(double)), *V = nl_xmalloc(dd * sizeof(double)),
           *R = nl_xmalloc(dd * sizeof(double));
    double *T = nl_xmalloc(dd * sizeof(double)), *w = nl_xmalloc((size_t)d * sizeof(double));
    memcpy(A, sa, dd * sizeof(double));
    sym_eig(A, d, w, V);
    for (int i = 0; i < d; i++) /* R = S_a^1/2 = V diag(sqrt(w)) V^T */
        for (int j = 0; j < d; j++) {
            double s = 0.0;
            for (int k = 0; k < d; k++) s += V[i * d + k] * sqrt(fmax(w[k], 0.0)) * V[j * d + k];
            R[i * d + j] = s;
        }
    for (int i = 0; i < d; i++) /* T = R S_b */
        for (int j = 0; j < d; j++) {
            double s = 0.0;
            for (int k = 0; k < d; k++) s += R[i * d + k] * sb[k * d + j];
            T[i * d + j] = s;
        }
    for (int i = 0; i < d; i++) /* A = T R, symmetric up to rounding: symmetrised */
        for (int j = 0; j < d; j++) {
            double s = 0.0;
            for (int k = 0; k < d; k++) s += T[i * d + k] * R[k * d + j];
            A[i * d + j] = s;
        }
    for (int i = 0; i < d; i++)
        for (int j = 0; j < i; j++) A[i * d + j] = A[j * d + i] = 0.5 * (A[i * d + j] + A[j * d + i]);
    sym_eig(A, d, w, NULL);
    double fd = 0.0;
    for (int i = 0; i < d; i++)
        fd += (mua[i] - mub[i]) * (mua[i] - mub[i]) + sa[i * d + i] + sb[i * d + i] - 2.0 * sqrt(fmax(w[i], 0.0));
    free(A), free(V), free(R), free(T), free(w);
    return fd;
}

/* mean and unbiased covariance (divisor n - 1) of n rows of d features */
static void moments(const double *f, int n, int d, double *mu, double *s) {
    for (int j = 0; j < d; j++) {
        double m = 0.0;
        for (int i = 0; i < n; i++) m += f[(size_t)i * d + j];
        mu[j] = m / n;
    }
    for (int a = 0; a < d; a++)
        for (int b = a; b < d; b++) {
            double c = 0.0;
            for (int i = 0; i < n; i++) c += (f[(size_t)i * d + a] - mu[a]) * (f[(size_t)i * d + b] - mu[b]);
            s[a * d + b] = s[b * d + a] = c / (n - 1);
        }
}

double nl_frechet(const double *fa, int na, const double *fb, int nb, int d) {
    NL_ASSERT(na >= 2 && nb >= 2);
    double *mua = nl_xmalloc((size_t)d * sizeof(double)), *mub = nl_xmalloc((size_t)d * sizeof(double));
    double *sa = nl_xmalloc((size_t)d * d * sizeof(double)), *sb = nl_xmalloc((size_t)d * d * sizeof(double));
    moments(fa, na, d, mua, sa);
    moments(fb, nb, d, mub, sb);
    const double fd = nl_frechet_gauss(mua, sa, mub, sb, d);
    free(mua), free(mub), free(sa), free(sb);
    return fd;
}
