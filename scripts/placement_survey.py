#!/usr/bin/python3
"""Short training run of every placement (and of the norm types on Pre-LN), one line of numbers each.

Usage: scripts/placement_survey.py [--bin build/release/normlab] [--out runs/survey] [--steps 200]
           [--only NAME ...] [-- extra train options]

Each run: normlab train with the shared small shape below, same seed and data. Then the final
checkpoint is exported and the PyTorch twin (python/normlab_torch.py, float64) runs 8 validation
windows to measure max |x_l| over the residual stream (the inputs of blocks 2..L and the last block's
output, before the final norm). Prints a Markdown table: final train loss (mean of the last 20 steps),
final val loss, largest gradient norm, gradient spikes (steps whose gradient norm exceeds 5x the median
of the previous 20), max |x|, and the run's wall time.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
import normlab_torch as nt  # noqa: E402

SHAPE = ["--layers", "4", "--dim", "128", "--heads", "4", "--seq-len", "128", "--batch", "8",
         "--lr", "2e-3", "--warmup", "20", "--eval-every", "0", "--eval-windows", "32",
         "--threads", "1", "--seed", "1337"]

RUNS = [
    ("post", []), ("pre", []), ("peri", []), ("mix", []), ("lns", []), ("outonly", []),
    ("deepnorm", []), ("sandwich", []), ("gemma", []), ("none", []), ("none", ["--skip-init"]),
    ("b2t", []), ("hybrid", []), ("hybridstar", []), ("normformer", []),
    ("normformer", ["--scale-resids"]), ("residual", []),
    ("pre", ["--norm-type", "rmsnorm"]), ("pre", ["--norm-type", "scalenorm"]),
    ("pre", ["--norm-type", "dyt"]), ("pre", ["--norm-type", "seednorm"]), ("pre", ["--qk-norm"]),
]


def max_abs_stream(export, data, windows=8):
    model = nt.load(export)
    cfg = model.config
    raw = np.frombuffer(open(data, "rb").read(), dtype=np.uint8).astype(np.int64)
    val = raw[int(len(raw) * 0.9):]
    t = cfg.seq_len
    idx = torch.from_numpy(np.stack([val[i * t:(i + 1) * t] for i in range(windows)]))
    worst = 0.0
    outs = []
    hooks = [b.register_forward_hook(lambda m, i, o: outs.append(o[0])) for b in model.blocks]
    with torch.no_grad():
        model(idx)
    for h in hooks:
        h.remove()
    for o in outs:
        worst = max(worst, float(o.abs().max()))
    return worst


def spikes(gn, k=5.0, window=20):
    n = 0
    for i in range(window, len(gn)):
        if gn[i] > k * float(np.median(gn[i - window:i])):
            n += 1
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/release/normlab")
    ap.add_argument("--out", default="runs/survey")
    ap.add_argument("--steps", default="200")
    ap.add_argument("--data", default="data/tinyshakespeare.txt")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("extra", nargs="*")
    a = ap.parse_args()
    print("| run | final train loss | val loss | max grad norm | spikes | max abs x | time |")
    print("|---|---|---|---|---|---|---|")
    for norm, opts in RUNS:
        name = "-".join([norm] + [o.lstrip("-") for o in opts])
        if a.only and name not in a.only:
            continue
        out = os.path.join(a.out, name)
        cmd = [a.bin, "train", "--norm", norm, *opts, *SHAPE, "--steps", a.steps, "--data", a.data,
               "--out", out, "--overwrite", *a.extra]  # a rerun replaces the old run
        t0 = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.time() - t0
        if r.returncode != 0:
            print(f"| {name} | failed: {r.stderr.strip()[:80]} | | | | | |", flush=True)
            continue
        rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
        loss = [x["loss"] for x in rows]
        gn = [x["grad_norm"] for x in rows]
        val = [x["val_loss"] for x in rows if "val_loss" in x][-1]
        ckpts = sorted(f for f in os.listdir(out) if f.startswith("ckpt-"))
        export = os.path.join(out, "model.safetensors")
        subprocess.run([a.bin, "export", "--ckpt", os.path.join(out, ckpts[-1]), "--out", export],
                       check=True, capture_output=True)
        mx = max_abs_stream(export, a.data)
        fin = float(np.mean(loss[-20:]))
        print(f"| {name} | {fin:.3f} | {val:.3f} | {max(gn):.2f} | {spikes(gn)} | {mx:.1f} | {wall:.0f} s |",
              flush=True)


if __name__ == "__main__":
    main()
