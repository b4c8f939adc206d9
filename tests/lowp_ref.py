"""lowp_ref.py -- the reference for test_lowp: fp32 -> fp16/bf16 rounding and the widening conversions,
computed from the values rather than the bits, and checked against PyTorch's conversions.

    lowp_ref.py IN OUT

IN holds n little-endian uint32 fp32 bit patterns. OUT receives, little-endian: n uint16 fp16 patterns, n
uint16 bf16 patterns (the inputs rounded to nearest, ties to even), then 65536 uint32 fp32 patterns for every
fp16 pattern widened and 65536 for every bf16 pattern. Rounding is done on the exact rational value with
Python integers; encoding uses the struct module ('e' for fp16, 'f' for fp32). NaN follows normlab's rule
(docs/numerics.md): sign kept, quiet bit set, top payload bits kept. Every non-NaN result is also compared
with torch's .to(float16/bfloat16) and .float() (torch canonicalises NaNs, so those are not compared); a
disagreement exits 1."""
import math
import struct
import sys
from array import array

FMT = {"fp16": (11, -14, 15), "bf16": (8, -126, 127)}  # significand bits, emin, emax


def round_to(x, fmt):
    """The finite float x (an fp32 value) rounded to nearest even in fmt, with subnormals; +-inf on
    overflow."""
    p, emin, emax = FMT[fmt]
    if x == 0 or math.isinf(x):
        return x
    num, den = abs(x).as_integer_ratio()  # den is a power of two
    d = den.bit_length() - 1
    e = math.frexp(abs(x))[1] - 1  # 2^e <= |x| < 2^(e+1)
    q = max(e, emin) - (p - 1)  # exponent of the quantum
    k = q + d  # |x| / 2^q = num / 2^k
    if k <= 0:
        n = num << -k
    else:
        n, rem = divmod(num, 1 << k)
        half = 1 << (k - 1)
        if rem > half or (rem == half and n & 1):
            n += 1
    r = math.ldexp(n, q)
    if r > math.ldexp((1 << p) - 1, emax - p + 1):
        r = math.inf
    return math.copysign(r, x)


def fwd(u):
    x = struct.unpack("<f", struct.pack("<I", u))[0]
    sign, a = u >> 31, u & 0x7FFFFFFF
    if a > 0x7F800000:
        return (sign << 15) | 0x7E00 | ((a >> 13) & 0x3FF), (u >> 16) | 0x40
    h = struct.unpack("<H", struct.pack("<e", round_to(x, "fp16")))[0]
    b = struct.unpack("<I", struct.pack("<f", round_to(x, "bf16")))[0]
    assert b & 0xFFFF == 0
    return h, b >> 16


def widen_fp16(h):
    sign, e, m = h >> 15, (h >> 10) & 0x1F, h & 0x3FF
    if e == 0x1F and m:
        return (sign << 31) | 0x7F800000 | (m << 13) | 0x400000
    return struct.unpack("<I", struct.pack("<f", struct.unpack("<e", struct.pack("<H", h))[0]))[0]


def widen_bf16(h):
    sign, e, m = h >> 15, (h >> 7) & 0xFF, h & 0x7F
    if e == 0xFF:
        return (sign << 31) | 0x7F800000 | (m << 16) | (0x400000 if m else 0)
    v = math.ldexp(m, -133) if e == 0 else math.ldexp(128 + m, e - 134)
    return struct.unpack("<I", struct.pack("<f", -v if sign else v))[0]


def torch_check(inp, h16, b16, w16, wb):
    import torch

    def bits32(a):
        return torch.tensor([v - (1 << 32) if v >= 1 << 31 else v for v in a], dtype=torch.int32)

    def bits16(a):
        return torch.tensor([v - 65536 if v >= 32768 else v for v in a], dtype=torch.int16)

    x = bits32(inp).view(torch.float32)
    keep = ~torch.isnan(x)
    bad = 0
    for name, dt, ref in (("fp16", torch.float16, h16), ("bf16", torch.bfloat16, b16)):
        got = x.to(dt).view(torch.int16)[keep]
        want = bits16(ref)[keep]
        n = int((got != want).sum())
        if n:
            i = int((got != want).nonzero()[0])
            print(f"lowp_ref: {n} {name} results differ from torch (first: input {int(bits32(inp)[keep][i]) & 0xFFFFFFFF:#010x})")
            bad += 1
    every = torch.arange(65536, dtype=torch.int64)
    every16 = torch.where(every >= 32768, every - 65536, every).to(torch.int16)
    for name, dt, ref in (("fp16", torch.float16, w16), ("bf16", torch.bfloat16, wb)):
        y = every16.view(dt).float()
        keep = ~torch.isnan(y)
        got = y.view(torch.int32)[keep]
        want = bits32(ref)[keep]
        n = int((got != want).sum())
        if n:
            print(f"lowp_ref: {n} widened {name} values differ from torch")
            bad += 1
    return bad


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: lowp_ref.py IN OUT")
    inp = array("I")
    with open(sys.argv[1], "rb") as f:
        inp.frombytes(f.read())
    h16, b16 = array("H"), array("H")
    for u in inp:
        h, b = fwd(u)
        h16.append(h)
        b16.append(b)
    w16 = array("I", (widen_fp16(h) for h in range(65536)))
    wb = array("I", (widen_bf16(h) for h in range(65536)))
    if torch_check(inp, h16, b16, w16, wb):
        sys.exit(1)
    with open(sys.argv[2], "wb") as f:
        for a in (h16, b16, w16, wb):
            f.write(a.tobytes())


if __name__ == "__main__":
    main()
