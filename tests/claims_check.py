#!/usr/bin/env python3
"""experiments/claims.py on a synthetic protocol root whose numbers are known by construction:
the grid's loss table (mean, sample sd, divergence counts, best LR in bold), the divergence table, the first
failing LRs, the verdicts (the 2-SE rule of sep() and the rows built on it) with the runs' summed time, the
per-seed run counts, --best-lrs / --best-runs, the precision table (skipped steps, loss scale, overflow counts, max |x|
against fp16's range), the ablation difference, the time sweep's two rows (the loss gap and the max abs x ratio
over training), the 24-block rows of claims 11 and 14, and one-line errors with exit status 1.
usage: python3 tests/claims_check.py [--keep DIR]; prints "claims_check: ok" and exits 0, else 1."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import types

HERE = os.path.dirname(os.path.abspath(__file__))
CLAIMS = os.path.join(HERE, "..", "experiments", "claims.py")


def run_dir(root, sweep, norm, lr, seed, val, status="done", spikes=0, dtype=None, skipped=0, scale=None,
            ovf=(0, 0, 0, 0), ovb=(0, 0, 0, 0), xmax=1.0, gnull=False, mid=None):
    """one run of 20 steps, diagnostics at steps 0 and 20; mid = (val, xmax): also an evaluation and a
    diagnostic pass at step 10 (the time sweep's trajectories)"""
    d = os.path.join(root, sweep, f"{norm}_lr{lr:g}_s{seed}")
    os.makedirs(d)
    res = {"norm": norm, "lr": lr, "seed": seed, "status": status, "reason": "loss" if status == "diverged" else "",
           "step": 20, "val_loss": val if status == "done" else None, "loss": 2.0, "spikes": spikes}
    with open(os.path.join(d, "result.json"), "w") as f:
        json.dump(res, f)
    with open(os.path.join(d, "metrics.jsonl"), "w") as f:
        for step_diag in (0, 10, 20) if mid else (0, 20):
            xm = mid[1] if step_diag == 10 else xmax
            rec = {"diag": step_diag, "loss": 3.0, "x_var": [0.1, 0.5, 2.0], "x_max": [0.5, xm / 2, xm],
                   "x_max_over_median": [3, 4, 5], "grad_block": [4.0, None if gnull and step_diag else 1.0]}
            if dtype:
                rec.update(dtype=dtype, overflow_fwd=list(ovf) if step_diag else [0] * 4, overflow_bwd=list(ovb) if step_diag else [0] * 4)
            f.write(json.dumps(rec) + "\n")
        for s in range(1, 21):
            rec = {"step": s, "loss": 2.0, "lr": lr, "time_s": 0.5 * s}  # 10 s a run
            if scale is not None:
                rec["loss_scale"] = scale if s == 20 else 65536
            if s <= skipped:
                rec["skipped"] = 1
            if s == 20 and status == "done":
                rec["val_loss"] = val
            if s == 10 and mid:
                rec["val_loss"] = mid[0]
            f.write(json.dumps(rec) + "\n")
        f.write('{"step": 21, "loss"')  # a last line cut short by a run still writing: skipped


def load_claims():
    spec = importlib.util.spec_from_file_location("claims", CLAIMS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def verdicts(root, want):
    """a grid of post, pre, peri whose order of failure, losses and max abs x are known by construction"""
    g = "grid-gpt2"
    vals = {"post": ((2.50, 2.52), (2.60, 2.62), None), "pre": ((2.40, 2.42), (2.38, 2.40), (2.50, 2.52)),
            "peri": ((2.45, 2.47), (2.40, 2.42), (2.39, 2.41))}
    for n, per_lr in vals.items():
        for lr, vs in zip((1e-3, 2e-3, 4e-3), per_lr):
            for i, seed in enumerate((1337, 1338)):
                xmax = {"pre": 1000.0, "peri": 10.0}.get(n, 1.0) if lr == 4e-3 else 1.0
                if vs is None:
                    run_dir(root, g, n, lr, seed, None, status="diverged")
                else:
                    run_dir(root, g, n, lr, seed, vs[i], xmax=xmax)
    # the time sweep: Pre-LN's activation ratio grows from step 10 to 20 at both LRs; Peri-LN's loss lead grows
    # at 0.002 but shrinks at 0.004
    for seed, dv in ((1337, 0.0), (1338, 0.02)):
        for lr, peri_mid in ((2e-3, 2.78), (4e-3, 2.55)):
            run_dir(root, "time1500", "pre", lr, seed, 2.50 + dv, xmax=1000.0 * (1 + dv), mid=(2.80 + dv, 20.0))
            run_dir(root, "time1500", "peri", lr, seed, 2.30 + dv, xmax=10.0, mid=(peri_mid + dv, 10.0 * (1 + dv)))
    rc, out, err = claims(root)
    want(rc == 0, f"verdicts: exit {rc}: {err}")
    for line in ("| 0.004 | 2/2 | 0/2 | 0/2 |",
                 "| post | 0.002 | 0.001 | 2.510 +- 0.014 | 0.004 (2/2) | 0.002 (2.610 +- 0.014) | 0.002 | 2/6 | 0 | 0.001-0.004 |",
                 "| 2 | raising the LR, Post-LN fails first, then Pre-LN, Peri-LN last | first failing LR: post 0.002, "
                 "pre 0.004, peri none; with > 2 SE: post 0.002, pre 0.004, peri none; diverged runs: post 2/6, pre 0/6, peri 0/6; val loss at LR 0.004 minus at the best LR: post -, "
                 "pre +0.120 +- 0.014, peri +0.000 +- 0.014 | **reproduced**: post < pre < peri; "
                 "2 of 18 runs diverged | 3 min |",
                 "| 7 | Pre-LN and Peri-LN about equal in loss (the replication's counter-evidence) | peri - pre at their "
                 "best LRs: +0.010 +- 0.014 | **reproduced**: no difference resolved (within 2 SE) | 40 s |",
                 "peri - pre: +0.010 +- 0.014 | **inconclusive**: within 2 SE | 60 s |",
                 "pre / peri at 0.004: x100 (log10 +2.00 +- 0.00)",
                 "| **inconclusive**: max abs x: reproduced, Var x_(L+1): inconclusive |",
                 "| grid-gpt2 | 18 | 1337: 8 (+1 div), 1338: 8 (+1 div) | 3 min |",
                 "| 1, 2 (time) | the Peri-LN minus Pre-LN loss gap widens with training time and LR | LR 0.002: peri - pre "
                 "-0.020 +- 0.014 at step 10, -0.200 +- 0.014 at step 20; LR 0.004: peri - pre -0.250 +- 0.014 at step 10, "
                 "-0.200 +- 0.014 at step 20 | **inconclusive**: the difference at the last step exceeds 2 SE at every LR, "
                 "but did not grow from the first at some LR | 80 s |",
                 "| 1 (time) | Pre-LN's largest activation pulls away from Peri-LN's over training (max abs x over all depths) | "
                 "LR 0.002: pre / peri x1.98 (log10 +0.30 +- 0.00) at step 10, x101 (log10 +2.00 +- 0.00) at step 20; "
                 "LR 0.004: pre / peri x1.98 (log10 +0.30 +- 0.00) at step 10, x101 (log10 +2.00 +- 0.00) at step 20 | "
                 "**reproduced**: at every LR Pre-LN's max abs x ends above Peri-LN's by more than 2 SE, by a larger ratio "
                 "than at the first pass | 80 s |"):
        want(line in out, f"verdicts: missing line: {line}")
    m = load_claims()
    want(m.sep([1.0, 1.2], [2.0, 2.2])[0] == -1, "sep: 1.1 vs 2.1 with sd 0.14 is decided")
    want(m.sep([1.0, 1.2], [1.2, 1.4])[0] == 0, "sep: 0.2 apart with se 0.14 is within 2 SE")
    s, d, se = m.sep([2.0], [1.0, 1.2])  # one seed borrows the other side's sd
    want(s == 1 and abs(d - 0.9) < 1e-12 and abs(se - 0.1414213562 * (1.5 ** 0.5)) < 1e-9, f"sep one seed: {s} {d} {se}")
    want(m.sep([2.0], [1.0])[0] is None and m.decide(None, 1)[0] == "inconclusive", "sep: one seed a side is undecided")
    want(m.sep([10.0, 10.0], [0.1, 0.1], log=True)[1] == 2.0, "sep log: log10 ratio")
    want(m.decide(0, 0)[0] == "reproduced" and m.decide(-1, 1)[0] == "not reproduced", "decide")
    # the first degraded LR: +0.06 nats on the mean, but within 2 SE of a noisy best cell unless strict is off
    R = lambda lr, v: types.SimpleNamespace(norm="pre", lr=lr, ok=True, val=v, diverged=False)  # noqa: E731
    rs = [R(1e-3, 2.0), R(1e-3, 2.0), R(2e-3, 2.0), R(2e-3, 2.12), R(4e-3, 2.3), R(4e-3, 2.3)]
    want(m.first_failing(rs, "pre", 0.05) == (None, 2e-3) and m.first_failing(rs, "pre", 0.05, strict=True) == (None, 4e-3),
         f"first degraded LR, mean rule / 2 SE: {m.first_failing(rs, 'pre', 0.05)} {m.first_failing(rs, 'pre', 0.05, strict=True)}")


def claims(*args):
    p = subprocess.run([sys.executable, CLAIMS] + list(args), capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def main():
    root = tempfile.mkdtemp(prefix="nl_claims_")
    fails = []

    def want(cond, what):
        if not cond:
            fails.append(what)

    try:
        g = "grid-gpt2"
        for seed, v in ((1337, 2.0), (1338, 2.2)):
            run_dir(root, g, "pre", 1e-3, seed, v, spikes=1)
            run_dir(root, g, "peri", 1e-3, seed, 2.1)
        for seed in (1337, 1338):
            run_dir(root, g, "pre", 2e-3, seed, 1.9, spikes=1)
            run_dir(root, g, "peri", 2e-3, seed, 2.0, gnull=seed == 1338)  # a non-finite gradient norm (null)
        run_dir(root, g, "pre", 4e-3, 1337, None, status="diverged")
        run_dir(root, g, "pre", 4e-3, 1338, 2.5, spikes=2)
        run_dir(root, g, "peri", 4e-3, 1337, 1.8)
        run_dir(root, g, "peri", 4e-3, 1338, 1.84)
        for seed in (1337, 1338):  # lns: best at the lowest LR; at the next every seed diverged
            run_dir(root, g, "lns", 1e-3, seed, 2.0)
            run_dir(root, g, "lns", 2e-3, seed, None, status="diverged")
        run_dir(root, "prec-fp16", "pre", 2e-3, 1337, 1.95, dtype="fp16", skipped=3, scale=8192, ovf=(0, 2, 0, 0), ovb=(1, 0, 0, 0), xmax=32752.0)
        run_dir(root, "prec-fp16", "pre", 2e-3, 1338, 1.97, dtype="fp16", skipped=1, scale=32768, ovf=(0, 0, 1, 0))
        run_dir(root, "abl-outonly", "outonly", 4e-3, 1337, 1.9)
        run_dir(root, "abl-outonly", "outonly", 4e-3, 1338, 1.94)
        for seed, dv in ((1337, 0.0), (1338, 0.02)):  # 24 blocks: LNS 0.3 below Pre-LN (0.1 above at 12), Mix-LN 0.2 above
            for n, v in (("pre", 2.10), ("lns", 1.80), ("mix", 2.30)):
                run_dir(root, "depth24", n, 1e-3, seed, v + dv)
        rc, out, err = claims(root)
        want(rc == 0, f"protocol tables: exit {rc}: {err}")
        for line in ("| LR | pre | peri |",
                     "| 0.001 | 2.100 +- 0.141 | 2.100 +- 0.000 |",
                     "| 0.004 | 2.500 (n=1) (1/2 div) | **1.820 +- 0.028** |",
                     "| pre | 0.004 | 0.002 | 1.900 +- 0.000 | 0.004 (1/2) | 0.004 (2.500 (n=1)) | 0.004 | 1/6 | 6 | 0.001-0.004 |",
                     "| peri | none | 0.004 | 1.820 +- 0.028 | none | none | none | 0/6 | 0 | 0.001-0.004 |",
                     "| 0.002 | **1.900 +- 0.000** | 2.000 +- 0.000 | - (2/2 div) |",
                     "| lns | 0.002 | 0.001 | 2.000 +- 0.000 | 0.002 (2/2) | 0.002 (-) | 0.002 | 2/4 | 0 | 0.001-0.002 |",
                     "| 0.004 | 1/2 | 0/2 |  |",
                     "| pre | 0.5 +- 0 | 0.5 +- 0 | 2 +- 0 | 1 +- 0 | 5 +- 0 | 4 +- 0 / 1 +- 0 | 4 +- 0 / 1 +- 0 | 4 +- 0 |",
                     "| peri | 0.5 +- 0 | 0.5 +- 0 | 2 +- 0 | 1 +- 0 | 5 +- 0 | 4 +- 0 / 1 +- 0 | 4 +- 0 / 1 | 4 |",
                     "| fp16 | pre | 0.002 | 0/2 | 1.960 +- 0.014 | 1.900 +- 0.000 (0/2 div) | 2 +- 1.41 | 8192 | 3 / 1 | 3.28e+04 (0.5) |",
                     "| grid-gpt2 | 16 | 1337: 6 (+2 div), 1338: 7 (+1 div) | 3 min |",
                     "| output-only (OLMo 2) | peri (grid) | 0.004 | 1.920 +- 0.028 (0/2 div) | 1.820 +- 0.028 (0/2 div) | +0.100 +- 0.028 |",
                     "| 11 (24 blocks) | Mix-LN's loss is at or below Pre-LN's at 24 blocks | 24 blocks (LRs 0.001), mix - pre at "
                     "their best LRs (0.001, 0.001): +0.200 +- 0.014 | **not reproduced**: above by more than 2 SE |",
                     "| 14 (24 blocks) | LNS beats Pre-LN at 24 blocks, by more than at 12 | 24 blocks (LRs 0.001), lns - pre at "
                     "their best LRs (0.001, 0.001): -0.300 +- 0.014; 12 blocks, at their best LRs (0.001, 0.002): +0.100 "
                     "+- 0.000; 24 minus 12: -0.400 +- 0.014 | **reproduced**: LNS leads at 24 blocks, and by more than at "
                     "12, each by more than 2 SE |"):
            want(line in out, f"missing line: {line}")
        rc, out, err = claims("--margin", "0.7", root)
        want(rc == 0 and "| pre | 0.004 | 0.002 | 1.900 +- 0.000 | 0.004 (1/2) | none |" in out, "--margin 0.7: 2.5 is not degraded")
        rc, out, err = claims("--best-lrs", "2", os.path.join(root, g))
        want(rc == 0 and out.strip() == "0.004,0.002", f"--best-lrs 2: '{out.strip()}' {err}")
        rc, out, err = claims("--best-runs", os.path.join(root, g))
        want(rc == 0 and out.split() == [os.path.join(root, g, "pre_lr0.002_s1337"), os.path.join(root, g, "peri_lr0.004_s1337"),
                                 os.path.join(root, g, "lns_lr0.001_s1337")],
             f"--best-runs: {out.split()} {err}")
        # errors: one line, exit 1
        verdicts(os.path.join(root, "verdicts"), want)
        rc, out, err = claims(os.path.join(root, "absent"))
        want(rc == 1 and err.count("\n") == 1 and "is not a directory" in err, f"absent root: {rc} {err}")
        empty = os.path.join(root, "empty")
        os.makedirs(empty)
        rc, out, err = claims(empty)
        want(rc == 1 and "no protocol sweeps with finished runs" in err, f"empty root: {rc} {err}")
        with open(os.path.join(root, g, "pre_lr0.001_s1337", "result.json"), "w") as f:
            f.write("{\"norm\": ")
        rc, out, err = claims(root)
        want(rc == 1 and err.count("\n") == 1 and "pre_lr0.001_s1337/result.json: not a sweep result" in err, f"bad result.json: {rc} {err}")
    finally:
        if "--keep" in sys.argv:
            print(f"claims_check: kept {root}")
        else:
            shutil.rmtree(root)
    for f in fails:
        print(f"claims_check: FAIL {f}")
    if fails:
        sys.exit(1)
    print("claims_check: ok")


if __name__ == "__main__":
    main()
