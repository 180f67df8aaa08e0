"""The native bindings never crash: fuzzed calls of synthesize, warp, occlusion, histogram_blend
and min_error_combine (random shapes, dtypes and layouts: non-contiguous, Fortran-ordered,
broadcast and huge-shape views; NaN, inf and huge values; bad parameters) either return results
of the right shape and dtype or raise ValueError / MemoryError / TypeError.

Each call runs in a worker process (tests/_native_fuzz_worker.py) under a 3 GiB address-space
limit, so a segfault or abort fails the test with the call that caused it instead of killing
pytest, and huge requests fail fast. The number of calls per function is bounded for CI (about a
minute in all on 2 cores); RERENDER_FUZZ_EXAMPLES raises it for a longer local run.

Also here: one regression test per crash or wrong result found before (issue 16).
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import rerender

WORKER = Path(__file__).with_name("_native_fuzz_worker.py")
EXAMPLES = int(os.environ.get("RERENDER_FUZZ_EXAMPLES", "150"))
CALL_TIMEOUT = 120  # seconds; a call that takes longer is a hang
ALLOWED = {"ValueError", "MemoryError", "TypeError"}


class Worker:
    """A fuzz worker process, restarted after it dies."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.stderr = None

    def start(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "2", "MALLOC_ARENA_MAX": "2", "PYTHONFAULTHANDLER": "1"}
        self.stderr = tempfile.TemporaryFile(mode="w+")  # (a pipe could fill up and block the worker)
        self.proc = subprocess.Popen([sys.executable, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True, env=env)
        assert json.loads(self._read_line(60)) == {"ready": True}

    def _read_line(self, timeout: float) -> str:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.proc.kill()
            raise AssertionError(f"native call hung (no answer in {timeout} s)")
        return self.proc.stdout.readline()

    def call(self, request: dict) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self._read_line(CALL_TIMEOUT)
        if not line:  # the worker died in the call
            code = self.proc.wait()
            self.stderr.seek(0)
            stderr = self.stderr.read()[-3000:]
            self.proc = None
            raise AssertionError(f"native call crashed (exit status {code}): {json.dumps(request)}\n{stderr}")
        return json.loads(line)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def worker():
    w = Worker()
    yield w
    w.stop()


# ---- recipes of arguments (built by the worker) ---------------------------------------------
# Each example breaks at most one argument (or none), so that most calls get past validation and
# into the native code with odd layouts and values, and every kind of bad argument is tried too.

LAYOUTS = ["c", "c", "transpose", "slice", "fortran", "broadcast"]
BAD_DTYPES = ["float64", "int32", "bool", "float16", "int64"]
HUGE_SHAPES = [(65536, 65536, 8), (65537, 3), (3, 70000, 2), (40000, 40000, 3), (2**31, 1), (30000, 30000, 2),
               (65536, 65536), (8, 8, 100000), (0, 5, 3), (5, 5, 0)]


def recipe(shape, dtype="uint8", fill="random", layout="c", seed=0) -> dict:
    return {"array": {"shape": list(shape), "dtype": dtype, "fill": fill, "layout": layout, "seed": seed}}


@st.composite
def array(draw, shape, dtypes, fills=("random", "random", "zeros"), broken=False) -> dict:
    """A recipe of this shape with one of the accepted dtypes and values, in any layout; or, when
    broken, one thing wrong (dtype, values, rank, size, or a huge view)."""
    shape = list(shape)
    dtype, fill = draw(st.sampled_from(dtypes)), draw(st.sampled_from(list(fills)))
    layout, seed = draw(st.sampled_from(LAYOUTS)), draw(st.integers(0, 3))
    if broken:
        kind = draw(st.sampled_from(["dtype", "values", "rank", "size", "huge", "channels"]))
        if kind == "dtype":
            dtype = draw(st.sampled_from(BAD_DTYPES))
        elif kind == "values":
            fill, dtype = draw(st.sampled_from(["nan", "inf", "huge"])), "float32"
        elif kind == "rank":
            shape = draw(st.sampled_from([shape[:1], shape + [1, 1], [], shape[:2] + [3, 2]]))
        elif kind == "size":
            shape = [draw(st.integers(1, 12)), draw(st.integers(1, 12))] + shape[2:]
        elif kind == "channels":
            shape = shape[:2] + [draw(st.sampled_from([1, 2, 3, 5, 300]))]
        else:
            return recipe(draw(st.sampled_from(HUGE_SHAPES)), dtype, fill, "broadcast")
    return recipe(shape, dtype, fill, layout, seed)


BAD_NUMBERS = [None, -1, 1e308, float("nan"), float("inf"), -1e-9, "3", [1], True, 2**70]


def number(draw, valid, broken: bool):
    return value(draw(st.sampled_from(BAD_NUMBERS) if broken else valid))


def threads_arg(draw, broken: bool):
    return value(draw(st.sampled_from([-1, 5000, None, 1.5, "2"]) if broken else st.sampled_from([0, 1, 2])))


def pick_broken(draw, names: list[str]):
    """Which argument this example breaks (None: none; about half the examples)."""
    return draw(st.sampled_from([None] * len(names) + names))


def value(v) -> dict:
    return {"value": v}


def expect(reply: dict, shapes: list, broken=None) -> None:
    """The reply is an allowed exception, or results of exactly these [shape, dtype]s."""
    event("result" if "ok" in reply else reply.get("error", "skipped"))  # (--hypothesis-show-statistics)
    event(f"broken {broken}")
    if "skipped" in reply:
        return
    if "error" in reply:
        assert reply["error"] in ALLOWED, reply
        assert reply["message"], reply  # errors say what is wrong
        return
    assert reply["ok"] == [[list(s), d] for s, d in shapes], reply


def dtype_of(arg: dict) -> str:
    return arg["array"]["dtype"]


def shape_of(arg: dict) -> list:
    return arg["array"]["shape"]


FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
IMAGE = ["uint8", "float32"]
FLOW = ["float32"]
sizes = st.integers(1, 40)
channels = st.sampled_from([None, 1, 3, 4])


def hw(h, w, c):
    return [h, w] if c is None else [h, w, c]


# ---- the five functions -----------------------------------------------------------------------

@FUZZ
@given(data=st.data(), h=sizes, w=sizes, c=channels)
def test_fuzz_warp(worker, data, h, w, c):
    draw = data.draw
    broken = pick_broken(draw, ["image", "flow", "mode", "threads"])
    # any finite image values and flows (flows far beyond the frame included) are valid
    image = draw(array(hw(h, w, c), IMAGE, ("random", "zeros", "negative"), broken == "image"))
    flow = draw(array([h, w, 2], FLOW, ("random", "zeros", "negative"), broken == "flow"))
    if broken != "flow" and draw(st.booleans()):
        flow["array"]["fill"] = "huge_finite"
    mode = draw(st.sampled_from(["cubic", "", None, 3] if broken == "mode" else ["bilinear", "nearest"]))
    return_valid = draw(st.booleans())
    reply = worker.call({"op": "warp", "args": [image, flow],
                         "kwargs": {"mode": value(mode), "return_valid": value(return_valid),
                                    "threads": threads_arg(draw, broken == "threads"), "backend": value("cpu")}})
    expect(reply, [(shape_of(image), dtype_of(image))] + ([(shape_of(image)[:2], "uint8")] if return_valid else []), broken)


@FUZZ
@given(data=st.data(), h=sizes, w=sizes)
def test_fuzz_occlusion(worker, data, h, w):
    draw = data.draw
    broken = pick_broken(draw, ["flow_ab", "flow_ba", "alpha1", "alpha2", "threads"])
    fwd = draw(array([h, w, 2], FLOW, ("random", "zeros", "negative", "huge_finite"), broken == "flow_ab"))
    bwd = draw(array([h, w, 2], FLOW, ("random", "zeros", "negative", "huge_finite"), broken == "flow_ba"))
    alpha1 = number(draw, st.floats(0, 1), broken == "alpha1")
    alpha2 = number(draw, st.floats(0, 1e4), broken == "alpha2")
    reply = worker.call({"op": "occlusion", "args": [fwd, bwd, alpha1, alpha2],
                         "kwargs": {"threads": threads_arg(draw, broken == "threads"), "backend": value("cpu")}})
    expect(reply, [(shape_of(fwd)[:2], "uint8")], broken)


@FUZZ
@given(data=st.data(), h=sizes, w=sizes, c=channels, dtype=st.sampled_from(IMAGE))
def test_fuzz_histogram_blend(worker, data, h, w, c, dtype):
    draw = data.draw
    broken = pick_broken(draw, ["a", "b", "weight_a", "reference", "threads"])
    a = draw(array(hw(h, w, c), [dtype], ("random", "zeros", "negative", "huge_finite"), broken == "a"))
    b = draw(array(hw(h, w, c), [dtype], ("random", "zeros"), broken == "b"))
    if draw(st.booleans()):
        weight = draw(array([h, w], FLOW, ("unit",), broken == "weight_a"))
    else:
        weight = number(draw, st.floats(0, 1), broken == "weight_a")
    reference = value(None)
    if broken == "reference" or draw(st.booleans()):
        reference = draw(array(hw(draw(sizes), draw(sizes), c), [dtype], ("random", "zeros"), broken == "reference"))
    reply = worker.call({"op": "histogram_blend", "args": [a, b, weight, reference],
                         "kwargs": {"threads": threads_arg(draw, broken == "threads"), "backend": value("cpu")}})
    expect(reply, [(shape_of(a), dtype_of(a))], broken)


@FUZZ
@given(data=st.data(), h=sizes, w=sizes, c=channels, dtype=st.sampled_from(IMAGE))
def test_fuzz_min_error_combine(worker, data, h, w, c, dtype):
    draw = data.draw
    broken = pick_broken(draw, ["a", "b", "error_a", "error_b", "threads"])
    a = draw(array(hw(h, w, c), [dtype], ("random", "zeros", "huge_finite"), broken == "a"))
    b = draw(array(hw(h, w, c), [dtype], ("random", "zeros"), broken == "b"))
    ea = draw(array([h, w], FLOW, ("random", "zeros", "plus_inf"), broken == "error_a"))
    eb = draw(array([h, w], FLOW, ("random", "zeros", "plus_inf"), broken == "error_b"))
    reply = worker.call({"op": "min_error_combine", "args": [a, b, ea, eb],
                         "kwargs": {"threads": threads_arg(draw, broken == "threads"), "backend": value("cpu")}})
    expect(reply, [(shape_of(a), dtype_of(a)), (shape_of(a)[:2], "uint8")], broken)


SYNTHESIS_PARAMS = {  # valid values (kept small: the fuzzer runs many calls), and bad ones
    "patch_size": (st.sampled_from([3, 5]), [1, 4, 33, -5, 2.0, None, "5"]),
    "pyramid_levels": (st.one_of(st.none(), st.integers(1, 2)), [0, 17, -1, 2.5, "2"]),
    "search_vote_iters": (st.integers(1, 3), [0, -3, 10**12, "4", None]),
    "patchmatch_iters": (st.integers(0, 3), [-1, 10**12, 1.0, None]),
    "uniformity": (st.floats(0, 1e4), BAD_NUMBERS),
    "stop_threshold": (st.floats(0, 100), BAD_NUMBERS),
    "style_weight": (st.floats(0, 10), BAD_NUMBERS),
    "seed": (st.integers(0, 2**64 - 1), [-1, 2**64, 1.5, None]),
}


@FUZZ
@given(data=st.data(), h=st.integers(6, 32), w=st.integers(6, 32), ht=st.integers(1, 32), wt=st.integers(1, 32),
       c=channels, dtype=st.sampled_from(IMAGE))
def test_fuzz_synthesize(worker, data, h, w, ht, wt, c, dtype):
    draw = data.draw
    names = ["style", "guides", "guide source", "guide target", "guide weight", "init_nnf", "target_mask",
             "threads"] + list(SYNTHESIS_PARAMS)
    broken = pick_broken(draw, names)
    # float values up to 1e9 in magnitude are valid (synthesis_limits); "huge" is beyond
    style = draw(array(hw(h, w, c), [dtype], ("random", "zeros", "negative", "max_valid"), broken == "style"))
    guides = []
    for gi in range(draw(st.integers(1, 3))):
        gc, gdtype = draw(channels), draw(st.sampled_from(IMAGE))
        last = gi == 0
        src = draw(array(hw(h, w, gc), [gdtype], ("random", "zeros", "max_valid"), last and broken == "guide source"))
        tgt = draw(array(hw(ht, wt, gc), [gdtype], ("random", "zeros"), last and broken == "guide target"))
        weight = draw(st.sampled_from(BAD_NUMBERS) if last and broken == "guide weight" else st.floats(0, 10))
        guides.append([src["array"], tgt["array"], weight])
    guides_arg = {"guides": guides}
    if broken == "guides":
        guides_arg = value(draw(st.sampled_from([None, "x", 3, [], [[1, 2]], [[None, None, 1.0]]])))
    kwargs = {k: number(draw, valid, broken == k) for k, (valid, _) in SYNTHESIS_PARAMS.items()}
    for k, (_, bad) in SYNTHESIS_PARAMS.items():
        if broken == k:
            kwargs[k] = value(draw(st.sampled_from(bad)))
    kwargs["threads"] = threads_arg(draw, broken == "threads")
    if broken == "init_nnf" or draw(st.integers(0, 3)) == 0:
        kwargs["init_nnf"] = draw(array([ht, wt, 2], ["int32"], ("nnf",), broken == "init_nnf"))
    if broken == "target_mask" or draw(st.integers(0, 3)) == 0:
        kwargs["target_mask"] = draw(array([ht, wt], ["uint8"], ("random", "zeros"), broken == "target_mask"))
    kwargs["backend"] = value("cpu")
    reply = worker.call({"op": "synthesize", "args": [style, guides_arg], "kwargs": kwargs})
    if "ok" in reply:
        ht, wt = guides[0][1]["shape"][:2]  # the output takes the first guide target's size
        image_shape = [ht, wt] + shape_of(style)[2:]
        expect(reply, [(image_shape, dtype_of(style)), ([ht, wt, 2], "int32"), ([ht, wt], "float32")], broken)
        assert reply["finite_error"], reply  # huge values once gave a NaN error map
    else:
        expect(reply, [], broken)


# ---- regressions (issue 16): one per crash or wrong result found before --------------------------

def run_limited(code: str, limit: int = 3 << 30) -> subprocess.CompletedProcess:
    """Python code in a fresh process under an address-space limit (bytes; the worker's by default)."""
    prelude = ("import resource, numpy as np, rerender\n"
               f"resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n")
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MALLOC_ARENA_MAX": "2"}
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=120, env=env)


