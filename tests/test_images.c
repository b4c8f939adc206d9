/* test_images.c -- image data for --arch dit: Fashion-MNIST idx files (the Debian package when
 * installed, and hand-made gzip files, good and bad), PNG folders (read-back, mixed sizes, damaged files,
 * empty folders), the PNG writer. */
#include "check.h"
#include "images.h"
#include "tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static void gz_write(const char *path, const unsigned char *b, size_t n) {
    gzFile f = gzopen(path, "wb");
    gzwrite(f, b, (unsigned)n);
    gzclose(f);
}

/* an idx file of ndim dims; extra bytes appended (negative: dropped) to break it */
static void idx_write(const char *path, int ndim, const unsigned *dims, int fill, int extra) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= dims[i];
    const size_t hl = 4 + 4 * (size_t)ndim,
                 tot = hl + n + (size_t)(extra > 0 ? extra : 0) - (size_t)(extra < 0 ? -extra : 0);
    unsigned char *b = calloc(hl + n + 16, 1);
    b[2] = 0x08;
    b[3] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++)
        for (int k = 0; k < 4; k++) b[4 + 4 * i + k] = (unsigned char)(dims[i] >> (24 - 8 * k));
    for (size_t i = 0; i < n; i++) b[hl + i] = (unsigned char)(fill >= 0 ? fill : (int)(i % 10));
    gz_write(path, b, tot);
    free(b);
}

/* opening spec fails and the message contains want */
static int open_fails(const char *spec, const char *want) {
    nl_images im;
    if (nl_images_open(&im, spec, 0) == NL_OK) {
        nl_images_free(&im);
        printf("    '%s' opened, expected an error with '%s'\n", spec, want);
        return 1;
    }
    return NL_CHECK(strstr(nl_last_error(), want) != NULL, "'%s': message '%s' lacks '%s'", spec, nl_last_error(), want);
}

static int fmnist_files(const char *dir) {
    int f = 0;
    char spec[256], ip[256], lp[256];
    snprintf(spec, sizeof spec, "fashion-mnist:%s", dir);
    snprintf(ip, sizeof ip, "%s/train-images-idx3-ubyte.gz", dir);
    snprintf(lp, sizeof lp, "%s/train-labels-idx1-ubyte.gz", dir);
    const unsigned id[3] = { 5, 3, 2 }, ld[1] = { 5 }, ld4[1] = { 4 };
    idx_write(ip, 3, id, 255, 0);
    idx_write(lp, 1, ld, -1, 0);
    nl_images im;
    if (nl_images_open(&im, spec, 0) != NL_OK) {
        printf("    %s: %s\n", spec, nl_last_error());
        return 1;
    }
    f += NL_CHECK(im.n == 5 && im.h == 3 && im.w == 2 && im.ch == 1 && im.nclass == 10, "shape %d %d %d %d", im.n, im.h,
                  im.w, im.ch);
    f += NL_CHECK(im.pix[0] == 1.0f && im.label[4] == 4, "pixel %g label %d", im.pix[0], im.label[4]);
    nl_images val;
    nl_images_split(&im, 2, &val);
    f += NL_CHECK(im.n == 3 && val.n == 2 && val.label[0] == 3, "split %d %d", im.n, val.n);
    nl_images_free(&val);
    nl_images_free(&im);
    f += open_fails("fashion-mnist:/nonexistent/dir", "dataset-fashion-mnist");
    idx_write(ip, 3, id, 0, -3); /* truncated payload */
    f += open_fails(spec, "payload of 27 bytes, the header says 30");
    idx_write(ip, 3, id, 0, 2); /* trailing bytes */
    f += open_fails(spec, "payload longer than the 30 bytes");
    idx_write(ip, 3, (const unsigned[]){ 1u << 16, 1u << 24, 1u << 24 }, 0, 0); /* 2^64: wraps in size_t */
    f += open_fails(spec, "asks for more than 1073741824 bytes");
    idx_write(ip, 2, id, 0, 0); /* wrong rank */
    f += open_fails(spec, "bad header");
    idx_write(ip, 3, id, 0, 0);
    idx_write(lp, 1, ld4, 0, 0); /* 4 labels for 5 images */
    f += open_fails(spec, "4 labels for 5 images");
    const unsigned char bad[9] = { 0, 0, 8, 1, 0, 0, 0, 1, 12 };
    gz_write(lp, bad, sizeof bad);
    idx_write(ip, 3, (const unsigned[]){ 1, 3, 2 }, 0, 0);
    f += open_fails(spec, "label 12");
    unlink(lp);
    f += open_fails(spec, "train-labels-idx1-ubyte.gz");
    unlink(ip);
    return f;
}

