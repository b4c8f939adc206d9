#!/usr/bin/env python3
"""Per-claim numbers of the protocol's sweeps (experiments/protocol.sh), as markdown tables for docs/results.md.

usage:
  python3 experiments/claims.py ROOT [--arch gpt2|llama] [--margin 0.05] [--lr 0.002]
  python3 experiments/claims.py SWEEP_DIR [--lr 0.002] [--seed 1337] [--analyze analyze.json]
  python3 experiments/claims.py --best-lrs K SWEEP_DIR    (the K best LRs, comma-separated)
  python3 experiments/claims.py --best-runs SWEEP_DIR     (each placement's best-LR run, first seed)

ROOT is experiments/protocol.sh's root: it holds sweep directories (grid-gpt2, grid-extra, prec-fp16,
prec-bf16, depth24, abl-*, cross-gemma, time1500; with --arch llama grid-llama and the others with
-llama appended). Every table is read from the runs themselves (each run's result.json and
metrics.jsonl), so a sweep still running gives the tables of its finished runs; a sweep that is absent
gives no table. Numbers are mean +- sample sd over the finished (not diverged) seeds, "(n=K)" when
fewer than the most seeds of any cell finished, "k/n div" = k of n runs diverged. Definitions:
  best LR        the LR with the lowest mean final val loss among LRs where every run finished and none
                 diverged
  first diverging LR   the lowest LR at which any seed diverged (non-finite, or the sweep's loss rule)
  first degraded LR    the lowest LR above the best LR whose mean final val loss exceeds the best by more
                 than --margin nats, or where no seed finished
  first failing LR     the lower of the two (the headline of claim 2, with the divergence counts)
  claims         numbered as in docs/methods.md §6 (= ln-methods.md §7)
  verdicts       per claim: reproduced / not reproduced / inconclusive, with the reason. A difference of
                 means is decided when it exceeds twice its standard error (sqrt(sd_a^2/n_a + sd_b^2/n_b);
                 a side with one seed borrows the other side's sd; one seed on both sides: inconclusive);
                 activations, variances and gradient ratios are compared as log10 values
  time           a claim's, a sweep's: the summed wall time (time_s of each run's last step record)
The output opens with the verdicts and the runs per sweep and seed, then the grid's divergence counts,
first failing LRs and losses, then the other parts' tables.
A SWEEP_DIR (it holds run directories <norm>_lr<lr>_s<seed>) gives the older per-layer table of one
sweep at --lr and --seed, with the layer analysis (--analyze file in the run directory) when present.
Standard library only."""
import argparse
import glob
import json
import math
import os
import re
import sys

RUN_RE = re.compile(r"^(?P<norm>[a-z0-9]+)_lr(?P<lr>[0-9.e+-]+)_s(?P<seed>[0-9]+)$")
FORMAT_MAX = {"fp16": 65504.0, "bf16": 3.3895313892515355e38, "fp32": 3.4028234663852886e38}
PLACEMENT_ORDER = ["post", "pre", "peri", "mix", "lns", "outonly", "deepnorm", "gemma"]


def fail(msg):
    print(f"claims.py: {msg}", file=sys.stderr)
    sys.exit(1)


# ------------------------------------------------------------------ reading

def read_jsonl(path):
    """The JSON objects of a JSON Lines file; a last line cut short (a run still writing) is skipped."""
    out = []
    with open(path) as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                continue
            fail(f"{path}:{i + 1}: malformed JSON")
    return out


class Run:
    """One finished run of a sweep: its result.json, and its metrics.jsonl read on first use."""

    def __init__(self, d, res):
        self.dir = d
        self.norm = res["norm"]
        self.lr = float(res["lr"])
        self.seed = int(res["seed"])
        self.status = res["status"]
        self.reason = res.get("reason", "")
        self.val = res.get("val_loss")
        self.spikes = res.get("spikes", 0) or 0
        self._m = None

    @property
    def ok(self):
        return self.status == "done" and self.val is not None

    @property
    def diverged(self):
        return self.status == "diverged"

    def _load(self):
        if self._m is not None:
            return self._m
        m = {"diags": [], "val": {}, "skipped": 0, "scale": None, "steps": 0, "time": 0.0}
        p = os.path.join(self.dir, "metrics.jsonl")
        if os.path.exists(p):
            for r in read_jsonl(p):
                if "diag" in r:
                    m["diags"].append(r)
                elif "step" in r and "diverged" not in r:
                    m["steps"] = r["step"]
                    if r.get("time_s") is not None:
                        m["time"] = max(m["time"], float(r["time_s"]))
                    if r.get("val_loss") is not None:
                        m["val"][r["step"]] = r["val_loss"]
                    if r.get("skipped"):
                        m["skipped"] += 1
                    if "loss_scale" in r:
                        m["scale"] = r["loss_scale"]
        self._m = m
        return m

    @property
    def diags(self):
        return self._load()["diags"]

    @property
    def vals(self):
        return self._load()["val"]

    @property
    def skipped(self):
        return self._load()["skipped"]

    @property
    def last_scale(self):
        return self._load()["scale"]

    @property
    def time_s(self):
        """the run's wall time: time_s of its last step record (0 when it has none)"""
        return self._load()["time"]


def num(v):
    """a diagnostic value: null (non-finite when written) reads as +inf"""
    return math.inf if v is None else float(v)


def load_sweep(d):
    """The runs of sweep directory d that have a result.json, or [] when d does not exist."""
    runs = []
    for rd in sorted(glob.glob(os.path.join(d, "*_lr*_s*"))):
        if not RUN_RE.match(os.path.basename(rd)):
            continue
        rj = os.path.join(rd, "result.json")
        if not os.path.exists(rj):
            continue
        try:
            with open(rj) as f:
                res = json.load(f)
            runs.append(Run(rd, res))
        except (json.JSONDecodeError, KeyError, ValueError, TypeError):
            fail(f"{rj}: not a sweep result (norm, lr, seed, status)")
    return runs


# ------------------------------------------------------------------ statistics

def mean_sd(xs):
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    if not xs:
        return None, None, 0
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None
    return m, sd, len(xs)


def fmt_ms(xs, nfull=None, digits=3, g=False):
    m, sd, n = mean_sd(xs)
    if m is None:
        return "-"
    f = (lambda v: f"{v:.3g}") if g else (lambda v: f"{v:.{digits}f}")
    s = f(m) + (f" +- {f(sd)}" if sd is not None else "")
    if nfull and n < nfull:
        s += f" (n={n})"
    return s


def lr_s(lr):
    return f"{lr:g}"


def cells(runs):
    """{(norm, lr): [runs]}"""
    c = {}
    for r in runs:
        c.setdefault((r.norm, r.lr), []).append(r)
    return c


def norms_of(runs):
    seen = {r.norm for r in runs}
    return [n for n in PLACEMENT_ORDER if n in seen] + sorted(seen - set(PLACEMENT_ORDER))


def lrs_of(runs):
    return sorted({r.lr for r in runs})


def max_seeds(runs):
    c = cells(runs)
    return max((sum(r.ok for r in rs) for rs in c.values()), default=0)


def best_lr(runs, norm):
    """(lr, mean) of norm's best LR: lowest mean val loss where every run finished, none diverged"""
    best = None
    for (n, lr), rs in cells(runs).items():
        if n != norm or not all(r.ok for r in rs):
            continue
        m = mean_sd([r.val for r in rs])[0]
        if best is None or m < best[1]:
            best = (lr, m)
    return best


