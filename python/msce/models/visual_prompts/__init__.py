"""Visual prompting variants (paper Appendix S1, Table S1, Fig. S1) as frame transforms.

The paper asked whether pixels can guide a VLM's attention to facial motion as well as
MSCE's text does, tried six variants on Qwen2.5-VL, and found that every one of them
lowered macro-F1 below the sparse baseline (0.2449): the artifacts move the input out of
the frozen visual encoder's training distribution. This module makes the six variants
reproducible, so that finding can be checked on other models and datasets:

============================  =====================  ==========================================
paper (Table S1)              class / name           what is drawn
============================  =====================  ==========================================
Red Circle On Face            ``RedCircle``          an ellipse outline around the face
                              ``"red_circle"``
Heatmap                       ``MotionHeatmap``      per-pixel motion, colour-mapped, blended
                              ``"motion_heatmap"``   over the face region
Focused Heatmap               ``FocusedHeatmap``     the same, only over the eyes and the lips
                              ``"focused_heatmap"``
Video Montage                 ``Montage``            all frames as one grid image
                              ``"montage"``
MotionFlow Arrow              ``FlowArrows``         dense optical flow sampled on a grid over
                              ``"flow_arrows"``      the face, drawn as arrows
PointTrack                    ``PointTracks``        lip and brow points tracked across the
                              ``"point_tracks"``     frames, their trajectories drawn
============================  =====================  ==========================================

A :class:`FrameTransform` maps uint8 RGB frames ``(T, H, W, 3)`` (and, for the face-based
variants, a :class:`FaceInfo` with per-frame face boxes and eye / brow / mouth regions) to
new frames: ``(T, H, W, 3)``, or ``(1, h, w, 3)`` for the montage. The input is never
modified. ``config()`` records every parameter (JSON), and ``get_visual_prompt(config)``
rebuilds the same transform.

With a strategy: ``Sparse(fps=1, visual_prompt="red_circle")`` (any of Sparse, Dense,
Shuffled, MSCE; a transform object, a name, or a config dict). The strategy then calls
:func:`load_prompted`: the planned frames are decoded as uint8 RGB
(``msce.load(..., msce.Frames(layout="NHWC"))``), faces are found when the variant needs
them (``msce.faces``' detectors and tracker, run on the decoded frames: smoothed boxes
and landmarks), the transform runs, and ``msce.preprocess`` builds the model's tensors, so
a Qwen target's ``pixel_values_videos`` are exactly what ``msce.load`` would have produced
from the modified pixels (``tests/e2e/test_visual_prompts.py`` checks this bit for bit
against the plain path). The response cache keys frames by the digest of those tensors,
so a variant, or any change of its parameters that changes a pixel, gets its own entries.

Conventions

* Coordinates are pixels of the frames given, x to the right, y down; pixel (row i,
  column j) covers [j, j+1) x [i, i+1). Boxes are (x, y, w, h).
* Time: the per-frame variants see the frames in chronological order (``load_prompted``
  sorts by timestamp, transforms, then restores the plan's order, so a shuffled plan sends
  the same modified frames in permuted order). Motion "at frame t" is the motion between
  frames t-1 and t; frame 0 takes the motion between frames 0 and 1; a single frame has
  no motion.
* Frames without a face (``FaceInfo.found`` false, e.g. track status "none") are left
  unchanged by the face-based variants.
* Deterministic: the same input gives the same bytes. Drawing, colour maps and blending
  are NumPy (independent of any OpenCV build); dense optical flow (Farneback) and point
  tracking (pyramidal Lucas-Kanade) are OpenCV's: ``pip install 'msce[visual]'``.

Modules: ``base`` (:class:`FrameTransform` and the shared checks), ``face_info``
(:class:`FaceInfo`), ``drawing`` (colour maps, blending, strokes), ``flow`` (motion
maps, optical flow), ``variants`` (the six transforms) and ``registry`` (the variants by
name, :func:`load_prompted`, :func:`sent_indices`); every public name is re-exported here.
"""

from msce.models.visual_prompts.base import FrameTransform
from msce.models.visual_prompts.drawing import colormap
from msce.models.visual_prompts.face_info import REGION_NAMES, FaceInfo, as_face_info  # noqa: F401
from msce.models.visual_prompts.flow import motion_maps
from msce.models.visual_prompts.registry import (available_visual_prompts, get_visual_prompt, load_prompted,
                                                 sent_indices, sent_timestamps)
from msce.models.visual_prompts.variants import (FlowArrows, FocusedHeatmap, Montage, MotionHeatmap, PointTracks,
                                                 RedCircle)

__all__ = [
    "FrameTransform",
    "FaceInfo",
    "RedCircle",
    "MotionHeatmap",
    "FocusedHeatmap",
    "Montage",
    "FlowArrows",
    "PointTracks",
    "get_visual_prompt",
    "available_visual_prompts",
    "load_prompted",
    "sent_indices",
    "sent_timestamps",
    "motion_maps",
    "colormap",
    "REGION_NAMES",
]
