"""python/rerender/_native.pyi names exactly what the compiled module exports, with the same
parameter names and defaults, and ships in the package."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import rerender
from rerender import _native

STUB = Path(rerender.__file__).with_name("_native.pyi")
CUDA_ONLY = re.compile(r"^(cuda_|Cuda)")


def stub_definitions() -> dict[str, list[ast.AST]]:
    """Public top-level names of the stub -> their definitions (overloads give several)."""
    found: dict[str, list[ast.AST]] = {}
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            found.setdefault(node.name, []).append(node)
    return found


def exported() -> set[str]:
    return {name for name in dir(_native) if not name.startswith("_")}


def binding_parameters(fn) -> list[tuple[str, str | None]]:
    """(name, default text) of each parameter, from pybind11's signature line."""
    first = fn.__doc__.splitlines()[0]
    inner = first[first.index("(") + 1: first.rindex(") ->")]
    return [(m.group(1), m.group(2)) for m in re.finditer(r"(\w+): [^=,]+?(?: = ([^,]+))?(?:, |$)", inner)]


def stub_parameters(node: ast.FunctionDef) -> list[tuple[str, str | None]]:
    args = node.args.args + node.args.kwonlyargs
    defaults = [None] * (len(node.args.args) - len(node.args.defaults)) + list(node.args.defaults)
    defaults += list(node.args.kw_defaults)
    return [(a.arg, None if d is None else ast.unparse(d)) for a, d in zip(args, defaults)]


def same_default(stub: str | None, binding: str | None) -> bool:
    if stub is None or binding is None:
        return stub == binding
    return ast.literal_eval(stub) == ast.literal_eval(binding)


def test_stub_names_exactly_the_exports():
    names = set(stub_definitions())
    if "cuda" in _native.compiled_backends():
        assert names == exported()
    else:  # the CUDA entries are declared, and only they are missing from a CPU-only build
        assert {n for n in names if not CUDA_ONLY.match(n)} == exported()
        assert not any(CUDA_ONLY.match(n) for n in exported())


def test_stub_parameters_match_the_bindings():
    defs = stub_definitions()
    checked = 0
    for name in sorted(exported()):
        fn = getattr(_native, name)
        if isinstance(fn, type):
            continue
        want = binding_parameters(fn)
        for node in defs[name]:  # every overload declares all parameters, in order
            got = stub_parameters(node)
            assert [n for n, _ in got] == [n for n, _ in want], name
            overload = any(ast.unparse(d) == "overload" for d in node.decorator_list)
            for (n, stub_default), (_, binding_default) in zip(got, want):
                if overload and stub_default is None:
                    continue  # (an overload may require what it narrows, e.g. return_valid: Literal[True])
                assert same_default(stub_default, binding_default), (name, n, stub_default, binding_default)
        checked += 1
    assert checked >= 10


def test_stub_ships_in_the_package():
    assert STUB.is_file() and STUB.parent == Path(rerender.__file__).parent
    assert STUB.with_name("py.typed").is_file()  # (type checkers read package stubs only with it)


def test_stub_declares_the_synthesis_params_fields():
    """SynthesisParams' keywords in the stub are its fields, in order, with the core's defaults."""
    node = stub_definitions()["SynthesisParams"][0]
    init = next(n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    declared = [(a.arg, ast.literal_eval(d)) for a, d in zip(init.args.kwonlyargs, init.args.kw_defaults)]
    assert declared == list(_native.SynthesisParams().as_dict().items())
    properties = {n.name for n in node.body if isinstance(n, ast.FunctionDef)
                  and any(ast.unparse(d) == "property" for d in n.decorator_list)}
    assert properties == set(_native.SynthesisParams().as_dict())
