"""The shared configuration loader: defaults, files, overrides, and errors that name the key."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal, Optional

import pytest

from rerender import config


@dataclasses.dataclass
class Inner:
    weight: float = 0.5
    enabled: bool = True


@dataclasses.dataclass
class Options:
    steps: int = 20
    scale: float = 7.5
    prompt: str = ""
    control: Literal["canny", "hed"] = "hed"
    window: tuple[float, float] = (0.5, 0.8)
    seed: Optional[int] = None
    inner: Inner = dataclasses.field(default_factory=Inner)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")


def test_defaults_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("steps: 30\ninner:\n  weight: 2\nwindow: [0.1, 0.2]\n")
    opts = config.load(Options, path, overrides={"scale": 5, "seed": None})
    assert opts.steps == 30 and opts.scale == 5.0 and opts.window == (0.1, 0.2)
    assert opts.inner == Inner(weight=2.0, enabled=True)
    assert opts.seed is None and opts.control == "hed"


def test_round_trip_json_and_yaml(tmp_path: Path) -> None:
    opts = Options(steps=7, prompt="a cat", control="canny", seed=3, inner=Inner(0.25, False))
    for name in ("c.json", "c.yaml"):
        config.save(opts, tmp_path / name)
        assert config.load(Options, tmp_path / name) == opts


def test_unknown_key_is_an_error_with_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"stpes": 10}')
    with pytest.raises(config.ConfigError, match=r"unknown key 'stpes'.*'steps'"):
        config.load(Options, path)
    with pytest.raises(config.ConfigError, match=r"inner: unknown key 'wieght'"):
        config.from_dict(Options, {"inner": {"wieght": 1}})


@pytest.mark.parametrize(
    "data, pattern",
    [
        ({"steps": "20"}, r"config\.steps: expected an integer"),
        ({"steps": True}, r"config\.steps: expected an integer"),
        ({"scale": "x"}, r"config\.scale: expected a number"),
        ({"control": "depth"}, r"config\.control: 'depth' is not one of"),
        ({"window": [0.1]}, r"config\.window: expected 2 values"),
        ({"inner": {"enabled": 1}}, r"config\.inner\.enabled: expected true or false"),
        ({"steps": 0}, r"steps must be >= 1"),
    ],
)
def test_type_errors_name_the_key(data: dict, pattern: str) -> None:
    with pytest.raises(config.ConfigError, match=pattern):
        config.from_dict(Options, data)


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="missing.yaml: cannot read"):
        config.load(Options, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(config.ConfigError, match="bad.json: not valid JSON"):
        config.load(Options, bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(config.ConfigError, match="list.yaml: the top level must be a mapping"):
        config.load(Options, listy)


def test_pipeline_reads_flat_and_sectioned_option_files(tmp_path):
    from rerender.job import JobConfig
    from rerender.passes import PropagationConfig
    from rerender.pipeline import load_configs

    flat = tmp_path / "flat.yaml"
    flat.write_text("size: 256\nflow: deepflow\nedge_weight: 1.5\n")
    cfg = load_configs(flat, ("job", "propagation"), {"propagation": {"poisson": True, "workers": None}})
    assert cfg["job"] == JobConfig(size=256, flow="deepflow")  # job keys go to the job, whatever the stage
    assert cfg["propagation"] == PropagationConfig(edge_weight=1.5, poisson=True)

    sectioned = tmp_path / "run.yaml"
    sectioned.write_text("job:\n  frames: '2:8'\nkeyframes:\n  prompt: ink\n  steps: 4\npropagation:\n  uniformity: 100\n"
                         "  blend: linear\n")
    cfg = load_configs(sectioned, ("job", "keyframes", "propagation"), {"job": {"frames": "3:9"}})
    assert cfg["job"].frames == "3:9"  # flags win over the file
    assert (cfg["keyframes"].prompt, cfg["keyframes"].steps, cfg["propagation"].uniformity) == ("ink", 4, 100.0)
    assert cfg["propagation"].blend == "linear"
    cfg = load_configs(sectioned, ("job", "keyframes", "propagation"), {"propagation": {"blend": "select"}})
    assert cfg["propagation"].blend == "select"  # the --blend flag wins
    bad = tmp_path / "bad.yaml"
    bad.write_text("propagation:\n  blend: median\n")
    with pytest.raises(config.ConfigError, match=r"propagation.blend: 'median' is not one of 'soft', 'select', 'linear'"):
        load_configs(bad, ("job", "propagation"))
    with pytest.raises(config.ConfigError, match="section 'keyframes' is not used"):
        load_configs(sectioned, ("job", "propagation"))
    sectioned.write_text("job:\n  sise: 3\n")
    with pytest.raises(config.ConfigError, match=r"run.yaml:job: unknown key 'sise' \(did you mean 'size'\?\)"):
        load_configs(sectioned, ("job", "propagation"))
    assert load_configs(None, ("job", "propagation"))["job"] == JobConfig()
