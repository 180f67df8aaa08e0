"""Scene settings of a rerender job, saved with the .blend file."""
from __future__ import annotations

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty, StringProperty

MODE_ITEMS = [
    ("TRANSLATE", "Full Translation",
     "Render key frames with diffusion, then propagate them to every frame (needs model weights)"),
    ("PREVIEW", "First Frame Preview",
     "Render only the first visible frame with diffusion, to try a prompt quickly"),
    ("PROPAGATE", "Propagate My Key Frames",
     "Propagate a folder of painted key frames (NNNN.png, named by source frame) to every frame; "
     "no diffusion, no weights"),
]
# Worker JobRequest.mode for each UI mode.
MODE_TO_REQUEST = {"TRANSLATE": "translate", "PREVIEW": "preview", "PROPAGATE": "propagate"}

# a copy of rerender.keyframes.conditions.addon_items() (checked by tests/test_addon_constants.py)
CONTROL_ITEMS = [
    ("hed", "HED", "Soft HED edges of the input frame (the reference default)"),
    ("canny", "Canny", "Canny edges of the input frame"),
]


class RerenderSettings(bpy.types.PropertyGroup):
    """What to render; one set per scene, applied to the active strip."""

    mode: EnumProperty(name="Mode", items=MODE_ITEMS, default="TRANSLATE")
    prompt: StringProperty(name="Prompt", description="What the result should look like")
    negative_prompt: StringProperty(name="Negative Prompt", description="What to avoid")
    model: StringProperty(
        name="Model", description="Stable Diffusion 1.x, 2.x or XL model (the family is read from it): hub id, local folder or a single "
        ".safetensors/.ckpt file (empty: the worker's default)")
    model_family: StringProperty(name="Model Family", default="", options={"SKIP_SAVE"},
                                 description="What the family button last read from Model")
    lora: StringProperty(name="LoRA", subtype="FILE_PATH",
                         description="Optional LoRA weights file (empty: none)")
    lora_scale: FloatProperty(name="LoRA Scale", default=1.0, min=0.0, max=2.0)
    control: EnumProperty(name="ControlNet", items=CONTROL_ITEMS, default="hed",
                          description="What the ControlNet follows in each input frame")
    controlnet: StringProperty(
        name="ControlNet Model", description="ControlNet weights: hub id, folder or file "
        "(empty: the worker's default for the chosen type)")
    control_strength: FloatProperty(name="ControlNet Strength", default=0.7, min=0.0, max=2.0)
    key_interval: IntProperty(name="Key Interval", default=10, min=1, max=1000,
                              description="Render every K-th frame with diffusion")
    strength: FloatProperty(name="Strength", default=0.75, min=0.0, max=1.0,
                            description="How far each key frame departs from the input (1 = from noise)")
    seed: IntProperty(name="Seed", default=0, min=0)
    size: IntProperty(name="Working Size", default=512, min=0, max=4096,
                      description="Short side of the processing resolution in pixels, rounded to "
                      "a multiple of 8 (0: the input's own size)")
    keys_dir: StringProperty(name="Key Frames", subtype="DIR_PATH",
                             description="Folder of painted key frames, NNNN.png by source frame index")
    matte_strip: StringProperty(
        name="Matte Strip", description="A movie or image-sequence strip whose media is the matte (white = "
        "restyle; one frame per source frame, or a single image): only the matted region is restyled, the "
        "rest stays the source's exactly. Empty: the whole frame")
    matte_feather: FloatProperty(name="Matte Feather", default=0.0, min=0.0, max=256.0, subtype="PIXEL",
                                 description="Soft edge of the matte, in pixels")
    output_dir: StringProperty(name="Output Folder", subtype="DIR_PATH",
                               description="Where the frames are written (empty: inside the work folder)")
    # Saved in the .blend: keys the jobs' folders of a file not saved yet (placement.job_folder).
    project_id: StringProperty(name="Project Id", options={"HIDDEN"})


CLASSES = (RerenderSettings,)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.rerender = bpy.props.PointerProperty(type=RerenderSettings)


def unregister() -> None:
    del bpy.types.Scene.rerender
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
