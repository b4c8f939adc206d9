/* runner.c -- the test runner: a table of named tests, each returning its failure count.
 * `nl_tests [name...]` runs all tests or the named ones; prints "name ok" / "name FAIL" per test and
 * "N passed, N failed" last; exits 1 if any failed. */
#include "tests.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int (*fn)(void);
} tests[] = {
#define X(name) { #name, test_##name },
    NL_TESTS(X)
#undef X
};

int main(int argc, char **argv) {
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int want = argc < 2;
        for (int a = 1; a < argc; a++) want |= !strcmp(argv[a], tests[i].name);
        if (!want) continue;
        printf("%s ...\n", tests[i].name);
        fflush(stdout);
        int f = tests[i].fn();
        printf("%s %s\n", tests[i].name, f ? "FAIL" : "ok");
        fflush(stdout);
        if (f) failed++;
        else passed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
