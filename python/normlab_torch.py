"""Independent PyTorch reference ("twin") of the normlab GPT trainer.

This module is the test oracle for the C implementation.  It is written
from the normlab specification only (see docs/methods.md §1 and §2 for the
equations) and is meant to be run in float64.

Contents:
  * read_safetensors / write_safetensors: a dependency-free safetensors
    reader and writer (struct + json + numpy).
  * Config: the model hyperparameters parsed from export metadata.
  * GPT: the model, with the architecture selected by Config.arch (gpt2:
    learned positions, biases, GELU MLP; llama: RoPE, no biases, SwiGLU
    MLP) and the norm placement by Config.norm.
  * load: build a GPT from a normlab export file.
  * make_adamw / adamw_step: the optimizer step (torch.optim.AdamW
    semantics, weight decay on 2-D tensors only, global-norm clipping).

Importing this module has no side effects.

Usage: run it with an interpreter that has PyTorch and NumPy.  On Debian 12
that is /usr/bin/python3 with the packages python3-torch and python3-numpy
(scripts/deps.sh installs them); a python3 found earlier on PATH (pyenv, a
virtual environment) usually lacks torch.  Export a checkpoint first:

    build/release/normlab export --ckpt runs/peri --out model.safetensors

then, from the repository root, with /usr/bin/python3:

Example:
    import sys, torch
    sys.path.insert(0, "python")  # the directory holding normlab_torch.py
    import normlab_torch as nt
    model = nt.load("model.safetensors")  # float64; nt.load(path, torch.float32)
    ids = torch.tensor([list(b"First Citizen: Before we proceed")])  # bytes
    with torch.no_grad():
        logits = model(ids[:, :-1])  # (batch, T, vocab) next-token logits
        loss = model.loss(ids[:, :-1], ids[:, 1:])  # mean nats per token
    print(model.config.norm, tuple(logits.shape), round(loss.item(), 4))

The model reads at most config.seq_len tokens; a byte-level model (vocabulary
256) takes bytes as token ids, a GPT-2-vocabulary one GPT-2 BPE ids.
"""

import json
import math
import struct
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

# ---------------------------------------------------------------------------
# safetensors I/O
# ---------------------------------------------------------------------------

# safetensors dtype tag -> little-endian numpy dtype (reading).
_READ_DTYPES = {
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I32": np.dtype("<i4"),
    "I64": np.dtype("<i8"),
    "U16": np.dtype("<u2"),
}

# Largest header we accept; guards against reading garbage as a length.
_MAX_HEADER_BYTES = 100 * 1024 * 1024


def read_safetensors(path):
    """Read a safetensors file.

    Layout: u64 little-endian header length N, N bytes of JSON header
    {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets"}},
    then the data buffer (offsets are relative to the buffer start).

    Returns (tensors, metadata): a dict name -> numpy array (native byte
    order, writable copy) and the metadata dict (empty if absent).
    Raises ValueError on any malformed header.
    """
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: file too short for a safetensors header "
                         f"({len(raw)} bytes)")
    (n_header,) = struct.unpack("<Q", raw[:8])
    if n_header > _MAX_HEADER_BYTES or 8 + n_header > len(raw):
        raise ValueError(f"{path}: header length {n_header} exceeds the "
                         f"file size {len(raw)}")
    try:
        header = json.loads(raw[8:8 + n_header].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header is not a JSON object")

    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str)
            for k, v in metadata.items()):
        raise ValueError(f"{path}: __metadata__ must map strings to strings")

    buf = raw[8 + n_header:]
    tensors = {}
    spans = []
    for name, info in header.items():
        where = f"{path}: tensor '{name}'"
        if not isinstance(info, dict):
            raise ValueError(f"{where}: entry is not a JSON object")
        dtype = _READ_DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise ValueError(f"{where}: unsupported dtype "
                             f"{info.get('dtype')!r} (supported: "
                             f"{', '.join(_READ_DTYPES)})")
        shape = info.get("shape")
        if not isinstance(shape, list) or not all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0
                for s in shape):
            raise ValueError(f"{where}: bad shape {shape!r}")
        offsets = info.get("data_offsets")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool)
                           for o in offsets)):
            raise ValueError(f"{where}: bad data_offsets {offsets!r}")
        begin, end = offsets
        if not 0 <= begin <= end <= len(buf):
            raise ValueError(f"{where}: data_offsets {offsets} outside the "
                             f"{len(buf)}-byte data buffer")
        n_bytes = math.prod(shape) * dtype.itemsize
        if end - begin != n_bytes:
            raise ValueError(f"{where}: data_offsets span {end - begin} bytes"
                             f" but shape {shape} of {info['dtype']} needs "
                             f"{n_bytes}")
        spans.append((begin, end, name))
        arr = np.frombuffer(buf, dtype=dtype, count=math.prod(shape),
                            offset=begin)
        tensors[name] = arr.reshape(shape).astype(dtype.newbyteorder("="))

    # Tensors must not share bytes.
    spans.sort()
    for (_, end_a, name_a), (begin_b, _, name_b) in zip(spans, spans[1:]):
        if begin_b < end_a:
            raise ValueError(f"{path}: tensors '{name_a}' and '{name_b}' "
                             f"overlap in the data buffer")
    return tensors, metadata


