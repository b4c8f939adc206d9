/* fuzz_idx.c -- the Fashion-MNIST reader (nl_images_open "fashion-mnist:DIR"): the idx images and
 * labels files (gzip or plain), their headers, sizes, payload lengths and labels. Input: 2 bytes (little
 * endian) of the images file's length, the images file, then the labels file. An accepted set must
 * hold at most NL_IDX_MAX_BYTES pixels, as many labels 0..9 as images, every pixel in [-1, 1]. */
#include "fuzz_common.h"
#include "images.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t ni = (size_t)data[0] | (size_t)data[1] << 8;
    if (ni > size - 2) ni = size - 2;
    char dir[128], ipath[192], lpath[192], spec[160];
    snprintf(dir, sizeof dir, "%s", nl_fuzz_path(".idx"));
    mkdir(dir, 0700);
    snprintf(ipath, sizeof ipath, "%s/train-images-idx3-ubyte.gz", dir);
    snprintf(lpath, sizeof lpath, "%s/train-labels-idx1-ubyte.gz", dir);
    nl_fuzz_write(ipath, data + 2, ni);
    nl_fuzz_write(lpath, data + 2 + ni, size - 2 - ni);
    snprintf(spec, sizeof spec, "fashion-mnist:%s", dir);
    nl_images im;
    if (nl_images_open(&im, spec, 0) == NL_OK) {
        if (im.n < 1 || im.h < 1 || im.w < 1 || im.ch != 1 || im.nclass != 10 || !im.label) abort();
        if ((size_t)im.h > NL_IDX_MAX_BYTES / (size_t)im.w || (size_t)im.n > NL_IDX_MAX_BYTES / ((size_t)im.h * im.w))
            abort(); /* the pixels' count fits the limit (and size_t) */
        for (size_t i = 0; i < (size_t)im.n * im.h * im.w; i++)
            if (!(im.pix[i] >= -1.0f && im.pix[i] <= 1.0f)) abort();
        for (int i = 0; i < im.n; i++)
            if (im.label[i] < 0 || im.label[i] > 9) abort();
        nl_images val;
        nl_images_split(&im, im.n / 2, &val);
        if (val.n != (im.n + val.n) / 2) abort();
        nl_images_free(&val);
        nl_images_free(&im);
    }
    unlink(ipath);
    unlink(lpath);
    rmdir(dir);
    return 0;
}
