#!/usr/bin/env bash
# device_check.sh -- the one prepared GPU check of the CUDA backend (issue 17), in at most ~8 minutes on
# an H100/H200: build (make USE_CUDA=1), the host-side tests of that build, make test-cuda (every CUDA op
# and the whole model against the CPU backend, 50 training steps per placement), then the benchmark:
# normlab --device cuda on the GPT-2-small shape (L12 d768 H12 T1024, vocabulary 50257 padded to 50304,
# micro-batch 16), Pre-LN and Peri-LN, tokens/s; and PyTorch (torch.compile, bf16 autocast, fused AdamW)
# on the same shape if torch with CUDA is installed, else a note that it was skipped.
#
#   bash bench/device_check.sh [RESULTS_DIR]      (default: $OUT, else build/device_check)
#   bash bench/device_check.sh --fetch-debs       (here, before: OpenBLAS and oneDNN Debian packages into
#                                                  build/device-debs, for a GPU image without them;
#                                                  carry build/device-debs along, ~20 MB)
#
# Results: summary.md (the table), build.log, test-cuda.log, nccl.log, bench-normlab.log, bench-torch.log,
# nvidia-smi.txt. Without a GPU it stops after the build and host tests, saying "no GPU", exit 3.
# Where mpirun is installed, after make test-cuda: the NCCL build (make USE_CUDA=1 USE_MPI=1), its
# device collectives under mpirun -np 1 (test comm_device) and a 5-step mpirun -np 1 train --device cuda.
# Exit status: 0 all passed; 1 build or host tests failed; 2 make test-cuda failed; 3 no GPU;
# 4 a benchmark run failed; 5 the NCCL step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--fetch-debs" ]; then
    mkdir -p build/device-debs && cd build/device-debs &&
        apt-get download libopenblas0-openmp libopenblas-openmp-dev libgfortran5 libdnnl2 libdnnl-dev && ls -l && exit 0
    exit 1
fi
RES=${1:-${OUT:-build/device_check}}
mkdir -p "$RES"
RES=$(cd "$RES" && pwd)
JOBS=$(nproc 2>/dev/null || echo 2)
STEPS=${STEPS:-12}  # timed normlab steps per placement (the first 2 are dropped as warm-up)
START=$(date +%s)   # the PyTorch runs are skipped once the check has run 330 s (8-minute budget)
say() { echo "device_check: $*" | tee -a "$RES/summary.md"; }
: >"$RES/summary.md"
say "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), results in $RES"

# ---- 1. build and the host-side tests of the CUDA build (no GPU needed)
t0=$(date +%s)
# the CPU backend (the tests' reference) needs OpenBLAS and oneDNN; a GPU image may lack them: then the
# packages carried in build/device-debs are unpacked under build/device-debs/root (not into /)
MK=()
if ! printf '#include <%s>\n' cblas.h oneapi/dnnl/dnnl.h | "${CC:-cc}" -E -x c - >/dev/null 2>&1; then
    if ls build/device-debs/*.deb >/dev/null 2>&1; then
        root=$PWD/build/device-debs/root
        ma=$(gcc -print-multiarch)
        mkdir -p "$root"
        for d in build/device-debs/*.deb; do dpkg-deb -x "$d" "$root"; done
        MK=(BLAS_DIR="$root/usr/lib/$ma/openblas-openmp" XCFLAGS="-I$root/usr/include/$ma/openblas-openmp -I$root/usr/include")
        export LD_LIBRARY_PATH="$root/usr/lib/$ma${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        export LIBRARY_PATH="$root/usr/lib/$ma${LIBRARY_PATH:+:$LIBRARY_PATH}" # -ldnnl
        say "OpenBLAS and oneDNN from the carried packages in build/device-debs"
    else
        say "FAILED: no OpenBLAS or oneDNN here (their C headers); on a machine with apt run bash bench/device_check.sh --fetch-debs and carry build/device-debs"
        exit 1
    fi
fi
if ! make -j"$JOBS" USE_CUDA=1 "${MK[@]}" all build/cuda/nl_tests build/cuda/nl_cuda_tests >"$RES/build.log" 2>&1; then
    say "FAILED: make USE_CUDA=1 (see build.log)"; tail -20 "$RES/build.log"; exit 1
fi
if ! NORMLAB_BIN=build/cuda/normlab build/cuda/nl_tests cuda_host cuda_cli >>"$RES/build.log" 2>&1; then
    say "FAILED: host tests cuda_host cuda_cli (see build.log)"; tail -20 "$RES/build.log"; exit 1
fi
say "built and host-tested in $(( $(date +%s) - t0 )) s"

# ---- 2. is there a GPU?
if ! nvidia-smi >"$RES/nvidia-smi.txt" 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q GPU; then
    say "no GPU: nvidia-smi finds none; stopping after the build and host tests (nothing ran on a GPU)"
    exit 3
fi
GPU=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)
say "GPU: $GPU"

# ---- 3. make test-cuda
t0=$(date +%s)
if ! timeout 300 make test-cuda "${MK[@]}" >"$RES/test-cuda.log" 2>&1; then
    say "FAILED: make test-cuda (see test-cuda.log):"
    grep -E "FAIL|check failed|error" "$RES/test-cuda.log" | head -20 | tee -a "$RES/summary.md"
    exit 2
fi
say "make test-cuda passed in $(( $(date +%s) - t0 )) s: $(tail -1 "$RES/test-cuda.log")"
grep -E "final loss" "$RES/test-cuda.log" | sed 's/^ */    /' >>"$RES/summary.md"

