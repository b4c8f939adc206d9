#!/usr/bin/python3
"""Float64 PyTorch reference for normlab's --arch dit tests.

Usage: dit_ref.py CASE_DIR [CASE_DIR ...]
  Each CASE_DIR holds model.safetensors (a normlab export of a dit model)
  and batch.safetensors (F32 xt [B, T, P], t [B], v [B, T, P], lrs [K];
  I32 y [B]; metadata weight_decay, clip, beta1, beta2, adam_eps).  Writes
  CASE_DIR/ref.safetensors with F32 tensors: loss [1], grad.<param> of every
  trainable parameter, losses [K+1] (the loss after k AdamW steps on the same
  batch, step k with lr = lrs[k]).
Exits non-zero with a message on stderr on any error.
"""

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "python"))
import dit_torch  # noqa: E402
import normlab_torch as nt  # noqa: E402


def run(case):
    tensors, meta = nt.read_safetensors(os.path.join(case, "model.safetensors"))
    batch, bmeta = nt.read_safetensors(os.path.join(case, "batch.safetensors"))
    model = dit_torch.DiT(meta)
    params = dict(model.named_parameters())
    if set(params) != set(tensors):
        raise ValueError(f"{case}: tensors differ: twin only "
                         f"{sorted(set(params) - set(tensors))}, export only "
                         f"{sorted(set(tensors) - set(params))}")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(torch.from_numpy(np.asarray(tensors[n], dtype=np.float64)))
    xt = torch.from_numpy(batch["xt"].astype(np.float64))
    v = torch.from_numpy(batch["v"].astype(np.float64))
    t = torch.from_numpy(batch["t"].astype(np.float64))
    y = torch.from_numpy(batch["y"].astype(np.int64))
    lrs = batch["lrs"].astype(np.float64)
    loss = model.loss(xt, t, y, v)
    loss.backward()
    out = {"loss": np.array([loss.item()], dtype=np.float32)}
    for n, p in nt.trainable_parameters(model):
        out["grad." + n] = p.grad.detach().numpy().astype(np.float32)
    opt = nt.make_adamw(model, float(bmeta["weight_decay"]),
                        float(bmeta["beta1"]), float(bmeta["beta2"]),
                        float(bmeta["adam_eps"]))
    losses = [loss.item()]
    for k, lr in enumerate(lrs):
        if k:
            opt.zero_grad()
            cur = model.loss(xt, t, y, v)
            cur.backward()
            losses.append(cur.item())
        nt.adamw_step(model, opt, float(lr), float(bmeta["clip"]))
    with torch.no_grad():
        losses.append(model.loss(xt, t, y, v).item())
    out["losses"] = np.array(losses, dtype=np.float32)
    nt.write_safetensors(os.path.join(case, "ref.safetensors"), out)


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: dit_ref.py CASE_DIR [CASE_DIR ...]")
    try:
        for case in sys.argv[1:]:
            run(case)
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"dit_ref.py: {e}")


if __name__ == "__main__":
    main()
