"""Reads a normlab run's TensorBoard event files back with the `tensorboard` package and checks them
against the run's metrics.jsonl.

Usage:
  tb_check.py RUN_DIR [--tb DIR] [--same-as OTHER_TB_DIR]
      RUN_DIR holds metrics.jsonl; the event files are in DIR (default RUN_DIR).
      Checks, through tensorboard's EventAccumulator, that every per-step value of metrics.jsonl
      (loss, val_loss, lr, grad_norm, tok_per_s) is the scalar train/<key> at that step and that
      every "diag" record's values are the scalars diag_<key>/<i> and diag_norm_<stat>/<site>, with
      no other steps; that each diagnostic histogram has the right num, min, max, sum, sum of
      squares, increasing limits ending at max and counts that hold the values; and that every
      record passes tensorboard's own TFRecord reader (length and data CRCs).
      --same-as: the summaries of the two directories, read file by file in name order with
      wall times and train/tok_per_s values left out, are the same multiset (a resumed run against
      an uninterrupted one).

Runs in the virtual environment of scripts/requirements.txt (build/venv/bin/python). Prints "ok" and
exits 0, or prints each mismatch and exits 1.
"""
import json
import math
import os
import sys

from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.compat import tf
from tensorboard.compat.proto import event_pb2

# (absolute, relative) tolerance of each metrics.jsonl key: its printed precision plus float32
TOL = {
    "loss": (5.1e-7, 1.2e-7),
    "val_loss": (5.1e-7, 1.2e-7),
    "lr": (0.0, 5.2e-6),
    "grad_norm": (0.0, 5.2e-6),
    "tok_per_s": (0.051, 1.2e-7),
}
DIAG_TOL = (1e-30, 6.2e-7)  # %.7g in metrics.jsonl, float32 in the event
STREAM_KEYS = ["x_var", "x_rms", "x_max"]
BLOCK_KEYS = ["grad_block", "grad_qkv", "grad_proj", "grad_fc", "grad_mlp_proj"]
SITE_KEYS = ["in_rms", "out_rms", "gain_mean"]
MAX_BUCKETS = 16

errors = []


def fail(msg):
    errors.append(msg)
    print("  " + msg)


def close(got, want, tol):
    if want is None:
        return math.isnan(got)
    return abs(got - want) <= tol[0] + tol[1] * abs(want)


def event_files(d):
    return sorted(os.path.join(d, f) for f in os.listdir(d) if "tfevents" in f)


def read_records(path):
    """every record of one file through tensorboard's TFRecord reader, which checks both CRCs"""
    reader = tf.pywrap_tensorflow.PyRecordReader_New(path, 0, None, None)
    out = []
    while True:
        try:
            reader.GetNext()
        except tf.errors.OutOfRangeError:
            return out
        out.append(event_pb2.Event.FromString(reader.record()))


def width(n):
    return max(2, len(str(n - 1)))


def check_scalars(acc, tag, want, tol):
    """want: {step: value}"""
    try:
        got = acc.Scalars(tag)
    except KeyError:
        return fail("no scalar %s" % tag)
    steps = [e.step for e in got]
    if steps != sorted(want):
        return fail("%s: steps %s, metrics.jsonl %s" % (tag, steps[:20], sorted(want)[:20]))
    for e in got:
        if not close(e.value, want[e.step], tol):
            fail("%s at step %d: %r, metrics.jsonl %r" % (tag, e.step, e.value, want[e.step]))


def check_histogram(tag, step, h, vals):
    fin = sorted(v for v in vals if v is not None)
    if not fin:
        return fail("%s at step %d: a histogram without finite values" % (tag, step))
    lim, cnt = list(h.bucket_limit), list(h.bucket)
    tol = lambda v: DIAG_TOL[1] * abs(v) + 1e-300
    if h.num != len(fin) or sum(cnt) != len(fin):
        fail("%s at step %d: num %g, counts sum %g, finite values %d" % (tag, step, h.num, sum(cnt), len(fin)))
    if abs(h.min - fin[0]) > tol(fin[0]) or abs(h.max - fin[-1]) > tol(fin[-1]):
        fail("%s at step %d: min/max %g/%g, values %g/%g" % (tag, step, h.min, h.max, fin[0], fin[-1]))
    s, sq = sum(fin), sum(v * v for v in fin)
    if abs(h.sum - s) > 1e-6 * sum(abs(v) for v in fin) + 1e-300 or abs(h.sum_squares - sq) > 2e-6 * sq + 1e-300:
        fail("%s at step %d: sum %r / sum of squares %r, values give %r / %r" % (tag, step, h.sum, h.sum_squares, s, sq))
    if not (1 <= len(lim) == len(cnt) <= MAX_BUCKETS) or any(b <= a for a, b in zip(lim, lim[1:])) or lim[-1] != h.max:
        return fail("%s at step %d: bucket limits %s (counts %s, max %r)" % (tag, step, lim, cnt, h.max))
    for b in range(len(lim)):
        lo = h.min if b == 0 else lim[b - 1]
        hi = lim[b]
        last = b == len(lim) - 1
        inside = lambda v, e: lo + e <= v and (v <= hi - e if last else v < hi - e)
        sure = sum(1 for v in fin if inside(v, tol(v)))    # in the bucket whatever the rounding
        maybe = sum(1 for v in fin if inside(v, -tol(v)))  # in it, or within rounding of an edge
        if not sure <= cnt[b] <= maybe:
            fail("%s at step %d: bucket %d [%r, %r%s holds %g values, expected %d..%d" % (tag, step, b, lo, hi, "]" if last else ")", cnt[b], sure, maybe))