RUNS=$(mktemp -d)
trap 'rm -rf "$RUNS"' EXIT
status=0

# ---- 3b. NCCL: --device cuda under mpirun (docs/cluster.md); only where mpirun is installed
: >"$RES/nccl.log"
if command -v mpirun >/dev/null 2>&1 && command -v mpicc >/dev/null 2>&1; then
    t0=$(date +%s)
    if ! make -j"$JOBS" USE_CUDA=1 USE_MPI=1 "${MK[@]}" all build/cuda-mpi/nl_tests >>"$RES/nccl.log" 2>&1; then
        say "FAILED: make USE_CUDA=1 USE_MPI=1 (see nccl.log)"; status=5
    elif ! NORMLAB_BIN=build/cuda-mpi/normlab timeout 120 build/cuda-mpi/nl_tests comm_device >>"$RES/nccl.log" 2>&1; then
        say "FAILED: the NCCL collectives, mpirun -np 1 (test comm_device, see nccl.log)"; status=5
    elif ! timeout 120 mpirun --allow-run-as-root -np 1 build/cuda-mpi/normlab train --device cuda --data data/tinyshakespeare.txt \
            --layers 2 --dim 64 --heads 2 --seq-len 64 --batch 4 --steps 5 --eval-every 0 --eval-windows 1 --out "$RUNS/nccl" >>"$RES/nccl.log" 2>&1; then
        say "FAILED: mpirun -np 1 normlab train --device cuda (see nccl.log)"; status=5
    else
        say "NCCL: comm_device and mpirun -np 1 train --device cuda passed in $(( $(date +%s) - t0 )) s"
    fi
else
    say "NCCL step skipped: no mpirun/mpicc here"
fi

# ---- 4. benchmark: normlab, GPT-2-small shape, pre and peri
SHAPE="--layers 12 --dim 768 --heads 12 --seq-len 1024 --batch 16 --vocab 50257"
{
    echo
    echo "| trainer | placement | tok/s (median of steps 3..$STEPS) | loss at the last step |"
    echo "| --- | --- | ---: | ---: |"
} >>"$RES/summary.md"
: >"$RES/bench-normlab.log"
for norm in pre peri; do
    cmd="build/cuda/normlab train --device cuda --data data/tinyshakespeare.txt $SHAPE --norm $norm --steps $STEPS --eval-every 0 --eval-windows 1 --log-every 1 --out $RUNS/$norm"
    echo "\$ $cmd" >>"$RES/bench-normlab.log"
    if ! timeout 180 $cmd >>"$RES/bench-normlab.log" 2>&1; then
        say "FAILED: normlab --norm $norm (see bench-normlab.log)"; status=4; continue
    fi
    # tok_per_s of each step from metrics.jsonl; the median after two warm-up steps
    row=$(python3 - "$RUNS/$norm/metrics.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"tok_per_s"' in l]
steps = [r for r in rows if "loss" in r][2:] or rows
print("%.0f | %.4f" % (statistics.median(r["tok_per_s"] for r in steps), steps[-1].get("loss", float("nan"))))
PY
)
    echo "| normlab fp32 (cuBLASLt fp32, simple kernels) | $norm | $row |" >>"$RES/summary.md"
done

# ---- 5. benchmark: PyTorch, same shape, torch.compile + bf16 + fused AdamW
: >"$RES/bench-torch.log"
PY=${PYTHON:-python3}
if $PY -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' >>"$RES/bench-torch.log" 2>&1; then
    for norm in pre peri; do
        if [ $(( $(date +%s) - START )) -gt 330 ]; then
            say "PyTorch --norm $norm skipped: the check has run $(( $(date +%s) - START )) s of its 8-minute budget"; continue
        fi
        cmd="$PY bench/torch_bench.py --device cuda --bf16 --compile --layers 12 --dim 768 --heads 12 --seq-len 1024 --batch 16 --vocab 50304 --steps 10 --warmup 3 --norm $norm"
        echo "\$ $cmd" >>"$RES/bench-torch.log"
        if out=$(timeout 150 $cmd 2>>"$RES/bench-torch.log"); then
            echo "$out" >>"$RES/bench-torch.log"
            tps=$(echo "$out" | $PY -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print("%.0f | %.4f (torch %s)" % (d["tok_per_s"], d["loss"], d["torch"]))')
            echo "| PyTorch compile bf16 | $norm | $tps |" >>"$RES/summary.md"
        else
            say "FAILED: PyTorch --norm $norm (see bench-torch.log)"; status=4
        fi
    done
else
    say "PyTorch with CUDA is not installed here: its benchmark was skipped"
fi
echo >>"$RES/summary.md"
say "done, exit $status"
exit $status
