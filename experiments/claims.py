#!/usr/bin/env python3
"""Per-claim numbers of a reproduction sweep (experiments/repro.sh), as docs/results.md reports them.

usage: python3 experiments/claims.py SWEEP_DIR [--lr 0.002] [--seed 1337] [--analyze analyze2.json]

For each placement's run at --lr and --seed (SWEEP_DIR/<norm>_lr<lr>_s<seed>), from the diagnostics
in metrics.jsonl (`normlab train --diag-every`) and the layer analysis (`normlab analyze --out`, file
name --analyze inside the run directory; analyze.json is what repro.sh writes for the best LR):
  var         Var(x_l) of the residual stream x_l, l = 2, 7 and L + 1 (x_1 is the embedding output,
              x_{l+1} the output of block l) at step 0 and at the last diagnostic step
  grad        per-block gradient norm of block 1 and block L, at step 0 and at the last step
  max_abs     the largest |x| over all depths at the last step, and the largest max/median ratio
  spikes      gradient spikes summed over all the placement's runs (every LR and seed)
  d1_deep     mean over the last 4 blocks l of d(l, 1) (angular distance between the block's input and
              output, at the last token)
  skip_deep   mean over the last 4 blocks of the loss increase when the block is removed
Standard library only."""
import argparse
import glob
import json
import os


def records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sweep")
    ap.add_argument("--lr", default="0.002")
    ap.add_argument("--seed", default="1337")
    ap.add_argument("--analyze", default="analyze.json")
    a = ap.parse_args()
    norms = sorted({os.path.basename(d).split("_lr")[0] for d in glob.glob(os.path.join(a.sweep, "*_lr*_s*"))})
    if not norms:
        raise SystemExit(f"claims.py: no runs in {a.sweep}")
    print("| placement | Var x_2/x_7/x_L+1 (step 0) | Var x_2/x_7/x_L+1 (end) | grad block 1/L (step 0) | "
          "grad block 1/L (end) | max abs x (end) | max/median | spikes (all runs) | d(l,1) last 4 | skip delta last 4 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in norms:
        run = os.path.join(a.sweep, f"{n}_lr{a.lr}_s{a.seed}")
        m = os.path.join(run, "metrics.jsonl")
        if not os.path.exists(m):
            continue
        diags = [r for r in records(m) if "diag" in r]
        d0, d1 = diags[0], diags[-1]
        var = lambda d: "/".join(f"{d['x_var'][i]:.3g}" for i in (1, 6, len(d["x_var"]) - 1))  # noqa: E731
        grad = lambda d: f"{d['grad_block'][0]:.3g}/{d['grad_block'][-1]:.3g}"  # noqa: E731
        spikes = 0
        for r in glob.glob(os.path.join(a.sweep, f"{n}_lr*_s*", "metrics.jsonl")):
            last = [x for x in records(r) if "spikes" in x]
            spikes += last[-1]["spikes"] if last else 0
        an_path = os.path.join(run, a.analyze)
        d1_deep = skip_deep = "-"
        if os.path.exists(an_path):
            an = json.load(open(an_path))
            d = [row[0] for row in an["angular"][-4:]]  # row l: d(l, 1), d(l, 2), ...
            d1_deep = f"{sum(d) / 4:.3f}"
            skip_deep = f"{sum(an['skip_delta'][-4:]) / 4:.4f}"
        print(f"| {n} | {var(d0)} | {var(d1)} | {grad(d0)} | {grad(d1)} | {max(d1['x_max']):.3g} | "
              f"{max(d1['x_max_over_median']):.3g} | {spikes} | {d1_deep} | {skip_deep} |")


if __name__ == "__main__":
    main()
