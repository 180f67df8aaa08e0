"""RAFT flow backend: the published architecture in torchvision's weight layout, loaded from a user file
(random weights here: no weights can be downloaded), and used by the key-frame fusions."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rerender import raft  # noqa: E402


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = raft.RAFT("small")
    path = tmp_path_factory.mktemp("raft") / "raft_small.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path, net


def test_architecture_matches_the_published_models():
    # torchvision's raft_large / raft_small parameter counts (Raft_*_Weights.meta["num_params"])
    assert sum(p.numel() for p in raft.RAFT("large").parameters()) == 5_257_536
    assert sum(p.numel() for p in raft.RAFT("small").parameters()) == 990_162
    with pytest.raises(ValueError, match="variant"):
        raft.RAFT("medium")


def test_equals_torchvision_raft_when_torchvision_imports():
    try:
        from torchvision.models.optical_flow import raft_small
    except Exception as e:  # a torchvision built for another torch fails at import with various errors
        pytest.skip(f"torchvision unusable here: {type(e).__name__}")
    torch.manual_seed(0)
    tv = raft_small(weights=None).eval()
    ours = raft.RAFT("small").eval()
    ours.load_state_dict(tv.state_dict(), strict=True)
    a = torch.rand(1, 3, 128, 136) * 2 - 1
    b = torch.roll(a, (2, 3), (2, 3))
    with torch.no_grad():
        assert torch.allclose(ours(a, b, 4), tv(a, b, num_flow_updates=4)[-1], atol=1e-4)


def test_correlation_lookup_and_convex_upsampling_known_answers():
    net = raft.RAFT("small")  # radius 3
    g = torch.Generator().manual_seed(0)
    f1, f2 = torch.randn(2, 1, 8, 16, 16, generator=g)
    pyramid = net._pyramid(f1, f2)
    assert [tuple(v.shape[-2:]) for v in pyramid] == [(16, 16), (8, 8), (4, 4), (2, 2)]
    coords = torch.stack(torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="xy"), 0)[None]
    corr = net._lookup(pyramid, coords)
    assert corr.shape == (1, 4 * 49, 16, 16)
    # level 0, integer positions: channel (dx + 3) * 7 + (dy + 3) at (y, x) = <f1(y, x), f2(y + dy, x + dx)> / sqrt(8)
    for (y, x, dx, dy) in [(5, 6, 0, 0), (5, 6, 2, -1), (9, 3, -3, 3)]:
        expected = (f1[0, :, y, x] * f2[0, :, y + dy, x + dx]).sum() / 8 ** 0.5
        assert torch.allclose(corr[0, (dx + 3) * 7 + (dy + 3), y, x], expected, atol=1e-5)
    assert corr[0, 0, 0, 0] == 0  # outside the map: zero padding
    flow = torch.randn(1, 2, 4, 5, generator=g)
    up = raft.RAFT._upsample(flow, torch.zeros(1, 576, 4, 5))  # equal weights: the 3x3 mean of 8 x flow
    mean = 8 * torch.nn.functional.avg_pool2d(flow, 3, 1, 1, count_include_pad=True)
    assert torch.allclose(up[..., 3::8, 2::8], mean, atol=1e-5)


def test_user_weights_file_and_pickle_rule(small_weights, tmp_path):
    path, net = small_weights
    backend = raft.RaftFlow(path, device="cpu", iters=3)
    assert backend.name.startswith("raft_") and backend.net.variant == "small"
    for k, v in net.state_dict().items():
        assert torch.equal(backend.net.state_dict()[k], v), k
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)  # padded to 128 x 128 inside, cropped back
    b = np.roll(a, 2, axis=1)
    f = backend(a, b)
    assert f.shape == (40, 56, 2) and f.dtype == np.float32 and np.isfinite(f).all()
    assert np.array_equal(f, backend(a, b))
    pth = tmp_path / "raft.pth"
    torch.save(net.state_dict(), pth)
    with pytest.raises(ValueError, match="allow-pickle"):
        raft.RaftFlow(pth, device="cpu")
    assert np.array_equal(raft.RaftFlow(pth, allow_pickle=True, device="cpu", iters=3)(a, b), f)
    bad = tmp_path / "bad.safetensors"
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(bad))
    with pytest.raises(ValueError, match="layout"):
        raft.load_raft(bad)
    with pytest.raises(FileNotFoundError):
        raft.load_raft(tmp_path / "missing.safetensors")


def test_registered_backend_and_key_frame_fusions_use_raft(small_weights, tmp_path):
    pytest.importorskip("diffusers")
    from _tiny_sd import frame, make_cfg
    from rerender.flow import FlowCache, get_flow_backend
    from rerender.keyframes import models
    from _tiny_models import save_model_folder
    from rerender.keyframes.stage import render_keys

    path, _ = small_weights
    raft.register_raft(path, device="cpu", iters=2, name="raft_test")
    assert get_flow_backend("raft_test").name.startswith("raft_")
    assert FlowCache(tmp_path / "fc", "raft_test").directory.name.startswith("raft_")

    model, cn = save_model_folder(tmp_path / "sd")
    comps = models.load_components(models.ModelSpec(str(model), [str(cn)], device="cpu"))
    frames = {0: frame(1), 3: frame(2)}

    def no_dis(a, b):
        raise AssertionError("the caller's flow must not be used when RAFT weights are given")

    cfg = make_cfg((model, cn), steps=2, raft_weights=str(path), raft_iters=2)
    work = tmp_path / "work"
    res = render_keys(frames.__getitem__, [0, 3], work / "keys", cfg, flow=no_dis, components=comps)
    assert res.rendered == [0, 3]
    cached = sorted(p.name for p in (work / "flow").rglob("*.npz"))
    assert cached == ["000000_000003.npz", "000003_000000.npz"]
    assert next((work / "flow").iterdir()).name.startswith("raft_")
