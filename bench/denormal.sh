#!/usr/bin/env bash
# Denormal-stall benchmark (issue 16): the shape where subnormal floats used to slow training down after
# step ~80 at high learning rates. For pre, peri and post and lr 1e-3 and 1e-2: 12 blocks, d128, 4 heads,
# T128, batch 16, 1 thread, byte-level Tiny Shakespeare; tokens/s over the steps after 80 (total tokens
# / total step time), and the ratio lr 1e-2 / lr 1e-3 (target: >= 0.8). Prints a markdown table.
# usage: bash bench/denormal.sh [steps]     (run from the repository root after `make`; default 160 steps;
#        BIN=path/to/normlab compares another build; NORMS="pre" and LRS="1e-3 1e-2" pick rows)
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-160}
BIN=${BIN:-build/release/normlab}
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
[ "$STEPS" -gt 90 ] || { echo "denormal.sh: steps must be above 90 (the stall starts near step 80)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "denormal.sh: $BIN not found (run make first)" >&2; exit 1; }

TEXT=""
for f in data/tinyshakespeare.txt ../shared/data/tinyshakespeare.txt; do [ -f "$f" ] && TEXT=$f && break; done
[ -n "$TEXT" ] || { echo "denormal.sh: tinyshakespeare.txt not found in data/ or ../shared/data/" >&2; exit 1; }

tps_after_80() { # args: norm lr -> tokens/s over steps 81.., and the final loss
    $BIN train --norm "$1" --lr "$2" --layers 12 --dim 128 --heads 4 --seq-len 128 --batch 16 --threads 1 \
        --steps "$STEPS" --eval-every 0 --data "$TEXT" --out "$TMP/$1-$2" >/dev/null
    $PY -c "
import json
rows = [json.loads(l) for l in open('$TMP/$1-$2/metrics.jsonl')]
late = [r for r in rows if 'tok_per_s' in r and r['step'] > 80]
print(round(len(late) / sum(1.0 / r['tok_per_s'] for r in late), 1), rows[-1]['loss'])"
}

echo "normlab $(git rev-parse --short HEAD 2>/dev/null || echo '?') ($BIN), 1 thread, $STEPS steps, $(date -u +%Y-%m-%d), $(lscpu | sed -n 's/^Model name: *//p')"
echo
echo "| norm | tok/s lr 1e-3 | tok/s lr 1e-2 | ratio | loss lr 1e-3 | loss lr 1e-2 |"
echo "|---|---|---|---|---|---|"
for norm in ${NORMS:-pre peri post}; do
    read -r a la < <(tps_after_80 "$norm" 1e-3)
    read -r b lb < <(tps_after_80 "$norm" 1e-2)
    $PY -c "print(f'| $norm | {$a:.0f} | {$b:.0f} | {$b/$a:.2f} | {$la:.4f} | {$lb:.4f} |')"
done
