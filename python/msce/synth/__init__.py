"""Synthetic micro-expression videos with known event times (issue 6).

Real datasets have no micro-expression timestamps, so nobody can say how much of that
signal a sampling plan keeps. ``msce.synth`` makes clips where the answer is known: a real
face photo (``skimage.data.astronaut()``, ``skimage.data.lfw_subset()``) animated by a
landmark-driven warp, with one 0.25-0.5 s micro-expression at a known onset/apex/offset,
plus head drift, lighting change, noise and H.264 compression.

>>> from msce import synth
>>> records = synth.generate_set("synthetic/", n=20, seed=0)   # clip_0000.mp4 ... + events.csv
>>> clip = synth.render(synth.sample_spec(seed=7))             # frames in memory, no file
>>> results = synth.run_demo_coverage("demo_out/")             # coverage + spotting tables, HTML
"""

from __future__ import annotations

from msce.synth.demo import coverage_figure, coverage_html, evaluate_set, print_tables, run_demo_coverage
from msce.synth.evaluate import (
    CoverageRow,
    SpotScore,
    coverage_row,
    covers,
    interval_iou,
    match_spots,
    peak_intensity,
    score_spots,
)
from msce.synth.expressions import ACTIONS, Action, action_names, event_intensity
from msce.synth.faces import LANDMARKS, Face, face_names, load_face
from msce.synth.generate import (
    EVENT_MAX_S,
    EVENT_MIN_S,
    Clip,
    ClipRecord,
    ClipSpec,
    generate_clip,
    generate_set,
    read_events,
    render,
    sample_spec,
    write_events,
    write_video,
)

__all__ = [
    "ACTIONS", "Action", "action_names", "event_intensity",
    "LANDMARKS", "Face", "face_names", "load_face",
    "EVENT_MIN_S", "EVENT_MAX_S", "Clip", "ClipRecord", "ClipSpec", "generate_clip", "generate_set", "read_events",
    "render", "sample_spec", "write_events", "write_video",
    "CoverageRow", "SpotScore", "coverage_row", "covers", "interval_iou", "match_spots", "peak_intensity",
    "score_spots",
    "coverage_figure", "coverage_html", "evaluate_set", "print_tables", "run_demo_coverage",
]
