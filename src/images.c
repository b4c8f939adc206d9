/* images.c -- Fashion-MNIST (idx files in gzip, zlib) and PNG folders (libpng's simplified API) as
 * float images in [-1, 1]; the PNG writer of sample grids. docs/dit.md §1. */
#include "images.h"

#include "common.h"
#include "safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

void nl_images_free(nl_images *im) {
    free(im->pix);
    free(im->label);
    memset(im, 0, sizeof *im);
}

/* ---------------------------------------------------------------- Fashion-MNIST (idx) */

/* Reads a whole gzip file into memory (*n bytes). */
static nl_status gz_slurp(const char *path, unsigned char **buf, size_t *n) {
    gzFile f = gzopen(path, "rb");
    if (!f) return NL_FAIL(NL_ERR_IO, "cannot open '%s': %s", path, strerror(errno ? errno : ENOENT));
    size_t cap = 1 << 20, len = 0;
    unsigned char *b = nl_xmalloc(cap);
    for (;;) {
        if (len == cap) {
            unsigned char *nb = nl_xmalloc(2 * cap);
            memcpy(nb, b, len);
            free(b);
            b = nb;
            cap *= 2;
        }
        const int got = gzread(f, b + len, (unsigned)(cap - len > (1u << 30) ? (1u << 30) : cap - len));
        if (got < 0) {
            int e;
            const char *msg = gzerror(f, &e);
            nl_status st = NL_FAIL(NL_ERR_FORMAT, "'%s': not a readable gzip file (%s)", path, msg);
            gzclose(f);
            free(b);
            return st;
        }
        if (got == 0) break;
        len += (size_t)got;
    }
    gzclose(f);
    *buf = b;
    *n = len;
    return NL_OK;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* idx header: 0 0 type(0x08 = ubyte) ndim, then ndim big-endian uint32 sizes; the payload must be
 * exactly their product. dims gets the sizes. */
static nl_status idx_check(const char *path, const unsigned char *b, size_t n, int ndim, uint32_t *dims) {
    if (n < 4 + 4 * (size_t)ndim || b[0] || b[1] || b[2] != 0x08 || b[3] != ndim)
        return NL_FAIL(NL_ERR_FORMAT, "'%s': not an idx file of %d-D unsigned bytes (bad header)", path, ndim);
    size_t want = 1;
    for (int i = 0; i < ndim; i++) {
        dims[i] = be32(b + 4 + 4 * i);
        if (dims[i] == 0 || dims[i] > (1u << 24))
            return NL_FAIL(NL_ERR_FORMAT, "'%s': idx size %u out of range", path, dims[i]);
        want *= dims[i];
    }
    if (n - 4 - 4 * (size_t)ndim != want)
        return NL_FAIL(NL_ERR_FORMAT, "'%s': idx payload of %zu bytes, the header says %zu", path,
                       n - 4 - 4 * (size_t)ndim, want);
    return NL_OK;
}

int nl_images_is_fmnist(const char *spec) {
    return !strcmp(spec, "fashion-mnist") || !strncmp(spec, "fashion-mnist:", 14);
}

static nl_status fmnist_open(nl_images *im, const char *spec, int split) {
    const char *dir = spec[13] == ':' ? spec + 14 : NL_FMNIST_DIR;
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return NL_FAIL(NL_ERR_IO,
                       "Fashion-MNIST not found: no directory %s; install Debian's package "
                       "dataset-fashion-mnist (apt-get install dataset-fashion-mnist)",
                       dir);
    const char *pre = split ? "t10k" : "train";
    char ipath[NL_PATH_MAX + 64], lpath[NL_PATH_MAX + 64];
    snprintf(ipath, sizeof ipath, "%s/%s-images-idx3-ubyte.gz", dir, pre);
    snprintf(lpath, sizeof lpath, "%s/%s-labels-idx1-ubyte.gz", dir, pre);
    unsigned char *ib = NULL, *lb = NULL;
    size_t in = 0, ln = 0;
    uint32_t idim[3], ldim[1];
    nl_status st = gz_slurp(ipath, &ib, &in);
    if (st == NL_OK) st = gz_slurp(lpath, &lb, &ln);
    if (st == NL_OK) st = idx_check(ipath, ib, in, 3, idim);
    if (st == NL_OK) st = idx_check(lpath, lb, ln, 1, ldim);
    if (st == NL_OK && ldim[0] != idim[0])
        st = NL_FAIL(NL_ERR_FORMAT, "'%s' holds %u labels for %u images in '%s'", lpath, ldim[0], idim[0], ipath);
    for (uint32_t i = 0; st == NL_OK && i < ldim[0]; i++)
        if (lb[8 + i] > 9)
            st = NL_FAIL(NL_ERR_FORMAT, "'%s': label %d of image %u is not a class 0..9", lpath, lb[8 + i], i);
    if (st == NL_OK) {
        memset(im, 0, sizeof *im);
        im->n = (int)idim[0];
        im->h = (int)idim[1];
        im->w = (int)idim[2];
        im->ch = 1;
        im->nclass = 10;
        const size_t np = (size_t)im->n * im->h * im->w;
        im->pix = nl_xmalloc(np * sizeof(float));
        im->label = nl_xmalloc((size_t)im->n * sizeof(int));
        for (size_t i = 0; i < np; i++) im->pix[i] = ib[16 + i] / 127.5f - 1.0f;
        for (int i = 0; i < im->n; i++) im->label[i] = lb[8 + i];
    }
    free(ib);
    free(lb);
    return st;
}

/* ---------------------------------------------------------------- PNG */

nl_status nl_png_read(const char *path, uint8_t **pix, int *h, int *w, int *ch) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&img, path))
        return NL_FAIL(NL_ERR_FORMAT, "'%s': not a readable PNG (%s)", path, img.message);
    const int color = (img.format & PNG_FORMAT_FLAG_COLOR) != 0;
    img.format = color ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY; /* alpha composited away, palettes expanded */
    const size_t bytes = PNG_IMAGE_SIZE(img);
    uint8_t *p = nl_xmalloc(bytes ? bytes : 1);
    if (!png_image_finish_read(&img, NULL, p, 0, NULL)) {
        free(p);
        nl_status st = NL_FAIL(NL_ERR_FORMAT, "'%s': PNG data is damaged (%s)", path, img.message);
        png_image_free(&img);
        return st;
    }
    *pix = p;
    *h = (int)img.height;
    *w = (int)img.width;
    *ch = color ? 3 : 1;
    return NL_OK;
}