HUGE_VIEW = "a = np.broadcast_to(np.uint8(1), (65536, 65536, 8))\n"


@pytest.mark.parametrize("call, name", [
    ("rerender.histogram_blend(a, a, 0.5, backend='cpu')", "a"),
    ("rerender.synthesize(a, [(a, a, 1.0)], backend='cpu')", "style"),
    ("z = np.broadcast_to(np.float32(0), (65536, 65536))\nrerender.min_error_combine(a, a, z, z, backend='cpu')", "a"),
])
def test_huge_broadcast_views_raise_memory_error_naming_the_argument(call, name):
    # (these copies once failed unchecked and the null result was used: SIGSEGV)
    out = run_limited(HUGE_VIEW + f"try:\n    {call.replace(chr(10), chr(10) + '    ')}\n"
                      "except MemoryError as e:\n    print('MemoryError', e)\n")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith(f"MemoryError {name}: copying the non-contiguous array of shape (65536, 65536, 8)"), out.stdout


def test_copy_that_fails_under_a_memory_limit_raises_memory_error():
    # fits the machine's memory but not the process's limit: numpy's allocation fails
    out = run_limited("a = np.broadcast_to(np.uint8(1), (30000, 30000, 4))\n"
                      "try:\n    rerender.min_error_combine(a, a, np.broadcast_to(np.float32(0), (30000, 30000)),\n"
                      "                               np.broadcast_to(np.float32(0), (30000, 30000)), backend='cpu')\n"
                      "except MemoryError as e:\n    print('MemoryError', e)\n")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("MemoryError ") and "not enough memory" in out.stdout, out.stdout


