"""PyTorch peer for bench/bench.sh: times full training steps (forward, backward, clip, AdamW) of a
GPT in idiomatic PyTorch (nanoGPT style: nn.LayerNorm, fused QKV, GELU tanh, tied head,
torch.optim.AdamW) with the same shape, placement (pre or peri), optimizer and thread count as the
normlab run. Prints one JSON line: {"tok_per_s": median over timed steps, ...}."""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, d, heads, peri):
        super().__init__()
        self.heads, self.peri = heads, peri
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        if peri:
            self.ln1o, self.ln2o = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.mproj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def attn(self, u):
        B, T, C = u.shape
        q, k, v = self.qkv(u).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        if hasattr(F, "scaled_dot_product_attention"):
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # torch < 2.0
            att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
            mask = torch.ones(T, T, dtype=torch.bool).tril()
            y = att.masked_fill(~mask, float("-inf")).softmax(-1) @ v
        return self.proj(y.transpose(1, 2).reshape(B, T, C))

    def mlp(self, u):
        return self.mproj(F.gelu(self.fc(u), approximate="tanh"))

    def forward(self, x):
        if self.peri:
            x = x + self.ln1o(self.attn(self.ln1(x)))
            return x + self.ln2o(self.mlp(self.ln2(x)))
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.tok = nn.Embedding(a.vocab, a.dim)
        self.pos = nn.Embedding(a.seq_len, a.dim)
        self.emb_norm = nn.LayerNorm(a.dim) if a.norm == "peri" else nn.Identity()
        self.blocks = nn.ModuleList(Block(a.dim, a.heads, a.norm == "peri") for _ in range(a.layers))
        self.final = nn.LayerNorm(a.dim)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx, tgt):
        x = self.emb_norm(self.tok(idx) + self.pos(torch.arange(idx.shape[1])))
        for b in self.blocks:
            x = b(x)
        return F.cross_entropy((self.final(x) @ self.tok.weight.t()).flatten(0, 1), tgt.flatten())


def main():
    ap = argparse.ArgumentParser()
    for k, v in [("layers", 6), ("dim", 384), ("heads", 6), ("seq-len", 256), ("batch", 8), ("vocab", 256),
                 ("steps", 10), ("threads", 2), ("warmup", 2)]:
        ap.add_argument("--" + k, type=int, default=v)
    ap.add_argument("--norm", choices=["pre", "peri"], default="pre")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = GPT(a)
    decay = [p for p in model.parameters() if p.dim() == 2]
    rest = [p for p in model.parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8, foreach=True)
    g = torch.Generator().manual_seed(0)
    times = []
    for step in range(a.warmup + a.steps):
        idx = torch.randint(0, a.vocab, (a.batch, a.seq_len + 1), generator=g)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(idx[:, :-1], idx[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step >= a.warmup:
            times.append(time.perf_counter() - t0)
    tok = a.batch * a.seq_len
    print(json.dumps({"tok_per_s": tok / statistics.median(times), "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "loss": loss.item()}))


if __name__ == "__main__":
    main()
