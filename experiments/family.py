#!/usr/bin/env python3
"""The tables of issue 20's family studies (experiments/family.sh), as markdown for docs/results.md.

usage:
  python3 experiments/family.py ROOT                   (every table whose sweeps exist)
  python3 experiments/family.py --best-lr-runs SWEEP   (every seed's run at each placement's best LR)

ROOT is experiments/family.sh's root: sweeps lm (pre, peri), ngpt, gpas (pre, peri --gpas), sdd (pre
--sdd) and dit (--arch dit), clf.json (the classifier of normlab fid), RUN/fid.json, cpu.tsv. Every number
is read from the runs (result.json, metrics.jsonl), so a study still running gives the tables of its
finished runs. Numbers are mean +- sample sd over the finished (not diverged) seeds; "k/n div" = k of n
runs diverged; differences are variant minus reference +- the standard error of the difference.
Definitions:
  steps to a loss   the first validation step whose val_loss is at or below it, per seed; a seed that
                    never gets there counts as not reached (k/n reached)
  target (ngpt)     the highest of the runs' lowest validation losses, i.e. the lowest loss that every
                    run of both placements reaches; also fixed losses 2.8, 2.7, 2.6, 2.5
  best LR (dit)     the LR with the lowest mean final held-out loss where every seed finished
  last diagnostics  the last diag record (end of training): Var x_(L+1) is the variance of the stream
                    after the last block (before the final norm), max abs x the largest over all depths
Helpers (reading runs, mean +- sd, tables) come from experiments/claims.py. Standard library only."""
import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from claims import (best_lr, cells, diff_se, div_count, fail, fmt_ms, load_sweep, lr_s, lrs_of, mean_sd,  # noqa: E402
                    norms_of, num, read_jsonl, table)

FIXED_TARGETS = [2.8, 2.7, 2.6, 2.5]
PLACEMENT_DIT = ["pre", "peri", "post"]


def step_records(r):
    """the step records of a run's metrics.jsonl (read once)"""
    if not hasattr(r, "_steps"):
        p = os.path.join(r.dir, "metrics.jsonl")
        r._steps = [x for x in read_jsonl(p) if "step" in x and "diverged" not in x] if os.path.exists(p) else []
    return r._steps


def max_grad(r):
    g = [num(x.get("grad_norm")) for x in step_records(r)]
    return max(g) if g else None


def steps_to(r, target):
    return next((s for s in sorted(r.vals) if r.vals[s] <= target), None)


def last(r, key):
    """a quantity of the last diagnostics pass: key(diag record)"""
    return key(r.diags[-1]) if r.diags else None


def var_last(d):
    return num(d["x_var"][-1])


def xmax_all(d):
    return max(num(v) for v in d["x_max"])


def reached(rs, target):
    """mean +- sd of the steps to target over the seeds that reach it, and 'k/n'"""
    st = [steps_to(r, target) for r in rs]
    got = [s for s in st if s is not None]
    txt = fmt_ms(got, digits=0) if got else "-"
    return txt + f" ({len(got)}/{len(rs)})", st


def sweep(root, name):
    return load_sweep(os.path.join(root, name))


# ------------------------------------------------------------------ parts

def ngpt_tables(lm, ng, pre_lr):
    pre = [r for r in lm if r.norm == "pre" and r.lr == pre_lr and r.ok]
    ngs = [r for r in ng if r.ok]
    if not pre or not ngs:
        return ""
    arms = [("pre", pre_lr, pre)] + [("ngpt", lr, [r for r in ngs if r.lr == lr]) for lr in lrs_of(ngs)]
    target = max(min(r.vals.values()) for _, _, rs in arms for r in rs if r.vals)
    rows, pre_steps = [], None
    for name, lr, rs in arms:
        txt, st = reached(rs, target)
        got = [s for s in st if s is not None]
        if name == "pre":
            pre_steps = got
        ratio = (f"{mean_sd(pre_steps)[0] / mean_sd(got)[0]:.2f}"
                 if name != "pre" and got and pre_steps and len(got) == len(rs) else "")
        rows.append([name, lr_s(lr), fmt_ms([r.val for r in rs]), txt, ratio,
                     " ".join(str(s) if s is not None else "-" for s in st)] +
                    [reached(rs, t)[0] for t in FIXED_TARGETS] +
                    [fmt_ms([max_grad(r) for r in rs], g=True),
                     fmt_ms([last(r, xmax_all) for r in rs], g=True)])
    div = [r for r in lm + ng if r.diverged and (r.norm == "ngpt" or (r.norm == "pre" and r.lr == pre_lr))]
    return (f"## nGPT against Pre-LN: steps to the same loss\n\nTarget: {target:.4f}, the highest of the runs' lowest "
            "validation losses (the lowest loss that every run of both placements reaches). Steps: the first validation "
            "step (every 25) at or below the loss, mean +- sd over the seeds that reach it (k/n reached); speed-up: "
            "pre's mean steps / ngpt's (above 1: nGPT faster). Max grad norm: the largest gradient norm (before "
            "clipping) of each run; max abs x: the last diagnostics pass, all depths. "
            f"Diverged runs: {len(div)}.\n\n"
            + table(["placement", "LR", "final val loss", "steps to target", "speed-up", "per seed"] +
                    [f"steps to {t}" for t in FIXED_TARGETS] + ["max grad norm", "max abs x"], rows))