def test_working_buffers_that_do_not_fit_raise_memory_error():
    # (the feature pyramid of a 3000 x 3000 synthesis alone takes about 1 GiB)
    out = run_limited("s = np.zeros((3000, 3000, 3), np.uint8)\n"
                      "try:\n    rerender.synthesize(s, [(s, s, 1.0)], backend='cpu')\n"
                      "except MemoryError as e:\n    print('MemoryError', e)\n", limit=1 << 30)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "MemoryError synthesize: not enough memory for the working buffers of this call"


def test_calls_larger_than_the_machine_are_refused_before_allocating():
    a = np.broadcast_to(np.float32(0), (65536, 65536, 256))  # 4 TiB as a float32 copy
    with pytest.raises(MemoryError, match=r"^a: copying the non-contiguous array of shape \(65536, 65536, 256\): "
                                          r"needs 4096\.0 GiB, more than this machine's memory"):
        rerender.histogram_blend(a, a, 0.5, backend="cpu")


@pytest.mark.parametrize("flow, corner", [(2.2e9, -1), (3e9, -1), (1e30, -1), (-2.2e9, 0), (-1e30, 0)])
def test_nearest_warp_with_huge_flows_samples_the_near_border(flow, corner):
    # (beyond the int range the sample position once wrapped to the opposite border)
    img = np.arange(20, dtype=np.uint8).reshape(4, 5)
    out = rerender.warp(img, np.full((4, 5, 2), flow, np.float32), "nearest", backend="cpu")
    assert (out == img.flat[corner]).all()


