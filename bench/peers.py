"""One adapter per benchmarked pipeline. Each ``make_<peer>(...)`` does the untimed setup
(imports, processor construction) and returns a zero-argument callable that runs the timed
path from the video file to the tensors, returning a :class:`Output`.

Peers (all on the same clip; every peer but qwen-vl-utils on the same frame indices, msce's plan):
  msce             msce.load(path, plan, msce.QwenVL("2.5"))
  pyav_hf          PyAV decode of the indices (rgb24 via frame.to_ndarray) + HF Qwen2VLVideoProcessor
  qwen_vl_utils_hf qwen-vl-utils fetch_video (torchcodec backend; picks its own frames and resizes in
                   float32) + HF Qwen2VLVideoProcessor
  torchcodec_hf    torchcodec VideoDecoder.get_frames_at(indices) (uint8 NCHW) + HF Qwen2VLVideoProcessor
  pyav_decode      PyAV decode of the indices, no colour conversion (the decode floor)
  pyav_decode_rgb  PyAV decode of the indices + rgb24 conversion (frame.to_ndarray)

PyAV peers use frame threading (thread_type="AUTO") like msce's reader; they decode sequentially
up to the last wanted frame (no seek: with the default GOP of 250 a seek would not skip work).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

PEERS = ("msce", "pyav_hf", "torchcodec_hf", "qwen_vl_utils_hf", "pyav_decode", "pyav_decode_rgb")
PEER_LABEL = {
    "msce": "msce",
    "msce_448": "msce (448x448 budget)",
    "pyav_hf": "PyAV + HF processor",
    "torchcodec_hf": "torchcodec + HF processor",
    "qwen_vl_utils_hf": "qwen-vl-utils (torchcodec) + HF",
    "pyav_decode": "PyAV decode-only",
    "pyav_decode_rgb": "PyAV decode + rgb24",
}


@dataclass
class Output:
    frames: int                       # frames that reached the output
    indices: list[int]                # source frame indices used
    pixel_values: Any = None          # torch.Tensor for Qwen outputs
    grid_thw: list[int] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def tokens(self) -> int | None:
        if self.grid_thw is None:
            return None
        t, h, w = self.grid_thw
        return t * h * w // 4

    def describe(self) -> dict:
        d = {"frames": self.frames, "indices": list(self.indices), "grid_thw": self.grid_thw, "tokens": self.tokens}
        if self.pixel_values is not None:
            d["output_shape"] = list(self.pixel_values.shape)
            d["output_mib"] = self.pixel_values.numel() * self.pixel_values.element_size() / 2**20
        d.update(self.extra)
        return d


def plan_spec(plan: str):
    import msce

    if plan == "dense":
        return msce.plan.dense()
    if plan.startswith("fps"):
        return msce.plan.uniform(float(plan[3:]))
    raise ValueError(f"unknown plan {plan!r}")


def plan_fps(plan: str, source_fps: float) -> float:
    return source_fps if plan == "dense" else float(plan[3:])


# ---- msce --------------------------------------------------------------------------------
def make_msce(path: str, plan: str, indices: Sequence[int], max_pixels: int | None = None,
              threads: int | None = None, **_: Any) -> Callable[[], Output]:
    import msce

    spec = plan_spec(plan)
    target = msce.QwenVL("2.5", max_pixels=max_pixels)

    def run() -> Output:
        b = msce.load(path, spec, target, threads=threads)
        return Output(len(b.indices), list(b.indices), b.data, [int(v) for v in b.grid_thw[0]])

    return run


# ---- PyAV ----------------------------------------------------------------------------------
def pyav_decode(path: str, indices: Sequence[int], convert: str | None) -> list:
    """Frames at ``indices`` (in that order) decoded with PyAV, sequentially up to the last one.
    convert: None -> count only (no conversion, nothing kept); "rgb24" -> uint8 (H, W, 3) arrays."""
    import av

    want = sorted(set(int(i) for i in indices))
    wanted = set(want)
    last = want[-1]
    got: dict[int, Any] = {}
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                got[i] = frame.to_ndarray(format=convert) if convert else i
            if i >= last:
                break
    missing = [i for i in want if i not in got]
    if missing:
        raise RuntimeError(f"PyAV did not produce frames {missing[:5]} of {path}")
    return [got[i] for i in indices]


def make_pyav_decode(path: str, plan: str, indices: Sequence[int], **_: Any) -> Callable[[], Output]:
    import av  # noqa: F401

    idx = list(indices)

    def run() -> Output:
        frames = pyav_decode(path, idx, None)
        return Output(len(frames), idx)

    return run


def make_pyav_decode_rgb(path: str, plan: str, indices: Sequence[int], **_: Any) -> Callable[[], Output]:
    import av  # noqa: F401

    idx = list(indices)

    def run() -> Output:
        frames = pyav_decode(path, idx, "rgb24")
        return Output(len(frames), idx, extra={"rgb_bytes": sum(f.nbytes for f in frames)})

    return run


def hf_processor(max_pixels: int | None = None):
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    size = {"shortest_edge": 128 * 28 * 28, "longest_edge": max_pixels or 768 * 28 * 28}
    return Qwen2VLVideoProcessor(cap_pixels_per_frame=False, size=size)


def make_pyav_hf(path: str, plan: str, indices: Sequence[int], max_pixels: int | None = None,
                 **_: Any) -> Callable[[], Output]:
    import numpy as np
    import torch

    proc = hf_processor(max_pixels)
    idx = list(indices)

    def run() -> Output:
        frames = pyav_decode(path, idx, "rgb24")
        video = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)
        del frames
        out = proc(videos=[video], return_tensors="pt")
        pv, grid = out["pixel_values_videos"], out["video_grid_thw"]
        return Output(len(idx), idx, pv, [int(v) for v in grid[0]])

    return run


# ---- torchcodec ----------------------------------------------------------------------------------
def make_torchcodec_hf(path: str, plan: str, indices: Sequence[int], max_pixels: int | None = None,
                       **_: Any) -> Callable[[], Output]:
    """torchcodec's decoder (all FFmpeg threads, exact seek mode: its defaults but the thread
    count) on msce's indices, then the same HF processor. The decoder is opened inside the timed
    call, as msce and PyAV open the file inside theirs."""
    from torchcodec.decoders import VideoDecoder

    proc = hf_processor(max_pixels)
    idx = list(indices)

    def run() -> Output:
        video = VideoDecoder(path, num_ffmpeg_threads=0).get_frames_at(idx).data  # (T, 3, H, W) uint8
        out = proc(videos=[video], return_tensors="pt")
        pv, grid = out["pixel_values_videos"], out["video_grid_thw"]
        return Output(len(idx), idx, pv, [int(v) for v in grid[0]])

    return run


# ---- qwen-vl-utils ----------------------------------------------------------------------------
def make_qwen_vl_utils_hf(path: str, plan: str, indices: Sequence[int], max_pixels: int | None = None,
                          source_fps: float = 25.0, **_: Any) -> Callable[[], Output]:
    os.environ["FORCE_QWENVL_VIDEO_READER"] = "torchcodec"
    import logging

    from qwen_vl_utils import vision_process as vp

    logging.getLogger(vp.__name__).setLevel(logging.ERROR)
    # the module reads the variable at import time; make sure the backend really is torchcodec
    vp.FORCE_QWENVL_VIDEO_READER = "torchcodec"
    vp.get_video_reader_backend.cache_clear()
    proc = hf_processor(max_pixels)
    ele: dict[str, Any] = {"type": "video", "video": path, "fps": plan_fps(plan, source_fps)}
    if max_pixels:
        ele["max_pixels"] = max_pixels

    def run() -> Output:
        video, meta = vp.fetch_video(dict(ele), return_video_metadata=True)
        out = proc(videos=[video], do_sample_frames=False, return_tensors="pt")
        pv, grid = out["pixel_values_videos"], out["video_grid_thw"]
        idx = [int(i) for i in meta["frames_indices"]]
        return Output(len(idx), idx, pv, [int(v) for v in grid[0]],
                      extra={"backend": meta.get("video_backend"), "resized_hw": list(video.shape[-2:]),
                             "fetch_dtype": str(video.dtype)})

    return run


MAKERS: dict[str, Callable[..., Callable[[], Output]]] = {
    "msce": make_msce,
    "pyav_hf": make_pyav_hf,
    "torchcodec_hf": make_torchcodec_hf,
    "qwen_vl_utils_hf": make_qwen_vl_utils_hf,
    "pyav_decode": make_pyav_decode,
    "pyav_decode_rgb": make_pyav_decode_rgb,
}


def make(peer: str, path: str, plan: str, indices: Sequence[int], **kw: Any) -> Callable[[], Output]:
    if peer not in MAKERS:
        raise ValueError(f"unknown peer {peer!r}; one of {sorted(MAKERS)}")
    return MAKERS[peer](path, plan, indices, **kw)
