"""``rerender COMMAND --help``: every option has a line of help, sits in one of the named groups, and
shows its default, taken from the configuration dataclasses (never a hand-copied number)."""
from __future__ import annotations

import argparse
import dataclasses
import importlib

import pytest

from rerender.cli import build_parser
from rerender.cli.common import GROUPS


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser by name, nested ones too ("ofx install")."""
    out = {}

    def visit(parser, prefix):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, p in action.choices.items():
                    out[f"{prefix}{name}"] = p
                    visit(p, f"{prefix}{name} ")

    visit(build_parser(), "")
    return out


def entries(p: argparse.ArgumentParser):
    """(group title, action) of every argument but -h and a subcommand's selector."""
    return [(g.title, a) for g in p._action_groups for a in g._group_actions
            if a.dest != "help" and not isinstance(a, argparse._SubParsersAction)]


def rendered(p: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The --help entry of one option, whitespace collapsed."""
    return " ".join(p._get_formatter()._format_action(action).split())


def expected_default(value, action) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        shown = "on" if value else "off"
        return f"{action.dest.replace('_', ' ')} {shown}" if isinstance(action, argparse._StoreFalseAction) else shown
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return str(value)


def config_fields(p) -> dict[str, dataclasses.Field]:
    out = {}
    for name in p.configs:
        module, _, cls = name.partition(":")
        for f in dataclasses.fields(getattr(importlib.import_module(module), cls)):
            out.setdefault(f.name, f)
    return out


def test_every_option_has_help_and_a_named_group():
    cmds = commands()
    assert {"propagate", "run", "keyframes", "metrics", "demo", "info"} <= set(cmds)
    for name, p in cmds.items():
        for title, action in entries(p):
            where = f"rerender {name} {'/'.join(action.option_strings) or action.dest}"
            assert title in GROUPS, f"{where} is in group {title!r}: use group(parser, NAME) with NAME in GROUPS"
            assert action.help and len(action.help.split()) >= 2, f"{where} has no help text"


def test_run_help_reads_like_the_readme_groups():
    p = commands()["run"]
    titles = [g.title for g in p._action_groups if g._group_actions and g.title in GROUPS]
    assert titles == ["input/output", "model", "key frames", "constraints", "memory", "propagation", "general"]
    by_flag = {s: (t, a) for t, a in entries(p) for s in a.option_strings}
    for flag, title in (("--seed", "key frames"), ("--device", "model"), ("--dtype", "model"),
                        ("--cross-frame-layers", "constraints"), ("--offload", "memory"), ("--blend", "propagation")):
        assert by_flag[flag][0] == title, flag
    assert "required" in rendered(p, by_flag["--prompt"][1])
    assert "(default: stable-diffusion-v1-5/stable-diffusion-v1-5)" in rendered(p, by_flag["--model"][1])
    assert "(default: 20)" in rendered(p, by_flag["--steps"][1])


@pytest.mark.parametrize("command", ["propagate", "run", "keyframes"])
def test_defaults_in_help_are_the_configs(command):
    p = commands()[command]
    fields = config_fields(p)
    checked = 0
    for _, action in entries(p):
        if not action.option_strings or action.dest not in fields:
            continue
        f = fields[action.dest]
        value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        text = rendered(p, action)
        want = expected_default(value, action)
        if want is None or "required" in action.help:
            continue
        # the default comes from the config, and no help text carries a copy of its own
        assert "default" not in action.help, f"{action.option_strings}: hand-written default in {action.help!r}"
        assert f"(default: {want})" in text, (action.option_strings, text)
        checked += 1
    assert checked >= (5 if command == "propagate" else 30)


def test_help_follows_a_changed_config_default(monkeypatch):
    from rerender.keyframes.config import KeyframeConfig
    from rerender.passes import PropagationConfig

    steps = next(f for f in dataclasses.fields(KeyframeConfig) if f.name == "steps")
    blend = next(f for f in dataclasses.fields(PropagationConfig) if f.name == "blend")
    monkeypatch.setattr(steps, "default", 37)
    monkeypatch.setattr(blend, "default", "linear")
    cmds = commands()
    by_flag = {s: a for _, a in entries(cmds["run"]) for s in a.option_strings}
    assert "(default: 37)" in rendered(cmds["run"], by_flag["--steps"])
    by_flag = {s: a for _, a in entries(cmds["propagate"]) for s in a.option_strings}
    assert "(default: linear)" in rendered(cmds["propagate"], by_flag["--blend"])


def test_help_prints_and_exits_zero(capsys):
    from rerender.cli import main

    for command in commands():
        with pytest.raises(SystemExit) as e:
            main([*command.split(), "--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: rerender {command}")
