#!/usr/bin/env python3
"""Cost of --diag-every from one run's metrics.jsonl, measured inside the run: the wall time of each
diagnostic pass (its "seconds") against the wall time of the training steps around it (tokens per
step / tok_per_s). Interleaved in one process, the ratio is robust to load from other processes,
unlike comparing two whole runs on a shared machine.
Usage: diag_cost.py RUN_DIR TOKENS_PER_STEP [N ...]   (N: the --diag-every values to evaluate)"""
import json, statistics, sys

run, tok = sys.argv[1], float(sys.argv[2])
ns = [int(x) for x in sys.argv[3:]] or [100]
steps, diags = [], []
for line in open(run + "/metrics.jsonl"):
    r = json.loads(line)
    if "diag" in r:
        diags.append(r["seconds"])
    elif "tok_per_s" in r:
        steps.append(tok / r["tok_per_s"])
st, dg = statistics.median(steps), statistics.median(diags)
print(f"{len(steps)} steps, median {st:.3f} s/step; {len(diags)} diagnostic passes, median {dg:.3f} s/pass "
      f"({dg / st:.2f} steps)")
for n in ns:
    print(f"--diag-every {n}: one pass per {n} steps adds {100 * dg / (n * st):.2f}% to the training time")
