"""Property sets as the OpenFX property suite sees them, and which properties each object has.

Every object the host hands a plug-in (the host itself, effect descriptors and instances, clips,
images, parameters, action arguments) is a :class:`PropertySet` created with the properties the
specification lists for that object, each with its type, dimension (``None`` = variable) and
default. A property that the object does not have is answered ``kOfxStatErrUnknown`` (also a
getter of another type); an index outside the dimension ``kOfxStatErrBadIndex``; setting a value of
the wrong type ``kOfxStatErrValue`` (the property suite's documented codes), so a plug-in relying on something the specification does
not give that object fails here as it would on a strict host.
"""
from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass, field
from typing import Any

from . import ofx

INT, DOUBLE, STRING, POINTER = "int", "double", "string", "pointer"
_ZERO = {INT: 0, DOUBLE: 0.0, STRING: "", POINTER: 0}

Schema = dict[str, tuple[str, "int | None", tuple]]


@dataclass
class Property:
    type: str
    dim: int | None           # fixed dimension, or None for a variable one
    default: tuple
    values: list = field(default_factory=list)
    _c_strings: list = field(default_factory=list)  # the char* handed out for each string value

    def reset(self) -> None:
        self.values = list(self.default)
        self._c_strings = []

    def c_string(self, index: int) -> int:
        """A char* to value ``index``, valid until the value changes (the spec asks until the next call)."""
        while len(self._c_strings) <= index:
            self._c_strings.append(None)
        if self._c_strings[index] is None:
            self._c_strings[index] = ctypes.create_string_buffer(str(self.values[index]).encode())
        return ctypes.addressof(self._c_strings[index])


class PropertySet:
    """One object's properties; ``handle`` is the opaque pointer the plug-in holds."""

    def __init__(self, registry: "HandleRegistry", kind: str, schema: Schema, **values: Any):
        self.kind = kind
        self.props: dict[str, Property] = {}
        for name, (tp, dim, default) in schema.items():
            p = Property(tp, dim, tuple(default))
            p.reset()
            self.props[name] = p
        self.handle = registry.register(self)
        for name, value in values.items():
            self.set(name.replace("__", ":"), value)
        self.writes: list[tuple[str, int, Any]] = []   # what the plug-in set, for the tests

    def add(self, name: str, tp: str, dim: int | None, default: tuple = ()) -> None:
        p = Property(tp, dim, tuple(default))
        p.reset()
        self.props[name] = p

    # host-side convenience (Python values)
    def set(self, name: str, value: Any) -> None:
        p = self.props[name]
        vals = list(value) if isinstance(value, (list, tuple)) else [value]
        p.values = vals
        p._c_strings = []

    def get(self, name: str, default: Any = None) -> Any:
        p = self.props.get(name)
        if p is None:
            return default
        if p.dim == 1:
            return p.values[0] if p.values else default
        return list(p.values)

    def __contains__(self, name: str) -> bool:
        return name in self.props

    def copy_values(self, other: "PropertySet") -> None:
        """Take ``other``'s values for the properties both sets have."""
        for name, p in other.props.items():
            if name in self.props and self.props[name].type == p.type:
                self.props[name].values = list(p.values)
                self.props[name]._c_strings = []


class HandleRegistry:
    """Opaque handles: the address of a small host allocation per object, looked up on every call."""

    def __init__(self):
        self._objects: dict[int, Any] = {}
        self._cells: list = []
        self.lock = threading.RLock()

    def register(self, obj: Any) -> int:
        with self.lock:
            cell = ctypes.create_string_buffer(16)
            self._cells.append(cell)
            h = ctypes.addressof(cell)
            self._objects[h] = obj
            return h

    def lookup(self, handle: int | None, cls: type | tuple | None = None) -> Any:
        with self.lock:
            obj = self._objects.get(handle or 0)
        if obj is not None and cls is not None and not isinstance(obj, cls):
            return None
        return obj

    def forget(self, handle: int) -> None:
        with self.lock:
            self._objects.pop(handle, None)


# ---- which properties each object has (the specification's property sets) --------------------

def _s(tp: str, dim: int | None, *default) -> tuple:
    return (tp, dim, default)


COMMON_LABELS: Schema = {
    "OfxPropLabel": _s(STRING, 1, ""), "OfxPropShortLabel": _s(STRING, 1, ""),
    "OfxPropLongLabel": _s(STRING, 1, ""),
}

