#!/usr/bin/env bash
# Speed benchmark: full training steps (forward, backward, clip, AdamW) of normlab and of an idiomatic
# PyTorch GPT (bench/torch_bench.py) on the same shapes and thread count, in one run, plus this
# machine's measured sgemm rate. Prints a markdown table for docs/benchmarks.md.
# usage: bash bench/bench.sh [steps]      (run from the repository root after `make`; SHAPES="byte llama"
#        picks shapes)
# Model FLOPs per token (training) = 3 * (2*L*(4*d^2 + M*d*F) + 2*d*V + 4*L*T*d), M = 2 (gpt2: fc, proj)
# or 3 (llama: gate, up, down): every matmul counted once, attention over the full T x T (what both
# implementations compute). Shapes: byte (gpt2 blocks, byte vocabulary), gpt2 (GPT-2 vocabulary),
# llama (LLaMA blocks: RoPE, SwiGLU with F = 1024, no biases, untied head; byte vocabulary).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-10}
THREADS=2
BIN=build/release/normlab
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

peak=$(build/release/sgemm_bench $THREADS | awk '/^peak/ {print $2}')

# data: Tiny Shakespeare for the byte shape (any text works), random GPT-2-range tokens for the other
TEXT=""
for f in data/tinyshakespeare.txt ../shared/data/tinyshakespeare.txt; do [ -f "$f" ] && TEXT=$f && break; done
if [ -z "$TEXT" ]; then
    TEXT=$TMP/text.txt
    $PY -c "import random; random.seed(0); open('$TEXT','w').write(''.join(random.choice('abcdefgh \n') for _ in range(2000000)))"
fi
$PY -c "
import numpy as np
n = 300000
h = np.zeros(256, dtype='<i4'); h[:3] = (20240520, 1, n)
with open('$TMP/gpt2.bin', 'wb') as f:
    f.write(h.tobytes()); f.write(np.random.default_rng(0).integers(0, 50257, n).astype('<u2').tobytes())
"

normlab_tps() { # args: data, normlab options...
    local data=$1; shift
    $BIN train "$@" --data "$data" --steps $((STEPS + 2)) --warmup 1 --val-frac 0 --threads $THREADS --out "$TMP/run" --overwrite >/dev/null
    $PY -c "
import json, statistics
r = [json.loads(l)['tok_per_s'] for l in open('$TMP/run/metrics.jsonl')][2:]
print(round(statistics.median(r), 1))"
}

echo "normlab $(git rev-parse --short HEAD 2>/dev/null || echo '?') vs PyTorch $($PY -c 'import torch; print(torch.__version__)'), $THREADS threads, $(date -u +%Y-%m-%d), $(lscpu | sed -n 's/^Model name: *//p')"
echo "measured sgemm peak: $peak GFLOP/s ($THREADS threads, OpenBLAS)"
echo
echo "| shape | norm | normlab tok/s | PyTorch tok/s | ratio | normlab GFLOP/s | % of sgemm |"
echo "|---|---|---|---|---|---|---|"
for shape in ${SHAPES:-byte gpt2 llama}; do
    # V: rows of the embedding table (normlab pads 50257 to 50304); FV: the vocabulary the head scores
    L=6 D=384 H=6 T=256 B=8 V=256 FV=256 DATA=$TEXT VOPT="" ARCH=gpt2 F=1536 M=2
    if [ $shape = gpt2 ]; then T=64 B=4 V=50304 FV=50257 DATA=$TMP/gpt2.bin VOPT="--vocab 50257"; fi
    if [ $shape = llama ]; then ARCH=llama F=1024 M=3; fi
    flops=$($PY -c "print(3 * (2*$L*(4*$D**2 + $M*$D*$F) + 2*$D*$FV + 4*$L*$T*$D))")
    for norm in pre peri; do
        nl=$(normlab_tps "$DATA" --arch $ARCH --ffn-dim $F --layers $L --dim $D --heads $H --seq-len $T --batch $B --norm $norm $VOPT)
        pt=$($PY bench/torch_bench.py --arch $ARCH --ffn-dim $F --layers $L --dim $D --heads $H --seq-len $T --batch $B --vocab $V \
             --norm $norm --steps $STEPS --threads $THREADS | $PY -c "import json,sys; print(round(json.load(sys.stdin)['tok_per_s'], 1))")
        $PY -c "
nl, pt, fl, peak = $nl, $pt, $flops, $peak
g = nl * fl / 1e9
print(f'| $ARCH L$L d$D H$H T$T B$B V$V | $norm | {nl:.0f} | {pt:.0f} | {nl/pt:.2f}x | {g:.1f} | {100*g/peak:.0f}% |')"
    done
done