def write_safetensors(path, tensors, metadata=None):
    """Write a safetensors file.

    Float arrays are stored as F32 and integer arrays as I32 (values must
    fit).  Tensors are laid out contiguously in sorted-name order and the
    JSON header is padded with spaces to a multiple of 8 bytes.
    """
    metadata = dict(metadata or {})
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ValueError(f"metadata must map str to str, got {k!r}: {v!r}")

    header = {"__metadata__": metadata}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        arr = np.asarray(tensors[name])
        if arr.dtype.kind == "f":
            tag, out = "F32", arr.astype("<f4")
        elif arr.dtype.kind in "iu":
            if arr.size and (arr.min() < -2**31 or arr.max() >= 2**31):
                raise ValueError(f"tensor '{name}': values do not fit in I32")
            tag, out = "I32", arr.astype("<i4")
        else:
            raise ValueError(f"tensor '{name}': unsupported numpy dtype "
                             f"{arr.dtype}")
        data = np.ascontiguousarray(out).tobytes()
        header[name] = {"dtype": tag, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)

    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------

NORM_MODES = ("post", "pre", "peri", "mix", "lns", "outonly", "deepnorm",
              "sandwich", "gemma", "none", "b2t", "hybrid", "hybridstar",
              "normformer", "residual", "ngpt")
NORM_TYPES = ("layernorm", "rmsnorm", "scalenorm", "dyt", "seednorm",
              "crmsnorm", "l2")
ARCHS = ("gpt2", "llama")


def _parse_choice(meta, key, choices, default=None):
    """Return meta[key] after checking it is one of `choices`; an absent
    key reads as `default` when one is given."""
    value = meta[key] if default is None else meta.get(key, default)
    if value not in choices:
        raise ValueError(f"metadata '{key}' = {value!r}, expected one of "
                         f"{', '.join(choices)}")
    return value


