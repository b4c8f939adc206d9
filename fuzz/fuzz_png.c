/* fuzz_png.c -- the PNG reader of image folders (nl_png_read: libpng's simplified API, the size limit,
 * the conversion to 8-bit gray or RGB) on any bytes. An accepted image must have a size within
 * NL_PNG_MAX_PIXELS and 1 or 3 channels, and survive the PNG writer: written and read back, the same
 * pixels. */
#include "fuzz_common.h"
#include "images.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[128], back[128];
    snprintf(path, sizeof path, "%s", nl_fuzz_file(data, size, ".png"));
    snprintf(back, sizeof back, "%s", nl_fuzz_path("-back.png"));
    uint8_t *pix = NULL, *pix2 = NULL;
    int h, w, ch, h2, w2, ch2;
    if (nl_png_read(path, &pix, &h, &w, &ch) == NL_OK) {
        if (h < 1 || w < 1 || (size_t)h * w > NL_PNG_MAX_PIXELS || (ch != 1 && ch != 3)) abort();
        if (nl_png_write(back, pix, h, w, ch) != NL_OK || nl_png_read(back, &pix2, &h2, &w2, &ch2) != NL_OK) abort();
        if (h2 != h || w2 != w || ch2 != ch || memcmp(pix, pix2, (size_t)h * w * ch)) abort();
        free(pix);
        free(pix2);
        unlink(back);
    }
    unlink(path);
    return 0;
}
