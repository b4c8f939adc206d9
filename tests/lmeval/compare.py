"""Compares `normlab eval-mc --out ITEMS.jsonl` with lm-evaluation-harness's --log_samples file.

usage: compare.py EVALMC_RESULT.json ITEMS.jsonl LMEVAL_SAMPLES.jsonl TOL

EVALMC_RESULT.json holds eval-mc's result line. Every candidate's log-likelihood must agree within
TOL relative (of max(1, |ll|)), item by item (lm-eval's doc_id i is the file's i-th item), and
eval-mc's acc / acc_norm_byte must equal the mean of lm-eval's per-item acc / acc_norm (its
acc_norm divides by the choice's length in characters: the same as bytes for ASCII text).
Prints one JSON line with the largest difference; exits 1 on any disagreement.
"""

import json
import sys


def main():
    if len(sys.argv) != 5:
        raise SystemExit("usage: compare.py EVALMC_RESULT.json ITEMS.jsonl LMEVAL_SAMPLES.jsonl TOL")
    res = json.load(open(sys.argv[1]))
    items = [json.loads(x) for x in open(sys.argv[2]) if x.strip()]
    samples = sorted((json.loads(x) for x in open(sys.argv[3]) if x.strip()), key=lambda s: s["doc_id"])
    tol = float(sys.argv[4])
    bad = []
    if len(items) != len(samples):
        bad.append(f"eval-mc scored {len(items)} items, lm-eval {len(samples)}")
    worst = 0.0
    for it, s in zip(items, samples):
        ll = [float(r[0][0]) for r in s["resps"]]
        if len(ll) != len(it["ll"]):
            bad.append(f"item {s['doc_id']}: {len(it['ll'])} candidates in eval-mc, {len(ll)} in lm-eval")
            continue
        for j, (a, b) in enumerate(zip(it["ll"], ll)):
            d = abs(a - b) / max(1.0, abs(b))
            worst = max(worst, d)
            if d > tol:
                bad.append(f"item {s['doc_id']} choice {j}: eval-mc {a:.8f}, lm-eval {b:.8f}")
    n = max(1, len(samples))
    acc = sum(s["acc"] for s in samples) / n
    acc_norm = sum(s["acc_norm"] for s in samples) / n
    if abs(acc - res["acc"]) > 1e-6:
        bad.append(f"acc: eval-mc {res['acc']}, lm-eval {acc}")
    if abs(acc_norm - res["acc_norm_byte"]) > 1e-6:
        bad.append(f"acc_norm: eval-mc acc_norm_byte {res['acc_norm_byte']}, lm-eval acc_norm {acc_norm}")
    print(json.dumps({"items": len(samples), "acc": acc, "acc_norm": acc_norm, "max_ll_rel_diff": worst}))
    for b in bad:
        print("compare.py: " + b, file=sys.stderr)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