HOST: Schema = {
    "OfxPropType": _s(STRING, 1, ofx.TYPE_HOST),
    "OfxPropName": _s(STRING, 1, "org.rerender.testhost"),
    "OfxPropLabel": _s(STRING, 1, "rerender test host"),
    "OfxPropVersion": _s(INT, None, 1, 0, 0),
    "OfxPropVersionLabel": _s(STRING, 1, "1.0"),
    "OfxPropAPIVersion": _s(INT, None, 1, 4),
    "OfxPropHostOSHandle": _s(POINTER, 1, 0),
    "OfxImageEffectHostPropIsBackground": _s(INT, 1, 1),
    "OfxImageEffectPropSupportsOverlays": _s(INT, 1, 0),
    "OfxImageEffectPropSupportsMultiResolution": _s(INT, 1, 0),
    "OfxImageEffectPropSupportsTiles": _s(INT, 1, 0),
    "OfxImageEffectPropTemporalClipAccess": _s(INT, 1, 1),
    "OfxImageEffectPropSupportedComponents": _s(STRING, None, ofx.COMPONENTS_RGBA, ofx.COMPONENTS_RGB,
                                                 ofx.COMPONENTS_ALPHA),
    "OfxImageEffectPropSupportedContexts": _s(STRING, None, ofx.CONTEXT_FILTER, ofx.CONTEXT_GENERAL),
    "OfxImageEffectPropMultipleClipDepths": _s(INT, 1, 1),
    "OfxImageEffectPropSupportsMultipleClipPARs": _s(INT, 1, 0),
    "OfxImageEffectPropSetableFrameRate": _s(INT, 1, 0),
    "OfxImageEffectPropSetableFielding": _s(INT, 1, 0),
    "OfxImageEffectInstancePropSequentialRender": _s(INT, 1, 0),
    "OfxImageEffectPropRenderQualityDraft": _s(INT, 1, 0),
    "OfxImageEffectHostPropNativeOrigin": _s(STRING, 1, "kOfxImageEffectHostPropNativeOriginBottomLeft"),
    "OfxImageEffectPropCPURenderSupported": _s(STRING, 1, "true"),
    "OfxParamHostPropSupportsCustomAnimation": _s(INT, 1, 0),
    "OfxParamHostPropSupportsStringAnimation": _s(INT, 1, 0),
    "OfxParamHostPropSupportsBooleanAnimation": _s(INT, 1, 0),
    "OfxParamHostPropSupportsChoiceAnimation": _s(INT, 1, 0),
    "OfxParamHostPropSupportsStrChoice": _s(INT, 1, 0),
    "OfxParamHostPropSupportsStrChoiceAnimation": _s(INT, 1, 0),
    "OfxParamHostPropSupportsParametricAnimation": _s(INT, 1, 0),
    "OfxParamHostPropMaxParameters": _s(INT, 1, -1),
    "OfxParamHostPropMaxPages": _s(INT, 1, 0),
    "OfxParamHostPropPageRowColumnCount": _s(INT, 2, 0, 0),
}

EFFECT_DESCRIPTOR: Schema = {
    "OfxPropType": _s(STRING, 1, ofx.TYPE_EFFECT),
    **COMMON_LABELS,
    "OfxPropVersion": _s(INT, None), "OfxPropVersionLabel": _s(STRING, 1, ""),
    "OfxPropPluginDescription": _s(STRING, 1, ""),
    "OfxPluginPropFilePath": _s(STRING, 1, ""),
    "OfxImageEffectPluginPropGrouping": _s(STRING, 1, ""),
    "OfxImageEffectPropSupportedContexts": _s(STRING, None),
    "OfxImageEffectPropSupportedPixelDepths": _s(STRING, None),
    "OfxImageEffectPluginPropSingleInstance": _s(INT, 1, 0),
    "OfxImageEffectPluginRenderThreadSafety": _s(STRING, 1, ofx.RENDER_INSTANCE_SAFE),
    "OfxImageEffectPluginPropHostFrameThreading": _s(INT, 1, 1),
    "OfxImageEffectPropSupportsMultiResolution": _s(INT, 1, 1),
    "OfxImageEffectPropSupportsTiles": _s(INT, 1, 1),
    "OfxImageEffectPropTemporalClipAccess": _s(INT, 1, 0),
    "OfxImageEffectPropMultipleClipDepths": _s(INT, 1, 0),
    "OfxImageEffectPropSupportsMultipleClipPARs": _s(INT, 1, 0),
    "OfxImageEffectPluginPropFieldRenderTwiceAlways": _s(INT, 1, 1),
    "OfxImageEffectPropClipPreferencesSlaveParam": _s(STRING, None),
    "OfxImageEffectPluginPropOverlayInteractV1": _s(POINTER, 1, 0),
    "OfxImageEffectPluginPropOverlayInteractV2": _s(POINTER, 1, 0),
    "OfxImageEffectPluginPropObsolete": _s(INT, 1, 0),
    "OfxImageEffectPropNoSpatialAwareness": _s(STRING, 1, "false"),
    "OfxImageEffectPropCPURenderSupported": _s(STRING, 1, "true"),
    "OfxImageEffectPropOpenGLRenderSupported": _s(STRING, 1, "false"),
    "OfxImageEffectPropOpenCLSupported": _s(STRING, 1, "false"),
    "OfxImageEffectPropColourManagementStyle": _s(STRING, 1, "OfxImageEffectPropColourManagementNone"),
    "OfxImageEffectPropColourManagementAvailableConfigs": _s(STRING, None),
}

