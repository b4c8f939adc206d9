#!/usr/bin/python3
"""Float64 PyTorch reference for the normlab C test suite.

Usage:
  ref_check.py grad CASE_DIR [CASE_DIR ...]
      Each CASE_DIR holds model.safetensors (a normlab export) and
      batch.safetensors (tensors tokens I32 [B, T'+1], lrs F32 [K];
      metadata weight_decay, clip, beta1, beta2, adam_eps).  Writes
      CASE_DIR/ref.safetensors with F32 tensors:
        loss [1]            loss at the given weights
        grad.<param> [...]  gradient of every trainable parameter
        losses [K+1]        loss after k AdamW steps on the same batch,
                            step k using lr = lrs[k] (losses[0] == loss)
        step.<param> [...]  the change of every trainable parameter over
                            the K steps (ngpt: with the projection onto
                            the unit sphere after each step)
        f32dev.grad.<param> [1], f32dev.losses [1]
                            the case's conditioning: the relative (2-norm)
                            error of the same computation in float32
  ref_check.py eval --model M.safetensors --data FILE [--max-windows K]
                    [--stride S]
      Mean cross-entropy over windows of FILE (raw bytes, or an llm.c uint16
      token shard if FILE ends in .bin): consecutive windows, or windows
      starting every S tokens of which the first scores all targets and the
      others their last S.  The last line printed is the JSON object
      {"loss": <float>, "tokens": <count>}.
  ref_check.py mc --model M.safetensors --task TASK --data FILE.jsonl
      Zero-shot multiple choice: one JSON line {"ll": [...]} per item with
      log P(continuation | context) of each candidate, in the prompt formats
      of lm-evaluation-harness (byte-level models).

Exits non-zero with a message on stderr on any error.  Runs with Debian's
torch: /usr/bin/python3.
"""

import argparse
import json
import os
import re
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "python"))
import normlab_torch as nt  # noqa: E402

# llm.c token shard: 256 int32 header (magic, version, token count).
SHARD_MAGIC = 20240520
SHARD_VERSION = 1
SHARD_HEADER_INTS = 256

# Eval batches hold at most this many logits (2^25 float64 = 256 MiB).
EVAL_MAX_LOGITS = 2 ** 25


def _check_tokens(tokens, vocab, where):
    """Raise ValueError unless every token id lies in [0, vocab)."""
    if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab):
        raise ValueError(f"{where}: token ids span [{tokens.min()}, "
                         f"{tokens.max()}], outside vocab [0, {vocab})")


def _meta_float(meta, key, where):
    """Parse metadata value `key` as a float, naming the file on failure."""
    if key not in meta:
        raise ValueError(f"{where}: metadata is missing '{key}'")
    try:
        return float(meta[key])
    except ValueError:
        raise ValueError(f"{where}: metadata '{key}' = {meta[key]!r} is not "
                         f"a number") from None


