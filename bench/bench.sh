#!/usr/bin/env bash
# Speed benchmark, in one run:
#  1. the f32 matmul rate at the model's shapes (bench/gemm_bench.c: the linear layers' and the head's
#     products of one training step) for each library normlab can use: oneDNN, OpenBLAS with the core it
#     detects, and OpenBLAS with each core this CPU can run forced by OPENBLAS_CORETYPE;
#  2. which OPENBLAS_CORETYPE makes the PyTorch peer's BLAS fastest (torch.mm on the MLP's products),
#     so the peer runs with its best kernels;
#  3. full training steps (forward, backward, clip, AdamW) of normlab and of an idiomatic PyTorch GPT
#     (bench/torch_bench.py) on the same shapes and thread count, with normlab's model-FLOP rate as a
#     percentage of the best f32 matmul rate of step 1 for that shape; for each dtype of normlab
#     (--dtype fp32, bf16, fp16: how much slower than fp32) and the peer's fp32 and bf16 autocast.
# Prints markdown tables for docs/benchmarks.md.
# usage: bash bench/bench.sh [steps]      (run from the repository root after `make bench` builds
#        build/release/gemm_bench; SHAPES="byte llama" picks shapes, DTYPES="fp32 bf16" the dtypes,
#        GEMM_ROUNDS=N the passes of step 1, THREADS=N the thread count of every run, default 2)
# Model FLOPs per token (training) = 3 * (2*L*(4*d^2 + M*d*F) + 2*d*V + 4*L*T*d), M = 2 (gpt2: fc, proj)
# or 3 (llama: gate, up, down): every matmul counted once, attention over the full T x T (the peer's
# torch 1.13 computes it; normlab skips most of the masked half, and the count stays the model's). Shapes: byte (gpt2 blocks, byte vocabulary), gpt2 (GPT-2 vocabulary),
# llama (LLaMA blocks: RoPE, SwiGLU with F = 1024, no biases, untied head; byte vocabulary).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-10}
THREADS=${THREADS:-2}
BIN=build/release/normlab
GB=build/release/gemm_bench
PY=/usr/bin/python3
SHAPES=${SHAPES:-byte gpt2 llama}
DTYPES=${DTYPES:-fp32 bf16 fp16}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# sets the shape's variables; V: rows of the embedding table (normlab pads 50257 to 50304), FV: the
# vocabulary the head scores
shape_vars() {
    L=6 D=384 H=6 T=256 B=8 V=256 FV=256 ARCH=gpt2 F=1536 M=2 DATA=$TEXT VOPT=""
    if [ "$1" = gpt2 ]; then T=64 B=4 V=50304 FV=50257 DATA=$TMP/gpt2.bin VOPT="--vocab 50257"; fi
    if [ "$1" = llama ]; then ARCH=llama F=1024 M=3; fi
}

# OpenBLAS cores this CPU can execute (OPENBLAS_CORETYPE does not check)
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
cores=()
[[ $flags == *" avx "* ]] && cores+=(Sandybridge)
[[ $flags == *" avx2 "* ]] && cores+=(Haswell Zen)
[[ $flags == *" avx512f "* && $flags == *" avx512bw "* && $flags == *" avx512vl "* ]] && cores+=(SkylakeX)
[[ $flags == *" avx512_bf16 "* ]] && cores+=(Cooperlake)

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

echo "normlab $(git rev-parse --short HEAD 2>/dev/null || echo '?') vs PyTorch $($PY -c 'import torch; print(torch.__version__)'), $THREADS threads, $(date -u +%Y-%m-%d), $(lscpu | sed -n 's/^Model name: *//p'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "normlab's matmuls: $($BIN info | sed -n 's/^matmul: //p'); with --dtype bf16: $($BIN info | sed -n 's/^bf16 matmul: //p')"
echo