EFFECT_INSTANCE: Schema = {
    "OfxPropType": _s(STRING, 1, ofx.TYPE_EFFECT_INSTANCE),
    "OfxImageEffectPropContext": _s(STRING, 1, ""),
    "OfxPropInstanceData": _s(POINTER, 1, 0),
    "OfxImageEffectPropProjectSize": _s(DOUBLE, 2, 0.0, 0.0),
    "OfxImageEffectPropProjectOffset": _s(DOUBLE, 2, 0.0, 0.0),
    "OfxImageEffectPropProjectExtent": _s(DOUBLE, 2, 0.0, 0.0),
    "OfxImageEffectPropPixelAspectRatio": _s(DOUBLE, 1, 1.0),
    "OfxImageEffectInstancePropEffectDuration": _s(DOUBLE, 1, 0.0),
    "OfxImageEffectInstancePropSequentialRender": _s(INT, 1, 0),
    "OfxImageEffectPropSupportsTiles": _s(INT, 1, 0),
    "OfxImageEffectPropFrameRate": _s(DOUBLE, 1, 24.0),
    "OfxImageEffectPropPluginHandle": _s(POINTER, 1, 0),
    "OfxImageEffectPropCPURenderSupported": _s(STRING, 1, "true"),
    "OfxImageEffectPropOpenGLRenderSupported": _s(STRING, 1, "false"),
}

CLIP_DESCRIPTOR: Schema = {
    "OfxPropType": _s(STRING, 1, ofx.TYPE_CLIP),
    "OfxPropName": _s(STRING, 1, ""),
    **COMMON_LABELS,
    "OfxImageEffectPropSupportedComponents": _s(STRING, None),
    "OfxImageEffectPropTemporalClipAccess": _s(INT, 1, 0),
    "OfxImageClipPropOptional": _s(INT, 1, 0),
    "OfxImageClipPropIsMask": _s(INT, 1, 0),
    "OfxImageClipPropFieldExtraction": _s(STRING, 1, "OfxFieldDoubled"),
    "OfxImageEffectPropSupportsTiles": _s(INT, 1, 1),
}

CLIP_INSTANCE: Schema = {
    **CLIP_DESCRIPTOR,
    "OfxImageEffectPropPixelDepth": _s(STRING, 1, ofx.DEPTH_NONE),
    "OfxImageEffectPropComponents": _s(STRING, 1, ofx.COMPONENTS_NONE),
    "OfxImageClipPropUnmappedPixelDepth": _s(STRING, 1, ofx.DEPTH_NONE),
    "OfxImageClipPropUnmappedComponents": _s(STRING, 1, ofx.COMPONENTS_NONE),
    "OfxImageEffectPropPreMultiplication": _s(STRING, 1, ofx.OPAQUE),
    "OfxImagePropPixelAspectRatio": _s(DOUBLE, 1, 1.0),
    "OfxImageEffectPropFrameRate": _s(DOUBLE, 1, 24.0),
    "OfxImageEffectPropFrameRange": _s(DOUBLE, 2, 0.0, 0.0),
    "OfxImageClipPropFieldOrder": _s(STRING, 1, ofx.FIELD_NONE),
    "OfxImageClipPropConnected": _s(INT, 1, 0),
    "OfxImageEffectPropUnmappedFrameRange": _s(DOUBLE, 2, 0.0, 0.0),
    "OfxImageEffectPropUnmappedFrameRate": _s(DOUBLE, 1, 24.0),
    "OfxImageClipPropContinuousSamples": _s(INT, 1, 0),
}

