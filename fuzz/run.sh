#!/usr/bin/env bash
# Runs the libFuzzer harnesses built by `make fuzz` (build/fuzz/fuzz_NAME), each for FUZZ_SECONDS
# seconds starting from its seed corpus fuzz/corpus/NAME and past findings fuzz/regress/NAME. New
# inputs go to build/fuzz/corpus/NAME (not the repository); a crash is saved as
# build/fuzz/crash-NAME-* and fails the run: copy it to fuzz/regress/NAME/ once fixed.
# FUZZ_SECONDS=0 runs each harness once over the seeds and regressions (CI: `make fuzz-regress`).
# Prints one line per harness: executions, seconds, corpus size, coverage, crashes.
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-60}
status=0
printf '%-12s %10s %6s %8s %6s %s\n' harness execs secs corpus cov result
for n in "$@"; do
    bin=build/fuzz/fuzz_$n
    work=build/fuzz/corpus/$n
    log=build/fuzz/$n.log
    mkdir -p "$work" fuzz/regress/$n
    seeds=(fuzz/corpus/$n/* fuzz/regress/$n/*)
    existing=()
    for f in "${seeds[@]}"; do [ -f "$f" ] && existing+=("$f"); done
    if [ "$secs" = 0 ]; then
        "$bin" -runs=0 "${existing[@]}" >"$log" 2>&1
        rc=$?
        execs=${#existing[@]}
        cov=-
        size=${#existing[@]}
    else
        "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -artifact_prefix=build/fuzz/crash-$n- \
            -print_final_stats=1 "$work" fuzz/corpus/$n fuzz/regress/$n >"$log" 2>&1
        rc=$?
        execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
        size=$(ls "$work" | wc -l)
    fi
    result=ok
    if [ $rc -ne 0 ]; then result="CRASH (see $log)"; status=1; fi
    printf '%-12s %10s %6s %8s %6s %s\n' "$n" "${execs:-?}" "$secs" "$size" "${cov:-?}" "$result"
done
exit $status