def test_huge_float_synthesis_inputs_are_rejected_by_name():
    # (values >= 1e19 once overflowed the half-float features: a NaN error map)
    s = np.random.default_rng(0).random((24, 24, 3)).astype(np.float32) * 255
    big = s.copy()
    big[3, 4, 1] = 1e19
    with pytest.raises(ValueError, match=r"^style: values must be at most 1e\+09 in magnitude .* got 1e\+19 at flat index 229$"):
        rerender.synthesize(big, [(s, s, 1.0)], backend="cpu")
    with pytest.raises(ValueError, match=r"^guides\[0\]\.target: values must be at most 1e\+09"):
        rerender.synthesize(s, [(s, -big, 1.0)], backend="cpu")
    # the largest accepted values, with the largest weights, keep a finite error map
    edge = np.where(s > 127, np.float32(1e9), np.float32(-1e9))
    res = rerender.synthesize(edge, [(edge, edge[::-1].copy(), 1e12)], style_weight=1e12, backend="cpu")
    assert np.isfinite(res.error).all() and res.error.max() > 1e30


def test_fuzz_worker_reports_a_crash_as_a_failure(worker):
    """The harness itself: a call that kills the worker fails with the request, and the next call
    gets a fresh worker."""
    with pytest.raises(AssertionError, match=r"native call crashed \(exit status -11\)"):
        worker.call({"op": "__crash__", "args": [], "kwargs": {}})
    assert "ok" in worker.call({"op": "occlusion", "args": [recipe((4, 4, 2), "float32"), recipe((4, 4, 2), "float32")],
                                "kwargs": {"backend": value("cpu")}})