def run_grad_case(case_dir):
    """Compute the reference loss, gradients and AdamW trajectory of a case.

    Returns a one-line summary.  ref.safetensors is written atomically; a
    stale one is removed first so a failure never leaves old results.
    """
    out_path = os.path.join(case_dir, "ref.safetensors")
    if os.path.exists(out_path):
        os.remove(out_path)

    model_path = os.path.join(case_dir, "model.safetensors")
    batch_path = os.path.join(case_dir, "batch.safetensors")
    batch, meta = nt.read_safetensors(batch_path)
    for key in ("tokens", "lrs"):
        if key not in batch:
            raise ValueError(f"{batch_path}: missing tensor '{key}'")
    tokens = batch["tokens"].astype(np.int64)
    lrs = batch["lrs"].astype(np.float64)
    if tokens.ndim != 2 or tokens.shape[1] < 2:
        raise ValueError(f"{batch_path}: tokens must be [B, T'+1] with "
                         f"T' >= 1, got shape {list(tokens.shape)}")
    if lrs.ndim != 1:
        raise ValueError(f"{batch_path}: lrs must be 1-D, got shape "
                         f"{list(lrs.shape)}")
    hp = {k: _meta_float(meta, k, batch_path)
          for k in ("weight_decay", "clip", "beta1", "beta2", "adam_eps")}
    tokens = torch.from_numpy(tokens)
    idx, targets = tokens[:, :-1], tokens[:, 1:]

    def trajectory(dtype):
        """The model, the losses of steps 0..K and the step-0 gradients."""
        model = nt.load(model_path, dtype=dtype)
        _check_tokens(tokens.numpy(), model.config.vocab, batch_path)
        named = nt.trainable_parameters(model)
        opt = nt.make_adamw(model, hp["weight_decay"], hp["beta1"],
                            hp["beta2"], hp["adam_eps"])
        # Step k = 0..K: loss and gradients at the current weights, then
        # (for k < K) one update with lr = lrs[k].  The reported gradients
        # are those of step 0, i.e. at the given weights.
        losses = []
        start = {n: p.detach().double().numpy().copy() for n, p in named}
        for k in range(len(lrs) + 1):
            opt.zero_grad(set_to_none=True)
            loss = model.loss(idx, targets)
            loss.backward()
            losses.append(loss.item())
            if k == 0:
                grads = {f"grad.{n}": p.grad.detach().double().numpy().copy()
                         for n, p in named}
            if k < len(lrs):
                nt.adamw_step(model, opt, float(lrs[k]), hp["clip"])
        for n, p in named:
            grads[f"step.{n}"] = p.detach().double().numpy() - start[n]
        return model, np.array(losses), grads

    def rel(a, b):
        """[||a - b|| / ||b||] (2-norms)."""
        return np.array([np.linalg.norm(a - b)
                         / max(np.linalg.norm(b), 1e-300)])

    model, losses, grads = trajectory(torch.float64)
    _, losses32, grads32 = trajectory(torch.float32)
    dev = {f"f32dev.{n}": rel(grads32[n], g) for n, g in grads.items()}
    dev["f32dev.losses"] = rel(losses32, losses)
    out = {"loss": np.array([losses[0]]), "losses": losses, **grads, **dev}
    tmp_path = out_path + ".tmp"
    nt.write_safetensors(tmp_path, out)
    os.replace(tmp_path, out_path)
    cfg = model.config
    return (f"{case_dir}: norm={cfg.norm} type={cfg.norm_type} "
            f"loss={losses[0]:.10g} steps={len(lrs)} "
            f"final={losses[-1]:.10g} grads={len(grads) // 2}")


def cmd_grad(args):
    """Process every case; report each failure and return the exit status."""
    status = 0
    for case_dir in args.case_dirs:
        try:
            print(run_grad_case(case_dir), flush=True)
        except Exception as e:  # report and continue with the next case
            print(f"ref_check: error: {case_dir}: {e}", file=sys.stderr,
                  flush=True)
            status = 1
    return status


def read_tokens(path):
    """Token ids of a data file: llm.c uint16 shard (.bin) or raw bytes."""
    with open(path, "rb") as f:
        raw = f.read()
    if not path.endswith(".bin"):
        return np.frombuffer(raw, dtype=np.uint8).astype(np.int64)
    n_header = 4 * SHARD_HEADER_INTS
    if len(raw) < n_header:
        raise ValueError(f"{path}: too short for an llm.c shard header")
    magic, version, n = struct.unpack("<3i", raw[:12])
    if magic != SHARD_MAGIC or version != SHARD_VERSION:
        raise ValueError(f"{path}: bad shard header (magic {magic}, version "
                         f"{version}; expected {SHARD_MAGIC}, "
                         f"{SHARD_VERSION})")
    if n < 0 or len(raw) != n_header + 2 * n:
        raise ValueError(f"{path}: header says {n} tokens but the file has "
                         f"{len(raw) - n_header} data bytes")
    return np.frombuffer(raw, dtype="<u2", offset=n_header).astype(np.int64)


