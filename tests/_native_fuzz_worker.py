"""Worker of the native fuzz test (tests/test_native_fuzz.py): runs native calls described in JSON
lines on stdin, one reply line each on stdout. It runs in its own process, under an address-space
limit, so that a crash or a runaway allocation in native code fails that test (the parent sees the
process die) instead of taking pytest down.

A request: {"op": "warp", "args": [ARG, ...], "kwargs": {"name": ARG, ...}} where ARG is
{"array": RECIPE} (built here, see build_array), {"guides": [[RECIPE, RECIPE, WEIGHT], ...]}, or
{"value": any JSON value}. A reply: {"ok": [[shape, dtype], ...], "finite_error": bool|null} or
{"error": exception type name, "message": str}.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import sys
import warnings

import numpy as np

ADDRESS_SPACE_LIMIT = 3 << 30  # bytes: huge views fail fast with MemoryError instead of filling RAM


def build_array(recipe: dict) -> np.ndarray:
    """An array as the recipe says: base shape and dtype, fill, then a layout (views keep their
    odd strides; "broadcast" makes a huge logical array out of one element)."""
    shape, dtype, fill = tuple(recipe["shape"]), np.dtype(recipe["dtype"]), recipe["fill"]
    layout = recipe.get("layout", "c")
    if layout == "broadcast":
        value = {"nan": np.nan, "inf": np.inf, "huge": 1e30}.get(fill, 1)
        with np.errstate(invalid="ignore", over="ignore"):
            return np.broadcast_to(np.array(value).astype(dtype), shape)
    base_shape = shape
    if layout == "transpose":
        base_shape = shape[::-1]
    elif layout == "slice":
        base_shape = tuple(2 * s for s in shape)
    rng = np.random.default_rng(recipe.get("seed", 0))
    size = int(np.prod(base_shape))
    if fill == "zeros":
        data = np.zeros(size)
    elif fill == "nan":
        data = np.where(rng.random(size) < 0.5, np.nan, 1.0)
    elif fill == "inf":
        data = np.where(rng.random(size) < 0.5, np.inf, -1.0)
    elif fill == "huge":  # beyond what synthesis accepts
        data = rng.choice([1e19, -3e38, 2.2e9, 1e10], size)
    elif fill == "huge_finite":  # valid for warp, occlusion and blends: far beyond the frame or range
        data = rng.choice([1e19, -3e38, 2.2e9, -2.2e9, 1e30, 0.5], size)
    elif fill == "max_valid":  # the largest synthesis inputs
        data = rng.choice([1e9, -1e9, 0.0], size)
    elif fill == "plus_inf":  # error maps: +inf means "never this one"
        data = np.where(rng.random(size) < 0.3, np.inf, rng.random(size))
    elif fill == "unit":  # weights
        data = rng.random(size)
    elif fill == "nnf":  # warm starts: small coordinates, some "no guess"
        data = np.where(rng.random(size) < 0.2, -1, rng.integers(0, 6, size))
    elif fill == "negative":
        data = -rng.random(size) * 1000
    else:  # "random": 0-255 (and fractions for floats)
        data = rng.random(size) * 255
    with np.errstate(invalid="ignore", over="ignore"):
        arr = data.astype(dtype).reshape(base_shape)
    if layout == "transpose":
        return arr.transpose(tuple(range(len(shape)))[::-1])
    if layout == "slice":
        return arr[tuple(slice(None, None, 2) for _ in shape)]
    if layout == "fortran":
        return np.asfortranarray(arr)
    return arr


def build(arg: dict):
    if "array" in arg:
        return build_array(arg["array"])
    if "guides" in arg:
        return [tuple(build_array(g) if isinstance(g, dict) else g for g in guide) for guide in arg["guides"]]
    return arg["value"]


def describe(result) -> list:
    parts = result if isinstance(result, tuple) else (result,)
    if hasattr(result, "image"):  # rerender.Synthesis
        parts = (result.image, result.nnf, result.error)
    return [[list(p.shape), str(p.dtype)] for p in parts]


def main() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))
    warnings.simplefilter("ignore")  # (casts of NaN to integers in the recipes)
    import rerender

    # RERENDER_FUZZ_LOG=FILE keeps every request, to replay a crash that earlier calls set up
    log = open(os.environ["RERENDER_FUZZ_LOG"], "a") if os.environ.get("RERENDER_FUZZ_LOG") else None
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if log:
            log.write(line)
            log.flush()
        request = json.loads(line)
        if request["op"] == "__crash__":  # the harness's own test: a crash must be reported
            os.kill(os.getpid(), signal.SIGSEGV)
        try:
            args = [build(a) for a in request["args"]]
            kwargs = {k: build(v) for k, v in request["kwargs"].items()}
        except MemoryError:  # the recipe itself does not fit under the limit: nothing to test
            print(json.dumps({"skipped": "input does not fit"}), flush=True)
            continue
        try:
            result = getattr(rerender, request["op"])(*args, **kwargs)
        except Exception as e:  # the parent decides which exceptions are acceptable
            print(json.dumps({"error": type(e).__name__, "message": str(e)[:500]}), flush=True)
            continue
        finite = bool(np.isfinite(result.error).all()) if hasattr(result, "error") else None
        print(json.dumps({"ok": describe(result), "finite_error": finite}), flush=True)


if __name__ == "__main__":
    main()