# ---- sizes beyond int (issue 21): checked in 64 bits, refused by name ------------------------------

def huge_channels_view(channels: int, layout: str) -> str:
    """Code making ``a``: a uint8 (1, 2, channels) array that allocates nothing: a broadcast view, or
    a view over 16 bytes whose strides claim a C-contiguous layout (what a native call would read
    past, were the shape truncated to int)."""
    if layout == "broadcast":
        return f"a = np.broadcast_to(np.uint8(7), (1, 2, {channels}))\n"
    return (f"a = np.lib.stride_tricks.as_strided(np.zeros(16, np.uint8), (1, 2, {channels}), "
            f"(2 * {channels}, {channels}, 1))\nassert a.flags.c_contiguous\n")


@pytest.mark.parametrize("channels", [2**32 + 3, 2**31, 2**32, 2**33 + 1])
@pytest.mark.parametrize("layout", ["broadcast", "strided"])
@pytest.mark.parametrize("call, name", [
    ("rerender.warp(a, np.zeros((1, 2, 2), np.float32), 'nearest', backend='cpu')", "image"),
    ("rerender.min_error_combine(a, a, np.zeros((1, 2), np.float32), np.zeros((1, 2), np.float32), backend='cpu')", "a"),
    ("rerender.histogram_blend(a, a, 0.5, backend='cpu')", "a"),
])
def test_channel_counts_beyond_int_are_refused_by_name(call, name, layout, channels):
    # (the count was cast to int: 2**32 + 3 became 3 and gave wrong pixels, 2**31 and 2**32 "empty")
    out = run_limited(huge_channels_view(channels, layout) + f"try:\n    {call}\n"
                      "except ValueError as e:\n    print('ValueError', e)\n")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith(f"ValueError {name}: {channels} channels is too many (at most "), out.stdout


@pytest.mark.parametrize("shape", [(2**32 + 1, 1, 3), (1, 2**32 + 1, 3), (2**31, 1, 3)])
def test_sides_beyond_int_are_refused_by_name(shape):
    out = run_limited(f"a = np.broadcast_to(np.uint8(7), {shape})\n"
                      "try:\n    rerender.histogram_blend(a, a, 0.5, backend='cpu')\n"
                      "except ValueError as e:\n    print('ValueError', e)\n")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith(f"ValueError a: image of shape {shape} is too large (at most 65536 per side)".replace(
        ",)", ")")), out.stdout
