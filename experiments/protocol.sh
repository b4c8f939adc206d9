#!/usr/bin/env bash
# The papers' protocol (issue 19; the claims of docs/methods.md §6): every sweep that confirms or
# refutes them, then one report per part and the claims tables. Resumable: each sweep skips its
# finished runs (their result.json), so rerunning the script continues where it stopped.
#
#   bash experiments/protocol.sh                        # everything on GPT-2 blocks, into runs/protocol
#   ARCH=llama bash experiments/protocol.sh             # the same on LLaMA-style blocks
#   PARTS=grid,extra bash experiments/protocol.sh       # some parts only
#   SMOKE=1 bash experiments/protocol.sh                # tiny sizes, every part, about a minute
#   make protocol                                       # the first line, after building
#
# Layout under ROOT (gpt2 names; ARCH=llama appends -llama to each, and its grid is grid-llama).
# Common: --heads 4 --seq-len 128 --batch 8 --min-lr-frac 0.1 --threads THREADS --data DATA;
# c300 = --layers 12 --dim 128 --steps 300 --warmup 30 --diag-every 50 --eval-every 50; seeds
# 1337, 1338, ... (SEEDS of them), run directories <norm>_lr<lr>_s<seed>.
#   grid       ROOT/grid-gpt2        pre,post,peri,mix,lns x 5e-4,...,3.2e-2 (factor 2) (c300)
#   extra      ROOT/grid-extra       outonly,deepnorm at the grid's best two LRs (from its runs) (c300)
#   precision  ROOT/prec-fp16, ROOT/prec-bf16   pre,peri,lns x 2e-3,8e-3,3.2e-2, --dtype fp16|bf16 (c300);
#              the fp32 control is the grid (same seeds and options)
#   depth      ROOT/depth24          pre,post,peri,mix,lns x 1e-3,4e-3, --layers 24 (else c300)
#   ablations  ROOT/abl-gain-frozen (peri --out-gain frozen), ROOT/abl-outonly (outonly),
#              ROOT/abl-embnorm-off (peri --emb-norm off), ROOT/abl-rmsnorm (peri,pre --norm-type
#              rmsnorm; llama: abl-layernorm-llama with --norm-type layernorm, llama's default being
#              RMSNorm): each at 4e-3 (c300)
#   cross      ROOT/cross-gemma      gemma at 4e-3 (c300), against the grid's peri
#   time       ROOT/time1500         pre,peri,lns x 2e-3,4e-3,8e-3, --steps 1500 --warmup 150
#              --diag-every 250 --eval-every 250 (else c300)
# Then: normlab analyze on each placement's best-LR run (first seed) of the grid and the depth pass,
# ROOT/report-<part>.html (normlab report) and ROOT/claims.md (experiments/claims.py ROOT).
#
# Knobs (environment): ROOT (runs/protocol; SMOKE: runs/protocol-smoke), ARCH (gpt2 | llama),
# PARTS (grid,extra,precision,depth,ablations,cross,time), SEEDS (3), THREADS (1), JOBS (1),
# DATA (data/tinyshakespeare.txt), BIN (build/release/normlab), MARGIN (0.05: the val-loss margin of
# "degraded", passed to claims.py), and the LR lists GRID_LRS, PREC_LRS, DEPTH_LRS, ABL_LR, TIME_LRS
# (defaults above). SMOKE=1: 2 x d32 models (4 layers for depth), 2 heads, T 32, batch 4, 8 steps
# (40 for time), 2 seeds unless SEEDS is set, shorter LR lists; for checking the script, not results.
set -euo pipefail
. "$(dirname "$0")/sweeps.sh"
script_args protocol "$0" "$@"
cd "$(dirname "$0")/.."
ARCH=${ARCH:-gpt2}
case $ARCH in gpt2) sfx="" ;; llama) sfx="-llama" ;; *) echo "protocol: ARCH must be gpt2 or llama, not '$ARCH'" >&2; exit 2 ;; esac
SMOKE=${SMOKE:-0}
case $SMOKE in 0 | 1) ;; *) echo "protocol: SMOKE must be 0 or 1, not '$SMOKE'" >&2; exit 2 ;; esac
PARTS=${PARTS:-grid,extra,precision,depth,ablations,cross,time}
for p in ${PARTS//,/ }; do
    case $p in grid | extra | precision | depth | ablations | cross | time) ;;
    *) echo "protocol: unknown part '$p' in PARTS (grid,extra,precision,depth,ablations,cross,time)" >&2; exit 2 ;; esac
done
THREADS=${THREADS:-1} JOBS=${JOBS:-1} DATA=${DATA:-data/tinyshakespeare.txt} BIN=${BIN:-build/release/normlab}
MARGIN=${MARGIN:-0.05}
if [ "$SMOKE" = 1 ]; then
    ROOT=${ROOT:-runs/protocol-smoke} SEEDS=${SEEDS:-2}
    GRID_LRS=${GRID_LRS:-1e-3,8e-3,1} PREC_LRS=${PREC_LRS:-1e-3,1} DEPTH_LRS=${DEPTH_LRS:-1e-3} ABL_LR=${ABL_LR:-8e-3}
    TIME_LRS=${TIME_LRS:-1e-3,8e-3}
    shape="--heads 2 --seq-len 32 --batch 4"
    L=2 L_DEEP=4 DIM=32 STEPS=8 WARMUP=1 EVERY=4 T_STEPS=40 T_WARMUP=4 T_EVERY=20