IMAGE: Schema = {
    "OfxPropType": _s(STRING, 1, ofx.TYPE_IMAGE),
    "OfxImageEffectPropPixelDepth": _s(STRING, 1, ofx.DEPTH_NONE),
    "OfxImageEffectPropComponents": _s(STRING, 1, ofx.COMPONENTS_NONE),
    "OfxImageEffectPropPreMultiplication": _s(STRING, 1, ofx.OPAQUE),
    "OfxImageEffectPropRenderScale": _s(DOUBLE, 2, 1.0, 1.0),
    "OfxImagePropPixelAspectRatio": _s(DOUBLE, 1, 1.0),
    "OfxImagePropData": _s(POINTER, 1, 0),
    "OfxImagePropBounds": _s(INT, 4, 0, 0, 0, 0),
    "OfxImagePropRegionOfDefinition": _s(INT, 4, 0, 0, 0, 0),
    "OfxImagePropRowBytes": _s(INT, 1, 0),
    "OfxImagePropField": _s(STRING, 1, ofx.FIELD_NONE),
    "OfxImagePropUniqueIdentifier": _s(STRING, 1, ""),
}

PARAM_SET: Schema = {
    "OfxPluginPropParamPageOrder": _s(STRING, None),
    "OfxPropParamSetNeedsSyncing": _s(INT, 1, 0),
}


def param_schema(param_type: str) -> Schema:
    """The properties of a parameter of ``param_type`` (descriptor and instance alike)."""
    kind, count = ofx.PARAM_VALUES[param_type]
    schema: Schema = {
        "OfxPropType": _s(STRING, 1, ofx.TYPE_PARAMETER),
        "OfxPropName": _s(STRING, 1, ""),
        **COMMON_LABELS,
        "OfxPropIcon": _s(STRING, 2, "", ""),
        "OfxParamPropType": _s(STRING, 1, param_type),
        "OfxParamPropScriptName": _s(STRING, 1, ""),
        "OfxParamPropHint": _s(STRING, 1, ""),
        "OfxParamPropParent": _s(STRING, 1, ""),
        "OfxParamPropEnabled": _s(INT, 1, 1),
        "OfxParamPropSecret": _s(INT, 1, 0),
        "OfxParamPropDataPtr": _s(POINTER, 1, 0),
    }
    if param_type == ofx.PARAM_GROUP:
        schema["OfxParamPropGroupOpen"] = _s(INT, 1, 1)
        return schema
    if param_type == ofx.PARAM_PAGE:
        schema["OfxParamPropPageChild"] = _s(STRING, None)
        return schema
    schema.update({
        "OfxParamPropAnimates": _s(INT, 1, 0 if kind in (None, "string") else 1),
        "OfxParamPropIsAnimating": _s(INT, 1, 0),
        "OfxParamPropIsAutoKeying": _s(INT, 1, 0),
        "OfxParamPropPersistant": _s(INT, 1, 1),
        "OfxParamPropEvaluateOnChange": _s(INT, 1, 1),
        "OfxParamPropPluginMayWrite": _s(INT, 1, 0),
        "OfxParamPropCanUndo": _s(INT, 1, 1),
        "OfxParamPropCacheInvalidation": _s(STRING, 1, "OfxParamInvalidateValueChange"),
        "OfxParamPropHasHostOverlayHandle": _s(INT, 1, 0),
        "kOfxParamPropUseHostOverlayHandle": _s(INT, 1, 0),
        "OfxParamPropInteractV1": _s(POINTER, 1, 0),
        "OfxParamPropInteractSize": _s(DOUBLE, 2, 0.0, 0.0),
        "OfxParamPropInteractSizeAspect": _s(DOUBLE, 1, 1.0),
        "OfxParamPropInteractMinimumSize": _s(DOUBLE, 2, 10.0, 10.0),
        "OfxParamPropInteractPreferedSize": _s(INT, 2, 10, 10),
    })
    if param_type == ofx.PARAM_PUSH_BUTTON:
        return schema
    if kind is not None:
        schema["OfxParamPropDefault"] = _s(kind, count, *([_ZERO[kind]] * count))
    if kind in ("int", "double") and param_type not in (ofx.PARAM_BOOLEAN, ofx.PARAM_CHOICE):
        big = 2 ** 31 - 1 if kind == "int" else 1.7976931348623157e308
        for name, value in (("OfxParamPropMin", -big if kind == "double" else -big - 1),
                            ("OfxParamPropMax", big), ("OfxParamPropDisplayMin", -big if kind == "double" else -big - 1),
                            ("OfxParamPropDisplayMax", big)):
            schema[name] = _s(kind, count, *([value] * count))
    if kind == "double":
        schema.update({
            "OfxParamPropIncrement": _s(DOUBLE, 1, 1.0),
            "OfxParamPropDigits": _s(INT, 1, 2),
            "OfxParamPropDoubleType": _s(STRING, 1, "OfxParamDoubleTypePlain"),
            "OfxParamPropShowTimeMarker": _s(INT, 1, 0),
            "OfxParamPropDefaultCoordinateSystem": _s(STRING, 1, "OfxParamCoordinatesCanonical"),
        })
    if count > 1:
        schema["OfxParamPropDimensionLabel"] = _s(STRING, count, *(["x", "y", "z", "w"][:count]))
    if param_type == ofx.PARAM_CHOICE:
        schema["OfxParamPropChoiceOption"] = _s(STRING, None)
        schema["OfxParamPropChoiceOrder"] = _s(INT, None)
    if param_type == ofx.PARAM_STR_CHOICE:
        schema["OfxParamPropChoiceOption"] = _s(STRING, None)
        schema["OfxParamPropChoiceEnum"] = _s(INT, 1, 0)
    if param_type == ofx.PARAM_STRING:
        schema["OfxParamPropStringMode"] = _s(STRING, 1, "OfxParamStringIsSingleLine")
        schema["OfxParamPropStringFilePathExists"] = _s(INT, 1, 1)
    if param_type == ofx.PARAM_CUSTOM:
        schema["OfxParamPropCustomCallbackV1"] = _s(POINTER, 1, 0)
    return schema


