"""The synthetic micro-expression generator: determinism, event timing, the warp, files."""

from __future__ import annotations

import numpy as np
import pytest

from _deps import require_module, require_tool

from msce.errors import ConfigError
from msce.synth import (
    ACTIONS,
    ClipSpec,
    event_intensity,
    generate_clip,
    generate_set,
    load_face,
    read_events,
    render,
    sample_spec,
)

require_module("skimage", "pip install 'msce[synth]'")

# No nuisances: every pixel change comes from the expression.
STILL = dict(drift=0.0, rotation=0.0, zoom=0.0, lighting=0.0, noise=0.0)


def small(**kw) -> ClipSpec:
    base = dict(seed=5, width=128, height=128, seconds=1.2, onset=0.4, apex=0.52, offset=0.76)
    base.update(kw)
    return ClipSpec(**base)


def test_same_seed_same_frames_other_seed_other_frames():
    spec = sample_spec(11, width=128, height=128, seconds=2.0)
    assert sample_spec(11, width=128, height=128, seconds=2.0) == spec
    a, b = render(spec), render(spec)
    assert a.frames.dtype == np.uint8 and a.frames.shape == (spec.num_frames, 128, 128, 3)
    assert np.array_equal(a.frames, b.frames)
    c = render(sample_spec(12, width=128, height=128, seconds=2.0))
    assert not np.array_equal(a.frames, c.frames)


def test_sampled_events_are_micro_expressions():
    for seed in range(40):
        s = sample_spec(seed, seconds=3.0)
        assert 0.25 <= s.offset - s.onset <= 0.5
        assert s.onset < s.apex < s.offset
        assert 0.3 - 1e-9 <= s.onset and s.offset <= 3.0 - 0.3 + 1e-9
        assert s.action in ACTIONS


def test_time_grid_and_event_frames():
    s = small(fps=25.0)
    assert s.num_frames == 31  # 1.2 s at 25 fps, both ends included
    np.testing.assert_allclose(s.timestamps[[0, 1, -1]], [0.0, 0.04, 1.2])
    first, apex, last = s.event_frames()
    # frames strictly inside (0.40, 0.76) s: 11 (0.44 s) .. 18 (0.72 s); apex 0.52 s -> 13
    assert (first, apex, last) == (11, 13, 18)
    t = s.timestamps
    inside = (t > s.onset) & (t < s.offset)
    assert np.flatnonzero(inside).tolist() == list(range(first, last + 1))
    assert np.all(s.intensity(t[~inside]) == 0.0) and np.all(s.intensity(t[inside]) > 0.0)


def test_intensity_trajectory_shape():
    t = np.linspace(0, 1, 1001)
    a = event_intensity(t, 0.2, 0.35, 0.6, amplitude=0.8)
    assert a.max() == pytest.approx(0.8)
    assert t[np.argmax(a)] == pytest.approx(0.35, abs=1e-3)
    assert np.all(np.diff(a[(t > 0.2) & (t < 0.35)]) > 0) and np.all(np.diff(a[(t > 0.35) & (t < 0.6)]) < 0)
    with pytest.raises(ConfigError):
        event_intensity(t, 0.3, 0.3, 0.6)


def test_frames_change_only_during_the_event():
    s = small(**STILL)
    c = render(s)
    first, _, last = s.event_frames()
    ref = c.frames[0]
    for i in range(s.num_frames):
        same = np.array_equal(c.frames[i], ref)
        assert same == (i < first or i > last), i


