/* json.h -- a small JSON reader (RFC 8259 values into a tree), for task files and other JSON input.
 * Strings are decoded to UTF-8 (\u escapes and surrogate pairs included); numbers are doubles.
 * Depth is bounded; any syntax error reports the byte offset. */
#ifndef NL_JSON_H
#define NL_JSON_H

#include "normlab.h"

#include <stddef.h>

typedef enum nl_jtype { NL_J_NULL, NL_J_BOOL, NL_J_NUM, NL_J_STR, NL_J_ARR, NL_J_OBJ } nl_jtype;

typedef struct nl_json {
    nl_jtype type;
    double num;             /* NL_J_NUM, NL_J_BOOL (0/1) */
    char *str;              /* NL_J_STR: NUL-terminated UTF-8 (may hold embedded NULs up to len) */
    size_t len;             /* string length in bytes */
    struct nl_json *items;  /* NL_J_ARR, NL_J_OBJ: n values */
    char **keys;            /* NL_J_OBJ: n keys */
    int n;
} nl_json;

/* Parses exactly one JSON value (surrounding whitespace allowed) from s[0..n). On error returns
 * NL_ERR_FORMAT and writes a short reason with the byte offset to err; *out is then empty. */
nl_status nl_json_parse(const char *s, size_t n, nl_json *out, char *err, size_t errcap);
void nl_json_free(nl_json *v);
/* The member `key` of an object, or NULL. */
const nl_json *nl_json_get(const nl_json *obj, const char *key);

#endif
