/* fuzz_common.h -- shared by the libFuzzer harnesses (fuzz/README.md): per-process scratch files on
 * tmpfs for the readers that take a path. */
#ifndef NL_FUZZ_COMMON_H
#define NL_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* writes data to path; aborts if it cannot */
static void nl_fuzz_write(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
}

/* the scratch path of this process with suffix appended (static buffer): /dev/shm, else /tmp */
static const char *nl_fuzz_path(const char *suffix) {
    static char path[128];
    struct stat sb;
    const char *dir = stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(path, sizeof path, "%s/nl_fuzz_%ld%s", dir, (long)getpid(), suffix);
    return path;
}

/* writes data to a scratch file named with suffix; returns its path (static buffer) */
static const char *nl_fuzz_file(const uint8_t *data, size_t size, const char *suffix) {
    const char *path = nl_fuzz_path(suffix);
    nl_fuzz_write(path, data, size);
    return path;
}

#endif
