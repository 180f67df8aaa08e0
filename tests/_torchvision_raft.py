"""Run torchvision's own RAFT (small, random weights) and save its weights, inputs and flow for
tests/test_raft.py to compare rerender's RAFT with. Run in a subprocess, so that the test process
never imports torchvision (transformers and diffusers would then try to use it).

    python tests/_torchvision_raft.py OUT.npz

torchvision's wheels are built for one torch build: beside the CPU torch of this project's test
environment, the PyPI wheel of the matching release (a CUDA build) cannot load its compiled
operators (``operator torchvision::nms does not exist`` at import, from registering fake kernels
for them). RAFT uses none of them, so in that case the import is retried without those
registrations; the network code that runs is torchvision's, unchanged. Exit status 3: no usable
torchvision.
"""
from __future__ import annotations

import sys
import types

import numpy as np
import torch


def import_torchvision():
    try:
        import torchvision  # noqa: F401
    except RuntimeError as e:
        if "torchvision::" not in str(e):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        # registrations of fake kernels for the compiled operators that failed to load
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
    from torchvision.models.optical_flow import raft_small

    return raft_small


def main(out: str) -> int:
    try:
        raft_small = import_torchvision()
    except Exception as e:  # not installed, or built for another torch in a way RAFT cannot survive
        print(f"torchvision unusable here: {type(e).__name__}: {e}", file=sys.stderr)
        return 3
    import torchvision

    torch.manual_seed(0)
    net = raft_small(weights=None).eval()
    g = torch.Generator().manual_seed(1)
    a = torch.rand(1, 3, 128, 136, generator=g) * 2 - 1
    b = torch.roll(a, (2, 3), (2, 3))
    with torch.no_grad():
        flow = net(a, b, num_flow_updates=4)[-1]
    arrays = {f"w.{k}": v.numpy() for k, v in net.state_dict().items()}
    np.savez(out, a=a.numpy(), b=b.numpy(), flow=flow.numpy(), version=np.array(torchvision.__version__), **arrays)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
