#!/usr/bin/env bash
# make test-lmeval: EleutherAI's lm-evaluation-harness (build/lmeval-venv, scripts/requirements-lmeval.txt)
# scores a tiny GPT-2-vocabulary model exported with `normlab export --format hf` on the local task
# tests/lmeval/nl_generic.yaml (tests/lmeval/generic.jsonl, eval-mc's generic layout), offline;
# tests/lmeval/compare.py checks acc, acc_norm and every candidate's log-likelihood against
# `normlab eval-mc` (1e-5 relative).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${NL_BIN:-build/release/normlab}
py=build/lmeval-venv/bin/python
req=scripts/requirements-lmeval.txt
if ! cmp -s "$req" build/lmeval-venv/requirements.txt 2>/dev/null; then
    echo "installing $req into build/lmeval-venv"
    [ -x "$py" ] || /usr/bin/python3 -m venv --system-site-packages build/lmeval-venv
    build/lmeval-venv/bin/pip install -q --disable-pip-version-check -r "$req"
    cp "$req" build/lmeval-venv/requirements.txt
fi
d=$(mktemp -d /tmp/nl_lmeval_XXXXXX)
trap 'rm -rf "$d"' EXIT
"$py" -c "import random; random.seed(1); w='the cat dog sat on mat a red blue house tree ran fast slow big small'.split(); \
open('$d/t.txt', 'w').write(' '.join(random.choice(w) for _ in range(3000)))"
"$bin" train --layers 2 --dim 32 --heads 4 --seq-len 32 --batch 4 --threads 2 --warmup 0 --lr 1e-2 --val-frac 0.1 \
    --norm pre --vocab 50257 --steps 40 --data "$d/t.txt" --out "$d/run" > "$d/train.log" 2>&1 || { cat "$d/train.log"; exit 1; }
"$bin" export --ckpt "$d/run" --format hf --out "$d/hf"
"$bin" eval-mc --ckpt "$d/run" --task generic --data tests/lmeval/generic.jsonl --out "$d/items.jsonl" | tail -n 1 > "$d/evalmc.json"
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_CACHE="$d/datasets" \
    build/lmeval-venv/bin/lm_eval --model hf --model_args "pretrained=$d/hf,dtype=float32" --device cpu --batch_size 8 \
    --include_path tests/lmeval --tasks nl_generic --log_samples --output_path "$d/out" > "$d/lmeval.log" 2>&1 || { cat "$d/lmeval.log"; exit 1; }
grep -A3 '^|  *Tasks' "$d/lmeval.log"
cat "$d/evalmc.json"
"$py" tests/lmeval/compare.py "$d/evalmc.json" "$d/items.jsonl" "$d"/out/*/samples_nl_generic_*.jsonl 1e-5
