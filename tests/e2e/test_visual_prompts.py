"""Visual prompting variants (paper Appendix S1): the transforms on frames with a real face
(the astronaut from scikit-image, composited at known positions), the decode -> transform
-> preprocess path, and the strategies end to end with a tiny Qwen model."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import msce
from msce.models import visual_prompts as vp
from msce.models.backends.base import GenerationParams, is_frames
from msce.models.cache import ResponseCache, frames_digest
from msce.errors import ConfigError, FaceError, TransformError
from msce.labels import DFEW
from msce.models.strategies import MSCE, Shuffled, Sparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "faces"))
import faceclips  # noqa: E402
from _deps import MISSING, missing, require_module  # noqa: E402

H, W = 240, 320
T = 6
STEP = 4  # px the head moves right per frame
ANS = GenerationParams(max_new_tokens=4)
S1 = GenerationParams(max_new_tokens=8)

# Eyes and mouth of the astronaut relative to her face box (faceclips.FACE), measured with BlazeFace.
EYES = ((0.30, 0.27), (0.75, 0.30))
MOUTH = (0.52, 0.72)


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


needs_cv2 = pytest.mark.skipif(not _has("cv2"), reason=MISSING + "OpenCV (pip install 'msce[visual]')")


def regions_for(boxes: np.ndarray) -> dict[str, np.ndarray]:
    """Eye, brow and mouth boxes from face boxes (the geometry of FaceTrack.regions())."""
    x, y, w, h = boxes.T
    d = (EYES[1][0] - EYES[0][0]) * w

    def box(cx, cy, bw, bh):
        return np.stack([cx - bw / 2, cy - bh / 2, bw, bh], axis=1)

    out = {}
    for name, (rx, ry) in zip(("left", "right"), EYES):
        cx, cy = x + rx * w, y + ry * h
        out[f"eye_{name}"] = box(cx, cy, 0.6 * d, 0.4 * d)
        out[f"brow_{name}"] = box(cx, cy - 0.4 * d, 0.8 * d, 0.3 * d)
    out["mouth"] = box(x + MOUTH[0] * w, y + MOUTH[1] * h, 0.9 * d, 0.5 * d)
    return out


@pytest.fixture(scope="module")
def scene():
    """(frames (T, H, W, 3), FaceInfo): the astronaut's head panning right by STEP px a frame
    over a fixed background, with her face box and eye / brow / mouth regions."""
    bg = faceclips.background(H, W)
    head, face = faceclips.astronaut_head(0.8)
    frames = np.empty((T, H, W, 3), np.uint8)
    boxes = []
    for t in range(T):
        f = bg.copy()
        x, y = 60 + STEP * t, 20
        faceclips.paste(f, head, x, y)
        frames[t] = f
        boxes.append((x + face[0], y + face[1], face[2], face[3]))
    boxes = np.asarray(boxes)
    frames.setflags(write=False)
    return frames, vp.FaceInfo(boxes, regions_for(boxes))


def still(scene):
    frames, faces = scene
    return np.repeat(frames[:1], 4, axis=0), faces.take([0, 0, 0, 0])


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a != b).any(axis=-1)


def ellipse_r2(box, scale, size):
    """Normalized radius^2 at every pixel centre for the ellipse inscribed in box * scale."""
    x, y, w, h = box
    yy, xx = np.mgrid[0:size[0], 0:size[1]] + 0.5
    return ((xx - x - w / 2) / (scale * w / 2)) ** 2 + ((yy - y - h / 2) / (scale * h / 2)) ** 2


def all_variants() -> list[vp.FrameTransform]:
    return [vp.get_visual_prompt(n) for n in vp.available_visual_prompts()
            if _has("cv2") or n not in ("flow_arrows", "point_tracks")]


# ---- the transforms ---------------------------------------------------------------------------
def test_registry_shapes_determinism_and_config(scene) -> None:
    frames, faces = scene
    assert vp.available_visual_prompts() == ["flow_arrows", "focused_heatmap", "montage", "motion_heatmap",
                                             "point_tracks", "red_circle"]
    for tr in all_variants():
        out = tr(frames, faces)
        assert out.dtype == np.uint8 and out.flags.c_contiguous
        assert out.shape == ((1, H, W, 3) if tr.name == "montage" else frames.shape), tr.name
        assert tr.reduces_time == (tr.name == "montage")
        assert np.array_equal(out, tr(frames.copy(), faces)), f"{tr.name} is not deterministic"
        if tr.name != "montage":
            assert changed(out, frames).any(), f"{tr.name} drew nothing"
        cfg = tr.config()
        assert json.loads(json.dumps(cfg)) == cfg and cfg["name"] == tr.name
        again = vp.get_visual_prompt(cfg)
        assert again == tr and again.config() == cfg
        assert ("face_options" in cfg) == tr.needs_faces
    # the input is never written (the scene's frames are read-only, so a write would raise)
    assert not frames.flags.writeable


def test_argument_errors(scene) -> None:
    frames, faces = scene
    with pytest.raises(ConfigError, match="unknown visual prompt"):
        vp.get_visual_prompt("sepia")
    with pytest.raises(ConfigError, match="thickness"):
        vp.RedCircle(thickness=0)
    with pytest.raises(ConfigError, match="color"):
        vp.RedCircle(color=(300, 0, 0))
    with pytest.raises(ConfigError, match="regions"):
        vp.FocusedHeatmap(regions=("nose",))
    with pytest.raises(ConfigError, match="unexpected keyword"):
        vp.get_visual_prompt("montage", radius=3)
    with pytest.raises(TransformError, match="uint8"):
        vp.RedCircle()(frames.astype(np.float32), faces)
    with pytest.raises(TransformError, match=r"\(T, H, W, 3\)"):
        vp.RedCircle()(frames[..., :2], faces)
    with pytest.raises(FaceError, match="needs faces"):
        vp.RedCircle()(frames)
    with pytest.raises(TransformError, match="faces describe"):
        vp.RedCircle()(frames, faces.take([0, 1]))
    with pytest.raises(TransformError, match="holds 4 frames"):
        vp.Montage(grid=(2, 2))(frames)
    # no landmarks, no regions: the eye / lip variants say what is missing
    with pytest.raises(FaceError, match="'eye_left' region"):
        vp.FocusedHeatmap()(frames, faces.boxes)


def test_red_circle_touches_only_a_ring_around_the_face(scene) -> None:
    frames, faces = scene
    boxes = faces.boxes.copy()
    boxes[2] = np.nan  # a frame without a face stays as it is
    tr = vp.RedCircle()
    out = tr(frames, boxes)
    assert np.array_equal(out[2], frames[2])
    for t in (0, 1, 3, 5):
        diff = changed(out[t], frames[t])
        assert (out[t][diff] == (255, 0, 0)).all()
        x, y, w, h = boxes[t]
        half = 0.04 * max(w, h) / 2
        outer = ellipse_r2((x - half / 1.25, y - half / 1.25, w + 2 * half / 1.25, h + 2 * half / 1.25), 1.25, (H, W))
        inner = ellipse_r2((x + half / 1.25, y + half / 1.25, w - 2 * half / 1.25, h - 2 * half / 1.25), 1.25, (H, W))
        ring = (outer <= 1) & (inner > 1)
        assert diff.sum() > 0.8 * ring.sum() > 0  # pixels already red may not change
        assert not (diff & ~ring).any()
        assert not (diff & (ellipse_r2(boxes[t], 1.0, (H, W)) <= 1)).any()  # the face itself is untouched
    # thicker for a larger face
    big = tr(frames[:1], [(60.0, 40.0, 150.0, 160.0)])
    small = tr(frames[:1], [(100.0, 80.0, 50.0, 55.0)])
    assert changed(big, frames[:1]).sum() > 4 * changed(small, frames[:1]).sum()


def test_heatmap_without_motion_tints_uniformly_or_not_at_all(scene) -> None:
    frames, faces = still(scene)
    assert np.array_equal(vp.MotionHeatmap(weighting="motion")(frames, faces), frames)
    assert np.array_equal(vp.FocusedHeatmap(weighting="motion")(frames, faces), frames)
    out = vp.MotionHeatmap(alpha=0.5)(frames, faces)  # constant opacity: the lowest colour, evenly
    x, y, w, h = faces.boxes[0]
    y0, y1 = math.floor(y + h / 2 - 0.6 * h), math.ceil(y + h / 2 + 0.6 * h)
    x0, x1 = math.floor(x + w / 2 - 0.6 * w), math.ceil(x + w / 2 + 0.6 * w)
    lowest = vp.colormap("jet")[0].astype(np.float32)
    expect = np.rint(frames[:, y0:y1, x0:x1] * np.float32(0.5) + lowest * np.float32(0.5)).astype(np.uint8)
    assert tuple(vp.colormap("jet")[0]) == (0, 0, 128) and tuple(vp.colormap("jet")[255]) == (128, 0, 0)
    assert np.array_equal(out[:, y0:y1, x0:x1], expect)
    outside = np.ones((H, W), bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[:, outside], frames[:, outside])
    # one frame has no motion at all
    assert np.array_equal(vp.MotionHeatmap(weighting="motion")(frames[:1], faces.take([0])), frames[:1])


def test_motion_heatmap_stays_on_the_face_region(scene) -> None:
    frames, faces = scene
    maps = vp.motion_maps(frames)
    assert maps.shape == (T, H, W) and maps.dtype == np.float32
    assert np.array_equal(maps[0], maps[1]) and maps.max() > 50  # frame 0 takes the motion of (0, 1)
    for tr in (vp.MotionHeatmap(), vp.MotionHeatmap(weighting="motion", margin=1.0, colormap="hot", smooth=0)):
        out = tr(frames, faces)
        for t in range(T):
            x, y, w, h = faces.boxes[t]
            s = tr.margin
            region = np.zeros((H, W), bool)
            region[max(0, math.floor(y + h / 2 - s * h / 2)):math.ceil(y + h / 2 + s * h / 2),
                   max(0, math.floor(x + w / 2 - s * w / 2)):math.ceil(x + w / 2 + s * w / 2)] = True
            diff = changed(out[t], frames[t])
            assert diff.any() and not (diff & ~region).any()
            if tr.weighting == "motion":  # only moving pixels change
                assert not (diff & (maps[t] == 0)).any()
    whole = vp.MotionHeatmap(region="frame", weighting="motion")
    assert not whole.needs_faces and "face_options" not in whole.config()
    assert changed(whole(frames), frames).sum() > changed(vp.MotionHeatmap(weighting="motion")(frames, faces),
                                                          frames).sum()


def test_focused_heatmap_only_on_eyes_and_lips(scene) -> None:
    frames, faces = scene
    tr = vp.FocusedHeatmap()
    out = tr(frames, faces)
    for t in range(T):
        allowed = np.zeros((H, W), bool)
        for name in ("eye_left", "eye_right", "mouth"):
            allowed |= ellipse_r2(faces.regions[name][t], 1.3, (H, W)) <= 1
        diff = changed(out[t], frames[t])
        assert diff.sum() > 0.9 * allowed.sum() and not (diff & ~allowed).any()
    brows = vp.FocusedHeatmap(regions=("brow_left", "brow_right"))(frames, faces)
    eyes = vp.FocusedHeatmap(regions=("eye_left", "eye_right"))(frames, faces)
    assert np.nonzero(changed(brows[0], frames[0]))[0].mean() < np.nonzero(changed(eyes[0], frames[0]))[0].mean()


def test_montage_layout(scene) -> None:
    frames, _ = scene
    five = frames[:5]
    tr = vp.Montage()
    out = tr(five)
    assert out.shape == (1, H, W, 3) and tr.shape(5) == (2, 3)
    (oh, ow), tiles = tr.layout(5, (H, W))
    assert (oh, ow) == (H, W)
    tw, th = tiles[0][2:]
    small = msce.preprocess(five, msce.Frames(size=(th, tw), layout="NHWC"), pin_memory=False).data.numpy()
    painted = np.zeros((H, W), bool)
    for k, (x, y, w, h) in enumerate(tiles):
        assert (w, h) == (tw, th)
        assert np.array_equal(out[0, y:y + h, x:x + w], small[k])
        painted[y:y + h, x:x + w] = True
    assert [t[1] for t in tiles] == [tiles[0][1]] * 3 + [tiles[3][1]] * 2 and tiles[3][1] > tiles[0][1]
    assert [t[0] for t in tiles[:3]] == sorted(t[0] for t in tiles[:3])  # row-major
    assert (out[0][~painted] == 0).all()  # the empty sixth cell and the margins
    # explicit grid and size, spacing, fill, no aspect: cells are filled exactly
    tr = vp.Montage(grid=(1, 5), size=(100, 520), spacing=5, keep_aspect=False, fill=(255, 255, 255))
    out = tr(five)
    assert out.shape == (1, 100, 520, 3)
    _, tiles = tr.layout(5, (H, W))
    assert tiles == [(k * 105, 0, 100, 100) for k in range(5)]
    small = msce.preprocess(five, msce.Frames(size=(100, 100), layout="NHWC"), pin_memory=False).data.numpy()
    for k, (x, y, w, h) in enumerate(tiles):
        assert np.array_equal(out[0, y:y + h, x:x + w], small[k])
    assert (out[0, :, 100:105] == 255).all()
    assert np.array_equal(vp.Montage()(frames[:1]), frames[:1])  # a single frame is itself


@needs_cv2
def test_flow_arrows_follow_the_motion(scene) -> None:
    frames, faces = scene
    tr = vp.FlowArrows()
    sf, sfaces = still(scene)
    assert np.array_equal(tr(sf, sfaces), sf)  # nothing moves, nothing is drawn
    out = tr(frames, faces)
    import cv2

    flow = cv2.calcOpticalFlowFarneback(cv2.cvtColor(np.ascontiguousarray(frames[2]), cv2.COLOR_RGB2GRAY),
                                        cv2.cvtColor(np.ascontiguousarray(frames[3]), cv2.COLOR_RGB2GRAY),
                                        None, 0.5, 3, 15, 3, 5, 1.1, 0)
    starts, ends = tr.arrows(flow, faces.boxes[3])
    x, y, w, h = faces.boxes[3]
    assert len(starts) > 20
    assert (starts[:, 0] >= x - 0.1 * w).all() and (starts[:, 0] <= x + 1.1 * w).all()
    assert (starts[:, 1] >= y - 0.1 * h).all() and (starts[:, 1] <= y + 1.1 * h).all()
    dx = np.median(ends[:, 0] - starts[:, 0]) / tr.scale
    assert abs(dx - STEP) < 1.0 and abs(np.median(ends[:, 1] - starts[:, 1])) < 1.0  # the pan: right, level
    for t in range(T):
        diff = changed(out[t], frames[t])
        assert diff.any() and (out[t][diff] == (0, 255, 0)).all()
        # arrows start on the face and reach at most scale x motion (+ stroke) beyond it
        reach = tr.scale * (STEP + 1) + 3
        x, y, w, h = faces.boxes[t]
        ys, xs = np.nonzero(diff)
        assert xs.min() >= x - 0.1 * w - 3 and xs.max() <= x + 1.1 * w + reach
        assert ys.min() >= y - 0.1 * h - 3 and ys.max() <= y + 1.1 * h + 3


@needs_cv2
def test_point_tracks_follow_lips_and_brows(scene) -> None:
    frames, faces = scene
    tr = vp.PointTracks()
    pos, is_lip, start = tr.tracks(frames, faces)
    assert start == 0 and pos.shape == (T, 12, 2) and is_lip.sum() == 6
    seeds, _ = tr.seeds(faces, 0)
    assert np.allclose(pos[0], seeds)
    m = faces.regions["mouth"][0]
    assert np.allclose(seeds[0], (m[0] + m[2], m[1] + m[3] / 2))  # the right mouth corner first
    alive = np.isfinite(pos).all(axis=(0, 2))
    assert alive.sum() >= 9
    steps = np.diff(pos[:, alive], axis=0)
    assert np.abs(steps[..., 0] - STEP).max() < 0.5 and np.abs(steps[..., 1]).max() < 0.5
    # faces from frame 2 on: frames before the seed stay as they are
    late = vp.FaceInfo(np.where(np.arange(T)[:, None] < 2, np.nan, faces.boxes),
                       {k: v for k, v in faces.regions.items()})
    out = tr(frames, late)
    assert np.array_equal(out[:2], frames[:2])
    for t in range(2, T):
        diff = changed(out[t], frames[t])
        colours = {tuple(c) for c in out[t][diff]}
        assert colours <= {(255, 0, 255), (0, 255, 255)} and len(colours) == 2
    # longer trails on later frames; history bounds them
    full = tr(frames, faces)
    short = vp.PointTracks(history=1)(frames, faces)
    n_full = [changed(full[t], frames[t]).sum() for t in range(T)]
    assert n_full[-1] > n_full[1] and changed(short[-1], frames[-1]).sum() < n_full[-1]


# ---- decode -> transform -> preprocess ----------------------------------------------------------------
@pytest.fixture(scope="module")
def clip(scene, tmp_path_factory):
    """The scene, 2.2 s at 25 fps: a still first 0.8 s, then the pan, encoded H.264."""
    from msce._native import C

    if not C.has_ffmpeg:
        missing("an msce build with FFmpeg (the FFmpeg development libraries at build time)")
    require_module("av")
    frames, faces = scene
    idx = np.clip(np.arange(55) - 20, 0, None) // 6  # still, then one step every 6 frames
    return faceclips.encode(tmp_path_factory.mktemp("vp") / "face.mp4", frames[np.minimum(idx, T - 1)])


@pytest.mark.parametrize("v", ["2.5", "3"])
def test_unchanged_pixels_give_exactly_the_plain_tensors(v, clip) -> None:
    target = msce.QwenVL(v, min_pixels=56 * 56, max_pixels=28 * 28 * 80) if v == "2.5" else \
        msce.QwenVL(v, min_pixels=64 * 64, max_pixels=32 * 32 * 160)
    for spec in (msce.plan.uniform(5.0), msce.plan.shuffled(msce.plan.uniform(5.0), 3)):
        plain = msce.load(clip, spec, target)
        n = len(plain.indices)
        # no face on any frame: the red circle draws nothing
        (prompted,) = vp.load_prompted(clip, spec, target, "red_circle", faces=[None] * n)
        assert prompted.data.dtype == plain.data.dtype
        assert np.array_equal(prompted.data.numpy(), plain.data.numpy())
        assert np.array_equal(prompted.grid_thw.numpy(), plain.grid_thw.numpy())
        assert prompted.plan == plain.plan and prompted.metadata == plain.metadata
        assert frames_digest(prompted) == frames_digest(plain)  # same pixels, same cache entry
        assert prompted.stats["visual_prompt"]["faces"]["status"] == ["none"] * n
    n = len(msce.plan.keyframes_with_gaps(1.0, 4).resolve(plain.metadata))
    segs = vp.load_prompted(clip, msce.plan.keyframes_with_gaps(1.0, 4), target, vp.RedCircle(),
                            faces=[None] * n, segments=True)
    plain_segs = msce.load_segments(clip, msce.plan.keyframes_with_gaps(1.0, 4), target)
    assert [s.plan for s in segs] == [s.plan for s in plain_segs]
    assert all(np.array_equal(a.data.numpy(), b.data.numpy()) for a, b in zip(segs, plain_segs))


def test_prompted_frames_in_plan_order(scene, clip) -> None:
    frames, faces = scene
    nhwc = msce.Frames(layout="NHWC")
    decoded = msce.load(clip, msce.plan.uniform(5.0), nhwc).data.numpy()
    n = len(decoded)
    box = tuple(float(v) for v in faces.boxes[0])
    (plain,) = vp.load_prompted(clip, msce.plan.uniform(5.0), nhwc, "motion_heatmap", faces=[box] * n)
    assert np.array_equal(plain.data.numpy(), vp.MotionHeatmap()(decoded, [box] * n))
    # shuffled: the same transformed frames (motion measured in time order), permuted
    spec = msce.plan.shuffled(msce.plan.uniform(5.0), 3)
    (shuf,) = vp.load_prompted(clip, spec, nhwc, "motion_heatmap", faces=[box] * n)
    pos = {int(i): k for k, i in enumerate(plain.indices)}
    assert list(shuf.indices) != list(plain.indices)
    assert np.array_equal(shuf.data.numpy(), plain.data.numpy()[[pos[int(i)] for i in shuf.indices]])
    # a montage is one image of the frames in the order sent
    (mont,) = vp.load_prompted(clip, spec, nhwc, "montage")
    assert mont.data.shape == (1, H, W, 3) and len(mont.indices) == 1
    assert vp.sent_indices(mont) == list(shuf.indices)
    assert vp.sent_timestamps(mont) == pytest.approx(list(shuf.timestamps))
    decoded_shuf = msce.load(clip, spec, nhwc).data.numpy()
    assert np.array_equal(mont.data.numpy(), vp.Montage()(decoded_shuf))


def test_faces_detected_for_the_circle(scene, clip, tmp_path) -> None:
    if not _has("mediapipe"):
        missing("mediapipe (pip install 'msce[faces]')")
    import msce.faces

    frames, faces = scene
    nhwc = msce.Frames(layout="NHWC")
    spec = msce.plan.uniform(2.0)
    (batch,) = vp.load_prompted(clip, spec, nhwc, "red_circle")
    rec = batch.stats["visual_prompt"]
    assert rec["faces"]["detector"] == "blazeface" and "none" not in rec["faces"]["status"]
    decoded = msce.load(clip, spec, nhwc).data.numpy()
    ring = changed(batch.data.numpy(), decoded)
    track = msce.faces.track(clip, spec)  # the same faces crop="face" finds, within a pixel or two
    truth = np.minimum(np.clip(np.asarray(batch.indices) - 20, 0, None) // 6, T - 1)
    for t in range(len(decoded)):  # the circle is drawn around the face
        assert np.abs(track.boxes[t] - faces.boxes[truth[t]]).max() < 0.15 * faces.boxes[0, 2]
        x, y, w, h = faces.boxes[truth[t]]
        ys, xs = np.nonzero(ring[t])
        assert abs(xs.mean() - (x + w / 2)) < 0.1 * w and abs(ys.mean() - (y + h / 2)) < 0.1 * h
    # a frame folder (DFEW / MAFW style) works the same way
    from PIL import Image

    folder = tmp_path / "clip"
    folder.mkdir()
    for k, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"img_{k + 1}.png")
    (fb,) = vp.load_prompted(folder, msce.plan.dense(), nhwc, "red_circle")
    assert fb.stats["visual_prompt"]["faces"]["status"][0] == "detected" and fb.metadata.container == "image sequence"
    ring = changed(fb.data.numpy(), frames)
    for t in range(T):
        x, y, w, h = faces.boxes[t]
        ys, xs = np.nonzero(ring[t])
        assert abs(xs.mean() - (x + w / 2)) < 0.1 * w and abs(ys.mean() - (y + h / 2)) < 0.1 * h
    (fm,) = vp.load_prompted(folder, msce.plan.count(4), nhwc, "montage")
    picked = list(msce.plan.count(4).resolve(fm.metadata).indices)
    assert vp.sent_indices(fm) == picked and np.array_equal(fm.data.numpy(), vp.Montage()(frames[picked]))


# ---- strategies end to end with a tiny model ------------------------------------------------------
def _face_or_skip() -> None:
    if not _has("mediapipe"):
        missing("mediapipe (pip install 'msce[faces]')")


def test_sparse_records_the_variant_and_gets_its_own_cache_entries(tiny_backends, clip, tmp_path,
                                                                   monkeypatch) -> None:
    _face_or_skip()
    be = tiny_backends["2.5"]
    sent = []
    generate = be.generate

    def spy(requests, params):
        sent.append([p for p in requests[0] if is_frames(p)][0])
        return generate(requests, params)

    monkeypatch.setattr(be, "generate", spy)
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        plain = Sparse(1.0, params=ANS).run(clip, DFEW, be, cache)
        circle = Sparse(1.0, params=ANS, visual_prompt="red_circle")
        first = circle.run(clip, DFEW, be, cache)
        assert first.model_calls == 1 and first.cache_hits == 0  # not the plain run's entry
        assert circle.config()["visual_prompt"]["name"] == "red_circle" and "visual_prompt" not in \
            Sparse(1.0).config()
        assert first.extra["visual_prompt"] == circle.visual_prompt.config()
        assert first.extra["visual_prompt_faces"]["detector"] == "blazeface"
        assert first.frame_indices == plain.frame_indices and first.visual_tokens == plain.visual_tokens
        assert frames_digest(sent[1]) != frames_digest(sent[0])
        again = circle.run(clip, DFEW, be, cache)
        assert again.model_calls == 0 and again.cache_hits == 1 and again.raw_answer == first.raw_answer
        thicker = Sparse(1.0, params=ANS, visual_prompt=vp.RedCircle(thickness=0.08)).run(clip, DFEW, be, cache)
        assert thicker.model_calls == 1  # other parameters, other pixels, another entry
        assert len({frames_digest(b) for b in sent}) == 3
        json.dumps(first.to_dict())
        json.dumps(circle.config())


@pytest.mark.parametrize("v", ["2.5", "3"])
def test_msce_with_a_montage_sends_each_gap_as_one_image(v, tiny_backends, clip, monkeypatch) -> None:
    be = tiny_backends[v]
    calls = []
    generate = be.generate
    monkeypatch.setattr(be, "generate", lambda requests, params: calls.append(requests) or generate(requests, params))
    plain_plan = msce.plan.keyframes_with_gaps(1.0, 4).resolve(msce.VideoReader(clip).metadata)
    r = MSCE(1, 4, params=ANS, stage1_params=S1, visual_prompt="montage").run(clip, DFEW, be)
    assert r.model_calls == 2 and len(calls) == 2
    gaps = calls[0]
    assert len(gaps) == plain_plan.num_gaps == 2
    for j, req in enumerate(gaps):
        (img,) = [p for p in req if is_frames(p)]
        assert len(img.indices) == 1 and vp.sent_indices(img) == list(plain_plan.gap(j).indices)
        assert "These 4 frames" in [p for p in req if isinstance(p, str)][0]
    assert r.frame_indices == [i for j in range(2) for i in plain_plan.gap(j).indices] + \
        list(plain_plan.keyframes().indices)
    assert r.extra["gap_indices"] == [list(plain_plan.gap(j).indices) for j in range(2)]
    assert r.extra["visual_prompt"]["name"] == "montage" and r.extra["visual_prompt_faces"] is None
    assert r.prompts[0].startswith("<image>")


def test_shuffled_with_heatmaps(tiny_backends, clip, monkeypatch) -> None:
    _face_or_skip()
    be = tiny_backends["2.5"]
    r = Shuffled(Sparse(5.0, params=ANS, visual_prompt="focused_heatmap"), seed=1).run(clip, DFEW, be)
    base = list(msce.plan.uniform(5.0).resolve(msce.VideoReader(clip).metadata).indices)
    assert sorted(r.frame_indices) == base and r.frame_indices != base
    assert r.extra["chronological_indices"] == base
    assert r.extra["visual_prompt"]["name"] == "focused_heatmap"
    s = Shuffled("sparse", seed=1, fps=5.0, params=ANS, visual_prompt={"name": "motion_heatmap", "alpha": 0.3})
    assert s.config()["visual_prompt"]["alpha"] == 0.3 and s.inner.visual_prompt is None


def test_cli_option(tmp_path) -> None:
    from msce.cli._options import _strategy_options, make_strategy
    from msce.cli.eval import add_cli

    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers())
    args = parser.parse_args(["eval", "--dataset", "generic", "--root", str(tmp_path), "--model", "m",
                              "--strategy", "sparse", "--fps", "2", "--visual-prompt", "red_circle",
                              "--visual-prompt-opt", "thickness=0.05", "--visual-prompt-opt", "color=[0,0,255]"])
    opts, origin = _strategy_options(args)
    assert origin["visual_prompt"].startswith("--visual-prompt")
    assert opts["visual_prompt"] == {"name": "red_circle", "thickness": 0.05, "color": [0, 0, 255]}
    cfg = make_strategy("sparse", origin, **opts).config()
    assert cfg["fps"] == 2.0
    assert cfg["visual_prompt"]["thickness"] == 0.05 and cfg["visual_prompt"]["color"] == [0, 0, 255]
    bad = parser.parse_args(["eval", "--dataset", "generic", "--root", str(tmp_path), "--model", "m",
                             "--strategy", "sparse", "--visual-prompt", "sepia"])
    with pytest.raises(ConfigError, match="unknown visual prompt"):
        bad_opts, bad_origin = _strategy_options(bad)
        make_strategy("sparse", bad_origin, **bad_opts)
