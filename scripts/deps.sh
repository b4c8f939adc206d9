#!/usr/bin/env bash
# Installs what normlab needs on Debian 12 / Ubuntu, skipping packages already present:
# a C toolchain, OpenBLAS (its OpenMP build, which normlab links), and Debian's PyTorch (the independent reference the tests compare against).
# Extra package names may be passed as arguments (CI adds clang and libomp-dev).
set -euo pipefail
pkgs=(build-essential libopenblas-dev libopenblas-openmp-dev python3-torch python3-numpy "$@")
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
