#!/usr/bin/env bash
# `make valgrind`: a short training run, a resume, an eval and an export under valgrind's memcheck,
# and a short run of the llama architecture (grouped-query, untied head).
# Fails if valgrind reports any error (invalid read/write, use of uninitialised memory) or any
# "definitely lost" block. OpenMP's and OpenBLAS's thread pools stay allocated at exit; valgrind
# lists them as "possibly lost" or "still reachable", which is not a leak of normlab's.
# oneDNN's AVX2 sgemm kernels (what it picks on valgrind's emulated CPU) read up to 32 bytes past the
# end of oneDNN's own packing buffers, which memcheck reports as invalid reads; its AVX kernels do not,
# so oneDNN is capped at AVX here with its own variable (normlab's code paths are the same).
set -euo pipefail
export DNNL_MAX_CPU_ISA=AVX
bin=${1:-build/release/normlab}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -c "import random; random.seed(1); print(' '.join(random.choice(['the','cat','sat','on','a','mat.\n']) for _ in range(20000)))" > "$tmp/t.txt"
vg=(valgrind --error-exitcode=3 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite)
tiny=(--layers 2 --dim 32 --heads 2 --seq-len 32 --batch 4 --threads 1 --eval-every 5 --eval-windows 4)
status=0
step() {
    local name=$1; shift
    if "${vg[@]}" --log-file="$tmp/$name.vg" "$@" >"$tmp/$name.out" 2>&1; then r=ok; else r="FAIL (exit $?)"; status=1; fi
    printf '%-8s %-6s %s | %s\n' "$name" "$r" "$(grep -o 'ERROR SUMMARY: [0-9]* errors' "$tmp/$name.vg")" \
        "$(grep -o 'definitely lost: [0-9,]* bytes in [0-9,]* blocks' "$tmp/$name.vg" || echo 'definitely lost: 0 bytes (no leaks possible)')"
    [ "$r" = ok ] || { cat "$tmp/$name.out"; grep -A20 'Invalid\|uninitialised\|definitely lost in' "$tmp/$name.vg" | head -60; }
}
step train "$bin" train "${tiny[@]}" --steps 10 --ckpt-every 5 --keep-ckpts 2 --data "$tmp/t.txt" --out "$tmp/run"
rm "$tmp/run/ckpt-00000010.safetensors"
step resume "$bin" train --resume "$tmp/run"
NORMLAB_FAULT=nan-at:3 step rollback "$bin" train "${tiny[@]}" --steps 6 --ckpt-every 2 --on-nan rollback --data "$tmp/t.txt" --out "$tmp/rb"
step eval "$bin" eval --ckpt "$tmp/run" --data "$tmp/t.txt" --max-windows 8
step export "$bin" export --ckpt "$tmp/run" --out "$tmp/m.safetensors"
step sample "$bin" sample --ckpt "$tmp/run" --prompt "the " --tokens 8
step llama "$bin" train "${tiny[@]}" --arch llama --kv-heads 1 --norm hybrid --steps 4 --data "$tmp/t.txt" --out "$tmp/llama"
exit $status