def check_run(run_dir, tb_dir):
    steps, diags = [], []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if "diag" in r:
                diags.append(r)
            elif "step" in r and "diverged" not in r:
                steps.append(r)
    for path in event_files(tb_dir):
        read_records(path)  # raises on a bad length or CRC
    acc = ea.EventAccumulator(tb_dir, size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0})
    acc.Reload()
    for key in TOL:
        want = {r["step"]: r[key] for r in steps if key in r}
        check_scalars(acc, "train/" + key, want, TOL[key])
    if not diags:
        return
    check_scalars(acc, "diag_loss", {r["diag"]: r["loss"] for r in diags}, DIAG_TOL)
    check_scalars(acc, "diag_grad_total", {r["diag"]: r["grad_total"] for r in diags}, DIAG_TOL)
    hist = {t: {e.step: e.histogram_value for e in acc.Histograms(t)} for t in acc.Tags()["histograms"]}
    series = [(k, [r[k] for r in diags]) for k in STREAM_KEYS + BLOCK_KEYS]
    series += [("norm_" + k, [[s[k] for s in r["norms"]] for r in diags]) for k in SITE_KEYS]
    for key, per_record in series:
        tag = "diag_" + key
        if sorted(hist.get(tag, {})) != [r["diag"] for r in diags]:
            fail("%s: histogram steps %s, diag records %s" % (tag, sorted(hist.get(tag, {})), [r["diag"] for r in diags]))
            continue
        for r, vals in zip(diags, per_record):
            check_histogram(tag, r["diag"], hist[tag][r["diag"]], vals)
    for key in STREAM_KEYS + BLOCK_KEYS:
        n = len(diags[0][key])
        for i in range(n):
            check_scalars(acc, "diag_%s/%0*d" % (key, width(n), i), {r["diag"]: r[key][i] for r in diags}, DIAG_TOL)
    for k in SITE_KEYS:
        for j, site in enumerate(s["site"] for s in diags[0]["norms"]):
            check_scalars(acc, "diag_norm_%s/%s" % (k, site), {r["diag"]: r["norms"][j][k] for r in diags}, DIAG_TOL)


def summaries(tb_dir):
    """(step, tag, value) of every summary value in the directory, tok_per_s values left out"""
    out = []
    for path in event_files(tb_dir):
        for e in read_records(path):
            for v in e.summary.value:
                if v.HasField("histo"):
                    h = v.histo
                    val = (h.min, h.max, h.num, h.sum, h.sum_squares, tuple(h.bucket_limit), tuple(h.bucket))
                else:
                    val = None if v.tag == "train/tok_per_s" else v.simple_value
                out.append((e.step, v.tag, val))
    return sorted(out, key=repr)


def main(argv):
    if not argv or argv[0].startswith("-"):
        print(__doc__)
        return 2
    run_dir, tb_dir, other = argv[0], argv[0], None
    i = 1
    while i < len(argv):
        if argv[i] in ("--tb", "--same-as") and i + 1 < len(argv):
            if argv[i] == "--tb":
                tb_dir = argv[i + 1]
            else:
                other = argv[i + 1]
            i += 2
        else:
            print("tb_check.py: unknown argument %r" % argv[i], file=sys.stderr)
            return 2
    if not event_files(tb_dir):
        fail("no event file in %s" % tb_dir)
    else:
        check_run(run_dir, tb_dir)
    if other is not None:
        a, b = summaries(tb_dir), summaries(other)
        if a != b:
            extra = [x for x in a if x not in b][:5]
            missing = [x for x in b if x not in a][:5]
            fail("%s and %s differ: %d and %d values; only in the first %s; only in the second %s" % (tb_dir, other, len(a), len(b), extra, missing))
    print("ok" if not errors else "%d mismatches" % len(errors))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
