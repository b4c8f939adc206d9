/* fid.h -- a quality number for --arch dit (docs/dit.md §4): a small classifier that normlab trains on the
 * labelled images (an MLP, pixels -> 256 -> 64 -> classes, SiLU), whose 64 penultimate activations are the
 * feature space, and the Fréchet distance between two sets of features,
 *   FD = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)
 * (Heusel et al., arXiv:1706.08500, with this classifier in place of Inception). */
#ifndef NL_FID_H
#define NL_FID_H

#include "backend.h"
#include "images.h"

enum { NL_CLF_HID = 256, NL_CLF_FEAT = 64 };

typedef struct nl_clf {
    const nl_backend *be;
    int h, w, ch, in, classes, B; /* image shape, in = h w ch; B: rows the buffers hold */
    size_t n;                     /* parameters */
    float *params, *grads, *m, *v;
    float *w1, *b1, *w2, *b2, *w3, *b3;
    float *x, *h1, *s1, *h2, *s2, *logits, *losses, *d1, *d2; /* (B, .) activations and gradients */
    int *tgt;
    double acc; /* held-out accuracy measured when it was trained */
} nl_clf;

/* Trains a classifier on the labelled images `train` (AdamW lr 1e-3, batches of 128, `steps` steps, seed)
 * and measures its accuracy on `test`. NL_ERR_ARG for unlabelled images. */
nl_status nl_clf_train(nl_clf *c, const nl_images *train, const nl_images *test, int steps, uint64_t seed);
void nl_clf_free(nl_clf *c);
/* the classifier as a safetensors file (format normlab-classifier: shape, classes, accuracy in the metadata) */
nl_status nl_clf_save(const nl_clf *c, const char *path);
nl_status nl_clf_load(nl_clf *c, const char *path);
/* features (n, NL_CLF_FEAT) of n images (n, h, w, ch) in [-1, 1]; and the accuracy on labelled images */
void nl_clf_features(nl_clf *c, const float *img, int n, double *feat);
double nl_clf_accuracy(nl_clf *c, const nl_images *im);

/* the Fréchet distance between the Gaussians of two feature sets (na x d, nb x d; na, nb >= 2) */
double nl_frechet(const double *fa, int na, const double *fb, int nb, int d);
/* ... and between two Gaussians given by mean and covariance (d x d, symmetric positive semi-definite) */
double nl_frechet_gauss(const double *mua, const double *sa, const double *mub, const double *sb, int d);

#endif