def variant_rows(base, var, norm, lr, label, extra):
    b = [r for r in base if r.norm == norm and r.lr == lr]
    v = [r for r in var if r.norm == norm and r.lr == lr]
    rows = []
    for name, rs, ref in ((norm, b, None), (f"{norm} {label}", v, b)):
        if not rs:
            continue
        ok = [r for r in rs if r.ok]
        rows.append([lr_s(lr), name, div_count(rs), fmt_ms([r.val for r in ok]),
                     diff_se([r.val for r in ok], [r.val for r in ref if r.ok]) if ref else "",
                     fmt_ms([last(r, var_last) for r in ok], g=True), fmt_ms([last(r, xmax_all) for r in ok], g=True),
                     fmt_ms([max_grad(r) for r in ok], g=True)] + extra(ok))
    return rows


def gates(rs):
    """SiLU(a_l) of the last pass: the mean over seeds of the smallest and the largest over blocks"""
    g = [r.diags[-1].get("gpas_silu") for r in rs if r.diags]
    g = [x for x in g if x]
    if not g:
        return ["-"]
    return [f"{mean_sd([min(x) for x in g])[0]:.3f} .. {mean_sd([max(x) for x in g])[0]:.3f}"]


def gpas_tables(lm, gp):
    if not gp:
        return ""
    rows = []
    for lr in lrs_of(gp):
        for n in norms_of(gp):
            rows += variant_rows(lm, gp, n, lr, "+gpas", gates)
    return ("## GPAS on pre and peri\n\nFinal val loss; the difference is the GPAS run minus its placement without "
            "GPAS at the same LR (negative: GPAS better). Var x_(L+1), max abs x: the last diagnostics pass; max grad "
            "norm: each run's largest; SiLU(a_l): the fraction of the stream each block's gate takes off (negative: "
            "the gate amplifies), the smallest .. largest over blocks.\n\n"
            + table(["LR", "run", "diverged", "final val loss", "difference", "Var x_(L+1)", "max abs x",
                     "max grad norm", "SiLU(a_l) min .. max"], rows))


def sdd_tables(lm, sd):
    if not sd:
        return ""
    rows = []
    for lr in lrs_of(sd):
        rows += variant_rows(lm, sd, "pre", lr, "+sdd", lambda ok: [])
    return ("## SDD on pre\n\nAs the GPAS table: the difference is pre --sdd minus pre at the same LR.\n\n"
            + table(["LR", "run", "diverged", "final val loss", "difference", "Var x_(L+1)", "max abs x",
                     "max grad norm"], rows))


