"""PyTorch peer for bench/bench.sh: times full training steps (forward, backward, clip, AdamW) of a
decoder in idiomatic PyTorch with the same shape, placement (pre or peri), optimizer and thread count
as the normlab run. Prints one JSON line: {"tok_per_s": median over timed steps, ...}.
With --gemm-rate it times instead torch.mm on the MLP's three products (forward, input and weight
gradients of the (ffn x dim) layer over batch*seq_len tokens) and prints {"gflops": ..., "blas_core": ...}:
bench/bench.sh runs it under each OPENBLAS_CORETYPE to give the peer its fastest BLAS kernels.

--arch gpt2 (nanoGPT style): nn.LayerNorm, learned positions, fused QKV, GELU tanh MLP, tied head.
--arch llama: RMSNorm, RoPE (Meta's interleaved channel pairs, precomputed cos/sin), fused QKV,
SwiGLU MLP (gate and up fused into one matmul), no biases, no position embedding, untied head.
Both use torch.optim.AdamW (weight decay on 2-D tensors) and global-norm clipping.
--bf16 autocasts to bfloat16 (fp32 master weights), on the CPU (bench/bench.sh's bf16 peer) or a GPU.
On a GPU (--device cuda, bench/device_check.sh): --compile runs torch.compile, and AdamW is the fused
CUDA implementation."""
import argparse
import ctypes
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

ROPE_THETA = 10000.0


