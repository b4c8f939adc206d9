/* images.h -- image data sets for --arch dit (docs/dit.md §1): Fashion-MNIST in idx format (gzip, read
 * with zlib) and a folder of same-size PNG images (libpng); and a PNG writer for sample grids.
 * Pixels are held as floats in [-1, 1], (n, h, w, ch) row-major. */
#ifndef NL_IMAGES_H
#define NL_IMAGES_H

#include "normlab.h"

#include <stdint.h>

#define NL_FMNIST_DIR "/usr/share/datasets/fashion-mnist"

/* The most a file's header may ask for; more is a one-line error, not an allocation: an idx payload
 * (Fashion-MNIST's training images hold 47 MB) and one PNG's pixels (8192 x 8192). */
#define NL_IDX_MAX_BYTES ((size_t)1 << 30)
#define NL_PNG_MAX_PIXELS ((size_t)1 << 26)

typedef struct nl_images {
    int n, h, w, ch; /* images, height, width, channels (1 gray, 3 RGB) */
    int nclass;      /* labels are 0..nclass-1; 0: unlabelled (a PNG folder) */
    float *pix;      /* (n, h, w, ch) in [-1, 1] */
    int *label;      /* (n), NULL when unlabelled */
} nl_images;

/* Opens a data set: "fashion-mnist" (Debian's dataset-fashion-mnist in NL_FMNIST_DIR) or
 * "fashion-mnist:DIR" (the same four .gz files in DIR), split 0 = train, 1 = test (t10k); or a
 * directory of PNG files (every *.png, sorted by name; split is ignored: the caller holds out a part).
 * NL_ERR_IO / NL_ERR_FORMAT with a one-line message naming the file. */
nl_status nl_images_open(nl_images *im, const char *spec, int split);
/* 1 if spec names Fashion-MNIST */
int nl_images_is_fmnist(const char *spec);
/* Moves the last `nval` images of im into val (im keeps the first n - nval). */
void nl_images_split(nl_images *im, int nval, nl_images *val);
void nl_images_free(nl_images *im);

/* Writes 8-bit pixels (h, w, ch), ch 1 or 3, as a PNG file (atomically: a temporary file, renamed). */
nl_status nl_png_write(const char *path, const uint8_t *pix, int h, int w, int ch);
/* Reads a PNG into 8-bit pixels (gray: ch 1; gray+alpha, palette, RGB, RGBA: alpha dropped, ch 1 or 3)
 * of at most NL_PNG_MAX_PIXELS. *pix is malloc'ed. */
nl_status nl_png_read(const char *path, uint8_t **pix, int *h, int *w, int *ch);

#endif
