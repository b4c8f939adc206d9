#!/usr/bin/env bash
# The measured notes of docs/placements.md (GPAS, SDD): pre vs pre --gpas vs peri vs peri --gpas, and
# pre vs pre --sdd, at the configs/repro-d128-gpt2.conf shape (12 x d128 byte-level GPT-2 blocks, 300
# steps, one seed) and two learning rates, one thread per run; then one table of the final validation
# loss and the last diagnostics pass (step 300) of the residual stream before the final norm: variance
# over channels (x_var), max |x| (x_max), and the GPAS fractions SiLU(a_l).
#
#   bash experiments/gpas_sdd.sh                 # 10 runs, about 15 min of one core in all
#   JOBS=2 OUT=/tmp/gs LRS="2e-3" bash experiments/gpas_sdd.sh
# Knobs (environment): OUT (runs/gpas-sdd), LRS ("2e-3 8e-3"), STEPS (300), JOBS (1: runs at a time).
# Finished runs are skipped; a run another invocation has claimed ($OUT/NAME.claim) is left to it.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpas-sdd} LRS=${LRS:-"2e-3 8e-3"} STEPS=${STEPS:-300} JOBS=${JOBS:-1}
bin=build/release/normlab
[ -x "$bin" ] || make -s
mkdir -p "$OUT"
one() { # one run: LR, then the --norm value and flags
    local lr=$1 v=$2 name
    name=$(echo "$v" | tr -d '-' | tr ' ' '_')_lr$lr
    [ -f "$OUT/$name/metrics.jsonl" ] && grep -q "\"diag\": $STEPS," "$OUT/$name/metrics.jsonl" && return 0
    mkdir "$OUT/$name.claim" 2>/dev/null || return 0
    # shellcheck disable=SC2086
    "$bin" train --config configs/repro-d128-gpt2.conf --norm $v --lr "$lr" --steps "$STEPS" --threads 1 \
        --out "$OUT/$name" --overwrite --log-every 100 > "$OUT/$name.log" 2>&1 || echo "gpas_sdd: $name failed (see $OUT/$name.log)"
    rmdir "$OUT/$name.claim"
}
export -f one
export OUT STEPS bin
for lr in $LRS; do
    for v in "pre" "pre --gpas" "peri" "peri --gpas" "pre --sdd"; do printf '%s\n%s\n' "$lr" "$v"; done
done | xargs -d '\n' -n 2 -P "$JOBS" bash -c 'one "$0" "$1"'
python3 - "$OUT" "$STEPS" <<'PY'
import json, os, sys
out, steps = sys.argv[1], int(sys.argv[2])
print("| run | lr | final val loss | x_var (last) | max abs x (last) | max abs x (any layer) | SiLU(a_l), blocks 1..L |")
print("|---|---|---|---|---|---|---|")
rows = []
for name in os.listdir(out):
    path = os.path.join(out, name, "metrics.jsonl")
    if not os.path.isfile(path):
        continue
    val, diag = None, None
    for line in open(path):
        r = json.loads(line)
        if "val_loss" in r:
            val = r["val_loss"]
        if r.get("diag") == steps:
            diag = r
    if diag is None or val is None:
        continue
    run, lr = name.split("_lr")
    rows.append((float(lr), ["pre", "pre_gpas", "peri", "peri_gpas", "pre_sdd"].index(run) if run in
                 ["pre", "pre_gpas", "peri", "peri_gpas", "pre_sdd"] else 9, run, lr, val, diag))
for _, _, run, lr, val, diag in sorted(rows):
    g = diag.get("gpas_silu")
    gs = " ".join(f"{x:.2f}" for x in g) if g else "-"
    print(f"| {run.replace('_', ' --')} | {lr} | {val:.4f} | {diag['x_var'][-1]:.3g} | {diag['x_max'][-1]:.3g} | "
          f"{max(diag['x_max']):.3g} | {gs} |")
PY
