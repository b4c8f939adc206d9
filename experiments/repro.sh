#!/usr/bin/env bash
# Small-scale reproduction of docs/methods.md §6 on a CPU: a placement x learning-rate x seed sweep of
# narrow, deep byte-level GPTs on Tiny Shakespeare with diagnostics, layer analysis of each
# placement's best-LR run, and one report.
#
#   bash experiments/repro.sh                       # the full grid (defaults below)
#   STEPS=20 LAYERS=4 DIM=32 SEEDS=1 LRS=1e-3,8e-3 bash experiments/repro.sh   # a smoke test
#   ARCH=llama bash experiments/repro.sh            # the same on LLaMA-style blocks
#
# ARCH=llama is the setup of the Mix-LN and Curse-of-Depth papers: RMSNorm, SwiGLU, RoPE, no biases,
# an untied head, 10% warmup and cosine decay to 10% of the peak LR (both archs use that schedule).
#
# Knobs (environment): ARCH (gpt2 | llama), OUT (runs/repro, runs/repro-llama for llama), NORMS (pre,post,peri,mix,lns), LRS (5e-4,...,8e-3), SEEDS (3),
# STEPS (300), LAYERS (12), DIM (128), HEADS (4), SEQ (128), BATCH (8), WARMUP (10% of STEPS),
# DIAG (STEPS/6), JOBS (1), THREADS (0: all cores; 1 is faster on a loaded machine), DATA (data/tinyshakespeare.txt). The sweep resumes: rerunning
# the script skips finished runs. Results go to $OUT/report.html; docs/results.md says what they show.
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${ARCH:-gpt2}
case $ARCH in gpt2) OUT=${OUT:-runs/repro} ;; llama) OUT=${OUT:-runs/repro-llama} ;; *) echo "repro: ARCH must be gpt2 or llama" >&2; exit 2 ;; esac
NORMS=${NORMS:-pre,post,peri,mix,lns}
LRS=${LRS:-5e-4,1e-3,2e-3,4e-3,8e-3}
SEEDS=${SEEDS:-3} STEPS=${STEPS:-300} LAYERS=${LAYERS:-12} DIM=${DIM:-128} HEADS=${HEADS:-4}
SEQ=${SEQ:-128} BATCH=${BATCH:-8} JOBS=${JOBS:-1} THREADS=${THREADS:-0}
WARMUP=${WARMUP:-$((STEPS / 10))}
DIAG=${DIAG:-$(( STEPS / 6 > 0 ? STEPS / 6 : 1 ))}
DATA=${DATA:-data/tinyshakespeare.txt}
bin=build/release/normlab
[ -x "$bin" ] || make -s
start=$(date +%s)
"$bin" sweep --norm "$NORMS" --lr "$LRS" --seeds "$SEEDS" --jobs "$JOBS" --out "$OUT/sweep" --data "$DATA" \
    --layers "$LAYERS" --dim "$DIM" --heads "$HEADS" --seq-len "$SEQ" --batch "$BATCH" --steps "$STEPS" \
    --arch "$ARCH" --warmup "$WARMUP" --min-lr-frac 0.1 --diag-every "$DIAG" --eval-every "$DIAG" --threads "$THREADS" || echo "repro: some runs failed; see their train.log"
# each placement's best LR (lowest mean final val loss with no diverged seed): analyze its first seed
seed0=1337
tail -n +2 "$OUT/sweep/summary.csv" | awk -F, '$5 == 0 && $6 == 0 && $7 != "" { if (!($1 in best) || $7 < best[$1]) { best[$1] = $7; lr[$1] = $2 } }
    END { for (n in lr) print n, lr[n] }' | sort | while read -r norm lr; do
    run="$OUT/sweep/${norm}_lr${lr}_s${seed0}"
    [ -f "$run/analyze.json" ] || "$bin" analyze --ckpt "$run" --data "$DATA" --max-windows 256 --threads "$THREADS" --out "$run/analyze.json"
done
"$bin" report "$OUT/sweep" -o "$OUT/report.html" --title "normlab: small-scale reproduction ($ARCH, L=$LAYERS, d=$DIM, $STEPS steps)"
echo "repro: done in $(( $(date +%s) - start ))s; open $OUT/report.html"