static int png_folder(const char *dir) {
    int f = 0;
    char p[256];
    uint8_t px[2 * 3 * 3];
    for (int i = 0; i < 18; i++) px[i] = (uint8_t)(i * 15);
    for (int k = 0; k < 3; k++) { /* three 3x2 RGB images, named out of order */
        snprintf(p, sizeof p, "%s/img%d.png", dir, 2 - k);
        px[0] = (uint8_t)(100 + 2 - k);
        if (nl_png_write(p, px, 2, 3, 3) != NL_OK) return printf("    %s\n", nl_last_error()), 1;
    }
    snprintf(p, sizeof p, "%s/notes.txt", dir); /* ignored: not .png */
    FILE *t = fopen(p, "w");
    fputs("x", t);
    fclose(t);
    nl_images im;
    if (nl_images_open(&im, dir, 0) != NL_OK) return printf("    %s\n", nl_last_error()), 1;
    f += NL_CHECK(im.n == 3 && im.h == 2 && im.w == 3 && im.ch == 3 && !im.label && im.nclass == 0,
                  "png shape %d %dx%dx%d", im.n, im.h, im.w, im.ch);
    /* sorted by name: img0 first; pixel 0 = 100 */
    f += NL_CHECK(im.pix[0] == 100 / 127.5f - 1.0f && im.pix[18] == 101 / 127.5f - 1.0f, "png order/values %g %g",
                  im.pix[0], im.pix[18]);
    f += NL_CHECK(im.pix[17] == 255 / 127.5f - 1.0f, "png last value %g", im.pix[17]);
    nl_images_free(&im);
    uint8_t g[4] = { 0, 1, 2, 3 };
    snprintf(p, sizeof p, "%s/img9.png", dir);
    nl_png_write(p, g, 2, 2, 1); /* a gray 2x2 among 3x2 RGB */
    f += open_fails(dir, "one size and kind");
    t = fopen(p, "w"); /* damaged */
    fputs("\x89PNG\r\n\x1a\nnot really", t);
    fclose(t);
    f += open_fails(dir, "img9.png");
    t = fopen(p, "wb"); /* a header of 37000 x 37000 RGB pixels (4.1 GB), then an empty IDAT chunk */
    const unsigned char ihdr[17] = { 'I', 'H', 'D', 'R', 0, 0, 0x90, 0x88, 0, 0, 0x90, 0x88, 8, 2, 0, 0, 0 };
    fwrite("\x89PNG\r\n\x1a\n\0\0\0\x0d", 1, 12, t);
    for (int c = 0; c < 2; c++) {
        const unsigned char *chunk = c ? (const unsigned char *)"IDAT" : ihdr;
        const size_t len = c ? 4 : sizeof ihdr;
        const uLong crc = crc32(0, chunk, (uInt)len);
        if (c) fwrite("\0\0\0\0", 1, 4, t);
        fwrite(chunk, 1, len, t);
        for (int k = 3; k >= 0; k--) fputc((int)(crc >> (8 * k)) & 255, t);
    }
    fclose(t);
    f += open_fails(dir, "37000 x 37000 pixels is larger than the 67108864");
    for (int k = 0; k < 3; k++) {
        snprintf(p, sizeof p, "%s/img%d.png", dir, k);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/img9.png", dir);
    unlink(p);
    f += open_fails(dir, "no .png files");
    f += open_fails("/nonexistent/pngs", "a directory of PNG images");
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    unlink(p);
    return f;
}

int test_images(void) {
    int f = 0;
    char dir[] = "/tmp/nl_images_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    f += fmnist_files(dir);
    f += png_folder(dir);
    rmdir(dir);
    nl_images im; /* the Debian package, when installed (scripts/deps.sh installs it) */
    if (access(NL_FMNIST_DIR, R_OK) == 0) {
        if (nl_images_open(&im, "fashion-mnist", 1) != NL_OK) return f + (printf("    %s\n", nl_last_error()), 1);
        int hist[10] = { 0 };
        for (int i = 0; i < im.n; i++) hist[im.label[i]]++;
        f += NL_CHECK(im.n == 10000 && im.h == 28 && im.w == 28 && hist[0] == 1000 && hist[9] == 1000,
                      "t10k: %d images", im.n);
        nl_images_free(&im);
    } else printf("    %s missing: the package check is skipped\n", NL_FMNIST_DIR);
    return f;
}