def _track(f0: np.ndarray, f1: np.ndarray, x: float, y: float, r: int = 7, search: float = 12.0) -> np.ndarray:
    """Where the (2r+1)^2 patch of f0 centred at (x, y) went in f1: SSD search, 1 px then 0.1 px."""
    from scipy.ndimage import map_coordinates

    yy, xx = np.mgrid[-r:r + 1, -r:r + 1].astype(float)
    p0 = map_coordinates(f0, [y + yy, x + xx], order=1)
    centre, best_e = np.zeros(2), np.inf
    for step, reach in ((1.0, search), (0.1, 1.0)):
        c = centre.copy()
        for dy in np.arange(-reach, reach + 1e-9, step):
            for dx in np.arange(-reach, reach + 1e-9, step):
                p1 = map_coordinates(f1, [y + yy + c[1] + dy, x + xx + c[0] + dx], order=1)
                e = float(((p1 - p0) ** 2).sum())
                if e < best_e:
                    best_e, centre = e, c + (dx, dy)
    return centre


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_warp_moves_the_landmarks_it_should(action):
    s = ClipSpec(seed=1, action=action, onset=0.4, apex=0.52, offset=0.76, seconds=1.0, width=320, height=320,
                 **STILL)
    c = render(s)
    _, ia, _ = s.event_frames()
    expected = c.expected_moves(ia / s.fps)
    g0, ga = c.frames[0].mean(-1), c.frames[ia].mean(-1)
    moving = {n: np.array(d) for n, d in expected.items() if np.hypot(*d) >= 2.0}
    assert moving, "every action moves some landmark by 2 px or more at 320 px"
    for name in ACTIONS[action].shift:
        if name in moving:
            continue
        assert np.hypot(*expected[name]) > 0.5, f"{name} should move"
    for name, d in moving.items():
        got = _track(g0, ga, *c.landmarks[name])
        # The patch averages a Gaussian field, so it moves a little less than its centre;
        # along a brow (an edge) the sideways component is poorly determined (aperture).
        ratio = float(got @ d / (d @ d))
        sideways = abs(got[0] * d[1] - got[1] * d[0]) / float(np.linalg.norm(d))
        assert 0.6 <= ratio <= 1.15, (name, got, d)
        assert sideways <= 0.5 * float(np.linalg.norm(d)), (name, got, d)
    # Far from the face nothing moves at all: the image corners are bit-identical.
    diff = np.abs(c.frames[ia].astype(int) - c.frames[0].astype(int)).max(-1)
    for sl in (np.s_[:40, :40], np.s_[:40, -40:], np.s_[-40:, :40], np.s_[-40:, -40:]):
        assert diff[sl].max() == 0
    # ... and the change is concentrated around the moving landmarks.
    ys, xs = np.nonzero(diff > 2)
    pts = np.array([c.landmarks[n] for n, d in expected.items() if np.hypot(*d) > 0.5])
    near = np.min(np.hypot(xs[:, None] - pts[None, :, 0], ys[:, None] - pts[None, :, 1]), axis=1)
    assert np.mean(near < 0.25 * c.face_width) > 0.95


def test_landmarks_fall_on_the_face():
    f = load_face("astronaut")
    x, y, w, h = f.box
    for name, (lx, ly) in f.landmarks.items():
        assert x <= lx <= x + w and y <= ly <= y + h, name
    # eyes above the mouth, brows above the eyes, left of image left of right
    lm = f.landmarks
    assert lm["brow_l_mid"][1] < lm["lid_l_up"][1] < lm["lid_l_low"][1] < lm["mouth_l"][1]
    assert lm["mouth_l"][0] < lm["lip_up"][0] < lm["mouth_r"][0]
    g = load_face("lfw:3")
    assert g.image.shape == (25, 25, 3)
    with pytest.raises(ConfigError):
        load_face("lfw:100")
    with pytest.raises(ConfigError):
        load_face("nobody")


def test_bad_specs_are_refused():
    with pytest.raises(ConfigError):
        small(width=127)
    with pytest.raises(ConfigError):
        small(onset=0.6, apex=0.5)
    with pytest.raises(ConfigError):
        small(action="wink")
    with pytest.raises(ConfigError):
        small(seed=-1)


@pytest.mark.parametrize("writer", ["av", "ffmpeg"])
def test_written_clip_and_events_csv(tmp_path, writer):
    if writer == "av":
        require_module("av", "pip install 'msce[synth]'")
    else:
        require_tool("ffmpeg")
    spec = small(seed=9)
    rec = generate_clip(tmp_path / "c.mp4", spec, writer=writer)
    data = (tmp_path / "c.mp4").read_bytes()
    assert data[4:8] == b"ftyp"
    generate_clip(tmp_path / "d.mp4", spec, writer=writer)
    assert (tmp_path / "d.mp4").read_bytes() == data  # same seed, same bytes
    assert (rec.onset, rec.apex, rec.offset) == (spec.onset, spec.apex, spec.offset)
    assert (rec.onset_frame, rec.apex_frame, rec.offset_frame) == spec.event_frames()
    from msce._native import C

    if C.has_ffmpeg:
        import msce

        m = msce.VideoReader(tmp_path / "c.mp4").metadata
        assert (m.num_frames, m.width, m.height, m.codec) == (spec.num_frames, 128, 128, "h264")
        assert m.average_fps == pytest.approx(25.0)


def test_generate_set_writes_a_readable_csv(tmp_path):
    recs = generate_set(tmp_path, n=3, seed=4, width=96, height=96, seconds=1.4, faces=("astronaut", "lfw:1"))
    assert [r.label for r in recs] == list(ACTIONS)[:3]  # actions in turn
    back = read_events(tmp_path / "events.csv")
    assert back == recs
    for r in back:
        assert (tmp_path / r.video).is_file()
        assert 0.25 <= r.duration <= 0.5 and r.emotion == ACTIONS[r.label].emotion
        x, y, w, h = r.crop()
        assert x >= 0 and y >= 0 and x + w <= r.width and y + h <= r.height