# ---- action arguments ---------------------------------------------------------------------

def args_describe_in_context(context: str) -> Schema:
    return {"OfxImageEffectPropContext": _s(STRING, 1, context)}


def args_time_scale(time: float) -> Schema:
    return {"OfxPropTime": _s(DOUBLE, 1, time), "OfxImageEffectPropRenderScale": _s(DOUBLE, 2, 1.0, 1.0)}


def args_rod_out(rod: tuple) -> Schema:
    return {"OfxImageEffectPropRegionOfDefinition": _s(DOUBLE, 4, *rod)}


def args_roi_in(time: float, roi: tuple) -> Schema:
    return {**args_time_scale(time), "OfxImageEffectPropRegionOfInterest": _s(DOUBLE, 4, *roi)}


def args_render(time: float, window: tuple, sequential: bool, interactive: bool) -> Schema:
    return {
        **args_time_scale(time),
        "OfxImageEffectPropFieldToRender": _s(STRING, 1, ofx.FIELD_NONE),
        "OfxImageEffectPropRenderWindow": _s(INT, 4, *window),
        "OfxImageEffectPropSequentialRenderStatus": _s(INT, 1, int(sequential)),
        "OfxImageEffectPropInteractiveRenderStatus": _s(INT, 1, int(interactive)),
        "OfxImageEffectPropRenderQualityDraft": _s(INT, 1, 0),
    }


def args_is_identity(time: float, window: tuple) -> Schema:
    return {
        **args_time_scale(time),
        "OfxImageEffectPropFieldToRender": _s(STRING, 1, ofx.FIELD_NONE),
        "OfxImageEffectPropRenderWindow": _s(INT, 4, *window),
    }


def args_sequence(first: float, last: float, interactive: bool) -> Schema:
    return {
        "OfxImageEffectPropFrameRange": _s(DOUBLE, 2, first, last),
        "OfxImageEffectPropFrameStep": _s(DOUBLE, 1, 1.0),
        "OfxPropIsInteractive": _s(INT, 1, int(interactive)),
        "OfxImageEffectPropRenderScale": _s(DOUBLE, 2, 1.0, 1.0),
        "OfxImageEffectPropSequentialRenderStatus": _s(INT, 1, 0),
        "OfxImageEffectPropInteractiveRenderStatus": _s(INT, 1, int(interactive)),
    }


def args_instance_changed(kind: str, name: str, reason: str, time: float) -> Schema:
    return {
        "OfxPropType": _s(STRING, 1, kind), "OfxPropName": _s(STRING, 1, name),
        "OfxPropChangeReason": _s(STRING, 1, reason), "OfxPropTime": _s(DOUBLE, 1, time),
        "OfxImageEffectPropRenderScale": _s(DOUBLE, 2, 1.0, 1.0),
    }


def args_change_reason(reason: str) -> Schema:
    return {"OfxPropChangeReason": _s(STRING, 1, reason)}


def args_is_identity_out(time: float) -> Schema:
    return {"OfxPropName": _s(STRING, 1, ""), "OfxPropTime": _s(DOUBLE, 1, time)}
