#!/usr/bin/env bash
# Issue 20's studies of the newer family, three seeds each: nGPT against Pre-LN ("fewer steps to the
# same loss"), GPAS on top of pre and peri, SDD on top of pre, all at the protocol's c300 shape; and
# Next-DiT on Fashion-MNIST with pre, peri (sandwich) and post. Then one report per part and
# ROOT/family.md (experiments/family.py ROOT). Resumable: each sweep skips its finished runs (their
# result.json) and each Fréchet distance its fid.json, so rerunning the script continues where it stopped.
#
#   bash experiments/family.sh                       # every part, into runs/family
#   PARTS=ngpt,dit bash experiments/family.sh        # some parts only, run in the order given
#   SMOKE=1 bash experiments/family.sh               # tiny sizes, every part, for checking the script
#   make family                                      # the first line, after building
#
# Layout under ROOT. Language models (GPT-2 blocks, byte-level DATA): --heads 4 --seq-len 128 --batch 8
# --min-lr-frac 0.1 --threads THREADS; c300 = --layers 12 --dim 128 --steps 300 --warmup 30
# --eval-every 25 --diag-every 50 (validation every 25 steps, for the steps-to-a-loss counts); seeds
# 1337, 1338, ... (SEEDS of them), run directories <norm>_lr<lr>_s<seed>.
#   ROOT/lm     pre,peri x LM_LRS (c300): the controls; the ngpt part runs only pre at PRE_LR, the
#               sdd part only pre
#   ngpt        ROOT/ngpt   ngpt at NGPT_LR with its own defaults (no warmup, no weight decay), else c300;
#               against ROOT/lm's pre at PRE_LR
#   gpas        ROOT/gpas   pre,peri --gpas x LM_LRS (c300); against ROOT/lm's pre and peri
#   sdd         ROOT/sdd    pre --sdd x LM_LRS (c300); against ROOT/lm's pre
#   dit         ROOT/dit    pre,peri,post x DIT_LRS, --arch dit on DIT_DATA: RMSNorm, --patch 4 --dim 64
#               --heads 4 --layers 6 --batch 32 --steps 1000 --warmup 100 --eval-every 250
#               --eval-windows 16 --diag-every 100; ROOT/clf.safetensors (normlab classifier, its
#               report ROOT/clf.json) and, for every seed of each placement's best LR (lowest mean
#               held-out loss, no diverged seed), RUN/fid.json (normlab fid: 500 samples, Heun, 16
#               steps, guidance 2)
# Then ROOT/report-<part>.html (normlab report), ROOT/family.md (experiments/family.py ROOT: the
# tables of docs/results.md's family section) and ROOT/cpu.tsv (user and system CPU seconds of each
# part's processes, one line per invocation).
#
# Knobs (environment): ROOT (runs/family; SMOKE: runs/family-smoke), PARTS (ngpt,gpas,sdd,dit),
# SEEDS (3), THREADS (1), DATA (data/tinyshakespeare.txt), DIT_DATA (fashion-mnist), BIN
# (build/release/normlab), and the LRs LM_LRS (2e-3,8e-3), PRE_LR (2e-3), NGPT_LR (1.6e-2, its best
# of docs/placements.md's one-seed check), DIT_LRS (1e-3,4e-3). SMOKE=1: 2 x d32 language models,
# 2 heads, T 32, batch 4, 8 steps; 2 x d16 DiTs with patch 7, 8 steps; a 10-step classifier and 20
# samples; 2 seeds unless SEEDS is set; for checking the script, not results.
set -euo pipefail
. "$(dirname "$0")/sweeps.sh"
script_args family "$0" "$@"
cd "$(dirname "$0")/.."
SMOKE=${SMOKE:-0}
case $SMOKE in 0 | 1) ;; *) echo "family: SMOKE must be 0 or 1, not '$SMOKE'" >&2; exit 2 ;; esac
PARTS=${PARTS:-ngpt,gpas,sdd,dit}
for p in ${PARTS//,/ }; do
    case $p in ngpt | gpas | sdd | dit) ;;
    *) echo "family: unknown part '$p' in PARTS (ngpt,gpas,sdd,dit)" >&2; exit 2 ;; esac
done
THREADS=${THREADS:-1} DATA=${DATA:-data/tinyshakespeare.txt} DIT_DATA=${DIT_DATA:-fashion-mnist}
BIN=${BIN:-build/release/normlab}
LM_LRS=${LM_LRS:-2e-3,8e-3} PRE_LR=${PRE_LR:-2e-3} NGPT_LR=${NGPT_LR:-1.6e-2} DIT_LRS=${DIT_LRS:-1e-3,4e-3}
if [ "$SMOKE" = 1 ]; then
    ROOT=${ROOT:-runs/family-smoke} SEEDS=${SEEDS:-2}
    lm="--heads 2 --seq-len 32 --batch 4 --layers 2 --dim 32 --steps 8 --eval-every 4 --diag-every 4"
    warm="--warmup 1"
    dit="--patch 7 --dim 16 --heads 2 --layers 2 --batch 4 --steps 8 --warmup 1 --eval-every 4 --eval-windows 2 --diag-every 4"
    clf="--steps 10" fid="--samples 20 --steps 2"
