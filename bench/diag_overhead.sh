#!/usr/bin/env bash
# Cost of --diag-every: wall time of the same training run without and with diagnostics, alternated
# REPEAT times (default 2) so that load from other processes hits both alike. Prints one line per run
# and the overhead of the medians. Usage: bash bench/diag_overhead.sh [REPEAT] [STEPS] [DIAG_EVERY]
set -euo pipefail
cd "$(dirname "$0")/.."
rep=${1:-2} steps=${2:-200} every=${3:-100}
bin=build/release/normlab
data=${NORMLAB_DATA:-data/tinyshakespeare.txt}
[ -x "$bin" ] || make -s
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
shape="--layers 6 --dim 384 --heads 6 --seq-len 256 --batch 8 --steps $steps --eval-every 0 --eval-windows 8 --data $data"
declare -a off on
for i in $(seq 1 "$rep"); do
    for d in 0 "$every"; do
        t=$("$bin" train $shape --diag-every "$d" --out "$out/r$i-$d" | sed -n 's/^done: [0-9]* steps in \([0-9.]*\)s.*/\1/p')
        echo "run $i --diag-every $d: $t s"
        if [ "$d" = 0 ]; then off+=("$t"); else on+=("$t"); fi
    done
done
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
m0=$(med "${off[@]}") m1=$(med "${on[@]}")
awk -v a="$m0" -v b="$m1" -v e="$every" 'BEGIN {printf "median wall time: %.1f s without, %.1f s with --diag-every %s: overhead %+.2f%%\n", a, b, e, 100*(b-a)/a}'
