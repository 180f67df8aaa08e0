"""scripts/build_blender_extension.py without Blender: what it bundles and what it refuses (the zip
itself is built and run inside Blender by tests/test_blender_addon.py)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("build_blender_extension",
                                                  ROOT / "scripts" / "build_blender_extension.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bundles_the_opencv_that_has_deepflow():
    import cv2

    script = load_script()
    assert "opencv-contrib-python-headless" in script.BUNDLED and "opencv-python-headless" not in script.BUNDLED
    # the same distribution rerender itself depends on provides --flow deepflow
    assert hasattr(cv2, "optflow") and cv2.optflow.createOptFlow_DeepFlow() is not None


def test_raw_linux_wheel_is_refused_before_anything_is_written(tmp_path):
    raw = tmp_path / "rerender-0.1.0-cp311-cp311-linux_x86_64.whl"
    raw.write_bytes(b"not used")
    out = tmp_path / "zips"
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_blender_extension.py"), "--wheel", str(raw),
                          "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "scripts/build_wheel.sh" in res.stderr and "linux_x86_64" in res.stderr
    assert not out.exists()


def test_platforms_of_wheels_and_of_this_machine():
    script = load_script()
    tags = {"rerender-0.1.0-cp311-cp311-manylinux_2_34_x86_64.whl": "linux-x64",
            "rerender-0.1.0-cp311-cp311-win_amd64.whl": "windows-x64",
            "rerender-0.1.0-cp311-cp311-macosx_11_0_arm64.whl": "macos-arm64",
            "rerender-0.1.0-cp311-cp311-macosx_10_15_x86_64.whl": "macos-x64"}
    for name, platform in tags.items():
        assert script.wheel_platform(Path(name)) == platform
    if sys.platform.startswith("linux") and script.platform.machine() == "x86_64":
        assert script.host_platform() == "linux-x64"
