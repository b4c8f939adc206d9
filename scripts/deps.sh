#!/usr/bin/env bash
# Installs what normlab needs on Debian 12 / Ubuntu, skipping what is already present:
# - Debian packages: a C toolchain, oneDNN and OpenBLAS (its OpenMP build; normlab links both), Debian's PyTorch
#   (the independent reference the twin tests compare against) and python3-venv; extra package names may
#   be passed as arguments (CI adds clang, libomp-dev, valgrind, chromium). clang-format (14 on Debian 12) is
#   for make format / make format-check.
# - PyPI packages for the tests (scripts/requirements.txt) into the virtual environment build/venv.
set -euo pipefail
pkgs=(build-essential libdnnl-dev libopenblas-dev libopenblas-openmp-dev python3-torch python3-numpy python3-venv pkg-config zlib1g-dev libpng-dev dataset-fashion-mnist clang-format "$@")
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
req=scripts/requirements.txt
# The venv sees Debian's python3-torch and numpy (--system-site-packages): transformers runs on them,
# and no multi-GB torch wheel is downloaded. A venv made without that flag is made again.
if ! cmp -s "$req" build/venv/requirements.txt 2>/dev/null || ! grep -qx "include-system-site-packages = true" build/venv/pyvenv.cfg 2>/dev/null; then
    echo "installing: $(grep -v '^#' "$req" | tr '\n' ' ')(PyPI) into build/venv"
    grep -qx "include-system-site-packages = true" build/venv/pyvenv.cfg 2>/dev/null || rm -rf build/venv
    [ -x build/venv/bin/python ] || /usr/bin/python3 -m venv --system-site-packages build/venv
    build/venv/bin/pip install -q --disable-pip-version-check -r "$req"
    cp "$req" build/venv/requirements.txt
fi
