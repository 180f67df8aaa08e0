"""The key-frame stage's caches follow the weights, not their paths (issue 21, point 14)."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from _tiny_models import save_model_folder  # noqa: E402
from _tiny_sd import frame, make_cfg, no_occlusion, zero_flow  # noqa: E402
from rerender.keyframes import models  # noqa: E402
from rerender.keyframes.sampler import KeyframeSampler  # noqa: E402


def test_weights_replaced_at_the_same_path_invalidate_the_inversions_and_the_keys(tiny_model, tmp_path,
                                                                                 monkeypatch):
    from safetensors import safe_open

    from rerender.keyframes.stage import render_keys

    model, cn = tiny_model
    mine = tmp_path / "model"
    shutil.copytree(model, mine)
    cfg = make_cfg((mine, cn), steps=4, init="inversion", device="cpu")
    frames = {0: frame(1), 3: frame(2)}
    keys = tmp_path / "keys"
    inversions = []
    real_invert = KeyframeSampler.invert
    monkeypatch.setattr(KeyframeSampler, "invert", lambda self, *a, **k: inversions.append(1) or real_invert(self, *a, **k))

    def run():
        return render_keys(frames.__getitem__, [0, 3], keys, cfg, flow=zero_flow, occlusion=no_occlusion)

    def latent():
        with safe_open(str(keys / "inversion" / "0003.safetensors"), "pt") as f:
            return f.get_tensor("latent")

    assert run().rendered == [0, 3] and len(inversions) == 2
    first_key, first_latent = (keys / "0003.png").read_bytes(), latent()
    assert run().rendered == [] and len(inversions) == 2  # same weights: everything reused
    # other weights of the same architecture at the same path, with the old size and time stamp
    unet = mine / "unet" / "diffusion_pytorch_model.safetensors"
    other, _ = save_model_folder(tmp_path / "other", seed=1)
    stat = unet.stat()
    shutil.copyfile(other / "unet" / unet.name, unet)
    os.utime(unet, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert unet.stat().st_size == stat.st_size and unet.stat().st_mtime_ns == stat.st_mtime_ns
    res = run()
    assert res.rendered == [0, 3] and len(inversions) == 4
    assert not torch.equal(latent(), first_latent)
    assert (keys / "0003.png").read_bytes() != first_key


def test_a_model_folder_without_weights_says_what_is_missing(tiny_model, tmp_path):
    model, cn = tiny_model
    empty = tmp_path / "model"
    shutil.copytree(model, empty)
    for f in empty.rglob("*.safetensors"):
        f.unlink()
    with pytest.raises(FileNotFoundError) as e:
        models.load_components(models.ModelSpec(str(empty), [str(cn)], device="cpu"))
    message = str(e.value)
    assert "no weights" in message and "unet/" in message and "vae/" in message and "text_encoder/" in message
    assert "allow-pickle" not in message
    bare_cn = tmp_path / "controlnet"
    shutil.copytree(cn, bare_cn)
    for f in bare_cn.rglob("*.safetensors"):
        f.unlink()
    with pytest.raises(FileNotFoundError, match="controlnet: .*no weights") as e:
        models.load_components(models.ModelSpec(str(model), [str(bare_cn)], device="cpu"))
    assert "allow-pickle" not in str(e.value)


def test_weights_identity_is_cheap_and_follows_the_bytes(tmp_path):
    from rerender.files import weights_digest

    from safetensors.numpy import save_file

    a = tmp_path / "a.safetensors"
    save_file({"w": np.zeros((4, 4), np.float32)}, str(a))
    before = weights_digest(a)
    stat = a.stat()
    save_file({"w": np.ones((4, 4), np.float32)}, str(a))  # same header, other data
    os.utime(a, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights_digest(a) != before
    os.utime(a, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed_time = weights_digest(a)
    assert changed_time != before and weights_digest(a) == changed_time
