/* safetensors.h -- reader and atomic writer of the safetensors format (8-byte little-endian header
 * length, a JSON header, then the data). Used for exported models and for checkpoints.
 * The reader validates every size and offset before use; the writer never leaves a partial file
 * under the final name (temporary file, fsync, rename, fsync of the directory). */
#ifndef NL_SAFETENSORS_H
#define NL_SAFETENSORS_H

#include "normlab.h"

#include <stdio.h>

enum { NL_ST_F32, NL_ST_I32, NL_ST_F64, NL_ST_I64, NL_ST_U16, NL_ST_DTYPE_COUNT };
enum { NL_ST_MAXDIM = 4 };

typedef struct nl_st_tensor {
    char name[128];
    int dtype, ndim;
    int64_t shape[NL_ST_MAXDIM];
    const unsigned char *data; /* into nl_st_file.buf */
    size_t nbytes;
} nl_st_tensor;

typedef struct nl_st_meta {
    char *key, *val;
} nl_st_meta;

typedef struct nl_st_file {
    unsigned char *buf; /* the whole file */
    size_t size;
    nl_st_tensor *t;
    int nt;
    nl_st_meta *meta;
    int nmeta;
    const unsigned char *data; /* start of the data section */
    size_t data_len;
} nl_st_file;

/* Reads and validates path. On error: NL_ERR_IO / NL_ERR_FORMAT naming the file; f is left freed. */
nl_status nl_st_read(const char *path, nl_st_file *f);
/* Parses a whole file already in memory: buf (malloc'd, size bytes) is owned by f from then on,
 * freed by nl_st_free or on error; path only names it in messages. */
nl_status nl_st_parse(unsigned char *buf, size_t size, const char *path, nl_st_file *f);
void nl_st_free(nl_st_file *f);
const char *nl_st_get_meta(const nl_st_file *f, const char *key); /* NULL if absent */
const nl_st_tensor *nl_st_find(const nl_st_file *f, const char *name);

/* One tensor to write: data holds nbytes = prod(shape) * dtype size. */
typedef struct nl_st_entry {
    const char *name;
    int dtype, ndim;
    int64_t shape[NL_ST_MAXDIM];
    const void *data;
} nl_st_entry;

/* Writes the entries in order, contiguous, with string metadata, atomically. */
nl_status nl_st_write(const char *path, const nl_st_entry *e, int n, const char *const *meta_keys,
                      const char *const *meta_vals, int nmeta);
size_t nl_st_entry_bytes(const nl_st_entry *e);
/* Fault injection for the crash tests (NORMLAB_FAULT=kill-in-ckpt:N): the next nl_st_write sends
 * itself SIGKILL after writing half of its tensors. */
void nl_st_fault_die_mid_write(void);

/* Writes n bytes to path atomically (tmp + fsync + rename + directory fsync). */
nl_status nl_write_atomic_begin(const char *path, char *tmp, size_t tmpcap, FILE **f);
nl_status nl_write_atomic_commit(const char *path, const char *tmp, FILE *f);

#endif
