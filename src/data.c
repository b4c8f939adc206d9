/* data.c -- see data.h. */
#include "data.h"

#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static nl_status map_file(const char *path, void **map, size_t *len) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return NL_FAIL(NL_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return NL_FAIL(NL_ERR_IO, "'%s' is not a regular file", path);
    }
    if (sb.st_size == 0) {
        close(fd);
        return NL_FAIL(NL_ERR_FORMAT, "'%s' is empty", path);
    }
    *len = (size_t)sb.st_size;
    *map = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (*map == MAP_FAILED) return NL_FAIL(NL_ERR_IO, "cannot map '%s': %s", path, strerror(errno));
    return NL_OK;
}

static int32_t le32(const unsigned char *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

static nl_status open_shard(const char *path, nl_seg *s, int *max_token) {
    void *map;
    size_t len;
    NL_TRY(map_file(path, &map, &len));
    const unsigned char *h = map;
    nl_status st = NL_OK;
    if (len < 1024)
        st = NL_FAIL(NL_ERR_FORMAT, "'%s': %zu bytes is shorter than the 1024-byte shard header", path, len);
    else if (le32(h) != NL_SHARD_MAGIC)
        st = NL_FAIL(NL_ERR_FORMAT, "'%s': bad magic %d (expected %d: not an llm.c token shard)", path, le32(h),
                     NL_SHARD_MAGIC);
    else if (le32(h + 4) != NL_SHARD_VERSION)
        st = NL_FAIL(NL_ERR_FORMAT, "'%s': unsupported shard version %d (expected 1: uint16 tokens)", path, le32(h + 4));
    else if (le32(h + 8) <= 0)
        st = NL_FAIL(NL_ERR_FORMAT, "'%s': header token count %d must be positive", path, le32(h + 8));
    else if ((size_t)le32(h + 8) * 2 + 1024 != len)
        st = NL_FAIL(NL_ERR_FORMAT, "'%s': header says %d tokens but the file holds %zu bytes of tokens (truncated?)",
                     path, le32(h + 8), len - 1024);
    if (st != NL_OK) {
        munmap(map, len);
        return st;
    }
    s->map = map;
    s->map_len = len;
    s->p = h + 1024;
    s->n = (size_t)le32(h + 8);
    s->u16 = 1;
    for (size_t i = 0; i < s->n; i++) {
        int tok = s->p[2 * i] | s->p[2 * i + 1] << 8;
        if (tok > *max_token) *max_token = tok;
    }
    return NL_OK;
}

nl_status nl_tokens_open(nl_tokens *t, const char *spec) {
    memset(t, 0, sizeof *t);
    t->owner = 1;
    size_t sl = strlen(spec);
    int is_glob = strpbrk(spec, "*?[") != NULL;
    if (!is_glob && !(sl > 4 && !strcmp(spec + sl - 4, ".bin"))) { /* a text file: one byte per token */
        t->seg = nl_xcalloc(sizeof *t->seg);
        nl_status st = map_file(spec, &t->seg[0].map, &t->seg[0].map_len);
        if (st != NL_OK) {
            nl_tokens_close(t);
            return st;
        }
        t->nseg = 1;
        t->seg[0].p = t->seg[0].map;
        t->n = t->seg[0].n = t->seg[0].map_len;
        for (size_t i = 0; i < t->n; i++)
            if (t->seg[0].p[i] > t->max_token) t->max_token = t->seg[0].p[i];
        return NL_OK;
    }
    glob_t g;
    int rc = glob(spec, 0, NULL, &g);
    if (rc == GLOB_NOMATCH) return NL_FAIL(NL_ERR_IO, "no file matches '%s'", spec);
    if (rc != 0) return NL_FAIL(NL_ERR_IO, "cannot expand '%s'", spec);
    t->shards = 1;
    t->seg = nl_xcalloc(g.gl_pathc * sizeof *t->seg);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        nl_status st = open_shard(g.gl_pathv[i], &t->seg[i], &t->max_token);
        if (st != NL_OK) {
            globfree(&g);
            nl_tokens_close(t);
            return st;
        }
        t->nseg++;
        t->n += t->seg[i].n;
    }
    globfree(&g);
    return NL_OK;
}

void nl_tokens_from_ids(nl_tokens *t, const int *ids, size_t n) {
    memset(t, 0, sizeof *t);
    t->owner = 1;
    t->shards = 1;
    t->seg = nl_xcalloc(sizeof *t->seg);
    t->nseg = 1;
    nl_seg *s = &t->seg[0];
    s->map_len = 2 * (n ? n : 1); /* an anonymous mapping, so nl_tokens_close releases it as it does files */
    s->map = mmap(NULL, s->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    NL_ASSERT(s->map != MAP_FAILED);
    unsigned char *p = s->map;
    for (size_t i = 0; i < n; i++) {
        NL_ASSERT(ids[i] >= 0 && ids[i] < 65536);
        p[2 * i] = (unsigned char)(ids[i] & 255), p[2 * i + 1] = (unsigned char)(ids[i] >> 8);
        if (ids[i] > t->max_token) t->max_token = ids[i];
    }
    s->p = p;
    s->n = t->n = n;
    s->u16 = 1;
}

void nl_tokens_close(nl_tokens *t) {
    if (!t) return;
    if (t->owner)
        for (int i = 0; i < t->nseg; i++)
            if (t->seg[i].map) munmap(t->seg[i].map, t->seg[i].map_len);
    free(t->seg);
    memset(t, 0, sizeof *t);
}

/* a view of [from, to) of the stream */
static void view(const nl_tokens *all, size_t from, size_t to, nl_tokens *out) {
    memset(out, 0, sizeof *out);
    out->seg = nl_xcalloc((size_t)(all->nseg ? all->nseg : 1) * sizeof *out->seg);
    out->shards = all->shards;
    out->max_token = all->max_token;
    size_t base = 0;
    for (int i = 0; i < all->nseg; i++) {
        const nl_seg *s = &all->seg[i];
        size_t a = from > base ? from - base : 0, b = to - base < s->n ? to - base : s->n;
        if (to > base && a < b) {
            nl_seg *o = &out->seg[out->nseg++];
            o->p = s->p + a * (s->u16 ? 2 : 1);
            o->n = b - a;
            o->u16 = s->u16;
            out->n += o->n;
        }
        base += s->n;
    }
}

void nl_tokens_split(const nl_tokens *all, double val_frac, nl_tokens *train, nl_tokens *val) {
    size_t nval = (size_t)(val_frac * (double)all->n + 0.5);
    view(all, 0, all->n - nval, train);
    view(all, all->n - nval, all->n, val);
}

void nl_tokens_read(const nl_tokens *t, size_t pos, size_t n, int *out) {
    NL_ASSERT(pos + n <= t->n);
    int i = 0;
    while (pos >= t->seg[i].n) pos -= t->seg[i++].n;
    for (size_t k = 0; k < n; k++) {
        while (pos >= t->seg[i].n) {
            pos = 0;
            i++;
        }
        const nl_seg *s = &t->seg[i];
        out[k] = s->u16 ? (s->p[2 * pos] | s->p[2 * pos + 1] << 8) : s->p[pos];
        pos++;
    }
}
