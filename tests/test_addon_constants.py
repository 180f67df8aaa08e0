"""The Blender add-on runs inside Blender's Python, without rerender installed, so it keeps copies of a
few of the core's constants. These tests read the copies from the add-on's source (no bpy needed)
and fail when they drift from the core."""
from __future__ import annotations

import ast
from pathlib import Path

import rerender.media as media
from rerender.keyframes import conditions
from rerender.keyframes.config import KeyframeConfig

ADDON = Path(__file__).resolve().parents[1] / "blender_addon"


def module(name: str) -> ast.Module:
    return ast.parse((ADDON / name).read_text(encoding="utf-8"))


def assigned_literal(tree: ast.Module, name: str):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} is not assigned in the add-on")


def function(tree: ast.Module, name: str):
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    namespace: dict = {"re": __import__("re")}
    exec(compile(ast.Module([node], type_ignores=[]), "<addon>", "exec"), namespace)
    return namespace[name]


def property_defaults(tree: ast.Module, cls: str) -> dict:
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls).body
    out = {}
    for node in body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.annotation, ast.Call):
            for kw in node.annotation.keywords:
                if kw.arg == "default":
                    out[node.target.id] = ast.literal_eval(kw.value)
    return out


def test_image_extensions_match_the_core():
    assert assigned_literal(module("strip_job.py"), "_IMAGE_EXTS") == set(media.IMAGE_EXTENSIONS)


def test_natural_order_matches_the_core():
    natural = function(module("strip_job.py"), "_natural_key")
    names = ["f10.png", "f2.png", "F1.png", "f2b.png", "shot.1001.exr", "shot.999.exr", "a.png", "10.png", "9.png"]
    assert sorted(names, key=natural) == [p.name for p in sorted(map(Path, names), key=media.natural_key)]


def test_option_defaults_match_the_key_frame_stage():
    defaults = property_defaults(module("settings.py"), "RerenderSettings")
    core = KeyframeConfig()
    assert defaults["control"] == core.control[0]
    assert defaults["control_strength"] == core.control_strength[0]
    assert defaults["key_interval"] == core.interval
    assert defaults["strength"] == core.strength
    assert defaults["seed"] == core.seed
    assert defaults["size"] <= media.MAX_WORKING_SIDE


def test_control_menu_is_the_condition_registry():
    """The add-on's ControlNet menu is the registry's add-on items, with the registry's default."""
    tree = module("settings.py")
    assert assigned_literal(tree, "CONTROL_ITEMS") == conditions.addon_items()
    assert property_defaults(tree, "RerenderSettings")["control"] == conditions.DEFAULT
