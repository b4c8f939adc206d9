#!/usr/bin/env bash
# GPT-2 tokenizer throughput on one core (make bench-bpe). Inputs: Tiny Shakespeare (English), this
# repository's C sources (code), the tokenizer test corpus repeated (many scripts, emoji, whitespace)
# and 4 MB of random bytes (mostly invalid UTF-8, long pieces). Each file starts with a cold cache.
# The encoder is single-threaded: one core. Wall-clock MB/s depends on other load (uptime is printed);
# CPU-time MB/s counts only the time the encoder ran.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/release/bpe_bench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ts=data/tinyshakespeare.txt
[ -f "$ts" ] || ts=data/tinyshakespeare.txt
cat src/*.c src/*.h tests/*.c > "$tmp/code.txt"
for i in $(seq 300); do cat tests/data/bpe_corpus.txt; done > "$tmp/multilingual.txt"
head -c 4000000 /dev/urandom > "$tmp/random.bin"
uptime
build/release/bpe_bench "$ts" "$tmp/code.txt" "$tmp/multilingual.txt" "$tmp/random.bin"
