# experiments/seed_major.sh -- sourced by protocol.sh and family.sh (not run by itself).
# seed_major WHO DIR SWEEP_OPTIONS...: one `normlab sweep` into DIR, seed-major (every cell gets its
# first seed before any gets its second), then the whole grid once more, which skips every finished
# run and writes summary.csv / runs.csv for all seeds; the output is appended to DIR.log. Uses BIN and
# SEEDS; sets failed=1 when a run failed; WHO names the script in its messages.
seed_major() {
    local who=$1 out=$2 s
    shift 2
    for ((s = 1337; s < 1337 + SEEDS; s++)); do
        "$BIN" sweep --seeds 1 --seed "$s" --out "$out" "$@" >> "$out.log" 2>&1 || true
    done
    "$BIN" sweep --seeds "$SEEDS" --seed 1337 --out "$out" "$@" >> "$out.log" 2>&1 ||
        { echo "$who: $out: some runs failed (see $out.log and their train.log)" >&2; failed=1; }
    echo "$who: $out done"
}
