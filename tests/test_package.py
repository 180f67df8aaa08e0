"""The package's public surface: top-level names resolve to functions, and importing the
propagation side never loads torch (Blender and light installs depend on that)."""
from __future__ import annotations

import subprocess
import sys

import rerender


def test_public_names_are_the_functions_even_after_submodule_imports() -> None:
    # importing the modules that define them first must not shadow the functions
    import rerender.flow  # noqa: F401
    import rerender.histblend  # noqa: F401
    import rerender.synthesis  # noqa: F401
    import rerender.warping  # noqa: F401

    import rerender.passes  # noqa: F401
    import rerender.pipeline  # noqa: F401

    for name in ("synthesize", "warp", "occlusion", "histogram_blend", "min_error_combine", "backends",
                 "propagate", "translate", "render_keyframes"):
        assert callable(getattr(rerender, name)), name
    assert rerender.Synthesis.__name__ == "Synthesis"


def test_propagation_modules_do_not_import_torch() -> None:
    code = ("import sys, rerender, rerender.cli, rerender.pipeline, rerender.job, rerender.flow, rerender.metrics; "
            "rerender.warp; rerender.synthesize; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
