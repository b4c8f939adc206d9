#!/usr/bin/env bash
# Denormal-stall benchmark (issue 16): the shape where subnormal floats used to slow training down after
# step ~80 at high learning rates. For pre, peri and post at lr 1e-3 and 1e-2: 12 blocks, d128, 4 heads,
# T128, batch 16, 1 thread, byte-level Tiny Shakespeare. Per run: tokens/s over the steps after 80
# (wall clock: total tokens / total step time) and the CPU seconds of the whole run (user + system; on a
# shared machine it moves far less with other load than the wall clock). Ratios are lr 1e-2 / lr 1e-3
# (target: tokens/s ratio >= 0.8); the CPU ratio is CPU s lr 1e-3 / CPU s lr 1e-2, in the same direction.
# Prints a markdown table.
# usage: bash bench/denormal.sh [steps]     (run from the repository root after `make`; default 160 steps;
#        BIN=path/to/normlab times another build; NORMS="pre peri" picks rows)
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-160}
BIN=${BIN:-build/release/normlab}
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
[[ "$STEPS" =~ ^[0-9]+$ && "$STEPS" -gt 90 ]] || { echo "denormal.sh: steps must be an integer above 90 (the stall starts near step 80)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "denormal.sh: $BIN not found (run make first)" >&2; exit 1; }

TEXT=""
for f in data/tinyshakespeare.txt ../shared/data/tinyshakespeare.txt; do [ -f "$f" ] && TEXT=$f && break; done
[ -n "$TEXT" ] || { echo "denormal.sh: tinyshakespeare.txt not found in data/ or ../shared/data/" >&2; exit 1; }

run() { # args: norm lr -> "tok/s-after-80 cpu-seconds final-loss"
    $PY - "$BIN" "$TEXT" "$TMP/$1-$2" "$1" "$2" "$STEPS" <<'PYEOF'
import json, resource, subprocess, sys
bin_, text, out, norm, lr, steps = sys.argv[1:]
subprocess.run([bin_, "train", "--norm", norm, "--lr", lr, "--layers", "12", "--dim", "128", "--heads", "4",
                "--seq-len", "128", "--batch", "16", "--threads", "1", "--steps", steps, "--eval-every", "0",
                "--data", text, "--out", out], check=True, stdout=subprocess.DEVNULL)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
rows = [json.loads(l) for l in open(out + "/metrics.jsonl")]
late = [r for r in rows if "tok_per_s" in r and r["step"] > 80]
print(round(len(late) / sum(1.0 / r["tok_per_s"] for r in late), 1), round(ru.ru_utime + ru.ru_stime, 1), rows[-1]["loss"])
PYEOF
}

echo "$BIN ($(git rev-parse --short HEAD 2>/dev/null || echo '?') checkout), 1 thread, $STEPS steps, $(date -u +%Y-%m-%d), $(lscpu | sed -n 's/^Model name: *//p'), load average $(cut -d' ' -f1 /proc/loadavg) at start"
echo
echo "| norm | tok/s lr 1e-3 | tok/s lr 1e-2 | ratio | CPU s lr 1e-3 | CPU s lr 1e-2 | CPU ratio | loss lr 1e-3 | loss lr 1e-2 |"
echo "|---|---|---|---|---|---|---|---|---|"
for norm in ${NORMS:-pre peri post}; do
    read -r a ca la < <(run "$norm" 1e-3)
    read -r b cb lb < <(run "$norm" 1e-2)
    $PY -c "print(f'| $norm | {$a:.0f} | {$b:.0f} | {$b/$a:.2f} | {$ca:.0f} | {$cb:.0f} | {$ca/$cb:.2f} | {$la:.4f} | {$lb:.4f} |')"
done
