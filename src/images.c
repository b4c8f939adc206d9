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

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* gzread of up to n bytes (n < 2^31); -1 with the error set on a damaged stream */
static int gz_read(gzFile f, const char *path, void *buf, size_t n) {
    const int got = gzread(f, buf, (unsigned)n);
    if (got < 0) {
        int e;
        nl_set_error("'%s': not a readable gzip file (%s)", path, gzerror(f, &e));
    }
    return got;
}

/* Reads an idx file of ndim dimensions of unsigned bytes (gzip, or plain: zlib reads both): the header
 * 0 0 0x08 ndim, ndim big-endian uint32 sizes, then exactly their product of bytes. The header is
 * checked first (each size 1..2^24, the product at most NL_IDX_MAX_BYTES), and the payload buffer grows
 * only as data arrives, so neither a damaged header nor a gzip bomb can demand a huge allocation.
 * dims gets the sizes, *payload (malloc'ed) the bytes. */
static nl_status idx_read(const char *path, int ndim, uint32_t *dims, unsigned char **payload) {
    gzFile f = gzopen(path, "rb");
    if (!f) return NL_FAIL(NL_ERR_IO, "cannot open '%s': %s", path, strerror(errno ? errno : ENOENT));
    unsigned char hdr[4 + 4 * 3];
    const size_t hl = 4 + 4 * (size_t)ndim;
    NL_ASSERT(ndim >= 1 && ndim <= 3);
    const int got = gz_read(f, path, hdr, hl);
    nl_status st = got < 0 ? NL_ERR_FORMAT : NL_OK;
    if (st == NL_OK && ((size_t)got != hl || hdr[0] || hdr[1] || hdr[2] != 0x08 || hdr[3] != ndim))
        st = NL_FAIL(NL_ERR_FORMAT, "'%s': not an idx file of %d-D unsigned bytes (bad header)", path, ndim);
    size_t want = 1;
    for (int i = 0; st == NL_OK && i < ndim; i++) {
        dims[i] = be32(hdr + 4 + 4 * i);
        if (dims[i] == 0 || dims[i] > (1u << 24))
            st = NL_FAIL(NL_ERR_FORMAT, "'%s': idx size %u out of range", path, dims[i]);
        else if (want > NL_IDX_MAX_BYTES / dims[i])
            st = NL_FAIL(NL_ERR_FORMAT, "'%s': the idx header asks for more than %zu bytes", path,
                         (size_t)NL_IDX_MAX_BYTES);
        else want *= dims[i];
    }
    size_t cap = want < ((size_t)1 << 20) ? want : (size_t)1 << 20, len = 0;
    unsigned char *b = st == NL_OK ? nl_xmalloc(cap) : NULL;
    while (st == NL_OK && len < want) {
        if (len == cap) { /* doubles, at most to the header's size */
            cap = 2 * cap < want ? 2 * cap : want;
            b = nl_xresize(b, len, cap, 1);
        }
        const int n = gz_read(f, path, b + len, cap - len < ((size_t)1 << 30) ? cap - len : (size_t)1 << 30);
        if (n < 0) st = NL_ERR_FORMAT;
        else if (n == 0) break;
        else len += (size_t)n;
    }
    unsigned char extra;
    const int more = st == NL_OK && len == want ? gz_read(f, path, &extra, 1) : 0;
    if (more < 0) st = NL_ERR_FORMAT;
    else if (st == NL_OK && more)
        st = NL_FAIL(NL_ERR_FORMAT, "'%s': idx payload longer than the %zu bytes the header says", path, want);
    else if (st == NL_OK && len != want)
        st = NL_FAIL(NL_ERR_FORMAT, "'%s': idx payload of %zu bytes, the header says %zu", path, len, want);
    gzclose(f);
    if (st != NL_OK) free(b);
    else *payload = b;
    return st;
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
    uint32_t idim[3], ldim[1];
    nl_status st = idx_read(ipath, 3, idim, &ib);
    if (st == NL_OK) st = idx_read(lpath, 1, ldim, &lb);
    if (st == NL_OK && ldim[0] != idim[0])
        st = NL_FAIL(NL_ERR_FORMAT, "'%s' holds %u labels for %u images in '%s'", lpath, ldim[0], idim[0], ipath);
    for (uint32_t i = 0; st == NL_OK && i < ldim[0]; i++)
        if (lb[i] > 9) st = NL_FAIL(NL_ERR_FORMAT, "'%s': label %d of image %u is not a class 0..9", lpath, lb[i], i);
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
        for (size_t i = 0; i < np; i++) im->pix[i] = ib[i] / 127.5f - 1.0f;
        for (int i = 0; i < im->n; i++) im->label[i] = lb[i];
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
    if ((size_t)img.width * img.height > NL_PNG_MAX_PIXELS) {
        nl_status st = NL_FAIL(NL_ERR_FORMAT, "'%s': a PNG of %u x %u pixels is larger than the %zu pixels allowed",
                               path, (unsigned)img.width, (unsigned)img.height, (size_t)NL_PNG_MAX_PIXELS);
        png_image_free(&img);
        return st;
    }
    const int color = (img.format & PNG_FORMAT_FLAG_COLOR) != 0;
    img.format = color ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY; /* alpha composited away, palettes expanded */
    const size_t bytes = (size_t)img.width * img.height * (color ? 3 : 1);
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
            names = nl_xresize(names, (size_t)n, (size_t)cap, sizeof *names);
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
