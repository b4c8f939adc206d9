/* tests.h -- the list of tests; each test_<name> returns its number of failed checks. */
#ifndef NL_TESTS_H
#define NL_TESTS_H

#define NL_TESTS(X)                                                                                \
    X(ops_norm)                                                                                    \
    X(ops_norm_types)                                                                              \
    X(ops_scales)                                                                                  \
    X(ops_linear)                                                                                  \
    X(gemm)                                                                                        \
    X(ops_attention)                                                                               \
    X(ops_gelu)                                                                                    \
    X(ops_swiglu)                                                                                  \
    X(ops_rope)                                                                                    \
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
    X(cli_info)                                                                                    \
    X(cli_end_to_end)                                                                              \
    X(cli_llama)                                                                                   \
    X(mc_layouts)                                                                                  \
    X(evalmc_twin)                                                                                  \
    X(bpe)                                                                                         \
    X(prepare)                                                                                     \
    X(gpt2_vocab)                                                                                  \
    X(config_file)                                                                                 \
    X(library)                                                                                     \
    X(llmc_init)                                                                               \
    X(metrics_keep)                                                                                \
    X(resume)                                                                                      \
    X(crash_kill)                                                                                  \
    X(signals)                                                                                     \
    X(disk_full)                                                                                   \
    X(divergence)                                                                                  \
    X(fuzz_regress)                                                                            \
    X(diag_stats)                                                                                  \
    X(diag_trackers)                                                                               \
    X(diag_model)                                                                                  \
    X(diag_cli)                                                                                    \
    X(sweep_resume)                                                                                \
    X(analyze_skip)                                                                                \
    X(analyze_numbers)                                                                             \
    X(analyze_cli)                                                                                 \
    X(json_reader)                                                                                 \
    X(report_render)

#define X(name) int test_##name(void);
NL_TESTS(X)
#undef X

#endif
