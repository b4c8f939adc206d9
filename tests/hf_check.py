"""Loads a `normlab export --format hf` directory with Hugging Face transformers and scores it.

usage: hf_check.py HF_DIR EXPORT.safetensors DATA MAX_WINDOWS [SAVE_DIR]

HF_DIR is opened with AutoModelForCausalLM.from_pretrained (offline: no hub access). DATA is a text
file, read as byte tokens, or for a GPT-2-vocabulary model (50257) encoded as `normlab eval` encodes
it (<|endoftext|>, then GPT-2's BPE, here by tiktoken through tests/bpe_ref.py), cut into the windows
`normlab eval` uses: window i holds tokens [i*T, i*T+T],
inputs its first T, targets its last T (T = the model's context), at most MAX_WINDOWS of them.
EXPORT is the same model in normlab's own export: python/normlab_torch.py (the PyTorch twin,
written from the equations) computes its logits in float64 on the same windows.

For a GPT-2-vocabulary model the directory's tokenizer files (AutoTokenizer) must encode DATA as
tiktoken does.

Prints one JSON object: the transformers class, its mean cross-entropy in the windows
("loss", compared by tests/test_hf.c with `normlab eval`), the token count, and the norm-wise
relative difference between the transformers logits and the twin's ("logit_rel_err").
With SAVE_DIR the loaded model is also written there by transformers' own save_pretrained, for
`normlab train --init-from SAVE_DIR` to read what transformers writes, not only what normlab writes.
Runs with tests/test_hf.c; the interpreter is build/venv/bin/python (scripts/deps.sh).
"""

import json
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never reach the hub
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import torch  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import normlab_torch  # noqa: E402


def windows(path, seq_len, max_windows, vocab, hf_dir):
    data = open(path, "rb").read()
    if vocab == 50257:
        import bpe_ref
        from transformers import AutoTokenizer

        enc = bpe_ref.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "gpt2-bpe"))
        text = data.decode("utf-8", errors="replace")
        data = [50256] + enc.encode_ordinary(text)
        # the export's tokenizer files (vocab.json, merges.txt): transformers encodes as tiktoken does
        tok = AutoTokenizer.from_pretrained(hf_dir, local_files_only=True)
        if tok.encode(text) != data[1:] or tok.eos_token_id != 50256:
            raise SystemExit(f"hf_check.py: {type(tok).__name__} of '{hf_dir}' encodes '{path}' unlike GPT-2 (tiktoken)")
    n = (len(data) - 1) // seq_len
    if max_windows:
        n = min(n, max_windows)
    if n < 1:
        raise SystemExit(f"hf_check.py: '{path}' is shorter than one window of {seq_len + 1} tokens")
    w = torch.tensor([list(data[i * seq_len:i * seq_len + seq_len + 1]) for i in range(n)], dtype=torch.long)
    return w[:, :-1], w[:, 1:]


def main():
    if len(sys.argv) not in (5, 6):
        raise SystemExit("usage: hf_check.py HF_DIR EXPORT.safetensors DATA MAX_WINDOWS [SAVE_DIR]")
    hf_dir, export, data, max_windows = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    model = AutoModelForCausalLM.from_pretrained(hf_dir, local_files_only=True, torch_dtype=torch.float32)
    model.eval()
    twin = normlab_torch.load(export, dtype=torch.float64)
    twin.eval()
    inp, tgt = windows(data, twin.config.seq_len, max_windows, twin.config.vocab, hf_dir)
    with torch.no_grad():
        logits = model(input_ids=inp, use_cache=False).logits.double()
        want = twin(inp)
    if len(sys.argv) == 6:
        model.save_pretrained(sys.argv[5], safe_serialization=True)
    flat = logits.reshape(-1, logits.shape[-1])
    nll = torch.logsumexp(flat, dim=-1) - flat.gather(1, tgt.reshape(-1, 1))[:, 0]
    rel = (torch.linalg.norm(logits - want) / torch.linalg.norm(want).clamp_min(1e-12)).item()
    print(json.dumps({"class": type(model).__name__, "loss": nll.mean().item(), "tokens": nll.numel(),
                      "logit_rel_err": rel}))


if __name__ == "__main__":
    main()
