#!/usr/bin/env bash
# Regenerates the seed corpora in fuzz/corpus/ (small valid inputs of each reader) with the normlab
# binary given as $1 (default build/release/normlab). The seeds are committed; run this after a
# format change.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/release/normlab}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
c=fuzz/corpus
rm -rf $c && mkdir -p $c/safetensors $c/ckpt $c/shard $c/config $c/metrics $c/tboard $c/idx $c/png
head -c 4000 /dev/urandom | base64 > "$tmp/t.txt"
# the smallest checkpoint and export: 1 block, d=4, T=4, bytes
"$bin" train --layers 1 --dim 4 --heads 1 --seq-len 4 --batch 2 --steps 3 --warmup 1 --eval-every 0 --threads 1 \
    --data "$tmp/t.txt" --out "$tmp/run" --on-nan rollback >/dev/null
cp "$tmp/run/ckpt-00000003.safetensors" $c/ckpt/ckpt
"$bin" export --ckpt "$tmp/run" --out $c/ckpt/export >/dev/null
"$bin" train --layers 1 --dim 4 --heads 1 --seq-len 4 --batch 2 --steps 2 --norm post --norm-type rmsnorm --threads 1 \
    --data "$tmp/t.txt" --out "$tmp/run2" >/dev/null
cp "$tmp/run2/ckpt-00000002.safetensors" $c/ckpt/ckpt-post-rms
cp $c/ckpt/export $c/safetensors/export
# hand-written safetensors: two tensors and metadata; empty header; an I32 vector
h='{"__metadata__":{"k":"v\u00e9"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"U16","shape":[3],"data_offsets":[16,22]}}'
{ printf "$(printf '\\x%02x' ${#h})\0\0\0\0\0\0\0"; printf '%s' "$h"; head -c 22 /dev/zero; } > $c/safetensors/two
{ printf '\x02\0\0\0\0\0\0\0{}'; } > $c/safetensors/empty
h='{"i":{"dtype":"I64","shape":[],"data_offsets":[0,8]},"x":{"dtype":"F64","shape":[1,1,1,1],"data_offsets":[0,8]}}'
{ printf "$(printf '\\x%02x' ${#h})\0\0\0\0\0\0\0"; printf '%s' "$h"; head -c 8 /dev/zero; } > $c/safetensors/scalar
# shards: first byte 0 = .bin, 1 = text
python3 - "$c/shard" <<'PY'
import struct, sys
d = sys.argv[1]
hdr = [20240520, 1, 5] + [0] * 253
open(d + "/shard", "wb").write(b"\0" + struct.pack("<256i", *hdr) + struct.pack("<5H", 1, 2, 50000, 7, 65535))
open(d + "/text", "wb").write(b"\1" + b"the cat sat on the mat\n" * 4)
PY
# command lines (one word per line) and config.txt lines
printf -- '--norm\npre\n--layers\n2\n--dim\n64\n--heads\n4\n--lr=3e-3\n--on-nan\nrollback\n--keep-ckpts\n2\n' > $c/config/train
printf -- '--resume\nruns/x\n--threads\n2\n--max-rollbacks\n5\n' > $c/config/resume
printf -- '--ckpt\nruns/x\n--prompt\nhello\n--tokens\n10\n--top-k\n5\n--temperature\n0.5\n' > $c/config/sample
grep -v '^#' "$tmp/run/config.txt" | sed 's/ = /=/' > $c/config/config-txt
# metrics: 4-byte max step, then lines
{ printf '\x02\0\0\0'; head -3 "$tmp/run/metrics.jsonl"; printf '{"step": 4, "lo'; } > $c/metrics/cut
# tboard: 4-byte step, then an event file (with diagnostics, and one with a torn last record)
"$bin" train --layers 1 --dim 4 --heads 1 --seq-len 4 --batch 2 --steps 4 --diag-every 2 --threads 1 \
    --data "$tmp/t.txt" --out "$tmp/run3" >/dev/null
{ printf '\x02\0\0\0'; cat "$tmp"/run3/events.out.tfevents.*; } > $c/tboard/cut
{ printf '\x03\0\0\0'; cat "$tmp"/run3/events.out.tfevents.* | head -c -7; } > $c/tboard/torn
# idx (Fashion-MNIST): 2 bytes of the images file's length, the images file, the labels file; gzip and plain
# png: gray, RGB, RGBA, gray+alpha 16-bit, a 2-bit palette with transparency, a 1x1 interlaced image
python3 - "$c" <<'PY'
import gzip, struct, sys, zlib
c = sys.argv[1]
def idx(dims, payload):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + bytes(payload)
def pair(img, lab):
    return struct.pack("<H", len(img)) + img + lab
img, lab = idx([3, 4, 2], range(0, 240, 10)), idx([3], [0, 9, 4])
open(c + "/idx/plain", "wb").write(pair(img, lab))
open(c + "/idx/gzip", "wb").write(pair(gzip.compress(img, mtime=0), gzip.compress(lab, mtime=0)))
open(c + "/idx/one", "wb").write(pair(idx([1, 1, 1], [255]), idx([1], [7])))
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
def png(w, h, depth, color, rows, extra=b"", interlace=0):
    raw = b"".join(b"\0" + bytes(r) for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace)) + extra
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
open(c + "/png/gray", "wb").write(png(3, 2, 8, 0, [[0, 128, 255], [1, 2, 3]]))
open(c + "/png/rgb", "wb").write(png(2, 2, 8, 2, [[255, 0, 0, 0, 255, 0], [0, 0, 255, 9, 9, 9]]))
open(c + "/png/rgba", "wb").write(png(2, 1, 8, 6, [[255, 0, 0, 128, 0, 255, 0, 0]]))
open(c + "/png/gray-alpha16", "wb").write(png(1, 2, 16, 4, [[1, 2, 255, 255], [200, 0, 0, 0]]))
pal = chunk(b"PLTE", bytes([0, 0, 0, 255, 255, 255, 255, 0, 0])) + chunk(b"tRNS", bytes([255, 0]))
open(c + "/png/palette", "wb").write(png(4, 2, 2, 3, [[0b00011000], [0b10100100]], pal))
open(c + "/png/interlaced", "wb").write(png(1, 1, 8, 2, [[10, 20, 30]], interlace=1))
PY
