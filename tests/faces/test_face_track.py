"""Face tracking math (csrc/face) and the Python layer around it, on synthetic detections:
no detector package and no decoder needed."""

from __future__ import annotations

import math

import numpy as np
import pytest

import msce
from msce._native import C
from msce.errors import FaceError, TransformError
from msce.faces import Detection, FaceCrop, FaceDetector, detection_indices, detection_size, track_detections

W, H = 640, 360


def det(x, y, w, h, score=0.9, marks=None):
    return Detection((x, y, w, h), score, np.full((2, 2), np.nan) if marks is None else np.asarray(marks, float))


def frames_of(*per_frame, fps=4.0):
    """[(index, time, [Detection])] for detection frames 1/fps apart."""
    return [(k, k / fps, list(d)) for k, d in enumerate(per_frame)]


def run(dets, times, **opts):
    return track_detections(dets, list(range(len(times))), times, (H, W), ("eye_left", "eye_right"),
                            FaceCrop(**opts))


# ---- box math --------------------------------------------------------------------------------
def test_iou():
    assert C.face_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert C.face_iou([0, 0, 10, 10], [5, 0, 10, 10]) == pytest.approx(1 / 3)
    assert C.face_iou([0, 0, 10, 10], [20, 20, 5, 5]) == 0.0
    assert C.face_iou([0, 0, 0, 10], [0, 0, 10, 10]) == 0.0


def test_square_crop_is_shifted_then_shrunk_into_the_frame():
    assert C.face_square_crop(320, 180, 100, W, H) == (270, 130, 100, 100)
    assert C.face_square_crop(10, 10, 100, W, H) == (0, 0, 100, 100)          # shifted, not squeezed
    assert C.face_square_crop(635, 355, 100, W, H) == (540, 260, 100, 100)
    assert C.face_square_crop(320, 180, 500, W, H) == (140, 0, 360, 360)       # larger than the frame
    assert C.face_square_crop(320.5, 180, 101, W, H)[0] == 270                  # round half to even


# ---- smoothing -------------------------------------------------------------------------------
def test_smoother_is_exact_on_linear_motion_and_zero_phase():
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0, 4, 17)).tolist()
    v = [3.0 + 25.0 * x for x in t]
    for at in np.linspace(0, 4, 41):
        assert C.face_smooth_at(t, v, float(at), 0.3) == pytest.approx(3.0 + 25.0 * at, abs=1e-6)
    # a symmetric bump keeps its peak where it is (no lag): the fit is symmetric in time
    t = [k * 0.25 for k in range(21)]
    v = [math.exp(-((x - 2.5) ** 2)) for x in t]
    grid = np.linspace(1.5, 3.5, 201)
    s = [C.face_smooth_at(t, v, float(g), 0.3) for g in grid]
    assert grid[int(np.argmax(s))] == pytest.approx(2.5, abs=0.011)


def test_smoother_interpolates_sparse_samples_continuously():
    t, v = [0.0, 1.0, 2.0], [0.0, 10.0, 0.0]
    assert C.face_smooth_at(t, v, 0.5, 0.1) == pytest.approx(5.0, abs=0.05)   # linear between samples
    grid = np.linspace(0, 2, 2001)
    s = np.array([C.face_smooth_at(t, v, float(g), 0.1) for g in grid])
    assert np.abs(np.diff(s)).max() < 0.05                                    # no jumps
    assert C.face_smooth_at(t, v, 0.25, 0.0) == pytest.approx(2.5)            # sigma 0: plain interpolation
    assert math.isnan(C.face_smooth_at([], [], 0.0, 0.3))


# ---- one face ----------------------------------------------------------------------------------
def test_noisy_pan_is_followed_smoothly_with_a_fixed_square_crop():
    rng = np.random.default_rng(1)
    n = 12
    truth = [(100 + 40 * k, 120, 80, 80) for k in range(n)]  # 160 px/s at 4 FPS
    dets = frames_of(*([det(*(np.array(b) + rng.normal(0, 1.5, 4)))] for b in truth))
    times = np.arange(0, (n - 1) / 4 + 1e-9, 0.04).tolist()   # 25 FPS queries
    tr = run(dets, times)
    assert set(tr.status) <= {"detected", "interpolated"}
    assert tr.status[0] == "detected" and tr.status[1] == "interpolated"
    expect_x = 100 + 160 * np.array(times)
    assert np.abs(tr.boxes[:, 0] - expect_x).max() < 4.0
    assert np.abs(np.diff(tr.boxes[:, 0]) - 6.4).max() < 1.0                  # steady, no jitter
    side = tr.crop_side
    assert side == round(1.5 * np.nanmax(tr.boxes[:, 2:]))
    assert (tr.crops[:, 2] == side).all() and (tr.crops[:, 3] == side).all()
    assert (tr.crops[:, :2] >= 0).all() and (tr.crops[:, 0] + side <= W).all() and (tr.crops[:, 1] + side <= H).all()
    assert tr.track_id == 0 and tr.tracks[0]["hits"] == n