def first_failing(runs, norm, margin, strict=False):
    """(first LR with a diverged seed, first LR above the best degraded by > margin) or None each; strict: the
    degradation must also exceed 2 SE of the difference from the best LR's runs (sep; one seed a side: margin only)"""
    c = cells(runs)
    lrs = sorted(lr for (n, lr) in c if n == norm)
    div = next((lr for lr in lrs if any(r.diverged for r in c[(norm, lr)])), None)
    b = best_lr(runs, norm)
    deg = None
    if b:
        best = [r.val for r in c[(norm, b[0])] if r.ok]
        for lr in lrs:
            if lr <= b[0]:
                continue
            vals = [r.val for r in c[(norm, lr)] if r.ok]
            m = mean_sd(vals)[0]
            if m is None or (m > b[1] + margin and (not strict or sep(vals, best)[0] != 0)):
                deg = lr
                break
    return div, deg


def best_lrs(runs, k):
    """the k LRs with the lowest mean val loss of any placement (cells all finished, none diverged)"""
    score = {}
    for (n, lr), rs in cells(runs).items():
        if all(r.ok for r in rs):
            m = mean_sd([r.val for r in rs])[0]
            score[lr] = min(score.get(lr, math.inf), m)
    return sorted(score, key=lambda lr: score[lr])[:k]


def div_count(rs):
    k = sum(r.diverged for r in rs)
    return f"{k}/{len(rs)}"


# ------------------------------------------------------------------ tables

def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def last_diag(r):
    return r.diags[-1] if r.diags else None


def first_fail(runs, norm, margin, strict=False):
    """the lower of norm's first diverging and first degraded LR, or None when neither is in the ladder"""
    return min((x for x in first_failing(runs, norm, margin, strict) if x is not None), default=None)


def grid_tables(runs, margin, title):
    c, ns, lrs, full = cells(runs), norms_of(runs), lrs_of(runs), max_seeds(runs)
    out = [f"## {title}\n",
           "Diverged runs per placement and LR (claim 2): `k/n` = k of the cell's n runs diverged (non-finite loss "
           "or gradient, or after warmup a mean loss of the last 50 steps above the first step's loss).\n"]
    out.append(table(["LR"] + ns, [[lr_s(lr)] + [div_count(c[(n, lr)]) if (n, lr) in c else "" for n in ns]
                                   for lr in lrs]))
    out.append(f"First failing LR per placement (claim 2): the lower of the first diverging LR (the lowest LR where a "
               f"seed diverged) and the first degraded LR (the lowest LR above the best whose mean val loss is more "
               f"than {margin:g} nats above the best, or where no seed finished); \"none\": neither within the LRs run. "
               f"\"> 2 SE\": the first degraded LR when the loss difference must also exceed twice its standard error. "
               f"Spikes: gradient-norm spikes summed over all the placement's runs (claim 4).\n")
    rows = []
    for n in ns:
        b = best_lr(runs, n)
        div, deg = first_failing(runs, n, margin)
        deg2 = first_failing(runs, n, margin, strict=True)[1]
        ff = first_fail(runs, n, margin)
        rs_all = [r for r in runs if r.norm == n]
        best_rs = c.get((n, b[0]), []) if b else []
        rows.append([n, lr_s(ff) if ff else "none", lr_s(b[0]) if b else "-",
                     fmt_ms([r.val for r in best_rs if r.ok], full),
                     f"{lr_s(div)} ({div_count(c[(n, div)])})" if div else "none",
                     f"{lr_s(deg)} ({fmt_ms([r.val for r in c[(n, deg)] if r.ok], full)})" if deg else "none",
                     lr_s(deg2) if deg2 else "none",
                     f"{sum(r.diverged for r in rs_all)}/{len(rs_all)}", sum(r.spikes for r in rs_all),
                     f"{lr_s(min(r.lr for r in rs_all))}-{lr_s(max(r.lr for r in rs_all))}"])
    out.append(table(["placement", "first failing LR", "best LR", "val loss at best", "first diverging LR",
                      "first degraded LR", "> 2 SE", "diverged runs", "spikes", "LRs run"], rows))
    out.append("Final validation loss (nats/token), mean +- sd over the finished seeds; `k/n div`: k of the n "
               "runs diverged; bold: the placement's best LR (claims 2, 7).\n")
    rows = []
    for lr in lrs:
        row = [lr_s(lr)]
        for n in ns:
            rs = c.get((n, lr), [])
            if not rs:
                row.append("")
                continue
            s = fmt_ms([r.val for r in rs if r.ok], full)
            b = best_lr(runs, n)
            if b and b[0] == lr:
                s = f"**{s}**"
            if any(r.diverged for r in rs):
                s += f" ({div_count(rs)} div)"
            row.append(s)
        rows.append(row)
    out.append(table(["LR"] + ns, rows))
    return "\n".join(out)


def depth_profile(runs, lr, title):
    """claims 1, 3, 6, 8, 12: diagnostics vs depth at one LR (end of training; step 0 for gradients)"""
    c, ns, full = cells(runs), norms_of(runs), max_seeds(runs)
    rows = []
    for n in ns:
        rs = [r for r in c.get((n, lr), []) if r.ok and r.diags]
        if not rs:
            continue
        L = len(rs[0].diags[-1]["grad_block"])
        mid = (L + 1) // 2
        end = [r.diags[-1] for r in rs]
        init = [r.diags[0] for r in rs if r.diags[0]["diag"] == 0]
        gb = [[num(v) for v in d["grad_block"]] for d in end]
        flat = [max(g) / min(g) for g in gb if min(g) > 0 and math.isfinite(max(g))]
        rows.append([n, fmt_ms([num(d["x_var"][1]) for d in end], full, g=True),
                     fmt_ms([num(d["x_var"][mid]) for d in end], full, g=True),
                     fmt_ms([num(d["x_var"][L]) for d in end], full, g=True),
                     fmt_ms([max(num(v) for v in d["x_max"]) for d in end], full, g=True),
                     fmt_ms([max(num(v) for v in d["x_max_over_median"]) for d in end], full, g=True),
                     fmt_ms([d["grad_block"][0] for d in init], g=True) + " / " + fmt_ms([d["grad_block"][-1] for d in init], g=True),
                     fmt_ms([d["grad_block"][0] for d in end], g=True) + " / " + fmt_ms([d["grad_block"][-1] for d in end], g=True),
                     fmt_ms(flat, g=True)])
    if not rows:
        return ""
    return (f"### {title}\n\nAt LR {lr_s(lr)}, the last diagnostic pass unless stated; x_l is the stream entering block l "
            f"(x_(L+1) after the last block), mean +- sd over seeds. Gradient flatness: max / min over blocks of the "
            f"per-block gradient norm at the end (1 = flat).\n\n"
            + table(["placement", "Var x_2", f"Var x_{mid + 1}", "Var x_(L+1)", "max abs x", "max / median",
                     "grad block 1 / L (step 0)", "grad block 1 / L (end)", "grad flatness (end)"], rows))