@dataclass(frozen=True)
class Config:
    """Model hyperparameters, parsed from the export metadata strings."""

    norm: str          # placement: one of NORM_MODES
    norm_type: str     # one of NORM_TYPES
    layers: int        # L
    dim: int           # d
    heads: int         # H (query heads)
    seq_len: int       # T (max context; rows of pos_emb under gpt2)
    vocab: int         # V
    eps: float         # normalizer epsilon
    emb_norm: bool     # normalize the embedding (sum)
    final_norm: bool   # normalize before the head
    out_gain_frozen: bool  # *_norm_out gains are not trained
    mix_alpha: float   # fraction of Post-LN blocks in mode "mix"
    dyt_alpha: float = 0.5   # initial DyT alpha (only shapes the init)
    skip_init: bool = False  # a scalar gain (init 0) on every branch
    qk_norm: bool = False    # per-head norms of q and k
    scale_resids: bool = False  # normformer: per-channel weight on the MLP
                                # identity path
    gpas: bool = False       # GPAS gate after every residual add
    sdd: bool = False        # SDD: alpha * RMSNorm on every block linear
    arch: str = "gpt2"       # one of ARCHS
    rope_theta: float = 10000.0  # llama: RoPE base
    ffn_dim: int | None = None   # F, the MLP hidden width; None -> 4 * dim
    tie_head: bool = True    # the head reuses tok_emb (else lm_head)
    kv_heads: int | None = None  # key/value heads (grouped-query
                                 # attention); None -> heads
    ngpt_alpha_init: float = 0.05   # ngpt: effective initial alpha_A/M
    ngpt_alpha_scale: float = 0.0   # ngpt: their stored initial value
                                    # (0 -> 1/sqrt(dim))

    def __post_init__(self):
        # Resolve the defaults that depend on other fields (frozen class).
        if self.ffn_dim is None:
            object.__setattr__(self, "ffn_dim", 4 * self.dim)
        if self.kv_heads is None:
            object.__setattr__(self, "kv_heads", self.heads)
        if self.ngpt_alpha_scale == 0.0:
            object.__setattr__(self, "ngpt_alpha_scale",
                               1.0 / math.sqrt(self.dim))

    @property
    def biases(self):
        """gpt2 has biases in its Linear layers and norms; llama none."""
        return self.arch == "gpt2"

    @classmethod
    def from_metadata(cls, meta):
        """Parse the metadata dict (all values strings); extra keys ignored.

        arch, rope_theta, ffn_dim, tie_head and kv_heads are optional so
        that exports predating them load as gpt2.
        """
        required = ("norm", "norm_type", "layers", "dim", "heads", "seq_len",
                    "vocab", "eps", "emb_norm", "final_norm", "out_gain",
                    "mix_alpha")
        missing = [k for k in required if k not in meta]
        if missing:
            raise ValueError("metadata is missing key(s): "
                             + ", ".join(missing))
        try:
            cfg = cls(
                norm=_parse_choice(meta, "norm", NORM_MODES),
                norm_type=_parse_choice(meta, "norm_type", NORM_TYPES),
                layers=int(meta["layers"]),
                dim=int(meta["dim"]),
                heads=int(meta["heads"]),
                seq_len=int(meta["seq_len"]),
                vocab=int(meta["vocab"]),
                eps=float(meta["eps"]),
                emb_norm=_parse_choice(meta, "emb_norm",
                                       ("on", "off")) == "on",
                final_norm=_parse_choice(meta, "final_norm",
                                         ("on", "off")) == "on",
                out_gain_frozen=_parse_choice(meta, "out_gain",
                                              ("learn", "frozen")) == "frozen",
                mix_alpha=float(meta["mix_alpha"]),
                dyt_alpha=float(meta.get("dyt_alpha", "0.5")),
                skip_init=_parse_choice(meta, "skip_init", ("on", "off"),
                                        "off") == "on",
                qk_norm=_parse_choice(meta, "qk_norm", ("on", "off"),
                                      "off") == "on",
                scale_resids=_parse_choice(meta, "scale_resids",
                                           ("on", "off"), "off") == "on",
                gpas=_parse_choice(meta, "gpas", ("on", "off"),
                                   "off") == "on",
                sdd=_parse_choice(meta, "sdd", ("on", "off"), "off") == "on",
                arch=_parse_choice(meta, "arch", ARCHS, "gpt2"),
                rope_theta=float(meta.get("rope_theta", "10000")),
                ffn_dim=(int(meta["ffn_dim"]) if "ffn_dim" in meta
                         else None),
                tie_head=_parse_choice(meta, "tie_head", ("on", "off"),
                                       "on") == "on",
                kv_heads=(int(meta["kv_heads"]) if "kv_heads" in meta
                          else None),
                ngpt_alpha_init=float(meta.get("ngpt_alpha_init", "0.05")),
                ngpt_alpha_scale=float(meta.get("ngpt_alpha_scale", "0")),
            )
        except (TypeError, ValueError) as e:
            raise ValueError(f"bad metadata: {e}") from None
        if min(cfg.layers, cfg.dim, cfg.heads, cfg.seq_len, cfg.vocab,
               cfg.ffn_dim, cfg.kv_heads) < 1:
            raise ValueError("layers, dim, heads, seq_len, vocab, ffn_dim "
                             "and kv_heads must be positive")
        if cfg.dim % cfg.heads:
            raise ValueError(f"dim {cfg.dim} is not divisible by heads "
                             f"{cfg.heads}")
        if cfg.heads % cfg.kv_heads:
            raise ValueError(f"heads {cfg.heads} is not divisible by "
                             f"kv_heads {cfg.kv_heads}")
        if cfg.arch == "llama":
            if (cfg.dim // cfg.heads) % 2:
                raise ValueError(f"llama needs an even head size (RoPE "
                                 f"rotates channel pairs), got "
                                 f"{cfg.dim // cfg.heads}")
            if not cfg.rope_theta > 0:
                raise ValueError(f"rope_theta {cfg.rope_theta} must be "
                                 f"positive")
        return cfg

    def block_wiring(self, layer):
        """Constants of block `layer` (1-based), per spec section 6.

        Returns (s, alpha): s scales the input-norm output (LNS:
        1/sqrt(l)); alpha multiplies the identity path (DeepNorm:
        (2L)^(1/4)).
        """
        s, alpha = 1.0, 1.0
        if self.norm == "lns":
            s = 1.0 / math.sqrt(layer)
        elif self.norm == "deepnorm":
            alpha = (2.0 * self.layers) ** 0.25
        return s, alpha

    def sub_wiring(self, layer, sub):
        """How sublayer `sub` ("attn" or "mlp") of block `layer` is wired.

        Returns a dict:
          sites   subset of {"in", "out", "post"} (norm on the branch
                  input, on the branch output, after the residual add)
          qkv     None, "head" (q and k normalised per head) or "full"
                  (q, k and v each normalised over the whole width)
          res_in  the identity path starts from the normalised input
          b2t     the block input joins this sublayer's residual sum
          hscale  per-head scalars before the output projection
          fcnorm  a norm over the F hidden units after the activation
          lamres  a per-channel weight (init 1) on the identity path
        """
        w = {"sites": set(), "qkv": None, "res_in": False, "b2t": False,
             "hscale": False, "fcnorm": False, "lamres": False}
        n = self.norm
        if n in ("pre", "lns"):
            w["sites"] = {"in"}
        elif n in ("peri", "sandwich", "gemma"):
            w["sites"] = {"in", "out"}
        elif n == "outonly":
            w["sites"] = {"out"}
        elif n == "mix":  # Post-LN for l <= floor(mix_alpha * L), Pre after.
            n_post = math.floor(self.mix_alpha * self.layers)
            w["sites"] = {"post"} if layer <= n_post else {"in"}
        elif n == "none":
            pass
        elif n == "ngpt":
            # h <- Norm(h_A + |alpha| (Norm(F(h_A)) - h_A)), h_A = Norm(h);
            # GPT.forward and Block.forward_ngpt follow the paper directly.
            w["sites"] = {"in", "out", "post"}
            w["res_in"] = True
        elif n in ("post", "deepnorm", "residual"):
            w["sites"] = {"post"}
        elif n == "b2t":
            # h = N(x + A(x)); x' = N(x + h + M(h)): post norms, and the
            # block input joins the MLP's sum.
            w["sites"] = {"post"}
            w["b2t"] = sub == "mlp"
        elif n in ("hybrid", "hybridstar"):
            # Y = x + W_O attn(N(Q), N(K), N(V)); z = N(Y); x' = z + M(z).
            # hybridstar: block 1 has a Pre-LN attention input norm (QKV
            # norms kept) and a Pre-LN MLP, x' = Y + M(N(Y)).
            first = n == "hybridstar" and layer == 1
            if sub == "attn":
                w["qkv"] = "full"
                w["sites"] = {"in"} if first else set()
            else:
                w["sites"] = {"in"}
                w["res_in"] = not first
        elif n == "normformer":
            # Attention: x + N_out(W_O HeadScale(heads(N_in(x)))).
            # MLP: lam * h + W2 N_fc(gelu(W1 N_in(h))).
            if sub == "attn":
                w["sites"] = {"in", "out"}
                w["hscale"] = True
            else:
                w["sites"] = {"in"}
                w["fcnorm"] = True
                w["lamres"] = self.scale_resids
        else:
            raise ValueError(f"unknown placement {n!r}")
        if self.qk_norm and sub == "attn":
            w["qkv"] = "head"
        return w


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------

class Norm(nn.Module):
    """Per-token normalizer over the last dimension (spec sections 1, 2.15-2.18).

    layernorm: (x - mean) / sqrt(biased_var + eps) * g + bias
    rmsnorm:   x / sqrt(mean(x^2) + eps) * g
    scalenorm: g * x / sqrt(sum(x^2) + eps), g a single scalar
    dyt:       g * tanh(alpha * x) + bias, alpha a single scalar
    seednorm:  (tanh(<beta, x>) * alpha + g) * x / sqrt(mean(x^2) + eps),
               alpha, beta per channel
    crmsnorm:  g * x / sqrt((sum_{i<d} x_i^2 + (sum_{i<d} x_i)^2) / d + eps)
               with the sums over the first d-1 channels (= rmsnorm when
               x has zero mean)

    With offset=True (Gemma) the stored weight w is the deviation of the
    gain from its initial value c0 (1, or sqrt(dim) for scalenorm):
    g = c0 + w.  Otherwise g = w.  With bias=False (llama) layernorm and
    dyt have no bias (+ 0).
    """

    def __init__(self, dim, norm_type, eps, dtype, offset=False, bias=True):
        super().__init__()
        self.norm_type = norm_type
        self.eps = eps
        self.dim = dim
        if norm_type == "l2":  # nGPT: x / |x|, no parameters
            return
        n = 1 if norm_type == "scalenorm" else dim
        self.c0 = (math.sqrt(dim) if norm_type == "scalenorm" else 1.0) \
            if offset else 0.0
        self.weight = nn.Parameter(torch.ones(n, dtype=dtype))
        if norm_type in ("layernorm", "dyt") and bias:
            self.bias = nn.Parameter(torch.zeros(dim, dtype=dtype))
        if norm_type == "dyt":
            self.alpha = nn.Parameter(torch.ones(1, dtype=dtype))
        if norm_type == "seednorm":
            self.alpha = nn.Parameter(torch.ones(dim, dtype=dtype))
            self.beta = nn.Parameter(torch.zeros(dim, dtype=dtype))

    def forward(self, x):
        if self.norm_type == "l2":
            return unit(x)
        g = self.weight + self.c0
        t = self.norm_type
        bias = self.bias if hasattr(self, "bias") else 0.0
        if t == "layernorm":
            xc = x - x.mean(dim=-1, keepdim=True)
            var = (xc * xc).mean(dim=-1, keepdim=True)
            return xc / torch.sqrt(var + self.eps) * g + bias
        if t == "scalenorm":
            ss = (x * x).sum(dim=-1, keepdim=True)
            return g * x / torch.sqrt(ss + self.eps)
        if t == "dyt":
            return g * torch.tanh(self.alpha * x) + bias
        if t == "crmsnorm":
            head = x[..., :-1]
            q = ((head * head).sum(dim=-1, keepdim=True)
                 + head.sum(dim=-1, keepdim=True) ** 2) / self.dim
            return g * x / torch.sqrt(q + self.eps)
        xh = x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + self.eps)
        if t == "seednorm":
            s = torch.tanh((x * self.beta).sum(dim=-1, keepdim=True))
            return (s * self.alpha + g) * xh
        return xh * g


