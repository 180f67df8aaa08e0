"""An effect instance as a host drives it: clips attached, CreateInstance, GetClipPreferences,
GetTimeDomain, user edits (InstanceChanged), and per frame GetRegionOfDefinition, GetFramesNeeded,
GetRegionsOfInterest, IsIdentity and Render between Begin/EndSequenceRender; DestroyInstance.
"""
from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from . import ofx
from . import properties as P
from .host import Clip, Effect, Host, Param
from .images import COMPONENTS_OF_CHANNELS, DEPTH_OF_DTYPE, DEPTHS, ClipData, Image, convert
from .properties import PropertySet


class Instance(Effect):
    """An effect instance in one context, with the host's clips attached."""

    is_instance = True

    def __init__(self, host: Host, context: str, clips: dict[str, ClipData | None]):
        super().__init__(host, P.EFFECT_INSTANCE, context)
        desc = host.context_descriptors[context]
        self.descriptor = desc
        self.props.set("OfxImageEffectPropContext", context)
        self.props.set("OfxImageEffectPropPluginHandle", desc.handle)
        for name in desc.clip_order:
            clip = Clip(host, self, name, P.CLIP_INSTANCE)
            clip.props.copy_values(desc.clips[name].props)
            clip.props.set("OfxPropType", ofx.TYPE_CLIP)
            clip.data = clips.get(name)
            self.clips[name] = clip
            self.clip_order.append(name)
        unknown = set(clips) - set(self.clips)
        if unknown:
            raise ValueError(f"clips {sorted(unknown)} are not defined by the plug-in (it has {self.clip_order})")
        for name in desc.params.order:
            d = desc.params.params[name]
            p = Param(host, self.params, d.type, name)
            p.props.copy_values(d.props)
            p.props.set("OfxPropType", ofx.TYPE_PARAMETER_INSTANCE)
            p.value = d.default()
            self.params.params[name] = p
            self.params.order.append(name)
        src = self._main_input()
        if src is not None:
            h, w, _ = src.shape
            self.props.set("OfxImageEffectPropProjectSize", [float(w), float(h)])
            self.props.set("OfxImageEffectPropProjectExtent", [float(w), float(h)])
            self.props.set("OfxImageEffectPropFrameRate", src.fps)
            self.props.set("OfxImageEffectInstancePropEffectDuration", float(src.last - src.first + 1))
        self._attach_clips()
        self._render_time = threading.local()
        self.outputs: dict[float, Image] = {}
        self.created = False

    def _main_input(self) -> ClipData | None:
        c = self.clips.get(ofx.CLIP_SOURCE)
        if c is not None and c.data is not None:
            return c.data
        for c in self.clips.values():
            if c.data is not None:
                return c.data
        return None

    def _attach_clips(self) -> None:
        src = self._main_input()
        for name, clip in self.clips.items():
            data = src if name == ofx.CLIP_OUTPUT else clip.data
            connected = data is not None
            clip.props.set("OfxImageClipPropConnected", int(connected))
            if not connected:
                continue
            ch = data.shape[2]
            comps = COMPONENTS_OF_CHANNELS[ch]
            native_depth = DEPTH_OF_DTYPE.get(data.frames[data.first].dtype, ofx.DEPTH_FLOAT)
            clip.props.set("OfxImageClipPropUnmappedComponents", comps)
            clip.props.set("OfxImageClipPropUnmappedPixelDepth", native_depth)
            clip.props.set("OfxImageEffectPropComponents", comps)
            clip.props.set("OfxImageEffectPropPixelDepth", self.host.depth)
            clip.props.set("OfxImageEffectPropPreMultiplication",
                           data.premult or (ofx.UNPREMULTIPLIED if ch == 4 else ofx.OPAQUE))
            clip.props.set("OfxImageEffectPropFrameRate", data.fps)
            clip.props.set("OfxImageEffectPropUnmappedFrameRate", data.fps)
            clip.props.set("OfxImageEffectPropFrameRange", [float(data.first), float(data.last)])
            clip.props.set("OfxImageEffectPropUnmappedFrameRange", [float(data.first), float(data.last)])

    # -- actions ---------------------------------------------------------------------------------

    def create(self) -> int:
        status = self.host.action(ofx.ACTION_CREATE_INSTANCE, self.handle)
        self.created = status in (ofx.STAT_OK, ofx.STAT_REPLY_DEFAULT)
        if not self.created:
            return status
        # this host has no time-line suite, so (spec, kOfxActionCreateInstance) it tells the instance
        # about each connected clip with an instance-changed action once the instance exists
        for name, clip in self.clips.items():
            if name != ofx.CLIP_OUTPUT and clip.props.get("OfxImageClipPropConnected"):
                status = self._changed(ofx.TYPE_CLIP, name, ofx.CHANGE_USER_EDITED, 0.0)
                if status != ofx.STAT_OK:
                    return status
        return self.clip_preferences()

    def _changed(self, kind: str, name: str, why: str, time: float) -> int:
        """Begin/InstanceChanged/EndInstanceChanged for one changed parameter or clip."""
        reason = PropertySet(self.host.registry, "args", P.args_change_reason(why))
        statuses = [self.host.action(ofx.ACTION_BEGIN_INSTANCE_CHANGED, self.handle, reason)]
        args = PropertySet(self.host.registry, "args", P.args_instance_changed(kind, name, why, time))
        statuses.append(self.host.action(ofx.ACTION_INSTANCE_CHANGED, self.handle, args))
        statuses.append(self.host.action(ofx.ACTION_END_INSTANCE_CHANGED, self.handle, reason))
        bad = [s for s in statuses if s not in (ofx.STAT_OK, ofx.STAT_REPLY_DEFAULT)]
        return bad[0] if bad else ofx.STAT_OK

    def destroy(self) -> int:
        if not self.created:
            return ofx.STAT_OK
        self.created = False
        return self.host.action(ofx.ACTION_DESTROY_INSTANCE, self.handle)

    def clip_preferences(self) -> int:
        """GetClipPreferences with the host's defaults, then adopt what the plug-in asked for."""
        schema: P.Schema = {}
        for name, clip in self.clips.items():
            if not clip.props.get("OfxImageClipPropConnected"):
                continue
            schema[f"OfxImageClipPropComponents_{name}"] = (P.STRING, 1, (clip.props.get("OfxImageEffectPropComponents"),))
            schema[f"OfxImageClipPropDepth_{name}"] = (P.STRING, 1, (clip.props.get("OfxImageEffectPropPixelDepth"),))
            schema[f"OfxImageClipPropPAR_{name}"] = (P.DOUBLE, 1, (1.0,))
        src = self._main_input()
        schema.update({
            "OfxImageEffectPropFrameRate": (P.DOUBLE, 1, (src.fps if src else 24.0,)),
            "OfxImageClipPropFieldOrder": (P.STRING, 1, (ofx.FIELD_NONE,)),
            "OfxImageEffectPropPreMultiplication": (
                P.STRING, 1, (self.clips[ofx.CLIP_OUTPUT].props.get("OfxImageEffectPropPreMultiplication"),)),
            "OfxImageClipPropContinuousSamples": (P.INT, 1, (0,)),
            "OfxImageEffectFrameVarying": (P.INT, 1, (0,)),
        })
        out = PropertySet(self.host.registry, "args", schema)
        status = self.host.action(ofx.ACTION_GET_CLIP_PREFERENCES, self.handle, None, out)
        if status not in (ofx.STAT_OK, ofx.STAT_REPLY_DEFAULT):
            return status
        self.clip_prefs = {k: out.get(k) for k in schema}
        host_depths = self.host.pixel_depths
        host_comps = self.host.props.get("OfxImageEffectPropSupportedComponents")
        plugin_depths = self.descriptor.props.get("OfxImageEffectPropSupportedPixelDepths") or []
        for name, clip in self.clips.items():
            if not clip.props.get("OfxImageClipPropConnected"):
                continue
            comps = out.get(f"OfxImageClipPropComponents_{name}")
            depth = out.get(f"OfxImageClipPropDepth_{name}")
            allowed = clip.props.get("OfxImageEffectPropSupportedComponents") or []
            if comps not in host_comps or (allowed and comps not in allowed):
                self.host.record.violations.append(f"clip preferences: {name} components {comps!r}")
                continue
            if depth not in host_depths or (plugin_depths and depth not in plugin_depths):
                self.host.record.violations.append(f"clip preferences: {name} depth {depth!r}")
                continue
            clip.props.set("OfxImageEffectPropComponents", comps)
            clip.props.set("OfxImageEffectPropPixelDepth", depth)
        self._check_preferences(out)
        self.clips[ofx.CLIP_OUTPUT].props.set("OfxImageEffectPropPreMultiplication",
                                              out.get("OfxImageEffectPropPreMultiplication"))
        return ofx.STAT_OK

    def _check_preferences(self, out: PropertySet) -> None:
        """What the spec constrains in the clip preferences the plug-in chose."""
        v = self.host.record.violations
        if self.context == ofx.CONTEXT_FILTER and ofx.CLIP_SOURCE in self.clips:
            src = self.clips[ofx.CLIP_SOURCE].props.get("OfxImageEffectPropComponents")
            dst = out.get(f"OfxImageClipPropComponents_{ofx.CLIP_OUTPUT}")
            if src != dst:
                v.append(f"filter context: Output components {dst} differ from Source's {src}")
        if not self.descriptor.props.get("OfxImageEffectPropMultipleClipDepths"):
            depths = {out.get(f"OfxImageClipPropDepth_{n}") for n, c in self.clips.items()
                      if c.props.get("OfxImageClipPropConnected")}
            if len(depths) > 1:
                v.append(f"clip preferences: several depths {sorted(depths)} without MultipleClipDepths")
        par = [out.get(f"OfxImageClipPropPAR_{n}") for n, c in self.clips.items()
               if c.props.get("OfxImageClipPropConnected")]
        if any(p is None or p <= 0 for p in par):
            v.append(f"clip preferences: pixel aspect ratios {par}")

    def time_domain(self) -> tuple[int, list | None]:
        out = PropertySet(self.host.registry, "args", {"OfxImageEffectPropFrameRange": (P.DOUBLE, 2, (0.0, 0.0))})
        src = self._main_input()
        if src is not None:
            out.set("OfxImageEffectPropFrameRange", [float(src.first), float(src.last)])
        status = self.host.action(ofx.ACTION_GET_TIME_DOMAIN, self.handle, None, out)
        return status, out.get("OfxImageEffectPropFrameRange")

    def set_param(self, name: str, value: Any, time: float = 0.0) -> int:
        """A user edit: the new value, then InstanceChanged bracketed by Begin/EndInstanceChanged."""
        p = self.params.params[name]
        with self.host.lock:
            p.value = list(value) if isinstance(value, (list, tuple)) else [value]
        status = self._changed(ofx.TYPE_PARAMETER, name, ofx.CHANGE_USER_EDITED, time)
        if name in (self.descriptor.props.get("OfxImageEffectPropClipPreferencesSlaveParam") or []):
            self.clip_preferences()
        return status

    def param_value(self, name: str) -> Any:
        v = self.params.params[name].value
        return v[0] if len(v) == 1 else list(v)

    # -- images ----------------------------------------------------------------------------------

    def clip_rod(self, clip: Clip) -> tuple | None:
        data = self._main_input() if clip.name == ofx.CLIP_OUTPUT else clip.data
        if data is None:
            return None
        h, w, _ = data.shape
        return (0.0, 0.0, float(w), float(h))

    def image_for(self, clip: Clip, time: float) -> tuple[int, Image | None]:
        depth = clip.props.get("OfxImageEffectPropPixelDepth")
        comps = clip.props.get("OfxImageEffectPropComponents")
        premult = clip.props.get("OfxImageEffectPropPreMultiplication")
        if clip.name == ofx.CLIP_OUTPUT:
            img = self.outputs.get(time)
            if img is None or getattr(self._render_time, "time", None) != time:
                return ofx.STAT_FAILED, None   # the output exists only for the frame being rendered
            return ofx.STAT_OK, img
        if clip.data is None or time != math.floor(time) or int(time) not in clip.data.frames:
            return ofx.STAT_FAILED, None
        pixels = convert(clip.data.frames[int(time)], depth, ofx.CHANNELS[comps])
        img = Image(self.host, pixels, components=comps, depth=depth, row_order=self.host.row_order,
                    row_padding=self.host.row_padding, unique_id=f"{clip.name}@{time}", premult=premult)
        return ofx.STAT_OK, img

    # -- rendering -------------------------------------------------------------------------------

    def frames_needed(self, time: float) -> dict[str, list]:
        schema = {f"OfxImageClipPropFrameRange_{n}": (P.DOUBLE, None, (time, time))
                  for n, c in self.clips.items() if n != ofx.CLIP_OUTPUT}
        out = PropertySet(self.host.registry, "args", schema)
        args = PropertySet(self.host.registry, "args", {"OfxPropTime": (P.DOUBLE, 1, (time,))})
        status = self.host.action(ofx.ACTION_GET_FRAMES_NEEDED, self.handle, args, out)
        if status not in (ofx.STAT_OK, ofx.STAT_REPLY_DEFAULT):
            return {"status": status}
        return {"status": status, **{k.split("_", 1)[1]: out.get(k) for k in schema}}

    def begin_sequence(self, first: float, last: float, interactive: bool = False) -> int:
        args = PropertySet(self.host.registry, "args", P.args_sequence(first, last, interactive))
        return self.host.action(ofx.ACTION_BEGIN_SEQUENCE_RENDER, self.handle, args)

    def end_sequence(self, first: float, last: float, interactive: bool = False) -> int:
        args = PropertySet(self.host.registry, "args", P.args_sequence(first, last, interactive))
        return self.host.action(ofx.ACTION_END_SEQUENCE_RENDER, self.handle, args)

    def render(self, time: float, *, bracket: bool = True, interactive: bool = False) -> tuple[int, np.ndarray | None]:
        """Render one frame as a host does; returns (status, output pixels top row first or None)."""
        host = self.host
        rod_args = PropertySet(host.registry, "args", P.args_time_scale(time))
        default_rod = self.clip_rod(self.clips[ofx.CLIP_OUTPUT]) or (0.0, 0.0, 0.0, 0.0)
        rod_out = PropertySet(host.registry, "args", P.args_rod_out(default_rod))
        status = host.action(ofx.ACTION_GET_REGION_OF_DEFINITION, self.handle, rod_args, rod_out)
        if status not in (ofx.STAT_OK, ofx.STAT_REPLY_DEFAULT):
            return status, None
        rod = rod_out.get("OfxImageEffectPropRegionOfDefinition")
        if self.descriptor.props.get("OfxImageEffectPropTemporalClipAccess"):
            needed = self.frames_needed(time)
            if needed["status"] not in (ofx.STAT_OK, ofx.STAT_REPLY_DEFAULT):
                return needed["status"], None
        roi_schema = {f"OfxImageClipPropRoI_{n}": (P.DOUBLE, 4, tuple(rod)) for n in self.clips if n != ofx.CLIP_OUTPUT}
        roi_out = PropertySet(host.registry, "args", roi_schema)
        roi_in = PropertySet(host.registry, "args", P.args_roi_in(time, tuple(rod)))
        status = host.action(ofx.ACTION_GET_REGIONS_OF_INTEREST, self.handle, roi_in, roi_out)
        if status not in (ofx.STAT_OK, ofx.STAT_REPLY_DEFAULT):
            return status, None
        window = tuple(int(v) for v in rod)
        ident_in = PropertySet(host.registry, "args", P.args_is_identity(time, window))
        ident_out = PropertySet(host.registry, "args", P.args_is_identity_out(time))
        status = host.action(ofx.ACTION_IS_IDENTITY, self.handle, ident_in, ident_out)
        if status == ofx.STAT_OK:
            clip = self.clips.get(ident_out.get("OfxPropName"))
            if clip is None:
                host.record.violations.append(f"IsIdentity named clip {ident_out.get('OfxPropName')!r}")
                return ofx.STAT_FAILED, None
            st, img = self.image_for(clip, ident_out.get("OfxPropTime"))
            return st, (img.read_top_down() if img is not None else None)
        if status not in (ofx.STAT_REPLY_DEFAULT,):
            return status, None
        out_clip = self.clips[ofx.CLIP_OUTPUT]
        depth = out_clip.props.get("OfxImageEffectPropPixelDepth")
        comps = out_clip.props.get("OfxImageEffectPropComponents")
        dtype = np.dtype(DEPTHS[depth])
        fill = np.nan if dtype.kind == "f" else (0xAB if dtype == np.uint8 else 0xABAB)
        w, h = window[2] - window[0], window[3] - window[1]
        image = Image(host, None, shape=(h, w, ofx.CHANNELS[comps]), dtype=dtype, components=comps, depth=depth,
                      row_order="bottom_up", row_padding=0, unique_id=f"Output@{time}",
                      premult=out_clip.props.get("OfxImageEffectPropPreMultiplication"), fill=fill)
        with host.lock:
            self.outputs[time] = image
        self._render_time.time = time
        try:
            if bracket:
                st = self.begin_sequence(time, time, interactive)
                if st not in (ofx.STAT_OK, ofx.STAT_REPLY_DEFAULT):
                    return st, None
            args = PropertySet(host.registry, "args", P.args_render(time, window, False, interactive))
            status = host.action(ofx.ACTION_RENDER, self.handle, args)
            if bracket:
                self.end_sequence(time, time, interactive)
        finally:
            self._render_time.time = None
            with host.lock:
                self.outputs.pop(time, None)
        if status != ofx.STAT_OK:
            return status, None
        return status, image.read_top_down()
