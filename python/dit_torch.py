"""PyTorch twin of normlab's --arch dit (a small Next-DiT), written from the
equations of docs/dit.md, not from the C code.

The blocks are normlab_torch's blocks (every placement of the table, llama
style: no biases, SwiGLU) with three changes (docs/dit.md section 2):
  * attention is bidirectional and its rotary positions are 2-D: in each
    head the first hs/4 channel pairs turn by the patch row, the last hs/4
    by the patch column, angle = pos * theta^(-k / (hs/4));
  * the branch input is modulated, u' = u (1 + scale) + shift (adaLN);
  * the branch output is gated, o' = gate * o, before the residual add;
with (shift, scale, gate) of each sublayer from a per-block linear map of
silu(c), c = time embedding + label embedding.

Parameter names equal normlab's export names.
"""

import math

import torch
from torch import nn

import normlab_torch as nt

TFREQ = 256  # sinusoidal features of t


def time_features(t):
    """DiT's frequency embedding of 1000 t: [cos | sin], TFREQ wide."""
    half = TFREQ // 2
    freq = torch.exp(-math.log(10000.0)
                     * torch.arange(half, dtype=torch.float64) / half)
    a = 1000.0 * t[:, None].to(torch.float64) * freq[None, :]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)


def rope_2d(x, rows, cols, theta):
    """x [B, H, T, hs]; token t sits at (rows[t], cols[t])."""
    hs = x.shape[-1]
    q = hs // 4
    freq = theta ** (-torch.arange(q, dtype=torch.float64) / q)
    ang = torch.cat([rows[:, None] * freq, cols[:, None] * freq], dim=-1)
    turn = torch.polar(torch.ones_like(ang), ang)  # [T, hs/2]
    pairs = torch.view_as_complex(
        x.contiguous().view(*x.shape[:-1], hs // 2, 2))
    return torch.view_as_real(pairs * turn.to(pairs.dtype)).flatten(-2)


def attention(mod, u, rows, cols, theta):
    """normlab_torch.Attention's weights and q/k norms, without the causal
    mask, with 2-D rotary positions."""
    b, t, d = u.shape
    hs = d // mod.heads
    kvd = mod.kv_heads * hs
    q, k, v = mod.qkv(u).split([d, kvd, kvd], dim=-1)
    if mod.mode == "full":
        q, k, v = mod.q_norm(q), mod.k_norm(k), mod.v_norm(v)
    q = q.view(b, t, mod.heads, hs).transpose(1, 2)
    k, v = (z.view(b, t, mod.kv_heads, hs).transpose(1, 2) for z in (k, v))
    if mod.mode == "head":
        q, k = mod.q_norm(q), mod.k_norm(k)
    q, k = rope_2d(q, rows, cols, theta), rope_2d(k, rows, cols, theta)
    group = mod.heads // mod.kv_heads
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)
    att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(hs), dim=-1)
    y = att @ v
    if hasattr(mod, "head_scale"):
        y = y * mod.head_scale.view(1, mod.heads, 1, 1)
    return mod.proj(y.transpose(1, 2).reshape(b, t, d))


class DiT(nn.Module):
    def __init__(self, meta, dtype=torch.float64):
        super().__init__()
        m = dict(meta)
        m["arch"] = "llama"  # the blocks: no biases, SwiGLU
        cfg = nt.Config.from_metadata(m)
        self.cfg = cfg
        self.patch = int(meta["patch"])
        self.img_h, self.img_w = int(meta["img_h"]), int(meta["img_w"])
        self.ch = int(meta["img_ch"])
        self.classes = int(meta["classes"])
        c, p = cfg.dim, self.patch * self.patch * self.ch
        offset = cfg.norm == "gemma"
        self.label_emb = nn.Embedding(self.classes + 1, c, dtype=dtype)
        self.patch_emb = nn.Linear(p, c, dtype=dtype)
        self.t_emb = nn.Module()
        self.t_emb.fc1 = nn.Linear(TFREQ, c, dtype=dtype)
        self.t_emb.fc2 = nn.Linear(c, c, dtype=dtype)
        if cfg.emb_norm:
            self.emb_norm = nt.Norm(c, cfg.norm_type, cfg.eps, dtype, offset,
                                    False)
        self.blocks = nn.ModuleList()
        for layer in range(1, cfg.layers + 1):
            blk = nt.Block(cfg, layer, dtype)
            blk.adaln = nn.Linear(c, 6 * c, dtype=dtype)
            self.blocks.append(blk)
        if cfg.final_norm:
            self.final_norm = nt.Norm(c, cfg.norm_type, cfg.eps, dtype,
                                      offset, False)
        self.final = nn.Module()
        self.final.adaln = nn.Linear(c, 2 * c, dtype=dtype)
        self.final.linear = nn.Linear(c, p, dtype=dtype)
        if cfg.out_gain_frozen:
            for name, q in self.named_parameters():
                if name.endswith("_norm_out.weight"):
                    q.requires_grad_(False)

    def block(self, blk, x, r, mod, rows, cols):
        """normlab_torch.Block.forward with adaLN modulation and gates."""
        x_block = x
        for i, sub in enumerate(("attn", "mlp")):
            shift, scale, gate = (mod[:, None, (3 * i + j) * self.cfg.dim:
                                      (3 * i + j + 1) * self.cfg.dim]
                                  for j in range(3))
            w = blk.wiring[sub]
            u = x
            if "in" in w["sites"]:
                u = blk.s * getattr(blk, f"{sub}_norm_in")(x)
            um = u * (1 + scale) + shift
            if sub == "attn":
                o = attention(blk.attn, um, rows, cols, self.cfg.rope_theta)
            else:
                o = blk.mlp(um)
            if "out" in w["sites"]:
                o = getattr(blk, f"{sub}_norm_out")(o)
            if blk.skip_init:
                o = getattr(blk, f"{sub}_skip").weight * o
            o = gate * o
            base = u if w["res_in"] else x
            if w.get("lamres"):
                z = getattr(blk, f"{sub}_res_scale").weight * base + o
            else:
                z = blk.alpha * base + o
            if w["b2t"]:
                z = z + x_block
            if r is not None:
                r = r + o
            x = getattr(blk, f"{sub}_norm_post")(z) \
                if "post" in w["sites"] else z
        return x, r

    def forward(self, xt, t, y):
        """xt [B, T, P] noisy patches, t [B], y [B] labels -> velocity."""
        cfg = self.cfg
        wp = self.img_w // self.patch
        tok = torch.arange(xt.shape[1], dtype=torch.float64)
        rows, cols = torch.div(tok, wp, rounding_mode="floor"), tok % wp
        x = self.patch_emb(xt)
        if cfg.norm == "gemma":
            x = x * math.sqrt(cfg.dim)
        if cfg.emb_norm:
            x = self.emb_norm(x)
        h = self.t_emb.fc1(time_features(t).to(x.dtype))
        c = self.t_emb.fc2(nt.silu(h)) + self.label_emb(y)
        sc = nt.silu(c)
        r = x if cfg.norm == "residual" else None
        for blk in self.blocks:
            x, r = self.block(blk, x, r, blk.adaln(sc), rows, cols)
        if r is not None:
            x = x + self.final_norm(r)
        elif cfg.final_norm:
            x = self.final_norm(x)
        shift, scale = self.final.adaln(sc)[:, None, :].chunk(2, dim=-1)
        return self.final.linear(x * (1 + scale) + shift)

    def loss(self, xt, t, y, v):
        """Flow-matching loss: mean squared error of the velocity."""
        return ((self(xt, t, y) - v) ** 2).mean()