nl_status nl_png_write(const char *path, const uint8_t *pix, int h, int w, int ch) {
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w;
    img.height = (png_uint_32)h;
    img.format = ch == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    char tmp[NL_PATH_MAX + 64];
    FILE *f;
    NL_TRY(nl_write_atomic_begin(path, tmp, sizeof tmp, &f));
    if (!png_image_write_to_stdio(&img, f, 0, pix, 0, NULL)) {
        fclose(f);
        remove(tmp);
        return NL_FAIL(NL_ERR_IO, "cannot write PNG '%s': %s", path, img.message);
    }
    return nl_write_atomic_commit(path, tmp, f);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int has_png_ext(const char *s) {
    const size_t n = strlen(s);
    return n > 4 && !strcasecmp(s + n - 4, ".png");
}

static nl_status png_dir_open(nl_images *im, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return NL_FAIL(NL_ERR_IO, "--data '%s': cannot open the directory: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!has_png_ext(de->d_name)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            char **nn = nl_xmalloc((size_t)cap * sizeof *nn);
            if (n) memcpy(nn, names, (size_t)n * sizeof *nn);
            free(names);
            names = nn;
        }
        const size_t len = strlen(de->d_name) + 1;
        names[n] = nl_xmalloc(len);
        memcpy(names[n++], de->d_name, len);
    }
    closedir(d);
    nl_status st = NL_OK;
    if (n == 0) st = NL_FAIL(NL_ERR_FORMAT, "--data '%s': no .png files in the directory", dir);
    else qsort(names, (size_t)n, sizeof *names, cmp_str);
    memset(im, 0, sizeof *im);
    size_t per = 0;
    for (int i = 0; i < n && st == NL_OK; i++) {
        char path[NL_PATH_MAX + 512];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        uint8_t *p = NULL;
        int h, w, ch;
        st = nl_png_read(path, &p, &h, &w, &ch);
        if (st != NL_OK) break;
        if (i == 0) {
            im->h = h, im->w = w, im->ch = ch;
            per = (size_t)h * w * ch;
            im->pix = nl_xmalloc((size_t)n * per * sizeof(float));
        } else if (h != im->h || w != im->w || ch != im->ch) {
            st = NL_FAIL(NL_ERR_FORMAT,
                         "'%s' is %dx%d with %d channel(s), but '%s/%s' is %dx%d with %d: a folder must "
                         "hold images of one size and kind",
                         path, w, h, ch, dir, names[0], im->w, im->h, im->ch);
        }
        if (st == NL_OK)
            for (size_t j = 0; j < per; j++) im->pix[(size_t)i * per + j] = p[j] / 127.5f - 1.0f;
        free(p);
        im->n = i + 1;
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    if (st != NL_OK) nl_images_free(im);
    return st;
}

nl_status nl_images_open(nl_images *im, const char *spec, int split) {
    memset(im, 0, sizeof *im);
    if (nl_images_is_fmnist(spec)) return fmnist_open(im, spec, split);
    struct stat sb;
    if (stat(spec, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return NL_FAIL(NL_ERR_IO, "--data '%s': --arch dit reads 'fashion-mnist' or a directory of PNG images", spec);
    return png_dir_open(im, spec);
}

void nl_images_split(nl_images *im, int nval, nl_images *val) {
    NL_ASSERT(nval >= 0 && nval <= im->n);
    memset(val, 0, sizeof *val);
    *val = *im;
    val->n = nval;
    const size_t per = (size_t)im->h * im->w * im->ch, k = (size_t)(im->n - nval);
    val->pix = nl_xmalloc((nval ? (size_t)nval : 1) * per * sizeof(float));
    memcpy(val->pix, im->pix + k * per, (size_t)nval * per * sizeof(float));
    if (im->label) {
        val->label = nl_xmalloc((nval ? (size_t)nval : 1) * sizeof(int));
        memcpy(val->label, im->label + k, (size_t)nval * sizeof(int));
    }
    im->n -= nval;
}
