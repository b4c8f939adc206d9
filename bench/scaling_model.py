"""scaling_model.py -- the step-time model of docs/scaling.md: data-parallel GPT training on 8 and 64
nodes of 8 GPUs, compute + hierarchical ring all-reduce, with and without ZeRO-1, and with the gradient
buckets reduced during the backward pass as normlab does it (--overlap on, the default) or after it
(--overlap off). Every assumption is a constant below; the sources are in docs/scaling.md.
Run: python3 bench/scaling_model.py [--tokens-per-gpu N]"""
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


def allreduce(nbytes, nodes, buckets=None):
    """hierarchical: ring reduce-scatter in the node over NVLink, all-reduce of 1/8 across nodes over
    each GPU's own IB port (bandwidth term of a ring, latency of a double binary tree: 2 log2(m)
    levels, as NCCL across nodes), ring all-gather in the node; latency paid per bucket"""
    g, m = GPUS_PER_NODE, nodes
    buckets = buckets or max(1, -(-nbytes // BUCKET))
    t_nvl = 2 * (g - 1) / g * nbytes / NVLINK + buckets * 2 * (g - 1) * ALPHA_NVL
    t_ib = 2 * (m - 1) / m * (nbytes / g) / IB + buckets * 2 * math.ceil(math.log2(m)) * ALPHA_IB if m > 1 else 0.0
    return t_nvl + t_ib


def exposed(L, d, tokens, nodes, zero):
    """Seconds of gradient reduction left after the backward, with normlab's buckets reduced in order
    as the backward finishes them (dp.c, model.h grad_ready). The backward runs the head first (its
    gradient is the tied embedding's, final only at the very end), then the blocks from the last to
    the first; each block's gradients are one bucket (a GPT-2 block is 12 d^2 floats, more than 16 MiB
    from d = 768), the embeddings (V d + T d) the last. Reductions run one after the other on the
    network (start = max(ready, previous end)). ZeRO-1 reduces each bucket to its shard owners (a
    reduce-scatter: half an all-reduce's time), then all-gathers the parameters after the update,
    which nothing hides."""
    rate = PEAK_FLOPS * MFU
    t_head = tokens * 4 * V * d / rate                     # dX and dW of the head (2 x 2 V d flops per token)
    t_block = tokens * (4 * 12 * d * d + 8 * d * T) / rate  # a block's backward (2/3 of its 6 x 12 d^2), attention too
    share = 0.5 if zero else 1.0
    ready = [t_head + (k + 1) * t_block for k in range(L)] + [t_head + L * t_block]  # blocks L-1..0, then embeddings
    sizes = [12 * d * d] * L + [V * d + T * d]
    end = 0.0
    for r, n in zip(ready, sizes):
        end = max(r, end) + share * allreduce(n * GRAD_BYTES, nodes, buckets=1)
    t_back = ready[-1]
    return max(0.0, end - t_back)


def step(name, nodes, tokens_per_gpu, zero):
    L, d = MODELS[name]
    n = params(L, d)
    flops = tokens_per_gpu * (6 * n + 12 * L * d * T)    # forward + backward, with attention
    t_comp = flops / (PEAK_FLOPS * MFU)
    ranks = nodes * GPUS_PER_NODE
    t_opt = n * ADAM_BYTES / HBM / (ranks if zero else 1)  # ZeRO-1: each rank updates 1/ranks
    # ZeRO-1: reduce-scatter + all-gather move what one all-reduce moves (a ring all-reduce is both)
    t_comm = allreduce(n * GRAD_BYTES, nodes)
    # overlapped: what is left of the bucket reductions after the backward (+ ZeRO-1's all-gather)
    t_left = exposed(L, d, tokens_per_gpu, nodes, zero) + (0.5 * t_comm if zero else 0.0)
    mem = n * (4 + 4 + (8 / ranks if zero else 8))       # params, grads, moments (fp32), no activations
    work = t_comp + t_opt  # the step without communication: efficiency = the share of the step it is
    return dict(n=n, t_comp=t_comp, t_opt=t_opt, t_comm=t_comm, eff=work / (work + t_comm), t_left=t_left,
                hidden=1 - t_left / t_comm, eff_ov=work / (work + t_left), mem=mem)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tokens-per-gpu", type=int, default=16384, help="tokens per GPU per optimizer step")
    a = ap.parse_args()
    print(f"tokens per GPU per step {a.tokens_per_gpu}; {PEAK_FLOPS/1e12:.0f} TFLOP/s x MFU {MFU}; "
          f"NVLink {NVLINK/1e9:.0f} GB/s, IB {IB/1e9:.0f} GB/s per GPU; fp32 gradients")
    print("| model | params | nodes | ZeRO-1 | compute ms | AdamW ms | all-reduce ms | efficiency, --overlap off | "
          "left after backward ms | hidden | efficiency, --overlap on | state GB/GPU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in MODELS:
        for nodes in (8, 64):
            for zero in (0, 1):
                r = step(name, nodes, a.tokens_per_gpu, zero)
                print(f"| {name} | {r['n']/1e6:.0f}M | {nodes} | {'yes' if zero else 'no'} | {r['t_comp']*1e3:.1f} | "
                      f"{r['t_opt']*1e3:.2f} | {r['t_comm']*1e3:.1f} | {100*r['eff']:.1f}% | {r['t_left']*1e3:.1f} | "
                      f"{100*r['hidden']:.0f}% | {100*r['eff_ov']:.1f}% | {r['mem']/1e9:.1f} |")


if __name__ == "__main__":
    main()
