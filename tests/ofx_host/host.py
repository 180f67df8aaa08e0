"""An OpenFX image-effect host for tests, written from the OpenFX specification (not from any
plug-in's code): it loads a bundle as a compositor does and records everything the plug-in does.

Loading (spec "Sequences of Operations Required to Load a Plug-in"): find
``NAME.ofx.bundle/Contents/<arch>/NAME.ofx``, dlopen it, call ``OfxSetHost`` when exported, then
``OfxGetNumberOfPlugins`` / ``OfxGetPlugin``, check ``pluginApi`` and ``apiVersion``, ``setHost``,
and the actions Load, Describe, DescribeInContext (for each context both sides support).
An :class:`~.instance.Instance` is created for one context with the host's clips (numpy frames by host frame
number) and driven through CreateInstance, GetClipPreferences, GetTimeDomain, then per frame
GetRegionOfDefinition, GetFramesNeeded, GetRegionsOfInterest, IsIdentity, Begin/EndSequenceRender
around Render; DestroyInstance and Unload at the end.

Suites served by ``fetchSuite``: property v1, image effect v1, parameter v1, memory v1,
multithread v1, message v1 and v2, progress v1 and v2; NULL for any other name or version (or for
all, with ``offer_suites=False``). The variadic functions (parameter values, messages) go through
the small C file ``varargs.c``, compiled here with the system C compiler, because ctypes cannot
read C varargs.

Images follow the spec's layout: ``kOfxImagePropData`` points at the lower-left pixel, rows go
up by ``kOfxImagePropRowBytes`` (which may be negative and larger than the pixels, both of which
``row_order="top_down"`` and ``row_padding`` exercise).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from . import ofx
from . import properties as P
from .properties import PropertySet

if TYPE_CHECKING:
    from .images import ClipData

HERE = Path(__file__).resolve().parent

# ---------------------------------------------------------------------------------------------
# bundle layout


def architecture_folder() -> str:
    """The bundle's binary folder for this machine (spec "Packaging OFX Plug-ins")."""
    system = platform.system()
    machine = platform.machine().lower()
    if system == "Linux":
        if machine in ("x86_64", "amd64"):
            return "Linux-x86-64"
        if machine in ("i386", "i686", "x86"):
            return "Linux-x86"
        return f"Linux-{platform.machine()}"
    if system == "Darwin":
        return "MacOS"
    if system == "Windows":
        return "Win64" if sys.maxsize > 2 ** 32 else "Win32"
    raise RuntimeError(f"no OFX architecture folder known for {system} {machine}")


def bundle_binary(bundle: str | os.PathLike) -> Path:
    """``NAME.ofx.bundle`` -> ``NAME.ofx.bundle/Contents/<arch>/NAME.ofx`` (must exist)."""
    bundle = Path(bundle)
    if not bundle.name.endswith(".ofx.bundle"):
        raise ValueError(f"{bundle}: an OFX bundle's folder is named NAME.ofx.bundle")
    name = bundle.name[: -len(".bundle")]
    binary = bundle / "Contents" / architecture_folder() / name
    if not binary.is_file():
        raise FileNotFoundError(f"{bundle}: no {binary.relative_to(bundle)} in the bundle")
    return binary


# ---------------------------------------------------------------------------------------------
# the C half (variadic functions)

_VARARGS_LOCK = threading.Lock()

MESSAGE_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                              ctypes.c_int)
CLEAR_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
KIND_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))
GET_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_double, ctypes.c_double,
                          ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_double),
                          ctypes.POINTER(ctypes.c_void_p))
SET_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_double,
                          ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_double), ctypes.c_char_p)


def varargs_library(cache: Path | None = None) -> ctypes.CDLL:
    """Compile ``varargs.c`` once (cached by its digest) and load it."""
    src = HERE / "varargs.c"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    cache = Path(cache or os.environ.get("RERENDER_OFX_HOST_CACHE") or Path(tempfile.gettempdir()) / "rerender-ofx-host")
    lib = cache / f"varargs-{digest}.so"
    with _VARARGS_LOCK:
        if not lib.exists():
            cache.mkdir(parents=True, exist_ok=True)
            cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
            if not cc:
                raise RuntimeError("the OFX test host needs a C compiler (cc) for its variadic suite functions")
            tmp = lib.with_name(f"{lib.name}.{os.getpid()}.tmp")
            subprocess.run([cc, "-O1", "-shared", "-fPIC", "-Wall", "-o", str(tmp), str(src)], check=True,
                           capture_output=True, text=True)
            os.replace(tmp, lib)
    return ctypes.CDLL(str(lib))


# ---------------------------------------------------------------------------------------------
# host-side objects


class Param:
    """A parameter descriptor or instance: its properties and (instances) its value."""

    def __init__(self, host: "Host", owner: "ParamSet", param_type: str, name: str):
        self.owner = owner
        self.type = param_type
        self.name = name
        self.kind, self.count = ofx.PARAM_VALUES[param_type]
        self.props = PropertySet(host.registry, "param", P.param_schema(param_type))
        self.props.set("OfxPropName", name)
        self.props.set("OfxParamPropScriptName", name)
        self.props.set("OfxPropLabel", name)
        self.value: list = []
        self.c_values: dict[str, Any] = {}
        self.handle = host.registry.register(self)

    def default(self) -> list:
        if "OfxParamPropDefault" not in self.props:
            return []
        return list(self.props.props["OfxParamPropDefault"].values)