else
    ROOT=${ROOT:-runs/family} SEEDS=${SEEDS:-3}
    lm="--heads 4 --seq-len 128 --batch 8 --layers 12 --dim 128 --steps 300 --eval-every 25 --diag-every 50"
    warm="--warmup 30"
    dit="--patch 4 --dim 64 --heads 4 --layers 6 --batch 32 --steps 1000 --warmup 100 --eval-every 250 --eval-windows 16 --diag-every 100"
    clf="" fid="--samples 500 --steps 16"
fi
case $SEEDS in '' | *[!0-9]* | 0*) echo "family: SEEDS must be a positive integer, not '$SEEDS'" >&2; exit 2 ;; esac
[ -f "$DATA" ] || { echo "family: no data: '$DATA' not found; set DATA=FILE" >&2; exit 2; }
[ -x "$BIN" ] || make -s -j2
lm="$lm --arch gpt2 --min-lr-frac 0.1 --threads $THREADS --data $DATA"
dit="$dit --arch dit --data $DIT_DATA --min-lr-frac 0.1 --threads $THREADS"
failed=0
sw() { seed_major family "$ROOT/$1" "${@:2}"; } # sw SWEEP OPTIONS...: ROOT/SWEEP, seed-major
report() { # report NAME TITLE DIR_OR_RUN...: the ones that exist
    local name=$1 title=$2 dirs=() d
    shift 2
    for d in "$@"; do [ -e "$d" ] && dirs+=("$d"); done
    [ ${#dirs[@]} -gt 0 ] || return 0
    "$BIN" report "${dirs[@]}" -o "$ROOT/report-$name.html" --title "normlab family: $title" > /dev/null
    echo "family: wrote $ROOT/report-$name.html"
}
part_ngpt() {
    sw lm --norm pre --lr "$PRE_LR" $lm $warm
    sw ngpt --norm ngpt --lr "$NGPT_LR" $lm
    report ngpt "nGPT against Pre-LN" "$ROOT/ngpt" "$ROOT"/lm/pre_lr*_s*
}
part_gpas() {
    sw lm --norm pre,peri --lr "$LM_LRS" $lm $warm
    sw gpas --norm pre,peri --lr "$LM_LRS" --gpas $lm $warm
    report gpas "GPAS on pre and peri" "$ROOT/lm" "$ROOT/gpas"
}
part_sdd() {
    sw lm --norm pre --lr "$LM_LRS" $lm $warm
    sw sdd --norm pre --lr "$LM_LRS" --sdd $lm $warm
    report sdd "SDD on pre" "$ROOT/sdd" "$ROOT"/lm/pre_lr*_s*
}
part_dit() {
    sw dit --norm pre,peri,post --lr "$DIT_LRS" $dit
    local run
    if [ ! -f "$ROOT/clf.json" ]; then
        if "$BIN" classifier --data "$DIT_DATA" --out "$ROOT/clf.safetensors" --seed 1337 --threads "$THREADS" $clf \
            > "$ROOT/clf.json.tmp"; then
            mv "$ROOT/clf.json.tmp" "$ROOT/clf.json"
        else
            echo "family: normlab classifier failed; no Fréchet distances" >&2
            failed=1
            return 0
        fi
    fi
    for run in $(python3 experiments/family.py --best-lr-runs "$ROOT/dit"); do
        [ -f "$run/fid.json" ] && continue
        "$BIN" fid --ckpt "$run" --classifier "$ROOT/clf.safetensors" --sampler heun --cfg 2 --seed 1337 \
            --threads "$THREADS" $fid > "$run/fid.json.tmp" && mv "$run/fid.json.tmp" "$run/fid.json" ||
            { echo "family: normlab fid failed on $run" >&2; failed=1; }
    done
    report dit "Next-DiT on $DIT_DATA: pre, peri (sandwich), post" "$ROOT/dit"
}
start=$(date +%s)
mkdir -p "$ROOT"
exec 3>&2
for p in ${PARTS//,/ }; do
    # the part's CPU time (its processes' user and system seconds) and wall time, appended to ROOT/cpu.tsv
    TIMEFORMAT="%U %S %R"
    { time "part_$p" 2>&3; } 2> "$ROOT/.time"
    read -r u s r < "$ROOT/.time"
    printf '%s\t%s\t%s\t%s\n' "$p" "$u" "$s" "$r" >> "$ROOT/cpu.tsv"
    rm -f "$ROOT/.time"
done
python3 experiments/family.py "$ROOT" > "$ROOT/family.md"
echo "family: wrote $ROOT/family.md; done in $(($(date +%s) - start))s"
exit $failed
