"""bpe_ref.py -- the reference GPT-2 encoder for tests/test_bpe.c: OpenAI's tiktoken (PyPI, a Rust
implementation), built offline from GPT-2's own encoder.json and vocab.bpe with GPT-2's
pre-tokenisation pattern. scripts/deps.sh installs it into build/venv (scripts/requirements.txt).

    build/venv/bin/python tests/bpe_ref.py encode BPE_DIR IN OUT
        IN's bytes decoded as UTF-8 (each maximal invalid subpart -> U+FFFD), encoded as ordinary text
        (<|endoftext|> is not special); OUT gets the ids, one per line
    build/venv/bin/python tests/bpe_ref.py decode BPE_DIR IN OUT
        IN holds ids one per line; OUT gets the decoded bytes
"""
import os
import sys

os.environ["TIKTOKEN_CACHE_DIR"] = ""  # read the local files as they are, cache nothing

import tiktoken  # noqa: E402
from tiktoken.load import data_gym_to_mergeable_bpe_ranks  # noqa: E402

# GPT-2's pattern (encoder.py in openai/gpt-2), in the form tiktoken's r50k/gpt2 encodings use
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def load(bpe_dir):
    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=os.path.join(bpe_dir, "vocab.bpe"),
        encoder_json_file=os.path.join(bpe_dir, "encoder.json"),
    )
    return tiktoken.Encoding(
        name="gpt2-local",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": 50256},
    )


def main(argv):
    if len(argv) != 5 or argv[1] not in ("encode", "decode"):
        print("usage: bpe_ref.py encode|decode BPE_DIR IN OUT", file=sys.stderr)
        return 2
    mode, bpe_dir, inp, out = argv[1:]
    enc = load(bpe_dir)
    with open(inp, "rb") as f:
        data = f.read()
    if mode == "encode":
        ids = enc.encode_ordinary(data.decode("utf-8", errors="replace"))
        with open(out, "w") as f:
            f.write("".join(f"{i}\n" for i in ids))
    else:
        ids = [int(s) for s in data.split()]
        with open(out, "wb") as f:
            f.write(enc.decode_bytes(ids))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
