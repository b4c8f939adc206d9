#!/usr/bin/env bash
# Trains the default model once per placement (same data, seed and schedule), then evaluates each on
# held-out text: bits per byte (`normlab eval --metric bpb`) and a multiple-choice cloze task built
# from the held-out text (`normlab eval-mc --task generic`): 200 items, each a 96-character context
# ending at a word boundary and four 23-character continuations, the true one and three that follow
# other word boundaries of the held-out text.
# usage: bash experiments/eval_placements.sh [OUT_DIR]
#   env: STEPS (600); DATA (Tiny Shakespeare); ARCH (gpt2 | llama: the same with LLaMA-style blocks)
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${ARCH:-gpt2}
OUT=${1:-runs/eval_placements-$ARCH}
STEPS=${STEPS:-600}
BIN=build/release/normlab
DATA=${DATA:-data/tinyshakespeare.txt}
[ -f "$DATA" ] || { echo "no data: $DATA not found; set DATA=FILE" >&2; exit 2; }
mkdir -p "$OUT"
# the validation split normlab train holds out: the last 10% of the bytes
python3 - "$DATA" "$OUT" <<'PY'
import json, random, sys
data, out = sys.argv[1], sys.argv[2]
raw = open(data, 'rb').read()
val = raw[len(raw) - round(0.1 * len(raw)):]
open(f'{out}/val.txt', 'wb').write(val)
rng = random.Random(0)
text = val.decode('utf-8', errors='replace')
# items start at word boundaries: the context ends before a space, which eval-mc's " " delimiter
# supplies, so each choice is the 23 characters after a space
starts = [i for i in range(96, len(text) - 24) if text[i] == ' ']
with open(f'{out}/cloze.jsonl', 'w') as f:
    for p in rng.sample(starts, 200):
        choices = [text[p + 1:p + 24]]
        while len(choices) < 4:
            q = rng.choice(starts)
            if abs(q - p) > 24:
                choices.append(text[q + 1:q + 24])
        order = list(range(4))
        rng.shuffle(order)
        f.write(json.dumps({"context": text[p - 96:p], "choices": [choices[i] for i in order],
                            "label": order.index(0)}) + "\n")
PY
printf "| placement | final train loss | val bpb | cloze items | acc | acc_norm_byte |\n|---|---|---|---|---|---|\n" > "$OUT/table.md"
for norm in post pre peri mix lns outonly deepnorm; do
    [ -f "$OUT/$norm/ckpt-$(printf %08d "$STEPS").safetensors" ] || \
        $BIN train --arch "$ARCH" --norm "$norm" --steps "$STEPS" --data "$DATA" --out "$OUT/$norm" --overwrite --eval-every 0 > "$OUT/$norm.log"
    loss=$(tail -1 "$OUT/$norm/metrics.jsonl" | python3 -c "import json,sys; print(round(json.load(sys.stdin)['loss'], 4))")
    bpb=$($BIN eval --ckpt "$OUT/$norm" --data "$OUT/val.txt" --metric bpb | tail -1 | python3 -c "import json,sys; print(round(json.load(sys.stdin)['bpb'], 4))")
    mc=$($BIN eval-mc --ckpt "$OUT/$norm" --task generic --data "$OUT/cloze.jsonl" | tail -1)
    echo "$mc" | python3 -c "import json,sys; r=json.load(sys.stdin); print(f\"| $norm | $loss | $bpb | {r['items']} | {r['acc']:.3f} | {r['acc_norm_byte']:.3f} |\")" >> "$OUT/table.md"
done
cat "$OUT/table.md"