def unit(x, dim=-1):
    """x / |x| along dim (|x| clamped at 1e-12, as F.normalize): the
    projection onto the unit sphere of nGPT (arXiv:2410.01131)."""
    return x / torch.linalg.vector_norm(x, dim=dim,
                                        keepdim=True).clamp_min(1e-12)


def ngpt_scale(param, s_init, s_scale):
    """nGPT's scale parameterisation (paper section 2.5): the stored
    parameter starts at s_scale and acts as param * s_init / s_scale."""
    return param * (s_init / s_scale)


def sdd(x, alpha, eps):
    """Scale-Distribution Decoupling of a linear output x (Wang et al.,
    arXiv:2502.15499, Eq. 1: y = alpha * norm(V x)): RMSNorm over the last
    dimension, without a bias, times the learnable vector alpha."""
    return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps) * alpha


class Param(nn.Module):
    """A bare parameter exported as <name>.weight."""

    def __init__(self, shape, dtype):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(shape, dtype=dtype))


def rope(x, theta):
    """Rotary position embedding of x [..., T', hs] (Meta LLaMA convention).

    Within each head the channel pairs (2i, 2i+1), i < hs/2, form the
    complex number x_2i + j x_2i+1, which is multiplied by
    exp(j t theta^(-2i/hs)) at position t = 0 .. T'-1.  (Not the
    rotate_half convention, which pairs channel i with i + hs/2.)
    """
    t, hs = x.shape[-2], x.shape[-1]
    freq = theta ** (-2.0 * torch.arange(hs // 2, dtype=torch.float64) / hs)
    angles = torch.arange(t, dtype=torch.float64)[:, None] * freq  # [T', hs/2]
    turn = torch.polar(torch.ones_like(angles), angles)
    pairs = torch.view_as_complex(
        x.contiguous().view(*x.shape[:-1], hs // 2, 2))
    return torch.view_as_real(pairs * turn.to(pairs.dtype)).flatten(-2)


class Attention(nn.Module):
    """Causal multi-head self-attention with a fused qkv projection.

    H query heads share kv_heads key/value heads (grouped-query attention):
    query head h uses kv head h // (H / kv_heads).  Under llama, q and k
    are rotated by rope() after the norms, and there are no biases.

    qkv="head": q and k are normalised per head (over the head size, one
    norm each shared by all heads); qkv="full": q (width d), k and v
    (width kv_heads * hs) are each normalised over their whole width
    before the heads are split.
    """

    def __init__(self, cfg, wiring, dtype, offset):
        super().__init__()
        dim = cfg.dim
        self.heads = cfg.heads
        self.kv_heads = cfg.kv_heads
        self.rope_theta = cfg.rope_theta if cfg.arch == "llama" else None
        self.mode = "ngpt" if cfg.norm == "ngpt" else wiring["qkv"]
        hs = dim // cfg.heads
        kvd = cfg.kv_heads * hs
        self.qkv = nn.Linear(dim, dim + 2 * kvd, bias=cfg.biases, dtype=dtype)
        self.proj = nn.Linear(dim, dim, bias=cfg.biases, dtype=dtype)
        self.eps = cfg.eps
        if cfg.sdd:  # q, k and v are separate layers in the paper: one
            # RMSNorm each, their scale vectors concatenated
            self.qkv_sdd = Param(dim + 2 * kvd, dtype)
            self.proj_sdd = Param(dim, dtype)
        if self.mode == "full":
            widths = {"q": dim, "k": kvd, "v": kvd}
        elif self.mode == "head":
            widths = {"q": hs, "k": hs}
        else:
            widths = {}
        if self.mode == "ngpt":  # s_qk per head channel, shared by q and k
            self.sqk = nn.Parameter(torch.ones(dim, dtype=dtype))
            self.inv_sqrt_d = 1.0 / math.sqrt(dim)
        for n, width in widths.items():
            setattr(self, f"{n}_norm", Norm(width, cfg.norm_type, cfg.eps,
                                            dtype, offset, cfg.biases))

    def forward(self, u):
        b, t, d = u.shape
        hs = d // self.heads
        kvd = self.kv_heads * hs
        # q, k, v = rows [0, d), [d, d+kvd), [d+kvd, d+2kvd) of the qkv
        # weight.
        q, k, v = self.qkv(u).split([d, kvd, kvd], dim=-1)
        if hasattr(self, "qkv_sdd"):
            a_q, a_k, a_v = self.qkv_sdd.weight.split([d, kvd, kvd])
            q, k, v = (sdd(q, a_q, self.eps), sdd(k, a_k, self.eps),
                       sdd(v, a_v, self.eps))
        if self.mode == "full":
            q, k, v = self.q_norm(q), self.k_norm(k), self.v_norm(v)
        # Head h uses channels [h*hs, (h+1)*hs): [B, T, d] -> [B, H, T, hs]
        # (k and v: kv_heads heads).
        q = q.view(b, t, self.heads, hs).transpose(1, 2)
        k, v = (z.view(b, t, self.kv_heads, hs).transpose(1, 2)
                for z in (k, v))
        if self.mode == "head":
            q, k = self.q_norm(q), self.k_norm(k)
        if self.rope_theta is not None:
            q, k = rope(q, self.rope_theta), rope(k, self.rope_theta)
        scale = 1.0 / math.sqrt(hs)
        if self.mode == "ngpt":
            # paper eqs. 15-16 (after RoPE): q = s_qk Norm(q), k = s_qk
            # Norm(k), s_qk = sqk * 1 / (1/sqrt(d)); softmax scale sqrt(hs)
            sqk = ngpt_scale(self.sqk, 1.0, self.inv_sqrt_d)
            sqk = sqk.view(1, self.heads, 1, hs)
            q, k = sqk * unit(q), sqk * unit(k)
            scale = math.sqrt(hs)
        # Query head h attends with kv head h // group.
        group = self.heads // self.kv_heads
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        att = q @ k.transpose(-2, -1) * scale
        future = torch.ones(t, t, dtype=torch.bool, device=u.device).triu(1)
        att = torch.softmax(att.masked_fill(future, float("-inf")), dim=-1)
        y = att @ v
        if hasattr(self, "head_scale"):
            y = y * self.head_scale.view(1, self.heads, 1, 1)
        out = self.proj(y.transpose(1, 2).reshape(b, t, d))
        if hasattr(self, "proj_sdd"):
            out = sdd(out, self.proj_sdd.weight, self.eps)
        return out


def gelu_tanh(x):
    """GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi)
                                       * (x + 0.044715 * x * x * x)))


def silu(x):
    """SiLU (swish): x * sigmoid(x)."""
    return x * torch.sigmoid(x)


class MLP(nn.Module):
    """The feed-forward sublayer, hidden width F = cfg.ffn_dim.

    gpt2:  fc (d -> F), GELU (tanh), [fc_norm over F], proj (F -> d).
    llama: silu(gate(u)) * up(u) (gate, up: d -> F), [fc_norm over F],
           down (F -> d); no biases.
    """

    def __init__(self, cfg, wiring, dtype, offset):
        super().__init__()
        dim, hidden = cfg.dim, cfg.ffn_dim
        self.llama = cfg.arch == "llama"
        if self.llama:
            self.gate = nn.Linear(dim, hidden, bias=False, dtype=dtype)
            self.up = nn.Linear(dim, hidden, bias=False, dtype=dtype)
            self.down = nn.Linear(hidden, dim, bias=False, dtype=dtype)
        else:
            self.fc = nn.Linear(dim, hidden, dtype=dtype)
            self.proj = nn.Linear(hidden, dim, dtype=dtype)
        self.eps = cfg.eps
        if cfg.sdd:  # llama: gate's scales, then up's
            self.fc_sdd = Param(hidden * (2 if self.llama else 1), dtype)
            self.proj_sdd = Param(dim, dtype)
        if wiring["fcnorm"]:
            self.fc_norm = Norm(hidden, cfg.norm_type, cfg.eps, dtype, offset,
                                cfg.biases)
        if cfg.norm == "ngpt":  # s_uv over [gate | up] (llama) or fc (gpt2)
            n = 2 * hidden if self.llama else hidden
            self.suv = nn.Parameter(torch.ones(n, dtype=dtype))
            self.sqrt_d = math.sqrt(dim)

    def forward(self, u):
        a = getattr(self, "fc_sdd", None)
        if hasattr(self, "suv"):
            # paper eqs. 20-21: s_uv sqrt(d), s_uv = suv * 1 / 1
            s = ngpt_scale(self.suv, 1.0, 1.0) * self.sqrt_d
            if self.llama:
                sg, su = s.chunk(2)
                h = silu(sg * self.gate(u)) * (su * self.up(u))
            else:
                h = gelu_tanh(s * self.fc(u))
        elif self.llama:
            g, up = self.gate(u), self.up(u)
            if a is not None:
                a_g, a_u = a.weight.split(g.shape[-1])
                g, up = sdd(g, a_g, self.eps), sdd(up, a_u, self.eps)
            h = silu(g) * up
        else:
            h = self.fc(u)
            if a is not None:
                h = sdd(h, a.weight, self.eps)
            h = gelu_tanh(h)
        if hasattr(self, "fc_norm"):
            h = self.fc_norm(h)
        out = self.down(h) if self.llama else self.proj(h)
        if a is not None:
            out = sdd(out, self.proj_sdd.weight, self.eps)
        return out


class Block(nn.Module):
    """One transformer block; only the norms and scalars it uses exist.

    For each sublayer F in (attn, mlp), with that sublayer's own norms:
      u = s * N_in(x) if "in" else x
      a = F(u)
      o = N_out(a) if "out" else a
      o = skip * o                       (--skip-init)
      z = alpha * (u if res_in else x) + o   (lam * x for residual scaling)
      z = z + x_block                    (b2t: the block input)
      r = r + o                          (ResiDual's second stream)
      x = N_post(z) if "post" else z
      x = z - silu(a) * z.detach()       (--gpas, no post norm: GPAS,
                                          arXiv:2506.22049; one gate a
                                          per block for both sublayers)
    """

    def __init__(self, cfg, layer, dtype):
        super().__init__()
        self.s, self.alpha = cfg.block_wiring(layer)
        self.wiring = {sub: cfg.sub_wiring(layer, sub)
                       for sub in ("attn", "mlp")}
        self.skip_init = cfg.skip_init
        if cfg.gpas:
            self.gpas = Param(1, dtype)
        offset = cfg.norm == "gemma"
        self.attn = Attention(cfg, self.wiring["attn"], dtype, offset)
        if self.wiring["attn"]["hscale"]:
            self.attn.head_scale = nn.Parameter(
                torch.ones(cfg.heads, dtype=dtype))
        self.mlp = MLP(cfg, self.wiring["mlp"], dtype, offset)
        for sub in ("attn", "mlp"):
            for site in sorted(self.wiring[sub]["sites"]):
                setattr(self, f"{sub}_norm_{site}",
                        Norm(cfg.dim, cfg.norm_type, cfg.eps, dtype, offset,
                             cfg.biases))
            if cfg.skip_init:
                setattr(self, f"{sub}_skip", Param(1, dtype))
            if self.wiring[sub].get("lamres"):
                setattr(self, f"{sub}_res_scale", Param(cfg.dim, dtype))
            if cfg.norm == "ngpt":  # eigen learning rates alpha_A, alpha_M
                setattr(self, f"{sub}_alpha",
                        nn.Parameter(torch.ones(cfg.dim, dtype=dtype)))
        self.ngpt = (cfg.ngpt_alpha_init, cfg.ngpt_alpha_scale) \
            if cfg.norm == "ngpt" else None

    def forward(self, x, r=None):
        x_block = x
        for sub in ("attn", "mlp"):
            w = self.wiring[sub]
            u = x
            if "in" in w["sites"]:
                u = self.s * getattr(self, f"{sub}_norm_in")(x)
            o = getattr(self, sub)(u)
            if "out" in w["sites"]:
                o = getattr(self, f"{sub}_norm_out")(o)
            if self.skip_init:
                o = getattr(self, f"{sub}_skip").weight * o
            base = u if w["res_in"] else x
            if self.ngpt:  # paper eqs. 10-11: h_A + |alpha| (h_B - h_A)
                a = ngpt_scale(getattr(self, f"{sub}_alpha"), *self.ngpt)
                z = base + torch.abs(a) * (o - base)
            elif w.get("lamres"):
                z = getattr(self, f"{sub}_res_scale").weight * base + o
            else:
                z = self.alpha * base + o
            if w["b2t"]:
                z = z + x_block
            if r is not None:
                r = r + o
            x = getattr(self, f"{sub}_norm_post")(z) \
                if "post" in w["sites"] else z
            if hasattr(self, "gpas"):
                if "post" in w["sites"]:
                    raise ValueError("gpas: no post norm allowed")
                x = z - silu(self.gpas.weight) * z.detach()
        return x, r


class GPT(nn.Module):
    """Decoder-only transformer with switchable architecture and norm
    placement.

    arch gpt2:  token + learned position embeddings (pos_emb), biases in
                the Linear layers and in layernorm/dyt, GELU MLP.
    arch llama: token embeddings only, RoPE on q and k, no biases
                anywhere, SwiGLU MLP.
    Both: grouped-query attention (kv_heads), MLP width ffn_dim, and a
    head tied to tok_emb (tie_head) or a separate lm_head.

    Parameter names equal the normlab export tensor names, e.g.
    tok_emb.weight, blocks.0.attn.qkv.weight, blocks.0.attn_norm_in.weight.
    Parameters get torch's default initialization; use load() to fill
    them from an export.
    """

    def __init__(self, config, dtype=torch.float64):
        super().__init__()
        cfg = (config if isinstance(config, Config)
               else Config.from_metadata(config))
        self.config = cfg
        offset = cfg.norm == "gemma"
        self.tok_emb = nn.Embedding(cfg.vocab, cfg.dim, dtype=dtype)
        if cfg.arch == "gpt2":
            self.pos_emb = nn.Embedding(cfg.seq_len, cfg.dim, dtype=dtype)
        if cfg.emb_norm:
            self.emb_norm = Norm(cfg.dim, cfg.norm_type, cfg.eps, dtype,
                                 offset, cfg.biases)
        self.blocks = nn.ModuleList(Block(cfg, layer, dtype)
                                    for layer in range(1, cfg.layers + 1))
        if cfg.final_norm:
            self.final_norm = Norm(cfg.dim, cfg.norm_type, cfg.eps, dtype,
                                   offset, cfg.biases)
        if not cfg.tie_head:
            self.lm_head = nn.Linear(cfg.dim, cfg.vocab, bias=False,
                                     dtype=dtype)
        if cfg.norm == "ngpt":  # s_z per vocabulary entry
            self.logit_scale = nn.Parameter(torch.ones(cfg.vocab,
                                                       dtype=dtype))
        if cfg.out_gain_frozen:
            for name, p in self.named_parameters():
                if name.endswith("_norm_out.weight"):
                    p.requires_grad_(False)

    def forward(self, idx):
        """idx [B, T'] int64 (T' <= seq_len) -> logits [B, T', V]."""
        cfg = self.config
        t = idx.shape[1]
        if t > cfg.seq_len:
            raise ValueError(f"sequence length {t} exceeds seq_len "
                             f"{cfg.seq_len}")
        x = self.tok_emb(idx)
        if cfg.arch == "gpt2":
            x = x + self.pos_emb.weight[:t]
        if cfg.norm == "gemma":  # Gemma scales the embedding by sqrt(d)
            x = x * math.sqrt(cfg.dim)
        if cfg.emb_norm:
            x = self.emb_norm(x)
        r = x if cfg.norm == "residual" else None
        for block in self.blocks:
            x, r = block(x, r)
        if r is not None:  # ResiDual: head input x_L + N_f(r)
            x = x + self.final_norm(r)
        elif cfg.final_norm:
            x = self.final_norm(x)
        head = self.tok_emb if cfg.tie_head else self.lm_head
        logits = x @ head.weight.t()
        if cfg.norm == "ngpt":  # paper eqs. 1, 3: s_z = sz * 1 / (1/sqrt(d))
            logits = logits * ngpt_scale(self.logit_scale, 1.0,
                                         1.0 / math.sqrt(cfg.dim))
        return logits

    def loss(self, idx, targets):
        """Mean cross-entropy over all B*T' positions."""
        logits = self(idx)
        logits = logits.reshape(-1, logits.shape[-1])
        targets = targets.reshape(-1, 1)
        nll = torch.logsumexp(logits, dim=-1) - logits.gather(1, targets)[:, 0]
        return nll.mean()

    def load_tensors(self, tensors):
        """Copy numpy arrays (name -> array) into the parameters.

        Raises ValueError naming every missing or unexpected tensor and
        every shape mismatch.
        """
        params = dict(self.named_parameters())
        problems = []
        missing = sorted(set(params) - set(tensors))
        unexpected = sorted(set(tensors) - set(params))
        if missing:
            problems.append(f"missing tensor(s): {', '.join(missing)}")
        if unexpected:
            problems.append(f"unexpected tensor(s): {', '.join(unexpected)}")
        for name in sorted(set(params) & set(tensors)):
            want, got = tuple(params[name].shape), tuple(tensors[name].shape)
            if want != got:
                problems.append(f"tensor '{name}' has shape {list(got)}, "
                                f"expected {list(want)}")
        if problems:
            raise ValueError("; ".join(problems))
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(torch.from_numpy(np.asarray(tensors[name])))


def load(path, dtype=torch.float64):
    """Build a GPT from a normlab export's metadata and load its weights."""
    tensors, metadata = read_safetensors(path)
    model = GPT(Config.from_metadata(metadata), dtype=dtype)
    try:
        model.load_tensors(tensors)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return model


# ---------------------------------------------------------------------------
# Optimizer
# ---------------------------------------------------------------------------

def trainable_parameters(model):
    """(name, parameter) pairs with requires_grad, in module order."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def make_adamw(model, weight_decay, beta1, beta2, eps):
    """torch.optim.AdamW over the trainable parameters.

    Weight decay applies only to 2-D tensors (tok_emb, pos_emb, the Linear
    weights and lm_head); norm gains/biases and Linear biases are not
    decayed.
    The learning rate is set per step by adamw_step.
    """
    params = [p for _, p in trainable_parameters(model)]
    decay = [p for p in params if p.dim() == 2]
    no_decay = [p for p in params if p.dim() != 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=0.0, betas=(beta1, beta2), eps=eps)


def adamw_step(model, optimizer, lr, clip):
    """One update from the gradients currently in .grad.

    If clip > 0 the global gradient norm over all trainable parameters is
    clipped first (clip_grad_norm_: coef = clip / (norm + 1e-6), applied
    when < 1).  Then torch AdamW: p -= lr*wd*p, followed by the
    bias-corrected Adam update with step size lr.
    """
    if clip > 0:
        nn.utils.clip_grad_norm_([p for _, p in trainable_parameters(model)],
                                 clip)
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.step()
    config = getattr(model, "config", None)  # the DiT twin (dit_torch.py) has none: never ngpt
    if config is not None and config.norm == "ngpt":
        project_to_sphere(model)


def project_to_sphere(model):
    """nGPT after every optimizer step (paper section 2.6 and the
    official normalize_matrices): every embedding and head row, and every
    projection matrix along the embedding dimension d: the rows of the
    d -> x matrices (qkv, fc, gate, up), the columns of the x -> d ones
    (attn.proj, mlp.proj, mlp.down)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() != 2:
                continue
            if name.endswith(("attn.proj.weight", "mlp.proj.weight",
                              "mlp.down.weight")):
                p.copy_(unit(p, dim=0))
            else:
                p.copy_(unit(p, dim=1))
