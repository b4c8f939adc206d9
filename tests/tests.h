/* tests.h -- the list of tests; each test_<name> returns its number of failed checks. */
#ifndef NL_TESTS_H
#define NL_TESTS_H

#define NL_TESTS(X)                                                                                \
    X(ops_norm)                                                                                    \
    X(ops_norm_types)                                                                              \
    X(ops_scales)                                                                                  \
    X(ops_gpas)                                                                                    \
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
    X(lowp_convert)                                                                               \
    X(lowp_paths)                                                                                 \
    X(lowp_gemm)                                                                                  \
    X(loss_scaler)                                                                                \
    X(dtype_model)                                                                                 \
    X(dtype_train)                                                                                 \
    X(dtype_cli)                                                                                   \
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
    X(hf)                                                                                          \
    X(metrics_keep)                                                                                \
    X(resume)                                                                                      \
    X(resume_gpas_sdd)                                                                             \
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
    X(sweep_summary)                                                                               \
    X(sweep_slurm_args)                                                                            \
    X(comm)                                                                                        \
    X(sweep_mpi)                                                                                   \
    X(dp_equiv)                                                                                    \
    X(dp_resume)                                                                                   \
    X(dp_faults)                                                                                   \
    X(sweep_slurm)                                                                                 \
    X(analyze_skip)                                                                                \
    X(analyze_numbers)                                                                             \
    X(analyze_cli)                                                                                 \
    X(json_reader)                                                                                 \
    X(report_render)                                                                               \
    X(backend_layering)                                                                            \
    X(backend_kernels)                                                                             \
    X(backend_fp_mode)                                                                             \
    X(resume_truncated)                                                                            \
    X(config_shortest)                                                                             \
    X(resume_extend)                                                                               \
    X(warmup_warning)                                                                              \
    X(resume_time)                                                                                 \
    X(run_dir_guard)                                                                               \
    X(eval_split)                                                                                  \
    X(eval_gpt2_text)                                                                              \
    X(twin_usage)                                                                                  \
    X(crc32c)                                                                                      \
    X(progress_line)                                                                               \
    X(tensorboard)                                                                                 \
    X(presets)                                                                                     \
    X(cuda_host)                                                                                   \
    X(cuda_cli)

#define X(name) int test_##name(void);
NL_TESTS(X)
#undef X

#endif
