#!/usr/bin/python3
"""GPT-2 forward written from llm.c's checkpoint description, for tests/test_llmc.c.

usage: llmc_ref.py MODEL.bin TEXT_FILE WINDOWS
Reads the fp32 version-3 file (header 256 int32: magic 20240326, version 3, maxT, V, L, NH, C, Vp;
then wte, wpe, ln1w, ln1b, qkvw, qkvb, attprojw, attprojb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb,
lnfw, lnfb), evaluates the mean next-token loss over WINDOWS consecutive windows of maxT + 1 bytes
of TEXT_FILE (window i starts at i * maxT) in float64 and prints {"loss": ...}.
"""
import json
import math
import sys

import torch

path, text, windows = sys.argv[1], sys.argv[2], int(sys.argv[3])
raw = open(path, "rb").read()
hdr = torch.frombuffer(bytearray(raw[:1024]), dtype=torch.int32).tolist()
assert hdr[0] == 20240326 and hdr[1] == 3, "not an llm.c fp32 model"
maxT, V, L, NH, C, Vp = hdr[2:8]
flat = torch.frombuffer(bytearray(raw[1024:]), dtype=torch.float32).double()
shapes = [(Vp, C), (maxT, C), (L, C), (L, C), (L, 3 * C, C), (L, 3 * C), (L, C, C), (L, C),
          (L, C), (L, C), (L, 4 * C, C), (L, 4 * C), (L, C, 4 * C), (L, C), (C,), (C,)]
p, off = [], 0
for s in shapes:
    n = math.prod(s)
    p.append(flat[off:off + n].reshape(s))
    off += n
assert off == flat.numel(), "size mismatch"
wte, wpe, ln1w, ln1b, qkvw, qkvb, apw, apb, ln2w, ln2b, fcw, fcb, fpw, fpb, lnfw, lnfb = p


def ln(x, w, b):
    m = x.mean(-1, keepdim=True)
    v = ((x - m) ** 2).mean(-1, keepdim=True)
    return (x - m) / torch.sqrt(v + 1e-5) * w + b


def gelu(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


data = torch.tensor(list(open(text, "rb").read()), dtype=torch.long)
T, hs = maxT, C // NH
total = 0.0
for w in range(windows):
    seq = data[w * T: w * T + T + 1]
    x = wte[seq[:T]] + wpe[:T]
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    for l in range(L):
        qkv = ln(x, ln1w[l], ln1b[l]) @ qkvw[l].T + qkvb[l]
        q, k, v = qkv.split(C, -1)
        q, k, v = (t.reshape(T, NH, hs).transpose(0, 1) for t in (q, k, v))
        a = (q @ k.transpose(1, 2)) / math.sqrt(hs)
        a = torch.softmax(a.masked_fill(mask, float("-inf")), -1)
        y = (a @ v).transpose(0, 1).reshape(T, C)
        x = x + y @ apw[l].T + apb[l]
        h = gelu(ln(x, ln2w[l], ln2b[l]) @ fcw[l].T + fcb[l])
        x = x + h @ fpw[l].T + fpb[l]
    logits = ln(x, lnfw, lnfb) @ wte[:V].T
    total += torch.nn.functional.cross_entropy(logits, seq[1:], reduction="sum").item()
print(json.dumps({"loss": total / (windows * T)}))
