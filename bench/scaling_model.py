"""scaling_model.py -- the step-time model of docs/scaling.md: data-parallel GPT training on 8 and 64
nodes of 8 GPUs, compute + hierarchical ring all-reduce (not overlapped, as normlab's trainer does
it; the overlapped bound too), with and without ZeRO-1. Every assumption is a constant below; the
sources are in docs/scaling.md. Run: python3 bench/scaling_model.py [--tokens-per-gpu N]"""
import argparse
import math

# per device (assumed: no GPU was measured here)
PEAK_FLOPS = 989e12      # H100 SXM dense BF16 tensor-core peak
MFU = 0.40               # achieved fraction of peak in the model's forward + backward
HBM = 3.35e12            # H100 SXM HBM3 bytes/s (the AdamW update is memory-bound)
ADAM_BYTES = 28          # bytes moved per parameter by a fused fp32 AdamW: p, m, v read+write, g read
MEM = 80e9               # H100 memory
# interconnect
NVLINK = 450e9           # NVLink 4 per GPU, one direction (900 GB/s bidirectional)
IB = 50e9                # one 400 Gb/s NDR InfiniBand port per GPU (8 per node)
ALPHA_NVL, ALPHA_IB = 5e-6, 10e-6   # latency per ring step in the node, per tree level across nodes
GPUS_PER_NODE = 8
GRAD_BYTES = 4           # fp32 gradients, as normlab reduces them
BUCKET = 16 * 2**20      # normlab's all-reduce bucket (bytes)

MODELS = {  # name: (layers, width); params = 12 L d^2 + V d (GPT-2 shapes, V = 50257, T = 1024)
    "124M": (12, 768), "400M": (24, 1088), "1.5B": (48, 1600), "3.2B": (32, 2816)}
V, T = 50257, 1024


def params(L, d):
    return 12 * L * d * d + V * d


def allreduce(nbytes, nodes):
    """hierarchical: ring reduce-scatter in the node over NVLink, all-reduce of 1/8 across nodes over
    each GPU's own IB port (bandwidth term of a ring, latency of a double binary tree: 2 log2(m)
    levels, as NCCL across nodes), ring all-gather in the node; latency paid per bucket"""
    g, m = GPUS_PER_NODE, nodes
    buckets = max(1, -(-nbytes // BUCKET))
    t_nvl = 2 * (g - 1) / g * nbytes / NVLINK + buckets * 2 * (g - 1) * ALPHA_NVL
    t_ib = 2 * (m - 1) / m * (nbytes / g) / IB + buckets * 2 * math.ceil(math.log2(m)) * ALPHA_IB if m > 1 else 0.0
    return t_nvl + t_ib


def step(name, nodes, tokens_per_gpu, zero):
    L, d = MODELS[name]
    n = params(L, d)
    flops = tokens_per_gpu * (6 * n + 12 * L * d * T)    # forward + backward, with attention
    t_comp = flops / (PEAK_FLOPS * MFU)
    ranks = nodes * GPUS_PER_NODE
    t_opt = n * ADAM_BYTES / HBM / (ranks if zero else 1)  # ZeRO-1: each rank updates 1/ranks
    # ZeRO-1: reduce-scatter + all-gather move what one all-reduce moves (a ring all-reduce is both)
    t_comm = allreduce(n * GRAD_BYTES, nodes)
    mem = n * (4 + 4 + (8 / ranks if zero else 8))       # params, grads, moments (fp32), no activations
    work = t_comp + t_opt  # the step without communication: efficiency = the share of the step it is
    return dict(n=n, t_comp=t_comp, t_opt=t_opt, t_comm=t_comm, eff=work / (work + t_comm),
                eff_overlap=work / (max(t_comp, t_comm) + t_opt), mem=mem)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tokens-per-gpu", type=int, default=16384, help="tokens per GPU per optimizer step")
    a = ap.parse_args()
    print(f"tokens per GPU per step {a.tokens_per_gpu}; {PEAK_FLOPS/1e12:.0f} TFLOP/s x MFU {MFU}; "
          f"NVLink {NVLINK/1e9:.0f} GB/s, IB {IB/1e9:.0f} GB/s per GPU; fp32 gradients")
    print("| model | params | nodes | ZeRO-1 | compute ms | AdamW ms | all-reduce ms | efficiency | overlapped bound | state GB/GPU |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in MODELS:
        for nodes in (8, 64):
            for zero in (0, 1):
                r = step(name, nodes, a.tokens_per_gpu, zero)
                print(f"| {name} | {r['n']/1e6:.0f}M | {nodes} | {'yes' if zero else 'no'} | {r['t_comp']*1e3:.1f} | "
                      f"{r['t_opt']*1e3:.2f} | {r['t_comm']*1e3:.1f} | {100*r['eff']:.1f}% | {100*r['eff_overlap']:.0f}% | "
                      f"{r['mem']/1e9:.1f} |")


if __name__ == "__main__":
    main()
