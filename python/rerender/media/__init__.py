"""Reading and writing media: video files (PyAV), image sequences (OpenCV, OpenEXR), sound.

- :mod:`.formats`: the table of file formats (extension -> kind, depths, alpha, codec, muxer).
- :mod:`.sequences`: which files form a clip and in what order; key-frame folders.
- :mod:`.images`: still images at any depth, the working format, encoding, sizing.
- :mod:`.video`: probing clips, decoding frames, encoding video.
- :mod:`.audio`: carrying a source's sound into an encoded video.
"""
from __future__ import annotations

from ..errors import AudioError, MediaError
from .audio import audio_problem
from .formats import ALPHA_EXTENSIONS, FORMATS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, Format, format_of
from .images import (MAX_WORKING_LONG_SIDE, MAX_WORKING_PIXELS, MAX_WORKING_SIDE, aspect_matches, check_rgb,
                     check_writable, encode_png, read_grey, read_image, read_image_and_bytes, read_plate, resize_to, to_working, from_working,
                     working_size, write_image, write_png_if_changed)
from .sequences import (DEFAULT_SEQUENCE_FPS, Numbering, check_output_name, is_video_path,
                        list_indexed_images, list_sequence, natural_key, output_frame_paths, parse_output_pattern,
                        sequence_numbering)
from .video import MediaInfo, check_sequence_frame, probe, read_frames, resolve_frames, timecode_offset, write_video

__all__ = [
    "AudioError", "MediaError", "MediaInfo",
    "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "ALPHA_EXTENSIONS", "FORMATS", "Format", "format_of", "DEFAULT_SEQUENCE_FPS",
    "MAX_WORKING_SIDE", "MAX_WORKING_LONG_SIDE", "MAX_WORKING_PIXELS", "aspect_matches",
    "probe", "check_sequence_frame", "read_frames", "resolve_frames", "write_video", "audio_problem",
    "read_image", "read_image_and_bytes", "read_grey", "write_image", "check_writable", "read_plate", "to_working", "from_working", "encode_png", "write_png_if_changed", "check_rgb", "resize_to", "working_size",
    "list_sequence", "list_indexed_images", "natural_key", "is_video_path",
    "Numbering", "sequence_numbering", "output_frame_paths", "parse_output_pattern", "check_output_name", "timecode_offset",
]