else
    ROOT=${ROOT:-runs/protocol} SEEDS=${SEEDS:-3}
    GRID_LRS=${GRID_LRS:-5e-4,1e-3,2e-3,4e-3,8e-3,1.6e-2,3.2e-2} PREC_LRS=${PREC_LRS:-2e-3,8e-3,3.2e-2}
    DEPTH_LRS=${DEPTH_LRS:-1e-3,4e-3} ABL_LR=${ABL_LR:-4e-3} TIME_LRS=${TIME_LRS:-2e-3,4e-3,8e-3}
    shape="--heads 4 --seq-len 128 --batch 8"
    L=12 L_DEEP=24 DIM=128 STEPS=300 WARMUP=30 EVERY=50 T_STEPS=1500 T_WARMUP=150 T_EVERY=250
fi
case $SEEDS in '' | *[!0-9]* | 0*) echo "protocol: SEEDS must be a positive integer, not '$SEEDS'" >&2; exit 2 ;; esac
[ -f "$DATA" ] || { echo "protocol: no data: '$DATA' not found; set DATA=FILE" >&2; exit 2; }
[ -x "$BIN" ] || make -s -j2
base="$shape --arch $ARCH --min-lr-frac 0.1 --threads $THREADS --data $DATA"
c300="--layers $L --dim $DIM --steps $STEPS --warmup $WARMUP --diag-every $EVERY --eval-every $EVERY $base"
has() { case ",$PARTS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
failed=0
sw() { seed_major protocol "$ROOT/$1" --jobs "$JOBS" "${@:2}"; } # sw SWEEP OPTIONS...: ROOT/SWEEP, seed-major
grid=grid-$ARCH
start=$(date +%s)
mkdir -p "$ROOT"
has grid && sw "$grid" --norm pre,post,peri,mix,lns --lr "$GRID_LRS" $c300
if has extra; then
    [ -f "$ROOT/$grid/summary.csv" ] || { echo "protocol: the extra part needs the grid ($ROOT/$grid/summary.csv)" >&2; exit 1; }
    # the grid's best two LRs: LRs ranked by the lowest mean final val loss of any placement at that LR
    # among cells with every seed finished and none diverged
    best2=$(python3 experiments/claims.py --best-lrs 2 "$ROOT/$grid")
    sw "grid-extra$sfx" --norm outonly,deepnorm --lr "$best2" $c300
fi
if has precision; then
    for dt in fp16 bf16; do sw "prec-$dt$sfx" --norm pre,peri,lns --lr "$PREC_LRS" --dtype "$dt" $c300; done
fi
has depth && sw "depth24$sfx" --norm pre,post,peri,mix,lns --lr "$DEPTH_LRS" --layers "$L_DEEP" --dim "$DIM" --steps "$STEPS" \
    --warmup "$WARMUP" --diag-every "$EVERY" --eval-every "$EVERY" $base
if has ablations; then
    sw "abl-gain-frozen$sfx" --norm peri --lr "$ABL_LR" --out-gain frozen $c300
    sw "abl-outonly$sfx" --norm outonly --lr "$ABL_LR" $c300
    sw "abl-embnorm-off$sfx" --norm peri --lr "$ABL_LR" --emb-norm off $c300
    if [ "$ARCH" = gpt2 ]; then sw abl-rmsnorm --norm peri,pre --lr "$ABL_LR" --norm-type rmsnorm $c300
    else sw abl-layernorm-llama --norm peri,pre --lr "$ABL_LR" --norm-type layernorm $c300; fi
fi
has cross && sw "cross-gemma$sfx" --norm gemma --lr "$ABL_LR" $c300
has time && sw "time1500$sfx" --norm pre,peri,lns --lr "$TIME_LRS" --layers "$L" --dim "$DIM" --steps "$T_STEPS" \
    --warmup "$T_WARMUP" --diag-every "$T_EVERY" --eval-every "$T_EVERY" $base
# layer analysis of each placement's best-LR run (lowest mean val loss, no diverged seed), first seed
for s in "$grid" "depth24$sfx"; do
    [ -f "$ROOT/$s/summary.csv" ] || continue
    python3 experiments/claims.py --best-runs "$ROOT/$s" | while read -r run; do
        [ -f "$run/analyze.json" ] || "$BIN" analyze --ckpt "$run" --data "$DATA" --max-windows "$([ "$SMOKE" = 1 ] && echo 4 || echo 256)" \
            --threads "$THREADS" --out "$run/analyze.json" > /dev/null
    done
done
# one report per part that has finished sweeps
report() {
    local name=$1 title=$2
    shift 2
    local dirs=() d
    for d in "$@"; do [ -f "$ROOT/$d/summary.csv" ] && dirs+=("$ROOT/$d"); done
    [ ${#dirs[@]} -gt 0 ] || return 0
    "$BIN" report "${dirs[@]}" -o "$ROOT/report-$name$sfx.html" --title "normlab protocol ($ARCH): $title" > /dev/null
    echo "protocol: wrote $ROOT/report-$name$sfx.html"
}
report grid "the LR grid, $L x d$DIM, $STEPS steps" "$grid" "grid-extra$sfx"
report precision "fp16 and bf16" "prec-fp16$sfx" "prec-bf16$sfx"
report depth "$L_DEEP layers" "depth24$sfx"
report ablations "Peri-LN ablations and the Gemma parameterisation" "abl-gain-frozen$sfx" "abl-outonly$sfx" \
    "abl-embnorm-off$sfx" "abl-rmsnorm" "abl-layernorm-llama" "cross-gemma$sfx"
report time "$T_STEPS steps" "time1500$sfx"
python3 experiments/claims.py --arch "$ARCH" --margin "$MARGIN" "$ROOT" > "$ROOT/claims$sfx.md"
echo "protocol: wrote $ROOT/claims$sfx.md; done in $(($(date +%s) - start))s"
exit $failed
