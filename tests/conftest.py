"""Shared fixtures that build artefacts once per test session."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def rerender_wheel(tmp_path_factory) -> Path:
    """rerender's wheel: ``$RERENDER_TEST_WHEEL`` when the test command built one already, else
    built here from this checkout (a few minutes: it compiles the native core)."""
    given = os.environ.get("RERENDER_TEST_WHEEL")
    if given:
        path = Path(given)
        assert path.is_file(), f"RERENDER_TEST_WHEEL={given} does not exist"
        return path
    out = tmp_path_factory.mktemp("wheel")
    env = dict(os.environ, CMAKE_ARGS=os.environ.get("CMAKE_ARGS", "") + " -DRERENDER_CUDA=OFF")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
                   check=True, env=env, timeout=1800)
    (wheel,) = out.glob("rerender-*.whl")
    return wheel


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """(model folder, ControlNet folder) of a random tiny SD model saved as diffusers folders, loaded
    back through the user's loading path by the tests (built once per session)."""
    from _tiny_models import save_model_folder

    return save_model_folder(tmp_path_factory.mktemp("tiny_sd"))


@pytest.fixture(scope="session")
def comps(tiny_model):
    """The tiny model's components on the CPU."""
    from rerender.keyframes import models

    model, cn = tiny_model
    return models.load_components(models.ModelSpec(str(model), [str(cn)], device="cpu"))
