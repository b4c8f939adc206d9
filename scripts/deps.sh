#!/usr/bin/env bash
# Installs what normlab needs on Debian 12 / Ubuntu, skipping packages already present:
# a C toolchain, oneDNN and OpenBLAS (its OpenMP build; normlab links both), and Debian's PyTorch (the independent reference the tests compare against),
# and for the tokenizer tests node + npm and the npm package gpt-3-encoder (the reference GPT-2 encoder) in build/npm.
# Extra package names may be passed as arguments (CI adds clang and libomp-dev).
set -euo pipefail
pkgs=(build-essential libdnnl-dev libopenblas-dev libopenblas-openmp-dev python3-torch python3-numpy pkg-config "$@")
command -v node >/dev/null || pkgs+=(nodejs)
command -v npm >/dev/null || pkgs+=(npm)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
cd "$(dirname "$0")/.."
if [ ! -f build/npm/node_modules/gpt-3-encoder/Encoder.js ]; then
    echo "installing: gpt-3-encoder (npm) into build/npm"
    mkdir -p build/npm
    npm install --prefix build/npm --no-audit --no-fund --silent gpt-3-encoder@1.1.4
fi
