/* json.h -- a small validating JSON reader: metrics.jsonl lines, result.json and analyze output, and
 * the multiple-choice task files of eval-mc (\u escapes decode to UTF-8). One parse builds a tree in
 * one allocation-owning nl_json_doc.
 * Numbers are doubles; null reads as NaN through nl_json_num. Depth and size are bounded. */
#ifndef NL_JSON_H
#define NL_JSON_H

#include "normlab.h"

#include <stddef.h>
#include <stdio.h>

typedef enum nl_json_type { NL_JNULL, NL_JBOOL, NL_JNUM, NL_JSTR, NL_JARR, NL_JOBJ } nl_json_type;

typedef struct nl_json {
    nl_json_type type;
    double num;            /* NL_JNUM, NL_JBOOL (0/1) */
    char *str;             /* NL_JSTR (unescaped, NUL-terminated) */
    char *key;             /* the member name when inside an object */
    struct nl_json *child; /* first element/member */
    struct nl_json *next;  /* next sibling */
    int n;                 /* elements/members */
} nl_json;

typedef struct nl_json_doc {
    nl_json *root;
    nl_json *nodes;
    char *strs;
    size_t nnodes, cap_nodes, nstrs, cap_strs;
} nl_json_doc;

/* Parses text[0..len) as exactly one JSON value. NL_ERR_FORMAT with "<what>: <why> at byte N". */
nl_status nl_json_parse(nl_json_doc *d, const char *text, size_t len, const char *what);
void nl_json_free(nl_json_doc *d);

const nl_json *nl_json_get(const nl_json *obj, const char *key); /* NULL if absent or not an object */
const nl_json *nl_json_at(const nl_json *arr, int i);            /* NULL if out of range */
double nl_json_num(const nl_json *v);                            /* NaN unless a number */
const char *nl_json_str(const nl_json *v);                       /* NULL unless a string */
/* Copies up to cap numbers of an array into out (non-numbers as NaN); returns the count, -1 if v is
 * not an array. */
int nl_json_nums(const nl_json *v, double *out, int cap);

/* Writes s as a JSON string, quotes included (", \\ and control characters escaped). */
void nl_json_write_str(FILE *f, const char *s);
/* Reads a whole file (at most max bytes) into a NUL-terminated buffer; NL_ERR_IO naming it. */
nl_status nl_read_file(const char *path, size_t max, char **buf, size_t *len);
/* Reads and parses a file (at most max bytes) holding one JSON value; errors name the file. */
nl_status nl_json_load(nl_json_doc *d, const char *path, size_t max);

#endif
