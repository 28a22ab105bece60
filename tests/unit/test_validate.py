"""The shared argument checks (msce._validate): which values pass, what they become, and
which error names the parameter; and the option records that use them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from msce._validate import count, number, rgb_frames
from msce.errors import ConfigError, TransformError


@pytest.mark.parametrize("v, kw, ok", [
    (0.5, {}, True), (0, {}, False), (0, {"lo_open": False}, True), (-1e-9, {"lo_open": False}, False),
    (1.0, {"hi": 1.0}, True), (1.0 + 1e-9, {"hi": 1.0}, False), (1.0, {"lo": 1.0, "lo_open": False}, True),
    (np.float32(2.0), {}, True), (np.int64(3), {}, True), (True, {}, False), ("1", {}, False),
    (math.inf, {}, False), (math.nan, {}, False), (None, {}, False), (None, {"none_ok": True}, True),
])
def test_number_accepts_finite_reals_in_range(v, kw, ok):
    if ok:
        out = number("Opt", "x", v, **kw)
        assert out is None if v is None else (type(out) is float and out == float(v))
    else:
        with pytest.raises(ConfigError, match=r"^Opt\.x must be a number"):
            number("Opt", "x", v, **kw)


def test_number_message_states_the_range_and_raises_the_callers_error():
    with pytest.raises(TransformError, match=r"Opt\.x must be a number >= 0 \(got -1\)"):
        number("Opt", "x", -1, lo_open=False, error=TransformError)
    with pytest.raises(ConfigError, match=r"Opt\.x must be a number in \(0, 1\] or None \(got 2\)"):
        number("Opt", "x", 2, hi=1.0, none_ok=True)


@pytest.mark.parametrize("v, lo, ok", [
    (1, 1, True), (0, 1, False), (0, 0, True), (np.int32(5), 1, True), (True, 0, False), (2.0, 1, False),
    ("3", 1, False),
])
def test_count_accepts_integers_from_lo(v, lo, ok):
    if ok:
        out = count("Opt", "n", v, lo=lo)
        assert type(out) is int and out == int(v)
    else:
        with pytest.raises(ConfigError, match=rf"^Opt\.n must be an int >= {lo} \(got"):
            count("Opt", "n", v, lo=lo)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_rgb_frames_batches_one_frame_and_rejects_bad_shape_dtype_and_empty_axes(lib):
    def make(shape, dtype="uint8"):
        a = np.zeros(shape, dtype=dtype)
        return torch.from_numpy(a) if lib == "torch" else a

    uint8 = torch.uint8 if lib == "torch" else np.uint8
    assert tuple(rgb_frames(make((4, 5, 3)), uint8).shape) == (1, 4, 5, 3)
    assert tuple(rgb_frames(make((2, 4, 5, 3)), uint8).shape) == (2, 4, 5, 3)
    with pytest.raises(TransformError, match=r"clips must have shape \(T, H, W, 3\); got \(2, 4, 5, 4\)"):
        rgb_frames(make((2, 4, 5, 4)), uint8, "clips")
    with pytest.raises(TransformError, match="frames must be uint8 RGB; got dtype"):
        rgb_frames(make((2, 4, 5, 3), "float32"), uint8)
    for shape in ((0, 4, 5, 3), (2, 0, 5, 3), (2, 4, 0, 3)):
        with pytest.raises(TransformError, match=r"frames is empty; got shape"):
            rgb_frames(make(shape), uint8)


def test_option_records_name_the_field_they_reject():
    from msce.faces import FaceCrop
    from msce.motion import SpotOptions
    from msce.synth import ClipSpec

    with pytest.raises(TransformError, match=r"FaceCrop\.hold must be a number >= 0"):
        FaceCrop(hold=-1.0)
    with pytest.raises(TransformError, match=r"FaceCrop\.min_hits must be an int >= 1"):
        FaceCrop(min_hits=True)
    assert type(FaceCrop(detect_size=np.int64(160)).to_dict()["detect_size"]) is int
    with pytest.raises(ConfigError, match=r"SpotOptions\.k_high must be a number >= 0 \(got True\)"):
        SpotOptions(k_high=True)
    with pytest.raises(ConfigError, match=r"ClipSpec\.width must be an int >= 16 \(got '320'\)"):
        ClipSpec(seed=0, width="320")
    with pytest.raises(ConfigError, match=r"ClipSpec\.face_fraction must be a number in \(0, 1\]"):
        ClipSpec(seed=0, face_fraction=1.5)