def cmd_eval(args):
    """Mean float64 cross-entropy over windows of T+1 tokens (stride S)."""
    model = nt.load(args.model)
    t = model.config.seq_len
    stride = args.stride or t
    tokens = read_tokens(args.data)
    starts = list(range(0, len(tokens) - t, stride))
    if args.max_windows is not None:
        starts = starts[:args.max_windows]
    if not starts:
        raise ValueError(f"{args.data}: {len(tokens)} tokens give no window "
                         f"of {t + 1}")
    _check_tokens(tokens[:starts[-1] + t + 1], model.config.vocab, args.data)

    # Window at s holds tokens [s, s + T]: inputs the first T, targets the
    # last T.  Later windows score only their last `stride` targets.
    tokens = torch.from_numpy(tokens)
    per_batch = max(1, EVAL_MAX_LOGITS // (t * model.config.vocab))
    total, count = 0.0, 0
    with torch.no_grad():
        for b0 in range(0, len(starts), per_batch):
            chunk = starts[b0:b0 + per_batch]
            win = torch.stack([tokens[s:s + t + 1] for s in chunk])
            logp = torch.log_softmax(model(win[:, :-1]), dim=-1)
            nll = -logp.gather(-1, win[:, 1:].unsqueeze(-1)).squeeze(-1)
            for k, s in enumerate(chunk):
                first = 0 if s == 0 else t - stride
                total += nll[k, first:].sum().item()
                count += t - first
    print(json.dumps({"loss": total / count, "tokens": count}))
    return 0


def _hellaswag_pre(text):
    """lm-evaluation-harness hellaswag preprocess."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def mc_candidates(task, doc):
    """(label, [(context, continuation), ...]) in the harness's formats."""
    if task == "hellaswag":
        ctx = _hellaswag_pre(doc["activity_label"] + ": " + doc["ctx_a"] + " "
                             + doc["ctx_b"].capitalize())
        return int(doc["label"]), [(ctx, " " + _hellaswag_pre(e))
                                   for e in doc["endings"]]
    if task == "arc":
        q = doc["question"]
        if isinstance(q, dict):
            stem = q["stem"]
            texts = [c["text"] for c in q["choices"]]
            labels = [c["label"] for c in q["choices"]]
        else:
            stem, texts, labels = (q, doc["choices"]["text"],
                                   doc["choices"]["label"])
        ctx = f"Question: {stem}\nAnswer:"
        return (labels.index(doc["answerKey"]),
                [(ctx, " " + x) for x in texts])
    if task == "piqa":
        ctx = f"Question: {doc['goal']}\nAnswer:"
        return int(doc["label"]), [(ctx, " " + doc["sol1"]),
                                   (ctx, " " + doc["sol2"])]
    if task == "siqa":
        ctx = f"Q: {doc['context']} {doc['question']}\nA:"
        return int(doc["label"]) - 1, [(ctx, " " + doc[k]) for k in
                                       ("answerA", "answerB", "answerC")]
    if task == "winogrande":
        i = doc["sentence"].index("_")
        rest = " " + doc["sentence"][i + 1:].strip()
        return int(doc["answer"]) - 1, [(doc["sentence"][:i] + o, rest)
                                        for o in (doc["option1"],
                                                  doc["option2"])]
    if task == "generic":
        return int(doc["label"]), [(doc["context"], " " + c)
                                   for c in doc["choices"]]
    raise ValueError(f"unknown task {task}")


def cmd_mc(args):
    """Per-item log-likelihoods of every candidate (byte-level models)."""
    model = nt.load(args.model)
    t = model.config.seq_len
    with open(args.data, encoding="utf-8") as f:
        docs = [json.loads(line) for line in f if line.strip()]
    with torch.no_grad():
        for doc in docs:
            label, cands = mc_candidates(args.task, doc)
            lls = []
            for ctx, cont in cands:
                c = list(cont.encode("utf-8"))
                seq = (list(ctx.encode("utf-8")) + c)[-(t + 1):]
                x = torch.tensor([seq[:-1]])
                logp = torch.log_softmax(model(x)[0], dim=-1)
                tgt = torch.tensor(seq[1:])
                ll = logp[torch.arange(len(tgt)), tgt][-len(c):].sum()
                lls.append(ll.item())
            print(json.dumps({"label": label, "ll": lls}))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="float64 PyTorch reference for the normlab tests")
    sub = parser.add_subparsers(dest="command", required=True)
    p_grad = sub.add_parser("grad", help="loss, gradients and AdamW steps")
    p_grad.add_argument("case_dirs", nargs="+", metavar="CASE_DIR")
    p_eval = sub.add_parser("eval", help="mean loss over a data file")
    p_eval.add_argument("--model", required=True)
    p_eval.add_argument("--data", required=True)
    p_eval.add_argument("--max-windows", type=int, default=None)
    p_eval.add_argument("--stride", type=int, default=0)
    p_mc = sub.add_parser("mc", help="multiple-choice log-likelihoods")
    p_mc.add_argument("--model", required=True)
    p_mc.add_argument("--task", required=True)
    p_mc.add_argument("--data", required=True)
    args = parser.parse_args(argv)
    commands = {"grad": cmd_grad, "eval": cmd_eval, "mc": cmd_mc}
    try:
        return commands[args.command](args)
    except Exception as e:
        print(f"ref_check: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
