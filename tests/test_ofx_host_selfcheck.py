"""The test host itself (tests/ofx_host), checked against a minimal plug-in with a known answer
(tests/ofx_host/selfcheck_plugin.c: output(t) = gain * Source(t - offset)), so that a failure of the
Rerender plug-in's tests points at the plug-in, not at the host: image layout (bottom-up rows,
negative and padded rowBytes), temporal fetches, parameters through the variadic suite functions,
messages formatted from C varargs, progress, abort, status codes for unknown properties, and a
host without suites."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from ofx_host import ofx
from ofx_host.host import architecture_folder
from ofx_host.testing import TESTS, host_ready, run_scenario

FIRST, N, H, W = 1001, 5, 7, 9


@pytest.fixture(scope="module")
def selfcheck_bundle(tmp_path_factory):
    host_ready()
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler to build the self-check plug-in")
    bundle = tmp_path_factory.mktemp("bundle") / "SelfCheck.ofx.bundle"
    binary = bundle / "Contents" / architecture_folder() / "SelfCheck.ofx"
    binary.parent.mkdir(parents=True)
    subprocess.run([cc, "-O1", "-shared", "-fPIC", "-fvisibility=hidden", "-Wall", "-Werror", "-o", str(binary),
                    str(TESTS / "ofx_host" / "selfcheck_plugin.c")], check=True, capture_output=True)
    return bundle


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    rng = np.random.default_rng(7)
    stack = rng.random((N, H, W, 3), dtype=np.float32) * 1.5   # values above 1 too: float stays float
    path = tmp_path_factory.mktemp("clips") / "source.npy"
    np.save(path, stack)
    return stack, {"npy": str(path), "first": FIRST}


def scenario(tmp_path, bundle, source, **extra):
    spec = {"bundle": str(bundle), "context": ofx.CONTEXT_FILTER, "clips": {"Source": source[1]}, **extra}
    out = run_scenario(spec, tmp_path, timeout=120)
    assert out.returncode == 0 and out.result is not None, f"host died ({out.returncode}): {out.stderr[-3000:]}"
    assert out.result["callback_errors"] == []
    return out


def test_describe_and_strict_properties(tmp_path, selfcheck_bundle, source):
    r = scenario(tmp_path, selfcheck_bundle, source, describe_only=True).result
    # the plug-in's Describe fails unless the host answered an unknown property with kOfxStatErrUnknown,
    # an index beyond the dimension with kOfxStatErrBadIndex and a value of the wrong type with kOfxStatErrValue
    assert r["load_status"] == ofx.STAT_OK
    d = r["description"]
    assert d["identifier"] == "org.rerender.tests.HostSelfCheck" and d["version"] == [1, 0]
    params = d["contexts"][ofx.CONTEXT_FILTER]["params"]
    assert params["gain"]["OfxParamPropDefault"] == [2.0] and params["offset"]["OfxParamPropDefault"] == [1]
    assert r["violations"] == []


@pytest.mark.parametrize("row_order,padding", [("bottom_up", 0), ("top_down", 0), ("top_down", 20), ("bottom_up", 12)])
def test_float_render_with_each_row_layout(tmp_path, selfcheck_bundle, source, row_order, padding):
    stack, _ = source
    frames = [FIRST + 1, FIRST + 3, FIRST + 4]
    out = scenario(tmp_path, selfcheck_bundle, source, row_order=row_order, row_padding=padding,
                   steps=[{"render": frames}])
    r = out.result
    for t in frames:
        assert r["steps"][0]["statuses"][str(t)] == ofx.STAT_OK
        want = (stack[t - FIRST - 1].astype(np.float64) * 2.0).astype(np.float32)
        assert np.array_equal(out.frame(0, t), want), t
    assert {("Source", t - 1) for t in frames} <= {(c, int(ti)) for c, ti, s in r["fetched"] if s == ofx.STAT_OK}
    assert r["released"] == sum(1 for *_, s in r["fetched"] if s == ofx.STAT_OK)
    assert r["violations"] == []
    kinds = [e for e, _ in r["steps"][0]["progress"]]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("update") == H * len(frames)


def test_byte_depth_and_parameters_set_by_the_user(tmp_path, selfcheck_bundle, source):
    stack, _ = source
    out = scenario(tmp_path, selfcheck_bundle, source, depth=ofx.DEPTH_BYTE, params={"gain": 0.5, "offset": 2},
                   steps=[{"render": [FIRST + 2, FIRST + 4]}])
    for t in (FIRST + 2, FIRST + 4):
        plate = np.round(np.clip(stack[t - FIRST - 2], 0, 1) * 255).astype(np.uint8)   # the host's 8-bit frame
        want = np.minimum(255, np.floor(plate * 0.5 + 0.5)).astype(np.uint8)
        assert np.array_equal(out.frame(0, t), want)
    assert out.result["params_after_create"] == {"offset": 2, "gain": 0.5, "note": ""}   # the user's edits


def test_messages_are_formatted_from_c_varargs(tmp_path, selfcheck_bundle, source):
    out = scenario(tmp_path, selfcheck_bundle, source, params={"note": "fail", "gain": 0.25},
                   steps=[{"render": [FIRST + 3]}])
    assert out.result["steps"][0]["statuses"][str(FIRST + 3)] == ofx.STAT_FAILED
    assert out.messages(ofx.MESSAGE_ERROR) == [{"type": ofx.MESSAGE_ERROR, "id": None, "persistent": False,
                                                "text": "selfcheck failed at 1004 with gain 0.25 (fail)",
                                                "on": "instance"}]


def test_a_missing_frame_and_the_hosts_abort(tmp_path, selfcheck_bundle, source):
    out = scenario(tmp_path, selfcheck_bundle, source, steps=[
        {"render": [FIRST]},                                         # Source(t - 1) is not in the clip
        {"render": [FIRST + 2], "abort": {"after_updates": 3}},
    ])
    first, second = out.result["steps"]
    assert first["statuses"][str(FIRST)] == ofx.STAT_FAILED
    assert ["Source", FIRST - 1, ofx.STAT_FAILED] in out.result["fetched"]
    assert second["statuses"][str(FIRST + 2)] == ofx.STAT_FAILED and second["aborted"]
    assert [e for e, _ in second["progress"]].count("update") == 3


def test_a_host_without_suites(tmp_path, selfcheck_bundle, source):
    r = scenario(tmp_path, selfcheck_bundle, source, offer_suites=False).result
    assert r["load_status"] == ofx.STAT_ERR_MISSING_HOST_FEATURE