def over_lr(runs, key, title, what):
    """claim 1: a diagnostic at the end against LR, per placement (does the gap widen with LR?)"""
    c, ns, lrs = cells(runs), norms_of(runs), lrs_of(runs)
    rows = []
    for lr in lrs:
        row = [lr_s(lr)]
        for n in ns:
            rs = [r for r in c.get((n, lr), []) if r.ok and r.diags]
            row.append(fmt_ms([key(r.diags[-1]) for r in rs], g=True) if rs else "")
        rows.append(row)
    return f"### {title}\n\n{what}\n\n" + table(["LR"] + ns, rows)


def precision_table(prec, control, arch):
    """claim 6: fp16/bf16 against the fp32 grid at the same LRs and seeds"""
    rows = []
    for dt, runs in prec:
        c = cells(runs)
        full = max_seeds(runs)
        for n in norms_of(runs):
            for lr in lrs_of(runs):
                rs = c.get((n, lr), [])
                if not rs:
                    continue
                ctl = [r for r in control if r.norm == n and r.lr == lr and r.seed in {x.seed for x in rs}]
                xmax = [max(num(v) for d in r.diags for v in d["x_max"]) for r in rs if r.diags]
                ovf = [sum(sum(d.get("overflow_fwd", [0])) for d in r.diags) for r in rs]
                ovb = [sum(sum(d.get("overflow_bwd", [0])) for d in r.diags) for r in rs]
                scales = [r.last_scale for r in rs if r.last_scale is not None]
                rows.append([dt, n, lr_s(lr), div_count(rs), fmt_ms([r.val for r in rs if r.ok], full),
                             (fmt_ms([r.val for r in ctl if r.ok]) + f" ({div_count(ctl)} div)") if ctl else "-",
                             fmt_ms([r.skipped for r in rs], g=True) if dt == "fp16" else "-",
                             f"{min(scales):g}" if scales else "-",
                             f"{sum(ovf)} / {sum(ovb)}",
                             f"{max(xmax):.3g} ({max(xmax) / FORMAT_MAX[dt]:.2g})" if xmax else "-"])
    if not rows:
        return ""
    return ("## Precision (claim 6)\n\nEach low-precision cell against the fp32 grid (the control: same options, LR and "
            "seeds). Skipped steps: fp16 steps whose gradients overflowed (each halves the loss scale; mean over "
            "seeds); loss scale: the lowest final scale of the seeds; overflows: values that storing an activation "
            "(fwd) or activation gradient (bwd) in the format turned from finite to inf, summed over the diagnostic "
            "passes and seeds; max abs x: the largest over all passes, depths and seeds, with its ratio to the "
            f"format's largest finite value (fp16 65504, bf16 3.39e38). Arch {arch}.\n\n"
            + table(["dtype", "placement", "LR", "diverged", "val loss", "fp32 val loss", "skipped steps",
                     "loss scale (end)", "overflows fwd / bwd", "max abs x (/ format max)"], rows))


def diff_se(a, b):
    """mean(a) - mean(b) +- the standard error of the difference"""
    ma, sa, na = mean_sd(a)
    mb, sb, nb = mean_sd(b)
    if ma is None or mb is None:
        return "-"
    d = ma - mb if abs(ma - mb) >= 5e-4 else 0.0  # no "-0.000"
    if sa is None or sb is None:
        return f"{d:+.3f}"
    return f"{d:+.3f} +- {math.sqrt(sa * sa / na + sb * sb / nb):.3f}"


def depth_table(shallow, deep):
    """claims 10, 11, 14: the 24-layer pass against the 12-layer grid at the same LRs"""
    cs, cd = cells(shallow), cells(deep)
    rows = []
    for lr in lrs_of(deep):
        for n in norms_of(deep):
            a, b = cs.get((n, lr), []), cd.get((n, lr), [])
            if not b:
                continue
            rows.append([lr_s(lr), n, fmt_ms([r.val for r in a if r.ok]) + (f" ({div_count(a)} div)" if a else ""),
                         fmt_ms([r.val for r in b if r.ok]) + f" ({div_count(b)} div)",
                         diff_se([r.val for r in a if r.ok], [r.val for r in cs.get(("pre", lr), []) if r.ok]) if n != "pre" else "",
                         diff_se([r.val for r in b if r.ok], [r.val for r in cd.get(("pre", lr), []) if r.ok]) if n != "pre" else ""])
    if not rows:
        return ""
    return ("## Depth (claims 10, 11, 14)\n\nFinal val loss, mean +- sd over seeds, 12 blocks (the grid) against 24 "
            "(same width, LR, seeds and schedule); the last two columns: the placement minus Pre-LN at the same depth "
            "and LR, +- the standard error of the difference (negative: better than Pre-LN).\n\n"
            + table(["LR", "placement", "12 blocks", "24 blocks", "- pre (12)", "- pre (24)"], rows))


def ablation_table(variants, grid):
    """claim 5 and the cross-checks: each variant against the grid's placement at the same LR and seeds"""
    rows = []
    for label, ref_norm, runs in variants:
        for n in norms_of(runs):
            for lr in lrs_of(runs):
                rs = [r for r in runs if r.norm == n and r.lr == lr]
                ref = ref_norm or n
                base = [r for r in grid if r.norm == ref and r.lr == lr]
                rows.append([label if len(norms_of(runs)) == 1 else f"{label} ({n})", f"{ref} (grid)", lr_s(lr),
                             fmt_ms([r.val for r in rs if r.ok]) + f" ({div_count(rs)} div)",
                             (fmt_ms([r.val for r in base if r.ok]) + f" ({div_count(base)} div)") if base else "-",
                             diff_se([r.val for r in rs if r.ok], [r.val for r in base if r.ok])])
    if not rows:
        return ""
    return ("## Ablations (claim 5) and cross-checks\n\nFinal val loss, mean +- sd over seeds; the difference "
            "(variant minus reference, +- its standard error) is positive when the variant is worse.\n\n"
            + table(["variant", "reference", "LR", "variant val loss", "reference val loss", "difference"], rows))


def time_tables(runs):
    """issue 19 item 2 / claim 1 over time: val loss, max|x| and Var(x_(L+1)) trajectories"""
    c, ns, lrs = cells(runs), norms_of(runs), lrs_of(runs)
    steps = sorted({s for r in runs for s in r.vals})
    dsteps = sorted({d["diag"] for r in runs for d in r.diags})
    if not runs:
        return ""
    out = ["## Time (claims 1, 2 over a longer run)\n",
           "Mean +- sd over seeds at each evaluation step (validation loss) and each diagnostic pass "
           "(max abs x over all depths; Var of the stream after the last block). A diverged seed drops out "
           "from its divergence on.\n"]
    for name, pick, ss in (("validation loss", lambda r, s: r.vals.get(s), steps),
                           ("max abs x", lambda r, s: next((max(num(v) for v in d["x_max"]) for d in r.diags if d["diag"] == s), None), dsteps),
                           ("Var x_(L+1)", lambda r, s: next((num(d["x_var"][-1]) for d in r.diags if d["diag"] == s), None), dsteps)):
        rows = []
        for n in ns:
            for lr in lrs:
                rs = c.get((n, lr), [])
                if rs:
                    rows.append([n, lr_s(lr), div_count(rs)] +
                                [fmt_ms([pick(r, s) for r in rs], digits=3, g=name != "validation loss") for s in ss])
        out.append(f"### {name}\n\n" + table(["placement", "LR", "diverged"] + [f"step {s}" for s in ss], rows))
    # the pre/peri gap over time (does it widen with time and LR?)
    rows = []
    for lr in lrs:
        a, b = c.get(("peri", lr), []), c.get(("pre", lr), [])
        if a and b:
            rows.append([lr_s(lr)] + [diff_se([r.vals.get(s) for r in a], [r.vals.get(s) for r in b]) for s in steps])
    if rows:
        out.append("### Peri-LN minus Pre-LN validation loss (negative: Peri-LN lower)\n\n" +
                   table(["LR"] + [f"step {s}" for s in steps], rows))
    return "\n".join(out)