# ---- 1. matmul rate per library at each shape: GEMM_ROUNDS (2) passes over all libraries, the best
# of the passes in each cell (one pass's timing can fall on another job's burst)
declare -A best rate label
header="| library (kernels) |" rule="|---|"
for shape in $SHAPES; do shape_vars $shape; header+=" $ARCH L$L d$D T$T B$B V$V |"; rule+="---|"; best[$shape]=0; done
libs=(onednn openblas "${cores[@]/#/openblas:}")
for round in $(seq ${GEMM_ROUNDS:-2}); do
    for lib in "${libs[@]}"; do
        env=(NL_GEMM=${lib%%:*})
        [[ $lib == *:* ]] && env+=(OPENBLAS_CORETYPE=${lib#*:})
        for shape in $SHAPES; do
            shape_vars $shape
            out=$(env "${env[@]}" $GB --tokens $((B * T)) --dim $D --ffn $F --arch $ARCH --layers $L --vocab $FV --vocab-rows $V --threads $THREADS)
            label[$lib]=$(head -1 <<<"$out" | sed 's/, [0-9]* threads$//')
            r=$(sed -n 's/^rate \([0-9.]*\) GFLOP\/s/\1/p' <<<"$out")
            rate[$lib.$shape]=$($PY -c "print(max($r, ${rate[$lib.$shape]:-0}))")
            best[$shape]=$($PY -c "print(max($r, ${best[$shape]}))")
        done
    done
done
echo "f32 matmul rate at the model's shapes, GFLOP/s (linear layers and head of one training step, bench/gemm_bench.c; best of ${GEMM_ROUNDS:-2} passes):"
echo
echo "$header"
echo "$rule"
for lib in "${libs[@]}"; do
    note=""
    if [[ $lib == *:* ]]; then note=", OPENBLAS_CORETYPE=${lib#*:}"; elif [ $lib = openblas ]; then note=", as detected"; fi
    row=""
    for shape in $SHAPES; do row+=" ${rate[$lib.$shape]} |"; done
    echo "| ${label[$lib]}$note |$row"
done
echo

# ---- 2. the PyTorch peer's BLAS core: the fastest torch.mm among the detected core and each forced one
pt_core="" pt_rate=0 pt_lines=""
shape_vars byte
for core in "" "${cores[@]}"; do
    out=$(env ${core:+OPENBLAS_CORETYPE=$core} $PY bench/torch_bench.py --gemm-rate --dim $D --ffn-dim $F --seq-len $T --batch $B --threads $THREADS)
    read -r rate name < <($PY -c "import json,sys; j=json.loads(sys.stdin.read()); print(round(j['gflops'], 1), j['blas_core'])" <<<"$out")
    how=" (detected)"
    [ -n "$core" ] && how=" (forced)"
    pt_lines+="${pt_lines:+, }$name$how $rate"
    if $PY -c "import sys; sys.exit(0 if $rate > $pt_rate else 1)"; then pt_rate=$rate pt_core=$name; fi
done
echo "PyTorch's BLAS, torch.mm GFLOP/s on the MLP products of the byte shape: $pt_lines"
echo "PyTorch peer runs with OPENBLAS_CORETYPE=$pt_core"
echo

# ---- 3. training steps
normlab_tps() { # args: data, normlab options...
    local data=$1; shift
    $BIN train "$@" --data "$data" --steps $((STEPS + 2)) --warmup 1 --val-frac 0 --threads $THREADS --out "$TMP/run" --overwrite >/dev/null
    $PY -c "
import json, statistics
r = [json.loads(l)['tok_per_s'] for l in open('$TMP/run/metrics.jsonl')][2:]
print(round(statistics.median(r), 1))"
}

# one row per shape, placement and dtype; the PyTorch peer runs fp32 next to normlab fp32 and bf16
# autocast (fp32 master weights, bf16 matmuls: the numerics of normlab's --dtype bf16) next to normlab
# bf16; torch 1.13's CPU autocast has no fp16. "slower than fp32": normlab's time per token against its fp32 row.
failed="" # the rows whose peer failed
echo "| shape | norm | dtype | normlab tok/s | PyTorch tok/s | ratio | normlab GFLOP/s | % of best f32 matmul | slower than fp32 |"
echo "|---|---|---|---|---|---|---|---|---|"
for shape in $SHAPES; do
    shape_vars $shape
    flops=$($PY -c "print(3 * (2*$L*(4*$D**2 + $M*$D*$F) + 2*$D*$FV + 4*$L*$T*$D))")
    for norm in pre peri; do
        nl32=""
        for dtype in $DTYPES; do
            nl=$(normlab_tps "$DATA" --arch $ARCH --ffn-dim $F --layers $L --dim $D --heads $H --seq-len $T --batch $B --norm $norm --dtype $dtype $VOPT)
            [ $dtype = fp32 ] && nl32=$nl
            pt=None
            if [ $dtype != fp16 ]; then
                # a failing peer (its error goes to stderr) prints "failed" in its cell; the bench goes on
                # and exits non-zero at the end
                if ! pt=$(OPENBLAS_CORETYPE=$pt_core $PY bench/torch_bench.py --arch $ARCH --ffn-dim $F --layers $L --dim $D --heads $H \
                          --seq-len $T --batch $B --vocab $V --norm $norm --steps $STEPS --threads $THREADS $([ $dtype = bf16 ] && echo --bf16) \
                          | $PY -c "import json,sys; print(round(json.load(sys.stdin)['tok_per_s'], 1))"); then
                    pt="'failed'" failed+=" $ARCH/$norm/$dtype"
                fi
            fi
            $PY -c "
nl, pt, fl, peak, nl32 = $nl, $pt, $flops, ${best[$shape]}, ${nl32:-None}
g = nl * fl / 1e9
ptc, ratio = ('{:.0f}'.format(pt), '{:.2f}x'.format(nl / pt)) if isinstance(pt, float) else (pt or '-', '-')
vs = '{:+.1f}%'.format(100 * (nl32 / nl - 1)) if nl32 and '$dtype' != 'fp32' else '-'
print(f'| $ARCH L$L d$D H$H T$T B$B V$V | $norm | $dtype | {nl:.0f} | {ptc} | {ratio} | {g:.1f} | {100*g/peak:.0f}% | {vs} |')"
        done
    done
done
echo
echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "$failed" ]; then
    echo "bench.sh: the PyTorch peer failed for$failed (its errors are above, on stderr)" >&2
    exit 1
fi