def causal_attention(q, k, v):
    """Causal softmax attention of q, k, v [B, H, T, hs]."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    # torch < 2.0
    T = q.size(-2)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    return att.masked_fill(~mask, float("-inf")).softmax(-1) @ v


class OutLayerNorm(nn.LayerNorm):
    """The LayerNorm of a branch's output (Peri-LN), computed in fp32 on the fp32 value of its input.
    Under bf16 autocast the branch ends in a matmul, so its output is bf16, while the weights are fp32.
    CUDA autocast lists layer_norm among the ops it runs in fp32 (it casts the input up); torch 1.13's
    CPU autocast lists it nowhere, and the CPU kernel then refuses the bf16 input with fp32 weights
    ("expected scalar type BFloat16 but found Float"). The .float() gives the norm what the GPU's autocast
    would; outside autocast it is a no-op."""

    def forward(self, x):
        return super().forward(x.float())


class Block(nn.Module):
    def __init__(self, d, heads, ffn, peri):
        super().__init__()
        self.heads, self.peri = heads, peri
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        if peri:
            self.ln1o, self.ln2o = OutLayerNorm(d), OutLayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.mproj = nn.Linear(d, ffn), nn.Linear(ffn, d)

    def attn(self, u):
        B, T, C = u.shape
        q, k, v = self.qkv(u).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        return self.proj(causal_attention(q, k, v).transpose(1, 2).reshape(B, T, C))

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
        self.blocks = nn.ModuleList(Block(a.dim, a.heads, a.ffn_dim, a.norm == "peri") for _ in range(a.layers))
        self.final = nn.LayerNorm(a.dim)

    def forward(self, idx, tgt):
        x = self.emb_norm(self.tok(idx) + self.pos(torch.arange(idx.shape[1])))
        for b in self.blocks:
            x = b(x)
        return F.cross_entropy((self.final(x) @ self.tok.weight.t()).flatten(0, 1), tgt.flatten())


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight (torch 1.13 has no nn.RMSNorm), in fp32 on the fp32 value of x,
    as Meta's LLaMA computes it: under bf16 autocast a Peri-LN output norm receives the bf16 output of a
    matmul, whose mean square in bf16 would lose the precision the fp32 norm of normlab (and autocast's
    fp32 treatment of norms on a GPU) keeps. A no-op for fp32 inputs."""

    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(d))

    def forward(self, x):
        x = x.float()
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x, cos, sin):
    """Rotate the channel pairs (2i, 2i+1) of x [B, H, T, hs] by the angles t * theta^(-2i/hs) whose
    cos and sin are given [T, hs/2]."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


class LlamaBlock(nn.Module):
    def __init__(self, d, heads, ffn, peri):
        super().__init__()
        self.heads, self.peri = heads, peri
        self.n1, self.n2 = RMSNorm(d), RMSNorm(d)
        if peri:
            self.n1o, self.n2o = RMSNorm(d), RMSNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
        self.gate_up, self.down = nn.Linear(d, 2 * ffn, bias=False), nn.Linear(ffn, d, bias=False)

    def attn(self, u, cos, sin):
        B, T, C = u.shape
        q, k, v = self.qkv(u).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        y = causal_attention(rope(q, cos, sin), rope(k, cos, sin), v)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))

    def mlp(self, u):
        gate, up = self.gate_up(u).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)

    def forward(self, x, cos, sin):
        if self.peri:
            x = x + self.n1o(self.attn(self.n1(x), cos, sin))
            return x + self.n2o(self.mlp(self.n2(x)))
        x = x + self.attn(self.n1(x), cos, sin)
        return x + self.mlp(self.n2(x))


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.tok = nn.Embedding(a.vocab, a.dim)
        self.emb_norm = RMSNorm(a.dim) if a.norm == "peri" else nn.Identity()
        self.blocks = nn.ModuleList(LlamaBlock(a.dim, a.heads, a.ffn_dim, a.norm == "peri")
                                    for _ in range(a.layers))
        self.final = RMSNorm(a.dim)
        self.head = nn.Linear(a.dim, a.vocab, bias=False)
        hs = a.dim // a.heads
        freq = ROPE_THETA ** (-torch.arange(0, hs, 2, dtype=torch.float64) / hs)
        angles = torch.outer(torch.arange(a.seq_len, dtype=torch.float64), freq)
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def forward(self, idx, tgt):
        T = idx.shape[1]
        x = self.emb_norm(self.tok(idx))
        for b in self.blocks:
            x = b(x, self.cos[:T], self.sin[:T])
        return F.cross_entropy(self.head(self.final(x)).flatten(0, 1), tgt.flatten())


def gemm_rate(a):
    """GFLOP/s of torch.mm (the BLAS torch links) on the MLP layer's forward and both gradients, the
    fastest of 3 rounds of at least 0.1 s for each; and the core name of that BLAS (OpenBLAS)."""
    n, d, f = a.batch * a.seq_len, a.dim, a.ffn_dim
    x, w, dy = torch.randn(n, d), torch.randn(f, d), torch.randn(n, f)
    products = [(x, w.t()), (dy, w), (dy.t(), x)]
    secs = 0.0
    for p, q in products:
        torch.mm(p, q)
        best = float("inf")
        for _ in range(3):
            reps, t0 = 0, time.perf_counter()
            while True:
                torch.mm(p, q)
                reps += 1
                t = time.perf_counter() - t0
                if t >= 0.1 and reps >= 2:
                    break
            best = min(best, t / reps)
        secs += best
    try:
        blas = ctypes.CDLL("libblas.so.3")
        blas.openblas_get_corename.restype = ctypes.c_char_p
        core = blas.openblas_get_corename().decode()
    except (OSError, AttributeError):
        core = "not OpenBLAS"
    return {"gflops": 3 * 2 * n * d * f / secs / 1e9, "blas_core": core, "threads": torch.get_num_threads()}


def main():
    ap = argparse.ArgumentParser()
    for k, v in [("layers", 6), ("dim", 384), ("heads", 6), ("seq-len", 256), ("batch", 8), ("vocab", 256),
                 ("steps", 10), ("threads", 2), ("warmup", 2)]:
        ap.add_argument("--" + k, type=int, default=v)
    ap.add_argument("--norm", choices=["pre", "peri"], default="pre")
    ap.add_argument("--arch", choices=["gpt2", "llama"], default="gpt2")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--bf16", action="store_true", help="autocast to bfloat16 (fp32 master weights)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--ffn-dim", type=int, help="MLP hidden width (default: gpt2 4*dim; llama the "
                    "multiple of 64 nearest 8*dim/3, ties up)")
    ap.add_argument("--gemm-rate", action="store_true", help="time torch.mm on the MLP's products instead")
    a = ap.parse_args()
    if a.ffn_dim is None:
        a.ffn_dim = 4 * a.dim if a.arch == "gpt2" else 64 * max(1, (8 * a.dim + 96) // 192)
    if a.dim % a.heads or (a.arch == "llama" and a.dim // a.heads % 2):
        ap.error("dim must be divisible by heads (llama: into an even head size)")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.gemm_rate:
        print(json.dumps(gemm_rate(a)))
        return
    model = GPT(a) if a.arch == "gpt2" else Llama(a)
    for p in model.parameters():
        if p.dim() == 2:
            nn.init.normal_(p, std=0.02)
    model = model.to(a.device)
    gpu = a.device == "cuda"
    run = torch.compile(model) if a.compile else model
    decay = [p for p in model.parameters() if p.dim() == 2]
    rest = [p for p in model.parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8,
                            **({"fused": True} if gpu else {"foreach": True}))
    g = torch.Generator().manual_seed(0)
    times = []
    for step in range(a.warmup + a.steps):
        idx = torch.randint(0, a.vocab, (a.batch, a.seq_len + 1), generator=g).to(a.device)
        if gpu:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(a.device, dtype=torch.bfloat16, enabled=a.bf16):
            loss = run(idx[:, :-1], idx[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if gpu:
            torch.cuda.synchronize()
        if step >= a.warmup:
            times.append(time.perf_counter() - t0)
    tok = a.batch * a.seq_len
    print(json.dumps({"tok_per_s": tok / statistics.median(times), "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "loss": loss.item(), "arch": a.arch,
                      "ffn_dim": a.ffn_dim, "device": a.device, "bf16": a.bf16, "compile": a.compile}))


if __name__ == "__main__":
    main()