def redundancy_table(sweeps):
    """claims 9, 13: angular distance and removal increase of the last third of blocks (normlab analyze)"""
    rows = []
    for label, runs in sweeps:
        for n in norms_of(runs):
            b = best_lr(runs, n)
            if not b:
                continue
            rs = sorted((r for r in runs if r.norm == n and r.lr == b[0]), key=lambda r: r.seed)
            p = os.path.join(rs[0].dir, "analyze.json") if rs else ""
            if not os.path.exists(p):
                continue
            with open(p) as f:
                an = json.load(f)
            L = an["layers"]
            k = max(1, L // 3)
            d1 = [row[0] for row in an["angular"][L - k:]]
            rows.append([label, n, lr_s(b[0]), rs[0].seed, f"{L - k + 1}-{L}", f"{sum(d1) / k:.3f}",
                         f"{sum(an['skip_delta'][L - k:]) / k:.4f}"])
    if not rows:
        return ""
    return ("## Deep-block redundancy (claims 9, 13)\n\n`normlab analyze` of each placement's best-LR run (first seed): "
            "mean over the last third of blocks of d(l, 1) (angular distance between a block's input and output) and "
            "of the val-loss increase when the block alone is removed.\n\n"
            + table(["sweep", "placement", "LR", "seed", "blocks", "d(l,1)", "removal delta (nats)"], rows))


# ------------------------------------------------------------------ verdicts

REP, NOT, INC = "reproduced", "not reproduced", "inconclusive"


def sep(a, b, log=False):
    """(s, d, se): d = mean(a) - mean(b) (of log10 values with log), se its standard error; s = +1 / -1 when d is
    above / below zero by more than 2 se, 0 within, None when neither side has two values. A side with one
    value borrows the other side's sd (equal spread assumed)."""
    f = math.log10 if log else float
    a = [f(x) for x in a if x is not None and math.isfinite(x) and (x > 0 or not log)]
    b = [f(x) for x in b if x is not None and math.isfinite(x) and (x > 0 or not log)]
    ma, sa, na = mean_sd(a)
    mb, sb, nb = mean_sd(b)
    if ma is None or mb is None:
        return None, None, None
    d = ma - mb
    if sa is None and sb is None:
        return None, d, None
    sa = sb if sa is None else sa
    sb = sa if sb is None else sb
    se = math.sqrt(sa * sa / na + sb * sb / nb)
    return (0 if abs(d) <= 2 * se else (1 if d > 0 else -1)), d, se


def decide(s, want):
    """the verdict on a claim that predicts sep's sign want (+1, -1; 0: no difference), with its reason"""
    if s is None:
        return INC, "one seed a side: no spread to judge the difference by"
    if want == 0:
        return (REP, "no difference resolved (within 2 SE)") if s == 0 else (NOT, "the difference exceeds 2 SE")
    if s == want:
        return REP, "more than 2 SE apart"
    if s == -want:
        return NOT, "more than 2 SE apart, the other way"
    return INC, "within 2 SE"


def fmt_d(s_d_se, log=False):
    """a sep() difference as text: +d +- se (log: as a ratio of geometric means, x r)"""
    _, d, se = s_d_se
    if d is None:
        return "-"
    if log:
        return f"x{10 ** d:.3g}" + (f" (log10 {d:+.2f} +- {se:.2f})" if se is not None else "")
    d = d if abs(d) >= 5e-4 else 0.0
    return f"{d:+.3f}" + (f" +- {se:.3f}" if se is not None else "")


def cell_vals(runs, norm, lr, key=None):
    """the finished runs of (norm, lr) and their values: final val loss, or key(last diagnostic pass)"""
    rs = [r for r in runs if r.norm == norm and r.lr == lr and r.ok and (key is None or r.diags)]
    return rs, [r.val if key is None else key(r.diags[-1]) for r in rs]


def xmax_end(d):
    return max(num(v) for v in d["x_max"])


def var_end(d):
    return num(d["x_var"][-1])


def flat_end(d):
    g = [num(v) for v in d["grad_block"]]
    return max(g) / min(g) if min(g) > 0 and math.isfinite(max(g)) else None


def claim_rows(grid, deep, prec, ablations, gemma, time_runs, margin, lr):
    """[claim, what it says, measured, verdict, the runs it used] for each claim the sweeps speak to"""
    rows = []
    ns = set(norms_of(grid))
    lrs = lrs_of(grid)
    ms = lambda xs, g=False: fmt_ms(xs, g=g) + f" (n={mean_sd(xs)[2]})"  # noqa: E731
    if {"pre", "peri"} <= ns:
        lo, hi = lrs[0], lrs[-1]
        used, meas, ss = [], [], []
        for name, key in (("max abs x", xmax_end), ("Var x_(L+1)", var_end)):
            part = []
            for n in ("pre", "peri"):
                a, va = cell_vals(grid, n, lo, key)
                b, vb = cell_vals(grid, n, hi, key)
                used += a + b
                part.append(f"{n} {ms(va, True)} -> {ms(vb, True)}")
            s = sep(cell_vals(grid, "pre", hi, key)[1], cell_vals(grid, "peri", hi, key)[1], log=True)
            ss.append(s)
            meas.append(f"{name} at the end, LR {lr_s(lo)} -> {lr_s(hi)}: " + "; ".join(part) +
                        f"; pre / peri at {lr_s(hi)}: {fmt_d(s, True)}")
        v = [decide(s[0], +1) for s in ss]
        verdict = v[0] if v[0] == v[1] else (INC, f"max abs x: {v[0][0]}, Var x_(L+1): {v[1][0]}")
        low = sep(cell_vals(grid, "peri", lo, var_end)[1], cell_vals(grid, "pre", lo, var_end)[1], log=True)
        note = f"; at LR {lr_s(lo)} peri's Var x_(L+1) is the larger ({fmt_d(low, True)})" if low[0] == 1 else ""
        rows.append(["1", f"Pre-LN's max abs x and variance grow with LR; Peri-LN's stay much smaller (at LR {lr_s(hi)})",
                     "<br>".join(meas), f"**{verdict[0]}**: {verdict[1]}{note}", used])
    if {"post", "pre", "peri"} <= ns:
        def order(strict):
            ff = {n: first_fail(grid, n, margin, strict) for n in norms_of(grid)}
            fp, fr, fi = (math.inf if ff[n] is None else ff[n] for n in ("post", "pre", "peri"))
            if fp < fr < fi:
                return ff, (REP, "post < pre < peri")
            if fi < fr or fr < fp:
                return ff, (NOT, "the order is broken")
            return ff, (INC, "a tie on the factor-2 ladder, or no failure within the LRs run")

        ff, verdict = order(False)
        ff2, v2 = order(True)
        if v2 != verdict:
            verdict = (INC, f"{verdict[0]} by the mean rule ({verdict[1]}), {v2[0]} when a degradation must exceed 2 SE "
                            f"({v2[1]})")
        ndiv = sum(r.diverged for r in grid)
        how = (f"by degradation only: none of the {len(grid)} runs diverged" if ndiv == 0 else
               f"{ndiv} of {len(grid)} runs diverged")
        meas = ("first failing LR: " + ", ".join(f"{n} {lr_s(ff[n]) if ff[n] else 'none'}" for n in norms_of(grid)) +
                "; with > 2 SE: " + ", ".join(f"{n} {lr_s(ff2[n]) if ff2[n] else 'none'}" for n in norms_of(grid)) +
                "; diverged runs: " + ", ".join(f"{n} {sum(r.diverged for r in grid if r.norm == n)}/"
                                                f"{sum(r.norm == n for r in grid)}" for n in norms_of(grid)) +
                f"; val loss at LR {lr_s(lrs[-1])} minus at the best LR: " +
                ", ".join(f"{n} {fmt_d(sep(cell_vals(grid, n, lrs[-1])[1], cell_vals(grid, n, best_lr(grid, n)[0])[1]))}"
                          for n in norms_of(grid) if best_lr(grid, n)))
        rows.append(["2", "raising the LR, Post-LN fails first, then Pre-LN, Peri-LN last", meas,
                     f"**{verdict[0]}**: {verdict[1]}; {how}", list(grid)])
        best = {n: best_lr(grid, n) for n in norms_of(grid)}
        bruns = {n: cell_vals(grid, n, best[n][0])[1] for n in best if best[n]}
        if "peri" in bruns and len(bruns) > 1:
            other = min((n for n in bruns if n != "peri"), key=lambda n: mean_sd(bruns[n])[0])
            s = sep(bruns["peri"], bruns[other])
            v = decide(s[0], -1)
            meas = ("best-LR val loss: " + ", ".join(f"{n} {ms(bruns[n])} at {lr_s(best[n][0])}" for n in bruns) +
                    f"; peri - {other}: {fmt_d(s)}")
            used = [r for n in bruns for r in cell_vals(grid, n, best[n][0])[0]]
            rows.append(["2b", "Peri-LN reaches the lowest loss of the grid (with the smallest seed spread)", meas,
                         f"**{v[0]}**: {v[1]}", used])
        if "pre" in bruns and "peri" in bruns:
            s = sep(bruns["peri"], bruns["pre"])
            rows.append(["7", "Pre-LN and Peri-LN about equal in loss (the replication's counter-evidence)",
                         f"peri - pre at their best LRs: {fmt_d(s)}",
                         "**{}**: {}".format(*decide(s[0], 0)),
                         [r for n in ("pre", "peri") for r in cell_vals(grid, n, best[n][0])[0]]])
    if "peri" in ns and lr in lrs and len(ns) > 1:
        fl = {n: cell_vals(grid, n, lr, flat_end)[1] for n in norms_of(grid)}
        fl = {n: v for n, v in fl.items() if v}
        if "peri" in fl and len(fl) > 1:
            other = min((n for n in fl if n != "peri"), key=lambda n: mean_sd(fl[n])[0])
            s = sep(fl["peri"], fl[other], log=True)
            v = decide(s[0], -1)
            rows.append(["3", f"Peri-LN's per-block gradient norms are the flattest over depth (end, LR {lr_s(lr)})",
                         "max / min over blocks: " + ", ".join(f"{n} {ms(x, True)}" for n, x in fl.items()) +
                         f"; peri / {other}: {fmt_d(s, True)}", f"**{v[0]}**: {v[1]}",
                         [r for n in fl for r in cell_vals(grid, n, lr, flat_end)[0]]])
    if {"pre", "post"} <= ns and lr in lrs:
        pre0 = [r.diags[0]["grad_block"][0] / r.diags[0]["grad_block"][-1] for r in cell_vals(grid, "pre", lr)[0]
                if r.diags and r.diags[0]["diag"] == 0 and r.diags[0]["grad_block"][-1]]
        post1 = [num(r.diags[-1]["grad_block"][0]) / num(r.diags[-1]["grad_block"][-1])
                 for r in cell_vals(grid, "post", lr)[0] if r.diags and num(r.diags[-1]["grad_block"][-1]) > 0]
        if pre0 and post1:
            a, b = all(x > 1 for x in pre0), all(x < 1 for x in post1)
            verdict = (REP, "in every seed") if a and b else \
                (NOT, "in no seed") if not any(x > 1 for x in pre0) and not any(x < 1 for x in post1) else \
                (INC, f"pre decreasing: {sum(x > 1 for x in pre0)}/{len(pre0)} seeds, post's first block the "
                      f"smaller: {sum(x < 1 for x in post1)}/{len(post1)} seeds")
            rows.append(["8", f"Pre-LN's per-block gradient norm decreases with depth (step 0); Post-LN's first blocks "
                              f"get the smallest (end; LR {lr_s(lr)})",
                         f"grad block 1 / block L: pre at step 0 {ms(pre0, True)}, post at the end {ms(post1, True)}",
                         f"**{verdict[0]}**: {verdict[1]}",
                         cell_vals(grid, "pre", lr)[0] + cell_vals(grid, "post", lr)[0]])
    if {"pre", "peri"} <= ns:
        a = [r.spikes for r in grid if r.norm == "pre" and (r.ok or r.diverged)]
        b = [r.spikes for r in grid if r.norm == "peri" and (r.ok or r.diverged)]
        s = sep(a, b)
        rows.append(["4", "Pre-LN has more gradient spikes than Peri-LN (every grid run)",
                     f"spikes per run: pre {ms(a, True)} (total {sum(a)}), peri {ms(b, True)} (total {sum(b)}); "
                     f"pre - peri: {fmt_d(s)}", "**{}**: {}".format(*decide(s[0], +1)),
                     [r for r in grid if r.norm in ("pre", "peri")]])
    for cl, what, want, ref, runs in ablations:
        for n in norms_of(runs):
            for alr in lrs_of(runs):
                rs = [r for r in runs if r.norm == n and r.lr == alr]
                base = [r for r in grid if r.norm == (ref or n) and r.lr == alr]
                s = sep([r.val for r in rs if r.ok], [r.val for r in base if r.ok])
                rows.append([cl, f"{what} ({n}, LR {lr_s(alr)})" if not ref else f"{what} (LR {lr_s(alr)})",
                             f"variant {ms([r.val for r in rs if r.ok])}, {ref or n} {ms([r.val for r in base if r.ok])}; "
                             f"variant - {ref or n}: {fmt_d(s)}",
                             "**{}**: {}".format(*decide(s[0], want)), rs + base])
    fp16 = dict(prec).get("fp16", [])
    if fp16 and {"pre", "peri"} <= set(norms_of(fp16)):
        top = max(lr for lr in lrs_of(fp16) if any(r.norm == "peri" and r.lr == lr for r in fp16))
        frac = {n: [max(num(v) for d in r.diags for v in d["x_max"]) / FORMAT_MAX["fp16"]
                    for r in fp16 if r.norm == n and r.lr == top and r.diags] for n in ("pre", "peri")}
        s = sep(frac["pre"], frac["peri"], log=True)
        ovf = sum(sum(d.get("overflow_fwd", [0])) + sum(d.get("overflow_bwd", [0])) for r in fp16 for d in r.diags)
        ndiv = sum(r.diverged for r in fp16)
        gap = {n: sep([r.val for r in fp16 if r.norm == n and r.lr == top and r.ok],
                      [r.val for r in grid if r.norm == n and r.lr == top and r.ok and
                       r.seed in {x.seed for x in fp16 if x.norm == n and x.lr == top}]) for n in ("pre", "peri")}
        v = decide(s[0], +1)
        rows.append(["6", f"Pre-LN's activations approach fp16's limit, Peri-LN's stay far below (fp16, LR {lr_s(top)})",
                     f"largest abs x / 65504: pre {ms(frac['pre'], True)}, peri {ms(frac['peri'], True)}; "
                     f"pre / peri {fmt_d(s, True)}; fp16 - fp32 val loss (same seeds): pre {fmt_d(gap['pre'])}, "
                     f"peri {fmt_d(gap['peri'])}; overflows {ovf} and diverged runs {ndiv} over all "
                     f"{len(fp16)} fp16 runs", f"**{v[0]}**: {v[1]}" + (" (as headroom: nothing overflowed)" if ovf == 0 else ""),
                     [r for r in fp16 if r.lr == top and r.norm in ("pre", "peri")]])
    if deep and "post" in norms_of(deep):
        pd = [r for r in deep if r.norm == "post"]
        k = sum(r.diverged for r in pd)
        st = [r.val for r in pd if r.ok]
        rows.append(["10", "Post-LN diverges at 24 blocks", f"post at 24 blocks: {k}/{len(pd)} diverged at LR "
                     + ", ".join(lr_s(x) for x in lrs_of(pd)) + (f"; finished runs' val loss {ms(st)}" if st else ""),
                     f"**{REP}**: {k} of {len(pd)} runs diverged" if k else
                     f"**{NOT}**: none of its {len(pd)} runs diverged", pd])
    for cl, n, what in (("11", "mix", "Mix-LN's loss is at or below Pre-LN's"), ("14", "lns", "LNS beats Pre-LN")):
        if not ({n, "pre"} <= ns and best_lr(grid, "pre")):
            continue
        plr = best_lr(grid, "pre")[0]
        if cl == "11":
            blr = best_lr(grid, n)[0] if best_lr(grid, n) else plr
            s = sep(cell_vals(grid, n, blr)[1], cell_vals(grid, "pre", plr)[1])
            v = {None: decide(None, 0), 1: (NOT, "above by more than 2 SE"), 0: (REP, "within 2 SE (\"at\")"),
                 -1: (REP, "below by more than 2 SE")}[s[0]]
            at = f"at their best LRs ({lr_s(blr)}, {lr_s(plr)})"
        else:
            blr = plr
            s = sep(cell_vals(grid, n, plr)[1], cell_vals(grid, "pre", plr)[1])
            v = decide(s[0], -1)
            at = f"at Pre-LN's best LR {lr_s(plr)}"
        used = cell_vals(grid, n, blr)[0] + cell_vals(grid, "pre", plr)[0]
        rows.append([cl, what, f"12 blocks, {n} - pre {at}: {fmt_d(s)}", f"**{v[0]}**: {v[1]} (12 blocks)", used])
    rows += depth_rows(grid, deep)
    if {"pre", "lns"} <= ns and lr in lrs:
        a, b = cell_vals(grid, "pre", lr, var_end), cell_vals(grid, "lns", lr, var_end)
        s = sep(a[1], b[1], log=True)
        rows.append(["12", f"Pre-LN's deep-block variance is far above LNS's (Var x_(L+1), end, LR {lr_s(lr)})",
                     f"pre {ms(a[1], True)}, lns {ms(b[1], True)}; pre / lns {fmt_d(s, True)}",
                     "**{}**: {}".format(*decide(s[0], +1)), a[0] + b[0]])
    if gemma:
        for glr in lrs_of(gemma):
            a = [r for r in gemma if r.lr == glr]
            b = [r for r in grid if r.norm == "peri" and r.lr == glr]
            s = sep([r.val for r in a if r.ok], [r.val for r in b if r.ok])
            rows.append(["cross 1", f"Peri-LN and Gemma's parameterisation train alike (LR {lr_s(glr)})",
                         f"gemma {ms([r.val for r in a if r.ok])}, peri {ms([r.val for r in b if r.ok])}; "
                         f"gemma - peri: {fmt_d(s)}", "**{}**: {}".format(*decide(s[0], 0)), a + b])
    if time_runs and {"pre", "peri"} <= set(norms_of(time_runs)):
        rows += time_rows(time_runs)
    return rows


def depth_rows(grid, deep):
    """claims 11 and 14 on the 24-block pass: Mix-LN and LNS against Pre-LN, each at its best LR of the pass;
    for LNS also whether its lead is larger than at 12 blocks (each at its best LR of the grid)"""
    rows = []
    for cl, n, what in (("11", "mix", "Mix-LN's loss is at or below Pre-LN's at 24 blocks"),
                        ("14", "lns", "LNS beats Pre-LN at 24 blocks, by more than at 12")):
        if not (deep and best_lr(deep, n) and best_lr(deep, "pre")):
            continue
        bn, bp = best_lr(deep, n)[0], best_lr(deep, "pre")[0]
        a, b = cell_vals(deep, n, bn), cell_vals(deep, "pre", bp)
        s = sep(a[1], b[1])
        meas = (f"24 blocks (LRs {', '.join(lr_s(x) for x in lrs_of(deep))}), {n} - pre at their best LRs "
                f"({lr_s(bn)}, {lr_s(bp)}): {fmt_d(s)}")
        if cl == "11":
            v = {None: decide(None, 0), 1: (NOT, "above by more than 2 SE"), 0: (REP, "within 2 SE (\"at\")"),
                 -1: (REP, "below by more than 2 SE")}[s[0]]
        else:  # the lead at 24 blocks, then its growth from 12 (the difference of the two differences)
            v = decide(s[0], -1)
            g = (best_lr(grid, n), best_lr(grid, "pre")) if grid else (None, None)
            s12 = sep(cell_vals(grid, n, g[0][0])[1], cell_vals(grid, "pre", g[1][0])[1]) if all(g) else (None,) * 3
            if s[0] == -1 and s12[2] is None:
                v = (INC, "LNS leads at 24 blocks by more than 2 SE; no 12-block spread to judge its growth by")
            elif s[0] == -1:
                dd, se = s[1] - s12[1], math.sqrt(s[2] ** 2 + s12[2] ** 2)
                meas += (f"; 12 blocks, at their best LRs ({lr_s(g[0][0])}, {lr_s(g[1][0])}): {fmt_d(s12)}; "
                         f"24 minus 12: {dd:+.3f} +- {se:.3f}")
                v = ((REP, "LNS leads at 24 blocks, and by more than at 12, each by more than 2 SE") if dd < -2 * se else
                     (INC, "LNS leads at 24 blocks by more than 2 SE; the lead's growth from 12 blocks is within 2 SE")
                     if dd <= 2 * se else (NOT, "LNS leads at 24 blocks, but by less than at 12 (more than 2 SE)"))
        rows.append([cl + " (24 blocks)", what, meas, f"**{v[0]}**: {v[1]}", a[0] + b[0]])
    return rows


def over_time(runs, an, bn, points, log):
    """per LR of the time sweep: sep(an's runs, bn's) at the first and the last step that every run of both has in
    points(run) ({step: value}). Returns (texts, [(sep at first, sep at last)], runs used)."""
    meas, ss, used = [], [], []
    for lr in lrs_of(runs):
        a, b = [r for r in runs if r.norm == an and r.lr == lr], [r for r in runs if r.norm == bn and r.lr == lr]
        pa, pb = [points(r) for r in a], [points(r) for r in b]
        steps = sorted(set.intersection(*[set(p) for p in pa + pb])) if a and b else []
        if len(steps) < 2:
            continue
        s0, s1 = (sep([p[st] for p in pa], [p[st] for p in pb], log=log) for st in (steps[0], steps[-1]))
        ss.append((s0, s1))
        used += a + b
        meas.append(f"LR {lr_s(lr)}: {an} {'/' if log else '-'} {bn} {fmt_d(s0, log)} at step {steps[0]}, "
                    f"{fmt_d(s1, log)} at step {steps[-1]}")
    return meas, ss, used


def time_rows(runs):
    """claims 1 and 2 over training (the time sweep): does Peri-LN's loss lead over Pre-LN grow, and does Pre-LN's
    largest activation pull away from Peri-LN's, from the first evaluation (diagnostic pass) to the last, at every LR?"""
    rows = []
    for cl, what, an, bn, points, log, want, rep, gap in (
            ("1, 2 (time)", "the Peri-LN minus Pre-LN loss gap widens with training time and LR", "peri", "pre",
             lambda r: r.vals, False, -1, "at every LR Peri-LN's lead at the last step exceeds 2 SE and its first gap",
             "Peri-LN ends worse by more than 2 SE at some LR"),
            ("1 (time)", "Pre-LN's largest activation pulls away from Peri-LN's over training (max abs x over all depths)",
             "pre", "peri", lambda r: {d["diag"]: max(num(v) for v in d["x_max"]) for d in r.diags if d["diag"] > 0},
             True, 1, "at every LR Pre-LN's max abs x ends above Peri-LN's by more than 2 SE, by a larger ratio than at "
             "the first pass", "Pre-LN's max abs x ends below Peri-LN's by more than 2 SE at some LR")):
        meas, ss, used = over_time(runs, an, bn, points, log)
        if not meas:
            continue
        if any(s1[0] is None for _, s1 in ss):
            v = decide(None, want)
        elif all(s1[0] == want and want * (s1[1] - s0[1]) > 0 for s0, s1 in ss):
            v = (REP, rep)
        elif any(s1[0] == -want for _, s1 in ss):
            v = (NOT, gap)
        elif all(s1[0] == want for _, s1 in ss):
            v = (INC, "the difference at the last step exceeds 2 SE at every LR, but did not grow from the first at some LR")
        else:
            v = (INC, "the difference at the last step is within 2 SE at some LR")
        rows.append([cl, what, "; ".join(meas), f"**{v[0]}**: {v[1]}", used])
    return rows


def runs_time(runs):
    """the summed wall time (time_s) of runs, each counted once, as text"""
    s = sum(r.time_s for r in {r.dir: r for r in runs}.values())
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 5400 else f"{s / 3600:.1f} h"


def verdict_table(rows):
    if not rows:
        return ""
    lead = lambda c: int(re.match(r"\d+", c).group()) if re.match(r"\d+", c) else 100  # noqa: E731
    rows = sorted(rows, key=lambda row: lead(row[0]))
    return ("## Verdicts\n\nEach claim (numbered as in docs/methods.md §6) from the runs that speak to it. Numbers: "
            "mean +- sample sd over the finished seeds, n stated. A difference is decided when it is more than twice "
            "its standard error (sd^2/n of each side; a side with one seed borrows the other side's sd; neither: "
            "inconclusive); ratios (x r) compare log10 values the same way. `time`: the summed wall time of the "
            "runs used (one thread each).\n\n"
            + table(["#", "claim", "measured", "verdict", "time"],
                    [[c, w, m, v, runs_time(rs)] for c, w, m, v, rs in rows]))


def redundancy_row(grid):
    """claims 9, 13 from the layer analysis of the best-LR run of pre, mix, lns (first seed only)"""
    vals, used = {}, []
    for n in ("pre", "mix", "lns"):
        b = best_lr(grid, n)
        rs = sorted((r for r in grid if b and r.norm == n and r.lr == b[0]), key=lambda r: r.seed)
        p = os.path.join(rs[0].dir, "analyze.json") if rs else ""
        if os.path.exists(p):
            with open(p) as f:
                an = json.load(f)
            L = an["layers"]
            k = max(1, L // 3)
            vals[n] = (sum(row[0] for row in an["angular"][L - k:]) / k, sum(an["skip_delta"][L - k:]) / k, rs[0].seed)
            used.append(rs[0])
    if "pre" not in vals or len(vals) < 2:
        return []
    meas = "last third of blocks, mean d(l,1) / removal delta (nats): " + ", ".join(
        f"{n} {a:.3f} / {d:.4f} (seed {sd})" for n, (a, d, sd) in vals.items())
    dirs = ", ".join(f"{n} {'above' if vals[n][0] > vals['pre'][0] and vals[n][1] > vals['pre'][1] else 'not above'} pre"
                     for n in vals if n != "pre")
    return [["9, 13", "Mix-LN and LNS raise the deep blocks' angular distance and removal increase over Pre-LN "
             "(each placement's best LR)", meas, f"**{INC}**: one seed (the analysis runs on the first seed only); "
             f"direction on both measures: {dirs}", used]]


def runs_overview(sweeps):
    """per sweep: finished / diverged / failed runs per seed, and their summed time"""
    rows = []
    for name, runs in sweeps:
        if not runs:
            continue
        per = []
        for sd in sorted({r.seed for r in runs}):
            rs = [r for r in runs if r.seed == sd]
            per.append(f"{sd}: {sum(r.ok for r in rs)}" + (f" (+{sum(r.diverged for r in rs)} div)" if any(r.diverged for r in rs) else ""))
        bad = sum(not r.ok and not r.diverged for r in runs)
        rows.append([name, len(runs), ", ".join(per) + (f"; {bad} failed" if bad else ""), runs_time(runs)])
    if not rows:
        return ""
    return ("## Runs\n\nRuns with a result per sweep; per seed: finished (and diverged) runs; time: their summed wall "
            "time (time_s, one thread each).\n\n" + table(["sweep", "runs", "per seed", "time"], rows))


def protocol(root, arch, margin, lr):
    sfx = "" if arch == "gpt2" else "-llama"
    names = [f"grid-{arch}", f"grid-extra{sfx}", f"prec-fp16{sfx}", f"prec-bf16{sfx}", f"depth24{sfx}",
             f"abl-gain-frozen{sfx}", f"abl-outonly{sfx}", f"abl-embnorm-off{sfx}",
             "abl-rmsnorm" if arch == "gpt2" else "abl-layernorm-llama", f"cross-gemma{sfx}", f"time1500{sfx}"]
    sw = {n: load_sweep(os.path.join(root, n)) for n in names}
    S = lambda name: sw[name]  # noqa: E731
    grid = S(f"grid-{arch}")
    extra = S(f"grid-extra{sfx}")
    prec = [(dt, S(f"prec-{dt}{sfx}")) for dt in ("fp16", "bf16")]
    deep = S(f"depth24{sfx}")
    nt = "abl-rmsnorm" if arch == "gpt2" else "abl-layernorm-llama"
    abl = [("5", "a frozen output gain is worse than a learned one", +1, "peri", S(f"abl-gain-frozen{sfx}")),
           ("5", "output-only (OLMo 2) is worse than Peri-LN", +1, "peri", S(f"abl-outonly{sfx}")),
           ("5", "the embedding norm helps (Peri-LN without it is worse)", +1, "peri", S(f"abl-embnorm-off{sfx}")),
           ("5", "LayerNorm and RMSNorm agree" + (" (RMSNorm against the grid's LayerNorm)" if arch == "gpt2" else
                                                  " (LayerNorm against the grid's RMSNorm)"), 0, None, S(nt))]
    out = [f"# Protocol claims, {arch} ({root})\n"]
    rows = claim_rows(grid, deep, prec, abl, S(f"cross-gemma{sfx}"), S(f"time1500{sfx}"), margin, lr) if grid else []
    out.append(verdict_table(rows + (redundancy_row(grid) if grid else [])))
    out.append(runs_overview(list(sw.items())))
    if grid or extra:
        L = len(last_diag(grid[0])["grad_block"]) if grid and grid[0].diags else "?"
        out.append(grid_tables(grid + extra, margin, f"LR grid ({arch}, {L} blocks)"))
        common = lr if any(r.lr == lr for r in grid) else (lrs_of(grid)[len(lrs_of(grid)) // 2] if grid else None)
        if common is not None:
            out.append(depth_profile(grid, common, "Activations and gradients vs depth (claims 1, 3, 6, 8, 12)"))
        out.append(over_lr(grid, lambda d: max(num(v) for v in d["x_max"]), "max abs x at the end vs LR (claims 1, 6)",
                           "Largest abs(x) over all depths at the last diagnostic pass, mean +- sd over finished seeds."))
        out.append(over_lr(grid, lambda d: num(d["x_var"][-1]), "Var x_(L+1) at the end vs LR (claims 1, 12)",
                           "Variance of the stream after the last block at the last diagnostic pass."))
    out.append(precision_table([(dt, r) for dt, r in prec if r], grid, arch))
    if deep:
        out.append(depth_table(grid, deep))
        dl = lr if any(r.lr == lr for r in deep) else lrs_of(deep)[-1]
        out.append(depth_profile(deep, dl, "Activations and gradients vs depth, 24 blocks"))
    out.append(ablation_table([("frozen output gain", "peri", S(f"abl-gain-frozen{sfx}")),
                               ("output-only (OLMo 2)", "peri", S(f"abl-outonly{sfx}")),
                               ("embedding norm off", "peri", S(f"abl-embnorm-off{sfx}")),
                               ("RMSNorm" if arch == "gpt2" else "LayerNorm", None, S(nt)),
                               ("Gemma (1+s) gains, sqrt(d) embedding", "peri", S(f"cross-gemma{sfx}"))], grid))
    out.append(time_tables(S(f"time1500{sfx}")))
    out.append(redundancy_table([(f"grid-{arch}", grid), (f"depth24{sfx}", deep)]))
    text = "\n".join(x for x in out if x)
    if len(out) == 1 or text.strip() == out[0].strip():
        fail(f"no protocol sweeps with finished runs under {root} (see experiments/protocol.sh)")
    print(text.rstrip() + "\n")


# ------------------------------------------------------------------ one sweep (the older table)

def one_sweep(sweep, lr, seed, analyze):
    runs = load_sweep(sweep)
    norms = norms_of(runs)
    if not norms:
        fail(f"no finished runs in {sweep}")
    print("| placement | Var x_2/x_7/x_L+1 (step 0) | Var x_2/x_7/x_L+1 (end) | grad block 1/L (step 0) | "
          "grad block 1/L (end) | max abs x (end) | max/median | spikes (all runs) | d(l,1) last 4 | skip delta last 4 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in norms:
        rs = [r for r in runs if r.norm == n and lr_s(r.lr) == lr_s(lr) and r.seed == seed]
        if not rs or not rs[0].diags:
            continue
        d0, d1 = rs[0].diags[0], rs[0].diags[-1]
        var = lambda d: "/".join(f"{num(d['x_var'][i]):.3g}" for i in (1, 6, len(d["x_var"]) - 1))  # noqa: E731
        grad = lambda d: f"{num(d['grad_block'][0]):.3g}/{num(d['grad_block'][-1]):.3g}"  # noqa: E731
        spikes = sum(r.spikes for r in runs if r.norm == n)
        an_path = os.path.join(rs[0].dir, analyze)
        d1_deep = skip_deep = "-"
        if os.path.exists(an_path):
            with open(an_path) as f:
                an = json.load(f)
            d = [row[0] for row in an["angular"][-4:]]  # row l: d(l, 1), d(l, 2), ...
            d1_deep = f"{sum(d) / 4:.3f}"
            skip_deep = f"{sum(an['skip_delta'][-4:]) / 4:.4f}"
        print(f"| {n} | {var(d0)} | {var(d1)} | {grad(d0)} | {grad(d1)} | {max(num(v) for v in d1['x_max']):.3g} | "
              f"{max(num(v) for v in d1['x_max_over_median']):.3g} | {spikes} | {d1_deep} | {skip_deep} |")


def main():
    head, usage, rest = __doc__.split("\n\n", 2)
    ap = argparse.ArgumentParser(description=head + "\n\n" + rest, usage=usage.split("\n", 1)[1].strip(),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", help="the protocol's ROOT, or one sweep directory")
    ap.add_argument("--arch", default="gpt2", choices=["gpt2", "llama"], help="which sweeps of ROOT (llama: grid-llama, *-llama) [gpt2]")
    ap.add_argument("--margin", type=float, default=0.05, help="nats above the best mean val loss that count as degraded [0.05]")
    ap.add_argument("--lr", type=float, default=0.002, help="the LR of the depth tables (ROOT) or of the per-layer table (SWEEP_DIR) [0.002]")
    ap.add_argument("--seed", type=int, default=1337, help="the seed of the per-layer table of one sweep [1337]")
    ap.add_argument("--analyze", default="analyze.json", help="the layer analysis file in the run directory (one sweep) [analyze.json]")
    ap.add_argument("--best-lrs", type=int, default=0, metavar="K", help="print the sweep's K best LRs (comma-separated) and exit")
    ap.add_argument("--best-runs", action="store_true", help="print each placement's best-LR run directory (first seed) and exit")
    a = ap.parse_args()
    if not os.path.isdir(a.path):
        fail(f"'{a.path}' is not a directory")
    if not (a.margin >= 0):
        fail(f"--margin {a.margin}: must be >= 0")
    if a.best_lrs or a.best_runs:
        runs = load_sweep(a.path)
        if not runs:
            fail(f"no finished runs in {a.path}")
        if a.best_lrs:
            lrs = best_lrs(runs, a.best_lrs)
            if not lrs:
                fail(f"{a.path}: no LR where every run finished")
            print(",".join(lr_s(x) for x in lrs))
        else:
            for n in norms_of(runs):
                b = best_lr(runs, n)
                if b:
                    print(min((r for r in runs if r.norm == n and r.lr == b[0]), key=lambda r: r.seed).dir)
        return
    if load_sweep(a.path):
        one_sweep(a.path, a.lr, a.seed, a.analyze)
    else:
        protocol(a.path, a.arch, a.margin, a.lr)


if __name__ == "__main__":
    main()