class ParamSet:
    def __init__(self, host: "Host", effect: "Effect"):
        self.host = host
        self.effect = effect
        self.params: dict[str, Param] = {}
        self.order: list[str] = []
        self.handle = host.registry.register(self)


class Effect:
    """An effect descriptor (Describe / DescribeInContext) or, as :class:`Instance`, an instance."""

    is_instance = False

    def __init__(self, host: "Host", schema: P.Schema, context: str | None = None):
        self.host = host
        self.props = PropertySet(host.registry, "effect", schema)
        self.params = ParamSet(host, self)
        self.clips: dict[str, Any] = {}
        self.clip_order: list[str] = []
        self.context = context
        self.handle = host.registry.register(self)


class Clip:
    def __init__(self, host: "Host", effect: "Effect", name: str, schema: P.Schema):
        self.host = host
        self.effect = effect
        self.name = name
        self.props = PropertySet(host.registry, "clip", schema)
        self.props.set("OfxPropName", name)
        self.data: ClipData | None = None
        self.handle = host.registry.register(self)


@dataclass
class Record:
    """What the plug-in did, for the tests."""

    suites_asked: list = field(default_factory=list)      # (name, version, served)
    messages: list = field(default_factory=list)          # dict(type, id, text, persistent, on)
    progress: list = field(default_factory=list)          # (event, value) per call
    fetched: list = field(default_factory=list)           # (clip, time, status)
    released: int = 0
    actions: list = field(default_factory=list)           # (action, status)
    violations: list = field(default_factory=list)        # host-detected breaches of the spec
    callback_errors: list = field(default_factory=list)   # exceptions inside the host (host bugs)


# ---------------------------------------------------------------------------------------------