def test_variable_size_crops_follow_the_face():
    dets = frames_of(*([det(200, 100, 40 + 10 * k, 40 + 10 * k)] for k in range(6)))
    tr = run(dets, [0.0, 0.5, 1.25], fixed_size=False, sigma=0.0)
    assert [int(c[2]) for c in tr.crops] == [60, round(1.5 * 60), round(1.5 * 90)]
    assert tr.crop_side == 0


def test_hold_then_missing_policies():
    dets = frames_of([det(300, 100, 60, 60)], [det(300, 100, 60, 60)], [], [], [], [], [], [], [])
    times = [0.0, 0.25, 0.5, 0.7, 0.8, 2.0]
    tr = run(dets, times, hold=0.5)
    assert tr.status == ("detected", "detected", "held", "held", "none", "none")
    side = round(1.5 * 60)
    assert tuple(tr.crops[-1]) == ((W - side) // 2, (H - side) // 2, side, side)  # "center"
    assert np.isnan(tr.boxes[-1]).all() and tr.found.tolist() == [True] * 4 + [False] * 2
    full = run(dets, times, hold=0.5, missing="full")
    assert tuple(full.crops[-1]) == (0, 0, W, H)
    with pytest.raises(FaceError, match="no face on 2 of 6"):
        run(dets, times, missing="error")
    nothing = run(frames_of([], []), [0.0, 0.25])
    assert nothing.status == ("none", "none") and nothing.track_id is None
    assert tuple(nothing.crops[0]) == ((W - H) // 2, 0, H, H)                 # min(H, W) square


def test_short_detection_gaps_are_bridged():
    box = det(300, 100, 60, 60)
    dets = frames_of([box], [], [], [box])  # 0.75 s without a detection < max_gap
    tr = run(dets, [0.0, 0.25, 0.5, 0.75])
    assert tr.status == ("detected", "interpolated", "interpolated", "detected")
    assert len(tr.tracks) == 1
    split = run(dets, [0.0, 0.25, 0.5, 0.75], max_gap=0.5)
    assert len(split.tracks) == 2


# ---- several faces -------------------------------------------------------------------------------
def two_faces(n=8):
    # big face on the left, small face in the centre, moving right together; the small one
    # is missed on frame 3; a one-off false positive on frame 5
    per = []
    for k in range(n):
        d = [det(20 + 5 * k, 80, 160, 160), det(300 + 5 * k, 150, 50, 50)]
        if k == 3:
            d = d[:1]
        if k == 5:
            d.append(det(560, 10, 70, 70, score=0.55))
        per.append(d)
    return frames_of(*per)


def test_association_keeps_ids_through_misses():
    tr = run(two_faces(), [0.0, 1.0])
    ids = {t["id"]: t for t in tr.tracks}
    assert ids[0]["hits"] == 8 and ids[1]["hits"] == 7 and ids[2]["hits"] == 1
    assert ids[0]["mean_box"][0] < ids[1]["mean_box"][0]   # ids left to right on first appearance


@pytest.mark.parametrize("select,expect_x", [("largest", 20), ("central", 300), (1, 300), (0, 20)])
def test_select_policies(select, expect_x):
    tr = run(two_faces(), [0.0], select=select, sigma=0.0)
    assert tr.boxes[0, 0] == pytest.approx(expect_x, abs=0.5)


def test_min_hits_and_unknown_track_id():
    only_fp = frames_of([det(10, 10, 50, 50)], [], [], [], [], [], [])
    assert run(only_fp, [0.0], min_hits=2).track_id is None
    with pytest.raises(FaceError, match="no face track with id 7"):
        run(two_faces(), [0.0], select=7)


# ---- landmarks, regions, projection ------------------------------------------------------------------
def test_landmarks_regions_and_projection():
    marks = [[320, 170], [360, 170]]
    dets = frames_of(*([det(300, 140, 80, 80, marks=marks)] for _ in range(3)))
    tr = run(dets, [0.0, 0.25, 0.5])
    np.testing.assert_allclose(tr.landmark("eye_left")[1], [320, 170], atol=1e-6)
    reg = tr.regions()
    assert set(reg) == {"eye_left", "eye_right", "brow_left", "brow_right", "mouth"}
    np.testing.assert_allclose(reg["eye_left"][0], [320 - 12, 170 - 8, 24, 16], atol=1e-6)
    np.testing.assert_allclose(reg["brow_right"][0], [360 - 16, 170 - 16 - 6, 32, 12], atol=1e-6)
    assert np.isnan(reg["mouth"]).all()  # these detections have no mouth point
    p = tr.project((224, 224))
    crop = tr.crops[0]
    s = 224 / crop[2]
    np.testing.assert_allclose(p["landmarks"][0, 0], [(320 - crop[0]) * s, (170 - crop[1]) * s], atol=1e-6)
    assert tr.to_dict()["status"] == ["detected"] * 3
    with pytest.raises(KeyError):
        tr.landmark("nose")


def test_bad_detections_and_options_raise():
    with pytest.raises(TransformError, match="empty box"):
        run(frames_of([det(0, 0, 0, 10)]), [0.0])
    with pytest.raises(FaceError, match="landmarks of shape"):
        run(frames_of([Detection((0, 0, 10, 10), 0.9, np.zeros((3, 2)))]), [0.0])
    for bad in ({"detect_fps": 0}, {"margin": 0.5}, {"select": "biggest"}, {"missing": "skip"},
                {"min_iou": 0}, {"min_hits": 0}, {"detect_size": -1}, {"sigma": -1}, {"detector": 3}):
        with pytest.raises(TransformError):
            FaceCrop(**bad)


def test_detection_subsample_and_size():
    ts = [i / 25 for i in range(100)]
    dense = detection_indices(ts, range(100), 4.0)  # nearest to a 4 FPS grid, and the last frame
    assert len(dense) == 17 and dense[0] == 0 and dense[-1] == 99
    assert set(np.diff(dense[:-1]).tolist()) <= {6, 7}
    assert detection_indices(ts, [0, 6, 12, 19, 25], 4.0) == [0, 6, 12, 19, 25]  # a 4 FPS plan: all of it
    assert detection_indices(ts, [50, 0, 25, 0], 4.0) == [0, 25, 50]
    assert detection_size(720, 1280, 320) == (180, 320)
    assert detection_size(480, 640, 0) == (480, 640) and detection_size(240, 320, 640) == (240, 320)


# ---- a custom detector through the pipeline ------------------------------------------------------------
class BrightSquare:
    """A FaceDetector that 'detects' the bright square of the synthetic frames below."""

    name = "bright-square"
    landmark_names = ("eye_left", "eye_right")

    def __init__(self):
        self.calls = 0

    def detect(self, frames):
        self.calls += len(frames)
        out = []
        for f in frames:
            ys, xs = np.nonzero(f[..., 0] > 200)
            if len(xs) == 0:
                out.append([])
                continue
            x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            w = x1 - x0
            out.append([Detection((x0, y0, w, y1 - y0), 1.0, [(x0 + 0.3 * w, y0 + 0.4 * w),
                                                              (x0 + 0.7 * w, y0 + 0.4 * w)])])
        return out


def square_clip(n=20, fps=10):
    frames = np.full((n, H, W, 3), 40, np.uint8)
    truth = []
    for k in range(n):
        x = 100 + 10 * k
        frames[k, 120:200, x:x + 80] = 255
        truth.append((x, 120, 80, 80))
    return frames, truth


def test_custom_detector_in_preprocess_feeds_the_transform():
    frames, truth = square_clip()
    finder = BrightSquare()
    assert isinstance(finder, FaceDetector)
    b = msce.preprocess(frames, msce.Frames(size=(64, 64), layout="NHWC"), fps=10,
                        crop=FaceCrop(detector=finder, detect_fps=5, detect_size=0))
    tr = b.faces
    assert finder.calls == 11 and tr.stats["detect_frames"] == 11 and tr.detector == "bright-square"
    for k, box in enumerate(truth):
        assert C.face_iou(list(tr.boxes[k]), list(box)) > 0.9
    assert (tr.crops[:, 2] == 120).all()  # 1.5 x 80, fixed per clip
    # the square sits in the middle of every output crop
    centre = b.data.numpy()[:, 28:36, 28:36, 0]
    assert (centre > 200).all()
    q = msce.preprocess(frames, msce.QwenVL("2.5"), fps=10, crop=FaceCrop(detector=finder, detect_fps=5))
    assert q.size[0] == q.size[1] and q.faces is not None


def test_crop_mode_strings():
    frames, _ = square_clip(4)
    with pytest.raises(TransformError, match="not a crop mode"):
        msce.preprocess(frames, msce.Frames(), crop="faces")