def fid_of(r):
    p = os.path.join(r.dir, "fid.json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def dit_tables(root, dit):
    if not dit:
        return ""
    c = cells(dit)
    ns = [n for n in PLACEMENT_DIT if any(r.norm == n for r in dit)] + \
        [n for n in norms_of(dit) if n not in PLACEMENT_DIT]
    out = ["## Next-DiT on images: pre, peri (sandwich), post\n"]
    rows = []
    for lr in lrs_of(dit):
        row = [lr_s(lr)]
        for n in ns:
            rs = c.get((n, lr), [])
            s = fmt_ms([r.val for r in rs if r.ok], digits=4)
            b = best_lr(dit, n)
            if b and b[0] == lr:
                s = f"**{s}**"
            row.append(s + (f" ({div_count(rs)} div)" if any(r.diverged for r in rs) else ""))
        rows.append(row)
    out.append("### Held-out flow-matching loss\n\nAt the end, mean +- sd over seeds; bold: each placement's "
               "best LR.\n\n" + table(["LR"] + ns, rows))
    dsteps = sorted({d["diag"] for r in dit for d in r.diags})
    for name, pick in (("Var x_(L+1), the stream after the last block", lambda d: num(d["x_var"][-1])),
                       ("max abs x over all depths", lambda d: max(num(v) for v in d["x_max"])),
                       ("max abs x / median abs x of x_(L+1) (scale-free outliers)",
                        lambda d: num(d["x_max_over_median"][-1]))):
        rows = []
        for n in ns:
            for lr in lrs_of(dit):
                rs = [r for r in c.get((n, lr), []) if r.ok]
                if rs:
                    rows.append([n, lr_s(lr)] + [fmt_ms([next((pick(d) for d in r.diags if d["diag"] == s), None)
                                                         for r in rs], g=True) for s in dsteps])
        out.append(f"### {name}, over training\n\n" + table(["placement", "LR"] + [f"step {s}" for s in dsteps], rows))
    rows = []
    for n in ns:
        for lr in lrs_of(dit):
            rs = [r for r in c.get((n, lr), []) if r.ok and r.diags]
            if not rs:
                continue
            L1 = len(rs[0].diags[-1]["x_var"])
            rows.append([n, lr_s(lr)] + [fmt_ms([num(r.diags[-1]["x_var"][i]) for r in rs], g=True) + " / " +
                                          fmt_ms([num(r.diags[-1]["x_max"][i]) for r in rs], g=True)
                                          for i in range(L1)])
    if rows:
        out.append("### Through depth at the end: Var x_l / max abs x_l (x_l enters block l; the last column is after "
                   "the last block)\n\n" + table(["placement", "LR"] + [f"x_{i + 1}" for i in range(L1)], rows))
    rows = []
    for n in ns:
        b = best_lr(dit, n)
        if not b:
            continue
        rs = [r for r in c[(n, b[0])] if r.ok]
        fs = [fid_of(r) for r in rs]
        got = [f["fid"] for f in fs if f]
        if got:
            rows.append([n, lr_s(b[0]), fmt_ms([r.val for r in rs], digits=4), fmt_ms(got, digits=1) +
                         (f" (n={len(got)})" if len(got) < len(rs) else "")])
    if rows:
        cj = os.path.join(root, "clf.json")
        acc = ""
        if os.path.exists(cj):
            with open(cj) as f:
                acc = f" (classifier test accuracy {json.load(f)['test_accuracy']:.4f})"
        f0 = next((fid_of(r) for r in dit if fid_of(r)), {})
        out.append(f"### Fréchet distance at each placement's best LR{acc}\n\n{f0.get('samples', '?')} samples per "
                   f"run, {f0.get('sampler', '?')} with {f0.get('steps', '?')} steps, guidance {f0.get('cfg', '?')}; "
                   "mean +- sd over seeds.\n\n" + table(["placement", "best LR", "held-out loss", "FD"], rows))
    return "\n".join(out)


def cpu_table(root):
    p = os.path.join(root, "cpu.tsv")
    if not os.path.exists(p):
        return ""
    tot = {}
    with open(p) as f:
        for i, line in enumerate(f):
            parts = line.split()
            if len(parts) != 4:
                fail(f"{p}:{i + 1}: expected part, user, system, wall seconds")
            t = tot.setdefault(parts[0], [0.0, 0.0, 0.0])
            for k in range(3):
                t[k] += float(parts[k + 1])
    rows = [[k, f"{v[0] + v[1]:.0f}", f"{v[2]:.0f}"] for k, v in tot.items()]
    rows.append(["all", f"{sum(v[0] + v[1] for v in tot.values()):.0f}", f"{sum(v[2] for v in tot.values()):.0f}"])
    return ("## CPU time\n\nUser + system CPU seconds of each part's processes and its wall seconds, summed over "
            "the invocations of experiments/family.sh (ROOT/cpu.tsv); a run another part had finished costs "
            "nothing.\n\n" + table(["part", "CPU s", "wall s"], rows))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("path", help="experiments/family.sh's ROOT (or a sweep directory with --best-lr-runs)")
    ap.add_argument("--best-lr-runs", action="store_true",
                    help="print the run directory of every finished seed at each placement's best LR and exit")
    ap.add_argument("--pre-lr", type=float, default=0.002, help="the LR of the Pre-LN runs nGPT is compared with [0.002]")
    a = ap.parse_args()
    if not os.path.isdir(a.path):
        fail(f"'{a.path}' is not a directory")
    if a.best_lr_runs:
        runs = load_sweep(a.path)
        if not runs:
            fail(f"no finished runs in {a.path}")
        for n in norms_of(runs):
            b = best_lr(runs, n)
            for r in sorted((r for r in runs if b and r.norm == n and r.lr == b[0] and r.ok), key=lambda r: r.seed):
                print(r.dir)
        return
    lm = sweep(a.path, "lm")
    parts = [ngpt_tables(lm, sweep(a.path, "ngpt"), a.pre_lr), gpas_tables(lm, sweep(a.path, "gpas")),
             sdd_tables(lm, sweep(a.path, "sdd")), dit_tables(a.path, sweep(a.path, "dit")), cpu_table(a.path)]
    parts = [p for p in parts if p]
    if not parts:
        fail(f"'{a.path}' holds no finished runs of experiments/family.sh (lm, ngpt, gpas, sdd, dit)")
    print("# The family (issue 20): experiments/family.sh\n")
    print("\n".join(parts))


if __name__ == "__main__":
    main()
