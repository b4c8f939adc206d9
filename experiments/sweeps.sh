# experiments/sweeps.sh -- what protocol.sh and family.sh share; sourced by both (not run by itself).
# script_args WHO SCRIPT ARGS...: --help prints SCRIPT's header comment (from line 2 to `set -euo`) and
# exits 0; any argument at all is otherwise an error (the knobs are environment variables).
script_args() {
    local who=$1 script=$2
    case ${3:-} in
    '') ;;
    -h | --help) sed -n '2,/^set -euo/p' "$script" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "$who: no arguments (knobs are environment variables; see --help), got '$3'" >&2; exit 2 ;;
    esac
}
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
