/* tests.h -- the list of tests; each test_<name> returns its number of failed checks. */
#ifndef NL_TESTS_H
#define NL_TESTS_H

#define NL_TESTS(X)                                                                                \
    X(ops_norm)                                                                                    \
    X(ops_norm_types)                                                                              \
    X(ops_scales)                                                                                  \
    X(ops_linear)                                                                                  \
    X(ops_attention)                                                                               \
    X(ops_gelu)                                                                                    \
    X(ops_encoder)                                                                                 \
    X(ops_xent)                                                                                    \
    X(ops_residual)                                                                                \
    X(ops_fastmath)                                                                                \
    X(placement_table)                                                                             \
    X(lr_schedule)                                                                                 \
    X(grad_accum)                                                                                  \
    X(determinism)                                                                                 \
    X(safetensors_io)                                                                              \
    X(shards)                                                                                      \
    X(ckpt_roundtrip)                                                                              \
    X(torch_twin)                                                                                  \
    X(crms_equivalence)                                                                            \
    X(cli_errors)                                                                                  \
    X(cli_end_to_end)

#define X(name) int test_##name(void);
NL_TESTS(X)
#undef X

#endif
