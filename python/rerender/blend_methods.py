"""The names of the blending methods of :mod:`rerender.temporal_blend`, in one place that the command
line can import without numpy or OpenCV.

- ``soft``: soft error weights, temporal filtering along the flow and detail restoration;
- ``select``: the paper's binary selection mask and histogram-preserving blend;
- ``linear``: weights by temporal distance to the two keys (how EbSynth users blend its passes).
"""
BLEND_METHODS = ("soft", "select", "linear")
