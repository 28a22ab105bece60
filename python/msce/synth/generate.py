"""Synthetic micro-expression clips with known event times.

A clip shows a real face photo (:mod:`msce.synth.faces`) animated by the local landmark
warp (:mod:`msce.synth.warp`). Its expression is a neutral or mild baseline (a slow,
low-intensity action over the whole clip) plus exactly ONE micro-expression event of
0.25-0.5 s: intensity 0 until ``onset``, up to ``amplitude`` at ``apex``, back to 0 at
``offset`` (:func:`msce.synth.expressions.event_intensity`). Nuisances a real clip has are
added on top: small head drift (translation, rotation, zoom about the face centre; slow
sums of sinusoids), a lighting change (global gain and a left-right gradient, both
drifting), and Gaussian sensor noise, then H.264 compression.

Time: frame ``i`` is shown at ``i / fps``; a clip of ``seconds`` has
``round(seconds * fps) + 1`` frames, so it spans [0, seconds] and a 1-FPS plan's last
keyframe is its last frame. Event times are continuous (not snapped to frames): the
frames inside an event are those with onset < i / fps < offset, every one of them shows
some of the expression.

Determinism: the same :class:`ClipSpec` gives byte-identical files in any process, whatever
the thread settings (``torch.set_num_threads``, ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``),
with the same FFmpeg/x264 build. Everything random comes from numpy ``Generator(PCG64)``
streams spawned from the clip's explicit seed; the torch part of rendering runs on one
thread (no reduction is split differently by the thread count). x264 runs single-threaded
with bit-exact muxing (no muxer version tag or creation time in the container; x264's own
header still names its build) and without B-frames (``bframes=0``): with B-frames, x264's
macroblock-tree rate control reads memory it never wrote, so the bitstream depended on what
the heap held before (the same frames gave different files under different glibc
``MALLOC_PERTURB_`` bytes, and two ``msce demo`` runs decoded up to 11 grey levels apart on
about half the values). Dropping B-frames keeps the macroblock tree, so the compression
noise stays as before (turning the tree off instead would keep about 40 % more of the
sensor noise from frame to frame in still areas). That choice is msce's; the paper's clips
are real recordings. PyAV ships its own x264, so the "av" and "ffmpeg" writers give
different (each reproducible) bytes.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, field, fields
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from msce._validate import count, number
from msce.errors import ConfigError, MsceError
from msce.synth.expressions import ACTIONS, event_intensity, get_action, landmark_sigma
from msce.synth.faces import LANDMARKS, load_face
from msce.synth.warp import backward_displacement, gaussian_weights

__all__ = [
    "ClipSpec", "Clip", "ClipRecord", "render", "sample_spec", "write_video", "generate_clip",
    "generate_set", "read_events", "write_events", "EVENT_MIN_S", "EVENT_MAX_S",
]

EVENT_MIN_S = 0.25
EVENT_MAX_S = 0.5


@dataclass(frozen=True)
class ClipSpec:
    """Everything that determines one clip. Times in seconds; ``drift`` in face widths
    (peak head translation), ``rotation`` in degrees (peak), ``zoom`` relative (peak),
    ``lighting`` relative gain change (peak), ``noise`` grey levels (std), ``face_fraction``
    the face width as a share of the frame width."""

    seed: int
    face: str = "astronaut"
    action: str = "smile"
    onset: float = 1.2
    apex: float = 1.32
    offset: float = 1.55
    amplitude: float = 1.0
    baseline_action: str | None = None
    baseline_amplitude: float = 0.0
    fps: float = 25.0
    seconds: float = 3.0
    width: int = 320
    height: int = 320
    face_fraction: float = 0.45
    drift: float = 0.02
    rotation: float = 1.0
    zoom: float = 0.01
    lighting: float = 0.06
    noise: float = 2.0
    crf: int = 18

    def __post_init__(self) -> None:
        count("ClipSpec", "seed", self.seed, lo=0)
        get_action(self.action)
        if self.baseline_action is not None:
            get_action(self.baseline_action)
        number("ClipSpec", "fps", self.fps)
        number("ClipSpec", "seconds", self.seconds)
        for name in ("width", "height"):
            count("ClipSpec", name, getattr(self, name), lo=16)
        if self.width % 2 or self.height % 2:
            raise ConfigError(f"width and height must be even for H.264 4:2:0 (got {self.width}x{self.height})")
        if not (0.0 <= self.onset < self.apex < self.offset <= self.seconds):
            raise ConfigError(f"need 0 <= onset < apex < offset <= seconds (got {self.onset}, {self.apex}, "
                              f"{self.offset}, {self.seconds})")
        number("ClipSpec", "face_fraction", self.face_fraction, hi=1.0)
        for name in ("amplitude", "baseline_amplitude", "drift", "rotation", "zoom", "lighting", "noise"):
            number("ClipSpec", name, getattr(self, name), lo_open=False)

    @property
    def num_frames(self) -> int:
        return int(round(self.seconds * self.fps)) + 1

    @property
    def timestamps(self) -> np.ndarray:
        return np.arange(self.num_frames, dtype=np.float64) / self.fps

    @property
    def emotion(self) -> str:
        return ACTIONS[self.action].emotion

    @property
    def duration(self) -> float:
        """Event length (offset - onset), seconds."""
        return self.offset - self.onset

    def intensity(self, t: np.ndarray | float) -> np.ndarray:
        """Event intensity at times t (0 outside the event, ``amplitude`` at the apex)."""
        return event_intensity(t, self.onset, self.apex, self.offset, self.amplitude)

    def event_frames(self) -> tuple[int, int, int]:
        """(first frame inside the event, frame nearest the apex, last frame inside)."""
        eps = 1e-9
        first = int(math.floor(self.onset * self.fps + eps)) + 1
        last = int(math.ceil(self.offset * self.fps - eps)) - 1
        apex = int(round(self.apex * self.fps))
        n = self.num_frames
        return min(first, n - 1), min(apex, n - 1), min(max(last, first), n - 1)


@dataclass
class Clip:
    """A rendered clip: ``frames`` uint8 (T, H, W, 3) RGB plus the geometry used.
    ``face_box`` (x, y, w, h) and ``landmarks`` {name: (x, y)} are in frame pixels at rest
    (no drift, no expression); ``face_width`` is the face width in frame pixels;
    ``head`` (T, 4) is the head pose per frame: tx, ty (pixels), rotation (radians), scale."""

    spec: ClipSpec
    frames: np.ndarray
    face_box: tuple[int, int, int, int]
    landmarks: dict
    face_width: float
    head: np.ndarray
    intensity: np.ndarray

    def expected_moves(self, t: float) -> dict:
        """Where the expression alone (event + baseline, no head motion) moves each
        landmark at time t: the forward field at the landmark, u(p_l) = sum_k
        G_k(p_l) d_k (its own move plus its neighbours' pull), in frame pixels."""
        spec = self.spec
        a = float(spec.intensity(t))
        b = float(_baseline(spec, np.asarray([t]))[0])
        names = list(LANDMARKS)
        pts = np.array([self.landmarks[n] for n in names], dtype=np.float64)
        sig = np.array([landmark_sigma(n) * self.face_width for n in names])
        moves = a * _shifts(spec.action, names)
        if spec.baseline_action is not None:
            moves = moves + b * _shifts(spec.baseline_action, names)
        moves = moves * self.face_width
        d2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
        w = np.exp(-0.5 * d2 / sig[None, :] ** 2)  # w[i, k]: weight of landmark k at landmark i
        u = w @ moves
        return {n: (float(u[i, 0]), float(u[i, 1])) for i, n in enumerate(names)}


def _shifts(action: str, names: Sequence[str]) -> np.ndarray:
    """(L, 2) moves of ``action`` at intensity 1, face widths."""
    return np.array([ACTIONS[action].shift.get(n, (0.0, 0.0)) for n in names], dtype=np.float64)


# ---- random streams -----------------------------------------------------------------------

def _streams(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent PCG64 streams for head motion, lighting and noise of one clip."""
    children = np.random.SeedSequence(int(seed)).spawn(3)
    return tuple(np.random.Generator(np.random.PCG64(c)) for c in children)  # type: ignore[return-value]


def _slow_wave(rng: np.random.Generator, t: np.ndarray, components: int = 2,
               period: tuple[float, float] = (2.0, 6.0)) -> np.ndarray:
    """A smooth signal in [-1, 1]: a convex mix of sinusoids with random periods/phases."""
    w = rng.dirichlet(np.ones(components))
    periods = rng.uniform(period[0], period[1], components)
    phases = rng.uniform(0.0, 2.0 * np.pi, components)
    return sum(wi * np.sin(2.0 * np.pi * t / p + ph) for wi, p, ph in zip(w, periods, phases))


def _baseline(spec: ClipSpec, t: np.ndarray) -> np.ndarray:
    """Baseline intensity: 0 (neutral) or a slow raised cosine up to baseline_amplitude."""
    if spec.baseline_action is None or spec.baseline_amplitude == 0.0:
        return np.zeros_like(np.asarray(t, dtype=np.float64))
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(spec.seed), 7])))
    period = rng.uniform(3.0, 6.0)
    phase = rng.uniform(0.0, 2.0 * np.pi)
    return spec.baseline_amplitude * (0.5 - 0.5 * np.cos(2.0 * np.pi * np.asarray(t) / period + phase))


@contextlib.contextmanager
def _single_thread():
    """Run torch on one thread inside (restored after). The per-frame ops are small (on a
    shared machine torch's worker threads spin-wait instead of helping), and on one
    thread no op is cut into per-thread chunks, so results cannot depend on the thread
    count (a chunk boundary moves elements between vectorized and scalar code)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _resize_rgb(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Antialiased bicubic resize of one uint8 RGB image by the native transform."""
    from msce.targets import Frames
    from msce.io.video import preprocess

    return preprocess(img, Frames(size=(height, width), layout="NHWC"), pin_memory=False).data.numpy()[0]


# ---- rendering ------------------------------------------------------------------------------

def render(spec: ClipSpec) -> Clip:
    """Render every frame of ``spec`` (see the module docstring); nothing is written."""
    with torch.no_grad(), _single_thread():
        return _render(spec)


def _render(spec: ClipSpec) -> Clip:
    face = load_face(spec.face)
    W, H = spec.width, spec.height
    img_h, img_w = face.image.shape[:2]
    # Scale so the face is face_fraction of the frame width, but never show past the photo.
    k = max(spec.face_fraction * W / face.width, W / img_w, H / img_h)
    base_w, base_h = max(W, int(round(img_w * k))), max(H, int(round(img_h * k)))
    kx, ky = base_w / img_w, base_h / img_h
    base = _resize_rgb(np.ascontiguousarray(face.image), base_h, base_w).astype(np.float32)

    def to_base(x: float, y: float) -> tuple[float, float]:
        return (x + 0.5) * kx - 0.5, (y + 0.5) * ky - 0.5

    fcx, fcy = to_base(*face.center)
    ox = float(np.clip(round(fcx - W / 2.0), 0, base_w - W))
    oy = float(np.clip(round(fcy - H / 2.0), 0, base_h - H))
    lm = {n: (to_base(*p)[0] - ox, to_base(*p)[1] - oy) for n, p in face.landmarks.items()}
    cx, cy = fcx - ox, fcy - oy
    fw = face.width * kx
    bx, by, bw, bh = face.box
    x0, y0 = to_base(bx - 0.5, by - 0.5)
    box = (int(round(x0 + 0.5 - ox)), int(round(y0 + 0.5 - oy)), int(round(bw * kx)), int(round(bh * ky)))

    t = spec.timestamps
    n = len(t)
    r_head, r_light, r_noise = _streams(spec.seed)
    tx = spec.drift * fw * _slow_wave(r_head, t)
    ty = spec.drift * fw * _slow_wave(r_head, t)
    rot = math.radians(spec.rotation) * _slow_wave(r_head, t, 1, (3.0, 7.0))
    scale = 1.0 + spec.zoom * _slow_wave(r_head, t, 1, (3.0, 7.0))
    gain = 1.0 + spec.lighting * _slow_wave(r_light, t, 2, (2.0, 5.0))
    tilt = spec.lighting * _slow_wave(r_light, t, 1, (2.0, 5.0))

    a = spec.intensity(t)
    b = _baseline(spec, t)
    names = list(LANDMARKS)
    points = np.array([lm[nm] for nm in names], dtype=np.float64)
    sigmas = np.array([landmark_sigma(nm) * fw for nm in names])
    ev = _shifts(spec.action, names) * fw
    bl = _shifts(spec.baseline_action, names) * fw if spec.baseline_action is not None else np.zeros_like(ev)
    active = np.flatnonzero(np.any(ev != 0, axis=1) | np.any(bl != 0, axis=1))

    # The expression field lives in face coordinates (the rest pose): its Gaussian weights
    # are computed once on the region where it can be non-zero, each frame's forward field
    # is their weighted sum, and its backward field is solved where the head pose puts the
    # output pixels of that region (plus the head's reach).
    reach = 3.5 * float(sigmas[active].max())
    rx0 = int(max(0, math.floor(points[active, 0].min() - reach)))
    rx1 = int(min(W, math.ceil(points[active, 0].max() + reach) + 1))
    ry0 = int(max(0, math.floor(points[active, 1].min() - reach)))
    ry1 = int(min(H, math.ceil(points[active, 1].max() + reach) + 1))
    weights = gaussian_weights(points[active], sigmas[active], rx0, ry0, rx1, ry1)
    head_reach = float(np.max(np.hypot(tx, ty))) + (math.radians(spec.rotation) + spec.zoom) * math.hypot(W, H) + 2
    ox0, oy0 = int(max(0, math.floor(rx0 - head_reach))), int(max(0, math.floor(ry0 - head_reach)))
    ox1, oy1 = int(min(W, math.ceil(rx1 + head_reach))), int(min(H, math.ceil(ry1 + head_reach)))

    planes = torch.from_numpy(np.ascontiguousarray(base.transpose(2, 0, 1)))[None]
    rys, rxs = torch.meshgrid(torch.arange(oy0, oy1, dtype=torch.float32),
                              torch.arange(ox0, ox1, dtype=torch.float32), indexing="ij")
    # grid_sample's coordinates: -1..1 over the base photo; output pixel x is at
    # xn = 2 x / (W - 1) - 1 of the frame.
    snx, sny = 2.0 / (base_w - 1), 2.0 / (base_h - 1)
    out_x = np.arange(W, dtype=np.float64)
    out_y = np.arange(H, dtype=np.float64)
    grid_np = np.empty((1, H, W, 2), dtype=np.float32)
    grid = torch.from_numpy(grid_np)
    light_x = ((out_x - W / 2.0) / W).astype(np.float32)
    # Sensor noise: i.i.d. Gaussian, taken as random crops of a few pre-drawn white-noise
    # fields (crops at different offsets are uncorrelated; drawing every frame anew costs
    # more than the rest of the frame).
    pad = 64
    bank = (r_noise.standard_normal((4, 3, H + pad, W + pad), dtype=np.float32) * np.float32(spec.noise)
            if spec.noise > 0 else None)
    frames = np.empty((n, H, W, 3), dtype=np.uint8)
    for i in range(n):
        # Head pose: frame = similarity(face), so frame pixel (x, y) shows the face point
        # (a00 x + a01 y + a02, a10 x + a11 y + a12), at + (ox, oy) in the base photo.
        c, s = math.cos(rot[i]), math.sin(rot[i])
        inv = 1.0 / scale[i]
        a00, a01, a10, a11 = c * inv, s * inv, -s * inv, c * inv
        a02 = cx - a00 * (cx + tx[i]) - a01 * (cy + ty[i])
        a12 = cy - a10 * (cx + tx[i]) - a11 * (cy + ty[i])
        np.add.outer(snx * (a01 * out_y + a02 + ox) - 1.0, snx * a00 * out_x, out=grid_np[0, :, :, 0],
                     casting="same_kind")
        np.add.outer(sny * (a11 * out_y + a12 + oy) - 1.0, sny * a10 * out_x, out=grid_np[0, :, :, 1],
                     casting="same_kind")
        moves = (a[i] * ev + b[i] * bl)[active]
        if np.any(moves != 0.0):
            field = torch.einsum("lc,lhw->chw", torch.from_numpy(moves.astype(np.float32)), weights)
            fx = a00 * rxs + a01 * rys + a02
            fy = a10 * rxs + a11 * rys + a12
            vx, vy = backward_displacement(field, fx, fy, rx0, ry0)
            grid[0, oy0:oy1, ox0:ox1, 0] -= vx * snx
            grid[0, oy0:oy1, ox0:ox1, 1] -= vy * sny
        px = torch.nn.functional.grid_sample(planes, grid, mode="bilinear", padding_mode="border",
                                             align_corners=True)[0].numpy()  # (3, H, W)
        px *= np.float32(gain[i]) * (1.0 + np.float32(tilt[i]) * light_x)
        if bank is not None:
            k, dy, dx = (int(v) for v in r_noise.integers((len(bank), pad + 1, pad + 1)))
            px += bank[k, :, dy:dy + H, dx:dx + W]
        np.clip(np.rint(px, out=px), 0.0, 255.0, out=px)
        frames[i] = px.transpose(1, 2, 0)
    head = np.stack([tx, ty, rot, scale], axis=1)
    return Clip(spec, frames, box, lm, fw, head, a)


# ---- parameter sampling -------------------------------------------------------------------

def sample_spec(seed: int, face: str | None = None, action: str | None = None, *,
                faces: Sequence[str] = ("astronaut",), actions: Sequence[str] | None = None,
                seconds: float = 3.0, fps: float = 25.0, width: int = 320, height: int = 320,
                margin: float = 0.3, baseline_share: float = 0.5, **overrides) -> ClipSpec:
    """A random clip spec from ``seed``: face and action drawn from ``faces`` / ``actions``
    unless given; event length uniform in [0.25, 0.5] s, apex at 30-50 % of it, onset
    uniform in [margin, seconds - margin - length]; amplitude 0.7-1.0; with probability
    ``baseline_share`` a mild baseline (another action at 0.1-0.25) instead of neutral.
    ``overrides`` set any other :class:`ClipSpec` field."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 1])))
    acts = list(actions) if actions is not None else list(ACTIONS)
    if not acts or not faces:
        raise ConfigError("sample_spec needs at least one face and one action")
    face = face if face is not None else str(faces[int(rng.integers(len(faces)))])
    action = action if action is not None else str(acts[int(rng.integers(len(acts)))])
    length = float(rng.uniform(EVENT_MIN_S, EVENT_MAX_S))
    if seconds - 2 * margin < length:
        raise ConfigError(f"a {seconds} s clip is too short for a {EVENT_MAX_S} s event with {margin} s margins")
    onset = float(rng.uniform(margin, seconds - margin - length))
    apex = onset + length * float(rng.uniform(0.3, 0.5))
    amplitude = float(rng.uniform(0.7, 1.0))
    baseline_action, baseline_amplitude = None, 0.0
    if rng.uniform() < baseline_share:
        others = [x for x in ACTIONS if x != action]
        baseline_action = others[int(rng.integers(len(others)))]
        baseline_amplitude = float(rng.uniform(0.1, 0.25))
    kw = dict(seed=int(seed), face=face, action=action, onset=round(onset, 6), apex=round(apex, 6),
              offset=round(onset + length, 6), amplitude=round(amplitude, 4), baseline_action=baseline_action,
              baseline_amplitude=round(baseline_amplitude, 4), fps=fps, seconds=seconds, width=width, height=height)
    kw.update(overrides)
    return ClipSpec(**kw)


# ---- writing ------------------------------------------------------------------------------

def _rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


# x264 settings of both writers: one thread and no B-frames (with B-frames, x264's
# macroblock-tree rate control reads memory it has not written; see the module docstring).
_X264_PARAMS = "threads=1:bframes=0"


def _write_av(frames: np.ndarray, fps: float, path: Path, crf: int) -> None:
    import av

    with av.open(str(path), mode="w", format="mp4", options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream("libx264", rate=_rate(fps))
        stream.width = frames.shape[2]
        stream.height = frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        stream.codec_context.flags |= av.codec.context.Flags.bitexact
        stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1", "x264-params": _X264_PARAMS}
        for f in frames:
            for pkt in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(pkt)
        for pkt in stream.encode(None):
            out.mux(pkt)


def _write_cli(frames: np.ndarray, fps: float, path: Path, crf: int) -> None:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise MsceError("writing synthetic clips needs PyAV (pip install av) or the ffmpeg command")
    n, h, w, _ = frames.shape
    r = _rate(fps)
    cmd = [exe, "-v", "error", "-nostdin", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-framerate", f"{r.numerator}/{r.denominator}", "-i", "pipe:0", "-c:v", "libx264", "-preset", "veryfast",
           "-crf", str(crf), "-threads", "1", "-x264-params", _X264_PARAMS, "-pix_fmt", "yuv420p", "-fflags",
           "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1", str(path)]
    proc = subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(), capture_output=True)
    if proc.returncode != 0:
        raise MsceError(f"ffmpeg failed to write {path}: {proc.stderr.decode(errors='replace').strip()}")


def write_video(frames: np.ndarray, fps: float, path: str | os.PathLike, crf: int = 18,
                writer: str = "auto") -> Path:
    """Encode uint8 (T, H, W, 3) RGB frames as H.264 (yuv420p) mp4. ``writer``: "av"
    (PyAV), "ffmpeg" (the command line, frames piped as raw RGB) or "auto" (PyAV when
    importable). Written to a temporary name first, so a failure leaves no partial file."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ConfigError(f"frames must be non-empty uint8 (T, H, W, 3); got {frames.dtype} {frames.shape}")
    if writer not in ("auto", "av", "ffmpeg"):
        raise ConfigError(f"writer must be 'auto', 'av' or 'ffmpeg' (got {writer!r})")
    if writer == "auto":
        try:
            import av  # noqa: F401

            writer = "av"
        except ImportError:
            writer = "ffmpeg"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".part" + path.suffix)
    try:
        (_write_av if writer == "av" else _write_cli)(frames, fps, tmp, int(crf))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# ---- records and sets -------------------------------------------------------------------------

@dataclass(frozen=True)
class ClipRecord:
    """One row of the events CSV: the clip file, its event (seconds and frames), and what
    made it. ``face_x .. face_h`` is the face box at rest in frame pixels."""

    video: str
    label: str
    emotion: str
    onset: float
    apex: float
    offset: float
    onset_frame: int
    apex_frame: int
    offset_frame: int
    amplitude: float
    fps: float
    num_frames: int
    width: int
    height: int
    face: str
    face_x: int
    face_y: int
    face_w: int
    face_h: int
    baseline_action: str
    baseline_amplitude: float
    seed: int
    spec: ClipSpec | None = field(default=None, compare=False, repr=False)

    @property
    def face_box(self) -> tuple[int, int, int, int]:
        return (self.face_x, self.face_y, self.face_w, self.face_h)

    @property
    def duration(self) -> float:
        return self.offset - self.onset

    def intensity(self, t: np.ndarray | float) -> np.ndarray:
        return event_intensity(t, self.onset, self.apex, self.offset, self.amplitude)

    def crop(self, margin: float = 0.15) -> tuple[int, int, int, int]:
        """The face box widened by ``margin`` of its size on every side (room for head
        drift), clipped to the frame: the (x, y, w, h) crop for motion analysis."""
        x, y, w, h = self.face_box
        mx, my = int(round(margin * w)), int(round(margin * h))
        x0, y0 = max(0, x - mx), max(0, y - my)
        x1, y1 = min(self.width, x + w + mx), min(self.height, y + h + my)
        return (x0, y0, x1 - x0, y1 - y0)

    def to_row(self) -> dict:
        d = asdict(self)
        d.pop("spec")
        return d

    @classmethod
    def from_row(cls, row: dict) -> ClipRecord:
        kw = {}
        for f in fields(cls):
            if f.name == "spec":
                continue
            v = row[f.name]
            kw[f.name] = int(v) if f.type == "int" else float(v) if f.type == "float" else str(v)
        return cls(**kw)

    @classmethod
    def from_clip(cls, video: str, clip: Clip) -> ClipRecord:
        s = clip.spec
        first, apex, last = s.event_frames()
        x, y, w, h = clip.face_box
        return cls(video, s.action, s.emotion, s.onset, s.apex, s.offset, first, apex, last, s.amplitude, s.fps,
                   s.num_frames, s.width, s.height, s.face, x, y, w, h, s.baseline_action or "",
                   s.baseline_amplitude, s.seed, s)


def generate_clip(path: str | os.PathLike, spec: ClipSpec, writer: str = "auto") -> ClipRecord:
    """Render ``spec`` and write it as an H.264 mp4 at ``path``."""
    clip = render(spec)
    write_video(clip.frames, spec.fps, path, spec.crf, writer)
    return ClipRecord.from_clip(Path(path).name, clip)


def write_events(records: Iterable[ClipRecord], path: str | os.PathLike) -> Path:
    path = Path(path)
    rows = [r.to_row() for r in records]
    names = [f.name for f in fields(ClipRecord) if f.name != "spec"]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=names)
        w.writeheader()
        w.writerows(rows)
    return path


def read_events(path: str | os.PathLike) -> list[ClipRecord]:
    """The rows of an events CSV written by :func:`generate_set`."""
    with open(path, newline="") as fh:
        return [ClipRecord.from_row(row) for row in csv.DictReader(fh)]


def generate_set(out_dir: str | os.PathLike, n: int = 20, seed: int = 0, *,
                 faces: Sequence[str] = ("astronaut", "lfw:1", "lfw:3", "lfw:8", "lfw:12"),
                 actions: Sequence[str] | None = None, writer: str = "auto", **spec_kw) -> list[ClipRecord]:
    """Write ``n`` clips ``clip_0000.mp4`` ... and ``events.csv`` into ``out_dir``.

    Clip ``i`` uses seed ``seed * 100003 + i`` and the actions in turn (clip i gets
    ``actions[i % len(actions)]``, so the labels are balanced); faces and everything
    else are drawn from that seed (:func:`sample_spec`). ``spec_kw`` is passed on
    (``seconds``, ``fps``, ``width``, ``height``, ``noise``, ...)."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ConfigError(f"n must be a positive integer (got {n!r})")
    acts = list(actions) if actions is not None else list(ACTIONS)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        spec = sample_spec(seed * 100003 + i, action=acts[i % len(acts)], faces=faces, actions=acts, **spec_kw)
        records.append(generate_clip(out / f"clip_{i:04d}.mp4", spec, writer))
    write_events(records, out / "events.csv")
    return records