class Host:
    """One OFX host with its suites; :meth:`load` brings up a plug-in bundle."""

    def __init__(self, *, offer_suites: bool = True, depth: str = ofx.DEPTH_FLOAT, row_order: str = "bottom_up",
                 row_padding: int = 0, abort_when: Callable[["Host"], bool] | None = None,
                 contexts: tuple[str, ...] = (ofx.CONTEXT_FILTER, ofx.CONTEXT_GENERAL)):
        self.registry = P.HandleRegistry()
        self.record = Record()
        self.offer_suites = offer_suites
        self.depth = depth
        self.row_order = row_order
        self.row_padding = row_padding
        self.abort_when = abort_when
        self.aborting = False
        self.lock = threading.RLock()
        self.props = PropertySet(self.registry, "host", P.HOST)
        self.props.set("OfxImageEffectPropSupportedContexts", list(contexts))
        self.pixel_depths = (ofx.DEPTH_BYTE, ofx.DEPTH_SHORT, ofx.DEPTH_HALF, ofx.DEPTH_FLOAT)  # it converts to any
        self._keep: list = []            # ctypes objects that must outlive the plug-in
        self._images: dict[int, tuple] = {}   # handle -> (Image, fetching thread)
        self._memory: dict[int, Any] = {}
        self._image_memory: dict[int, dict] = {}
        self._mutexes: dict[int, threading.RLock] = {}
        self._thread = threading.local()
        self._varargs = varargs_library()
        self._suites = self._build_suites()
        self._fetch_suite = ofx.FETCH_SUITE(self._guard(self._fetch_suite_impl, 0))
        self.c_host = ofx.OfxHost(self.props.handle, self._fetch_suite)
        self.lib = None
        self.plugin = None
        self.descriptor: Effect | None = None
        self.context_descriptors: dict[str, Effect] = {}

    # -- callbacks: every one returns a status, never raises into C ------------------------------

    def _guard(self, fn, on_error=ofx.STAT_ERR_FATAL):
        def wrapped(*args):
            try:
                return fn(*args)
            except Exception:
                self.record.callback_errors.append(f"{fn.__name__}: {traceback.format_exc()}")
                return on_error
        wrapped.__name__ = fn.__name__
        return wrapped

    def _c(self, proto, fn, on_error=ofx.STAT_ERR_FATAL):
        cb = proto(self._guard(fn, on_error))
        self._keep.append(cb)
        return ctypes.cast(cb, ctypes.c_void_p).value

    def _fetch_suite_impl(self, host_handle, name, version):
        name = name.decode() if name else ""
        if host_handle != self.props.handle:
            self.record.violations.append(f"fetchSuite({name}) with a host handle that is not OfxHost.host")
        suite = self._suites.get((name, version)) if self.offer_suites else None
        self.record.suites_asked.append((name, version, suite is not None))
        return ctypes.addressof(suite) if suite is not None else None

    def _build_suites(self) -> dict:
        V = ctypes.c_void_p
        S = ctypes.c_char_p
        I = ctypes.c_int
        D = ctypes.c_double
        PV = ctypes.POINTER(ctypes.c_void_p)
        st = ctypes.c_int
        F = ctypes.CFUNCTYPE
        va = self._varargs

        def table(*entries):
            arr = (ctypes.c_void_p * len(entries))(*entries)
            self._keep.append(arr)
            return arr

        def addr(fn):
            return ctypes.cast(fn, ctypes.c_void_p).value

        prop = table(
            self._c(F(st, V, S, I, V), self.prop_set_pointer), self._c(F(st, V, S, I, S), self.prop_set_string),
            self._c(F(st, V, S, I, D), self.prop_set_double), self._c(F(st, V, S, I, I), self.prop_set_int),
            self._c(F(st, V, S, I, PV), self.prop_set_pointer_n),
            self._c(F(st, V, S, I, ctypes.POINTER(ctypes.c_char_p)), self.prop_set_string_n),
            self._c(F(st, V, S, I, ctypes.POINTER(D)), self.prop_set_double_n),
            self._c(F(st, V, S, I, ctypes.POINTER(I)), self.prop_set_int_n),
            self._c(F(st, V, S, I, PV), self.prop_get_pointer), self._c(F(st, V, S, I, PV), self.prop_get_string),
            self._c(F(st, V, S, I, ctypes.POINTER(D)), self.prop_get_double),
            self._c(F(st, V, S, I, ctypes.POINTER(I)), self.prop_get_int),
            self._c(F(st, V, S, I, PV), self.prop_get_pointer_n), self._c(F(st, V, S, I, PV), self.prop_get_string_n),
            self._c(F(st, V, S, I, ctypes.POINTER(D)), self.prop_get_double_n),
            self._c(F(st, V, S, I, ctypes.POINTER(I)), self.prop_get_int_n),
            self._c(F(st, V, S), self.prop_reset), self._c(F(st, V, S, ctypes.POINTER(I)), self.prop_get_dimension),
        )
        effect = table(
            self._c(F(st, V, PV), self.get_property_set), self._c(F(st, V, PV), self.get_param_set),
            self._c(F(st, V, S, PV), self.clip_define), self._c(F(st, V, S, PV, PV), self.clip_get_handle),
            self._c(F(st, V, PV), self.clip_get_property_set),
            self._c(F(st, V, D, ctypes.POINTER(ofx.OfxRectD), PV), self.clip_get_image),
            self._c(F(st, V), self.clip_release_image),
            self._c(F(st, V, D, ctypes.POINTER(ofx.OfxRectD)), self.clip_get_rod),
            self._c(F(ctypes.c_int, V), self.abort, 0),
            self._c(F(st, V, ctypes.c_size_t, PV), self.image_memory_alloc), self._c(F(st, V), self.image_memory_free),
            self._c(F(st, V, PV), self.image_memory_lock), self._c(F(st, V), self.image_memory_unlock),
        )
        self._vcb = [MESSAGE_CB(self._guard(self.on_message)), CLEAR_CB(self._guard(self.on_clear)),
                     KIND_CB(self._guard(self.on_param_kind, ofx.STAT_ERR_BAD_HANDLE)),
                     GET_CB(self._guard(self.on_param_get)), SET_CB(self._guard(self.on_param_set))]
        va.ofxhost_install(*self._vcb)
        param = table(
            self._c(F(st, V, S, S, PV), self.param_define), self._c(F(st, V, S, PV, PV), self.param_get_handle),
            self._c(F(st, V, PV), self.param_set_get_property_set), self._c(F(st, V, PV), self.param_get_property_set),
            addr(va.ofxhost_param_get_value), addr(va.ofxhost_param_get_value_at_time),
            addr(va.ofxhost_param_get_derivative), addr(va.ofxhost_param_get_integral),
            addr(va.ofxhost_param_set_value), addr(va.ofxhost_param_set_value_at_time),
            self._c(F(st, V, ctypes.POINTER(ctypes.c_uint)), self.param_get_num_keys),
            self._c(F(st, V, ctypes.c_uint, ctypes.POINTER(D)), self.param_get_key_time),
            self._c(F(st, V, D, I, ctypes.POINTER(I)), self.param_get_key_index),
            self._c(F(st, V, D), self.param_delete_key), self._c(F(st, V), self.param_delete_all_keys),
            self._c(F(st, V, V, D, ctypes.POINTER(ofx.OfxRangeD)), self.param_copy),
            self._c(F(st, V, S), self.param_edit_begin), self._c(F(st, V), self.param_edit_end),
        )
        memory = table(self._c(F(st, V, ctypes.c_size_t, PV), self.memory_alloc), self._c(F(st, V), self.memory_free))
        U = ctypes.POINTER(ctypes.c_uint)
        threads = table(
            self._c(F(st, V, ctypes.c_uint, V), self.multi_thread), self._c(F(st, U), self.multi_thread_num_cpus),
            self._c(F(st, U), self.multi_thread_index), self._c(F(ctypes.c_int), self.multi_thread_is_spawned, 0),
            self._c(F(st, PV, I), self.mutex_create), self._c(F(st, V), self.mutex_destroy),
            self._c(F(st, V), self.mutex_lock), self._c(F(st, V), self.mutex_unlock),
            self._c(F(st, V), self.mutex_try_lock),
        )
        message1 = table(addr(va.ofxhost_message))
        message2 = table(addr(va.ofxhost_message), addr(va.ofxhost_set_persistent_message),
                         addr(va.ofxhost_clear_persistent_message))
        progress1 = table(self._c(F(st, V, S), self.progress_start_v1), self._c(F(st, V, D), self.progress_update),
                          self._c(F(st, V), self.progress_end))
        progress2 = table(self._c(F(st, V, S, S), self.progress_start_v2), self._c(F(st, V, D), self.progress_update),
                          self._c(F(st, V), self.progress_end))
        return {
            (ofx.SUITE_PROPERTY, 1): prop, (ofx.SUITE_IMAGE_EFFECT, 1): effect, (ofx.SUITE_PARAMETER, 1): param,
            (ofx.SUITE_MEMORY, 1): memory, (ofx.SUITE_MULTITHREAD, 1): threads,
            (ofx.SUITE_MESSAGE, 1): message1, (ofx.SUITE_MESSAGE, 2): message2,
            (ofx.SUITE_PROGRESS, 1): progress1, (ofx.SUITE_PROGRESS, 2): progress2,
        }

    # -- property suite --------------------------------------------------------------------------

    def _prop(self, handle, name, tp=None, setting=False):
        """(property, status) for a call on ``handle``'s property ``name`` of type ``tp``: a value of
        the wrong type is kOfxStatErrValue when setting; a getter of another type finds no such
        property (kOfxStatErrUnknown: the codes the spec lists for getters)."""
        ps = self.registry.lookup(handle, PropertySet)
        if ps is None:
            return None, ofx.STAT_ERR_BAD_HANDLE
        p = ps.props.get(name.decode() if name else "")
        if p is None:
            return None, ofx.STAT_ERR_UNKNOWN
        if tp is not None and p.type != tp:
            return None, ofx.STAT_ERR_VALUE if setting else ofx.STAT_ERR_UNKNOWN
        return p, ofx.STAT_OK

    def _set(self, handle, name, index, value, tp):
        with self.lock:
            p, status = self._prop(handle, name, tp, setting=True)
            if p is None:
                return status
            if index < 0 or (p.dim is not None and index >= p.dim):
                return ofx.STAT_ERR_BAD_INDEX
            while len(p.values) <= index:  # a variable dimension grows
                p.values.append(P._ZERO[p.type])
            p.values[index] = value
            p._c_strings = []
            self.registry.lookup(handle).writes.append((name.decode(), index, value))
            return ofx.STAT_OK

    def _set_n(self, handle, name, count, values, tp):
        with self.lock:
            p, status = self._prop(handle, name, tp, setting=True)
            if p is None:
                return status
            if count < 0 or (p.dim is not None and count > p.dim):
                return ofx.STAT_ERR_BAD_INDEX
            new = [values(i) for i in range(count)]
            if p.dim is None:
                p.values = new
            else:
                p.values[:count] = new
            p._c_strings = []
            self.registry.lookup(handle).writes.append((name.decode(), -1, new))
            return ofx.STAT_OK

    def _get(self, handle, name, index, out, tp, conv):
        with self.lock:
            p, status = self._prop(handle, name, tp)
            if p is None:
                return status
            if index < 0 or index >= len(p.values):
                return ofx.STAT_ERR_BAD_INDEX
            out[0] = conv(p, index)
            return ofx.STAT_OK

    def _get_n(self, handle, name, count, out, tp, conv):
        with self.lock:
            p, status = self._prop(handle, name, tp)
            if p is None:
                return status
            if count < 0 or count > len(p.values):
                return ofx.STAT_ERR_BAD_INDEX
            for i in range(count):
                out[i] = conv(p, i)
            return ofx.STAT_OK

    def prop_set_pointer(self, h, name, i, v):
        return self._set(h, name, i, v or 0, P.POINTER)

    def prop_set_string(self, h, name, i, v):
        if v is None:
            return ofx.STAT_ERR_VALUE
        return self._set(h, name, i, v.decode("utf-8", "replace"), P.STRING)

    def prop_set_double(self, h, name, i, v):
        return self._set(h, name, i, float(v), P.DOUBLE)

    def prop_set_int(self, h, name, i, v):
        return self._set(h, name, i, int(v), P.INT)

    def prop_set_pointer_n(self, h, name, n, vals):
        return self._set_n(h, name, n, lambda i: vals[i] or 0, P.POINTER)

    def prop_set_string_n(self, h, name, n, vals):
        if n > 0 and not vals:
            return ofx.STAT_ERR_VALUE
        return self._set_n(h, name, n, lambda i: (vals[i] or b"").decode("utf-8", "replace"), P.STRING)

    def prop_set_double_n(self, h, name, n, vals):
        return self._set_n(h, name, n, lambda i: float(vals[i]), P.DOUBLE)

    def prop_set_int_n(self, h, name, n, vals):
        return self._set_n(h, name, n, lambda i: int(vals[i]), P.INT)

    def prop_get_pointer(self, h, name, i, out):
        return self._get(h, name, i, out, P.POINTER, lambda p, k: p.values[k] or None)

    def prop_get_string(self, h, name, i, out):
        return self._get(h, name, i, out, P.STRING, lambda p, k: p.c_string(k))

    def prop_get_double(self, h, name, i, out):
        return self._get(h, name, i, out, P.DOUBLE, lambda p, k: p.values[k])

    def prop_get_int(self, h, name, i, out):
        return self._get(h, name, i, out, P.INT, lambda p, k: p.values[k])

    def prop_get_pointer_n(self, h, name, n, out):
        return self._get_n(h, name, n, out, P.POINTER, lambda p, k: p.values[k] or None)

    def prop_get_string_n(self, h, name, n, out):
        return self._get_n(h, name, n, out, P.STRING, lambda p, k: p.c_string(k))

    def prop_get_double_n(self, h, name, n, out):
        return self._get_n(h, name, n, out, P.DOUBLE, lambda p, k: p.values[k])

    def prop_get_int_n(self, h, name, n, out):
        return self._get_n(h, name, n, out, P.INT, lambda p, k: p.values[k])

    def prop_reset(self, h, name):
        with self.lock:
            p, status = self._prop(h, name)
            if p is None:
                return status
            p.reset()
            return ofx.STAT_OK

    def prop_get_dimension(self, h, name, out):
        with self.lock:
            p, status = self._prop(h, name)
            if p is None:
                return status
            out[0] = len(p.values)
            return ofx.STAT_OK

    # -- image effect suite ----------------------------------------------------------------------

    def get_property_set(self, effect, out):
        e = self.registry.lookup(effect, Effect)
        if e is None:
            return ofx.STAT_ERR_BAD_HANDLE
        out[0] = e.props.handle
        return ofx.STAT_OK

    def get_param_set(self, effect, out):
        e = self.registry.lookup(effect, Effect)
        if e is None:
            return ofx.STAT_ERR_BAD_HANDLE
        out[0] = e.params.handle
        return ofx.STAT_OK

    def clip_define(self, effect, name, out):
        e = self.registry.lookup(effect, Effect)
        if e is None or e.is_instance:
            return ofx.STAT_ERR_BAD_HANDLE
        if e.context is None:
            self.record.violations.append("clipDefine outside DescribeInContext")
            return ofx.STAT_ERR_BAD_HANDLE
        name = name.decode()
        if name in e.clips:
            return ofx.STAT_ERR_EXISTS
        clip = Clip(self, e, name, P.CLIP_DESCRIPTOR)
        e.clips[name] = clip
        e.clip_order.append(name)
        if out:
            out[0] = clip.props.handle
        return ofx.STAT_OK

    def clip_get_handle(self, effect, name, clip_out, props_out):
        e = self.registry.lookup(effect, Effect)
        if e is None:
            return ofx.STAT_ERR_BAD_HANDLE
        if not e.is_instance:
            self.record.violations.append("clipGetHandle on a descriptor")
            return ofx.STAT_ERR_BAD_HANDLE
        clip = e.clips.get(name.decode())
        if clip is None:
            return ofx.STAT_ERR_UNKNOWN
        clip_out[0] = clip.handle
        if props_out:
            props_out[0] = clip.props.handle
        return ofx.STAT_OK

    def clip_get_property_set(self, clip, out):
        c = self.registry.lookup(clip, Clip)
        if c is None:
            return ofx.STAT_ERR_BAD_HANDLE
        out[0] = c.props.handle
        return ofx.STAT_OK

    def clip_get_image(self, clip, time, region, out):
        c = self.registry.lookup(clip, Clip)
        if c is None or not c.effect.is_instance:
            return ofx.STAT_ERR_BAD_HANDLE
        status, image = c.effect.image_for(c, time)
        self.record.fetched.append((c.name, time, status))
        if image is None:
            out[0] = None
            return status
        with self.lock:
            self._images[image.props.handle] = (image, threading.get_ident())
        out[0] = image.props.handle
        return ofx.STAT_OK

    def clip_release_image(self, handle):
        with self.lock:
            image = self._images.pop(handle or 0, None)
            if image is None:
                return ofx.STAT_ERR_BAD_HANDLE
            self.record.released += 1
            self.registry.forget(handle)   # the handle is dead: later calls on it are bad handles
            return ofx.STAT_OK

    def clip_get_rod(self, clip, time, out):
        c = self.registry.lookup(clip, Clip)
        if c is None or not c.effect.is_instance:
            return ofx.STAT_ERR_BAD_HANDLE
        rod = c.effect.clip_rod(c)
        if rod is None:
            return ofx.STAT_FAILED
        out[0].x1, out[0].y1, out[0].x2, out[0].y2 = rod
        return ofx.STAT_OK

    def abort(self, effect):
        return int(self._should_abort())

    def _should_abort(self) -> bool:
        if not self.aborting and self.abort_when is not None and self.abort_when(self):
            self.aborting = True
        return self.aborting

    def image_memory_alloc(self, effect, n, out):
        if effect and self.registry.lookup(effect, Effect) is None:
            out[0] = None
            return ofx.STAT_ERR_BAD_HANDLE
        block = {"buffer": ctypes.create_string_buffer(max(1, n) + 16), "locks": 0}
        h = self.registry.register(block)
        self._image_memory[h] = block
        out[0] = h
        return ofx.STAT_OK

    def image_memory_free(self, h):
        if self._image_memory.pop(h or 0, None) is None:
            return ofx.STAT_ERR_BAD_HANDLE
        self.registry.forget(h)
        return ofx.STAT_OK

    def image_memory_lock(self, h, out):
        block = self._image_memory.get(h or 0)
        if block is None:
            out[0] = None
            return ofx.STAT_ERR_BAD_HANDLE
        block["locks"] += 1
        a = ctypes.addressof(block["buffer"])
        out[0] = a + (-a) % 16
        return ofx.STAT_OK

    def image_memory_unlock(self, h):
        block = self._image_memory.get(h or 0)
        if block is None:
            return ofx.STAT_ERR_BAD_HANDLE
        block["locks"] = max(0, block["locks"] - 1)
        return ofx.STAT_OK

    # -- parameter suite -------------------------------------------------------------------------

    def param_define(self, pset, param_type, name, out):
        ps = self.registry.lookup(pset, ParamSet)
        if ps is None or ps.effect.is_instance:
            return ofx.STAT_ERR_BAD_HANDLE
        param_type = param_type.decode() if param_type else ""
        if param_type not in ofx.PARAM_VALUES:
            return ofx.STAT_ERR_UNKNOWN
        name = name.decode()
        if name in ps.params:
            return ofx.STAT_ERR_EXISTS
        p = Param(self, ps, param_type, name)
        ps.params[name] = p
        ps.order.append(name)
        if out:
            out[0] = p.props.handle
        return ofx.STAT_OK

    def param_get_handle(self, pset, name, out, props_out):
        ps = self.registry.lookup(pset, ParamSet)
        if ps is None:
            return ofx.STAT_ERR_BAD_HANDLE
        p = ps.params.get(name.decode())
        if p is None:
            return ofx.STAT_ERR_UNKNOWN
        out[0] = p.handle
        if props_out:
            props_out[0] = p.props.handle
        return ofx.STAT_OK

    def param_set_get_property_set(self, pset, out):
        ps = self.registry.lookup(pset, ParamSet)
        if ps is None:
            return ofx.STAT_ERR_BAD_HANDLE
        out[0] = ps.effect.props.handle   # the spec: the param set's properties are the effect's
        return ofx.STAT_OK

    def param_get_property_set(self, param, out):
        p = self.registry.lookup(param, Param)
        if p is None:
            return ofx.STAT_ERR_BAD_HANDLE
        out[0] = p.props.handle
        return ofx.STAT_OK

    def _instance_param(self, param):
        p = self.registry.lookup(param, Param)
        if p is None or p.kind is None:
            return None
        if not p.owner.effect.is_instance:
            self.record.violations.append(f"value of parameter {p.name} asked on a descriptor")
            return None
        return p

    def on_param_kind(self, param, kind, count):
        p = self._instance_param(param)
        if p is None:
            return ofx.STAT_ERR_BAD_HANDLE
        kind[0] = {"int": 1, "double": 2, "string": 3}[p.kind]
        count[0] = p.count
        return ofx.STAT_OK

    def on_param_get(self, param, which, time, time2, ints, doubles, text):
        p = self._instance_param(param)
        if p is None:
            return ofx.STAT_ERR_BAD_HANDLE
        with self.lock:
            vals = list(p.value)
        for i, v in enumerate(vals[:4]):
            if p.kind == "int":
                ints[i] = int(v)
            elif p.kind == "double":
                # no animation on this host: constant in time (derivative 0, integral value * span)
                doubles[i] = 0.0 if which == 2 else (v * (time2 - time) if which == 3 else float(v))
        if p.kind == "string":
            with self.lock:   # one buffer per value, kept while the instance lives: other threads may hold it
                buf = p.c_values.setdefault(str(vals[0]), ctypes.create_string_buffer(str(vals[0]).encode()))
            text[0] = ctypes.addressof(buf)
        return ofx.STAT_OK

    def on_param_set(self, param, at_time, time, ints, doubles, text):
        p = self._instance_param(param)
        if p is None:
            return ofx.STAT_ERR_BAD_HANDLE
        with self.lock:
            if p.kind == "int":
                p.value = [ints[i] for i in range(p.count)]
            elif p.kind == "double":
                p.value = [doubles[i] for i in range(p.count)]
            else:
                p.value = [(text or b"").decode("utf-8", "replace")]
        return ofx.STAT_OK

    def param_get_num_keys(self, param, out):
        if self.registry.lookup(param, Param) is None:
            return ofx.STAT_ERR_BAD_HANDLE
        out[0] = 0   # this host does not animate parameters
        return ofx.STAT_OK

    def param_get_key_time(self, param, n, out):
        return ofx.STAT_ERR_BAD_HANDLE if self.registry.lookup(param, Param) is None else ofx.STAT_ERR_BAD_INDEX

    def param_get_key_index(self, param, time, direction, out):
        if self.registry.lookup(param, Param) is None:
            return ofx.STAT_ERR_BAD_HANDLE
        out[0] = -1
        return ofx.STAT_FAILED

    def param_delete_key(self, param, time):
        return ofx.STAT_ERR_BAD_HANDLE if self.registry.lookup(param, Param) is None else ofx.STAT_ERR_BAD_INDEX

    def param_delete_all_keys(self, param):
        return ofx.STAT_ERR_BAD_HANDLE if self.registry.lookup(param, Param) is None else ofx.STAT_OK

    def param_copy(self, to, frm, offset, frame_range):
        a, b = self.registry.lookup(to, Param), self.registry.lookup(frm, Param)
        if a is None or b is None:
            return ofx.STAT_ERR_BAD_HANDLE
        if a.type != b.type:
            return ofx.STAT_ERR_VALUE
        a.value = list(b.value)
        return ofx.STAT_OK

    def param_edit_begin(self, pset, name):
        return ofx.STAT_OK if self.registry.lookup(pset, ParamSet) else ofx.STAT_ERR_BAD_HANDLE

    def param_edit_end(self, pset):
        return ofx.STAT_OK if self.registry.lookup(pset, ParamSet) else ofx.STAT_ERR_BAD_HANDLE

    # -- memory suite ----------------------------------------------------------------------------

    def memory_alloc(self, handle, n, out):
        buf = ctypes.create_string_buffer(max(1, n) + 16)
        a = ctypes.addressof(buf)
        ptr = a + (-a) % 16
        with self.lock:
            self._memory[ptr] = buf
        out[0] = ptr
        return ofx.STAT_OK

    def memory_free(self, ptr):
        with self.lock:
            if self._memory.pop(ptr or 0, None) is None:
                return ofx.STAT_ERR_BAD_HANDLE
        return ofx.STAT_OK

    # -- multithread suite -----------------------------------------------------------------------

    def multi_thread(self, func, n, arg):
        if getattr(self._thread, "spawned", False):
            return ofx.STAT_ERR_EXISTS
        fn = ofx.THREAD_FUNCTION(func)
        n = max(1, int(n))

        def run(i):
            self._thread.spawned = True
            self._thread.index = i
            fn(i, n, arg)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return ofx.STAT_OK

    def multi_thread_num_cpus(self, out):
        out[0] = os.cpu_count() or 1
        return ofx.STAT_OK

    def multi_thread_index(self, out):
        out[0] = getattr(self._thread, "index", 0)
        return ofx.STAT_OK

    def multi_thread_is_spawned(self):
        return int(getattr(self._thread, "spawned", False))

    def mutex_create(self, out, lock_count):
        m = threading.RLock()
        for _ in range(max(0, lock_count)):
            m.acquire()
        h = self.registry.register(m)
        self._mutexes[h] = m
        out[0] = h
        return ofx.STAT_OK

    def mutex_destroy(self, h):
        if self._mutexes.pop(h or 0, None) is None:
            return ofx.STAT_ERR_BAD_HANDLE
        self.registry.forget(h)
        return ofx.STAT_OK

    def mutex_lock(self, h):
        m = self._mutexes.get(h or 0)
        if m is None:
            return ofx.STAT_ERR_BAD_HANDLE
        m.acquire()
        return ofx.STAT_OK

    def mutex_unlock(self, h):
        m = self._mutexes.get(h or 0)
        if m is None:
            return ofx.STAT_ERR_BAD_HANDLE
        try:
            m.release()
        except RuntimeError:
            return ofx.STAT_FAILED
        return ofx.STAT_OK

    def mutex_try_lock(self, h):
        m = self._mutexes.get(h or 0)
        if m is None:
            return ofx.STAT_ERR_BAD_HANDLE
        return ofx.STAT_OK if m.acquire(blocking=False) else ofx.STAT_FAILED

    # -- message and progress suites -------------------------------------------------------------

    def _object_name(self, handle) -> str:
        obj = self.registry.lookup(handle)
        if obj is None:
            return "none" if not handle else "unknown"
        if isinstance(obj, Effect):
            return "instance" if obj.is_instance else "descriptor"
        return type(obj).__name__.lower()

    def on_message(self, handle, mtype, mid, text, persistent):
        entry = {"type": (mtype or b"").decode(), "id": (mid or b"").decode() if mid else None,
                 "text": (text or b"").decode("utf-8", "replace"), "persistent": bool(persistent),
                 "on": self._object_name(handle)}
        with self.lock:
            self.record.messages.append(entry)
        if persistent and entry["on"] not in ("instance", "descriptor"):
            return ofx.STAT_ERR_BAD_HANDLE
        if entry["type"] == ofx.MESSAGE_QUESTION:
            return ofx.STAT_REPLY_YES
        return ofx.STAT_OK

    def on_clear(self, handle):
        with self.lock:
            self.record.messages.append({"type": "clear", "id": None, "text": "", "persistent": True,
                                         "on": self._object_name(handle)})
        return ofx.STAT_OK

    def _progress(self, handle, event, value=None):
        if self.registry.lookup(handle, Effect) is None:
            return ofx.STAT_ERR_BAD_HANDLE
        with self.lock:
            self.record.progress.append((event, value))
        if event == "update" and self._should_abort():
            return ofx.STAT_REPLY_NO
        return ofx.STAT_OK

    def progress_start_v1(self, handle, label):
        return self._progress(handle, "start", (label or b"").decode("utf-8", "replace"))

    def progress_start_v2(self, handle, message, message_id):
        return self._progress(handle, "start", (message or b"").decode("utf-8", "replace"))

    def progress_update(self, handle, value):
        return self._progress(handle, "update", float(value))

    def progress_end(self, handle):
        return self._progress(handle, "end")

    # -- loading ---------------------------------------------------------------------------------

    def action(self, name: str, handle=None, in_args: PropertySet | None = None,
               out_args: PropertySet | None = None) -> int:
        main = ofx.MAIN_ENTRY(self.plugin.mainEntry)
        status = main(name.encode(), handle, in_args.handle if in_args else None,
                      out_args.handle if out_args else None)
        with self.lock:
            self.record.actions.append((name, status))
            me = threading.get_ident()
            kept = [h for h, (_, tid) in self._images.items() if tid == me]
            for h in kept:   # the spec: images are released before the action that fetched them returns
                self._images.pop(h)
                self.registry.forget(h)
            if kept:
                self.record.violations.append(f"{name}: {len(kept)} image(s) not released")
        for args in (in_args, out_args):   # valid for the action only: later use is a bad handle
            if args is not None:
                self.registry.forget(args.handle)
        return status

    def load(self, bundle: str | os.PathLike) -> int:
        """Load the bundle's image-effect plug-in through Load, Describe and DescribeInContext.

        Returns the first failing status (or kOfxStatOK); raises for what no host would accept
        (no binary, no exported entry points, no image-effect plug-in of a supported version).
        """
        binary = bundle_binary(bundle)
        self.lib = ctypes.CDLL(str(binary), mode=getattr(os, "RTLD_LOCAL", 0) | getattr(os, "RTLD_NOW", 2))
        try:
            set_host = self.lib.OfxSetHost
        except AttributeError:
            set_host = None
        if set_host is not None:
            set_host.restype = ctypes.c_int
            set_host.argtypes = [ctypes.POINTER(ofx.OfxHost)]
            if set_host(ctypes.byref(self.c_host)) == ofx.STAT_FAILED:
                return ofx.STAT_FAILED
        count_fn = self.lib.OfxGetNumberOfPlugins
        count_fn.restype = ctypes.c_int
        get_fn = self.lib.OfxGetPlugin
        get_fn.restype = ctypes.POINTER(ofx.OfxPlugin)
        get_fn.argtypes = [ctypes.c_int]
        self.plugins = []
        for i in range(count_fn()):
            p = get_fn(i)
            if not p:
                continue
            plug = p.contents
            if plug.pluginApi == ofx.IMAGE_EFFECT_API.encode() and plug.apiVersion == ofx.IMAGE_EFFECT_API_VERSION:
                self.plugins.append(plug)
        if not self.plugins:
            raise RuntimeError(f"{binary}: no {ofx.IMAGE_EFFECT_API} v{ofx.IMAGE_EFFECT_API_VERSION} plug-in")
        self.plugin = self.plugins[0]
        if not self.plugin.setHost or not self.plugin.mainEntry:
            raise RuntimeError(f"{binary}: OfxPlugin without setHost or mainEntry")
        ofx.SET_HOST(self.plugin.setHost)(ctypes.byref(self.c_host))
        self.loaded = False
        status = self.action(ofx.ACTION_LOAD)
        if status not in (ofx.STAT_OK, ofx.STAT_REPLY_DEFAULT):
            return status
        self.loaded = True
        self.descriptor = Effect(self, P.EFFECT_DESCRIPTOR)
        self.descriptor.props.set("OfxPluginPropFilePath", str(Path(bundle).resolve()))
        status = self.action(ofx.ACTION_DESCRIBE, self.descriptor.handle)
        if status != ofx.STAT_OK:
            return status
        plugin_contexts = self.descriptor.props.get("OfxImageEffectPropSupportedContexts") or []
        host_contexts = self.props.get("OfxImageEffectPropSupportedContexts")
        for ctx in [c for c in plugin_contexts if c in host_contexts]:
            d = Effect(self, P.EFFECT_DESCRIPTOR, context=ctx)
            d.props.copy_values(self.descriptor.props)
            args = PropertySet(self.registry, "args", P.args_describe_in_context(ctx))
            status = self.action(ofx.ACTION_DESCRIBE_IN_CONTEXT, d.handle, args)
            if status != ofx.STAT_OK:
                return status
            self.context_descriptors[ctx] = d
            self._check_context(ctx, d)
        return ofx.STAT_OK

    def _check_context(self, ctx: str, d: Effect) -> None:
        """The clips each context mandates (spec "Image Effect Contexts")."""
        if ofx.CLIP_OUTPUT not in d.clips:
            self.record.violations.append(f"{ctx}: no {ofx.CLIP_OUTPUT} clip")
        if ctx == ofx.CONTEXT_FILTER:
            if ofx.CLIP_SOURCE not in d.clips:
                self.record.violations.append(f"{ctx}: no {ofx.CLIP_SOURCE} clip")
            for name, clip in d.clips.items():
                if name not in (ofx.CLIP_SOURCE, ofx.CLIP_OUTPUT) and not clip.props.get("OfxImageClipPropOptional"):
                    self.record.violations.append(
                        f"{ctx}: input clip {name!r} is not optional (the filter context allows only optional "
                        f"inputs besides {ofx.CLIP_SOURCE})")

    def unload(self) -> int:
        if not getattr(self, "loaded", False):
            return ofx.STAT_OK
        self.loaded = False
        return self.action(ofx.ACTION_UNLOAD)

    # -- what the plug-in described, as plain data ----------------------------------------------

    def description(self) -> dict:
        def props(ps: PropertySet) -> dict:
            return {k: list(p.values) for k, p in ps.props.items()}

        out = {"identifier": self.plugin.pluginIdentifier.decode(),
               "version": [self.plugin.pluginVersionMajor, self.plugin.pluginVersionMinor],
               "api": self.plugin.pluginApi.decode(), "api_version": self.plugin.apiVersion,
               "effect": props(self.descriptor.props), "contexts": {}}
        for ctx, d in self.context_descriptors.items():
            out["contexts"][ctx] = {
                "effect": props(d.props),
                "clips": {n: props(d.clips[n].props) for n in d.clip_order},
                "params": {n: {"type": d.params.params[n].type, **props(d.params.params[n].props)}
                           for n in d.params.order},
            }
        return out
