"""Tokens mode for GLM-4.1V (``Glm4vForConditionalGeneration``).

Videos: msce.Glm4V of the video processor (Qwen patch layout, whole-clip pixel budget). The
``<|video|>`` placeholder (inside the template's ``<|begin_of_video|>`` ... ``<|end_of_video|>``)
becomes, per temporal patch k, ``<|begin_of_image|>`` + ``h*w / merge_size**2`` image tokens +
``<|end_of_image|>`` + the patch's time in whole seconds, ``int(index / fps)`` of every
second frame (the frames' sorted source indices over the clip's average frame rate, as
``Glm4vProcessor`` reads them from the ``VideoMetadata`` msce passes in processor mode; 24
fps where the clip has none, the processor's default), repeated at the end when there are
fewer times than patches.

Images: msce.Glm4V of the image processor's own ``size`` (its per-image budget counts two
temporal frames, which is Glm4V's whole-clip budget for a one-frame clip, exact), and
``<|image|>`` becomes ``t*h*w / merge_size**2`` image tokens.

``mm_token_type_ids``: image tokens inside a video's begin/end markers are 2, other image
tokens 1, as the processor marks them.

transformers' ``Glm4vModel`` counts a video's tokens as image tokens when it checks the
image features, so one model call cannot hold both images and videos: requests with images
and requests with videos go to separate model batches (:meth:`Glm4vFamily.batch_key`); a
single request holding both fails in HF's generate (in processor mode too).
"""

from __future__ import annotations

from typing import Any, Hashable, Sequence

from msce.models.backends._family import TokenFamily, hf_video_metadata
from msce.models.backends.base import Request, is_frames, is_image
from msce.models.backends._qwen_family import grid_of
from msce.targets import Glm4V, Target, VideoOrImage, target_for

__all__ = ["Glm4vFamily", "glm4v_frame_seconds"]

_DEFAULT_FPS = 24.0  # Glm4vProcessor's fallback when the metadata has no fps


def glm4v_frame_seconds(indices: Sequence[int], fps: float | None, patches: int) -> list[int]:
    """Whole seconds written after each temporal patch: ``int(i / fps)`` for every second of
    the sorted ``indices``, cut or padded (repeating the last) to ``patches`` entries."""
    rate = float(fps) if fps else _DEFAULT_FPS
    times = [i / rate for i in sorted(int(i) for i in indices)][::2][:patches]
    while len(times) < patches:
        times.append(times[-1] if times else 0)
    return [int(t) for t in times]


class Glm4vFamily(TokenFamily):
    model_types = ("glm4v", "glm4v_moe")

    def __init__(self, processor: Any, config: Any, **_: Any):
        super().__init__(processor, config)
        self.image_token = self.image_token or "<|image|>"
        self.video_token = self.video_token or "<|video|>"
        self.merge_size = int(getattr(processor.video_processor, "merge_size", 2) or 2)
        self.image_merge_size = int(getattr(processor.image_processor, "merge_size", 2) or 2)

    def target(self) -> Target:
        return VideoOrImage(video=target_for(self.processor), image=Glm4V.from_hf(self.processor.image_processor))

    def special_tokens(self) -> tuple[str, ...]:
        return (self.image_token, self.video_token, "<|begin_of_image|>", "<|end_of_image|>",
                "<|begin_of_video|>", "<|end_of_video|>")

    def video_inputs(self, videos: Sequence[Any]) -> tuple[dict[str, Any], list[str]]:
        import torch

        pixels, grids, repl = [], [], []
        for p in videos:
            t, h, w = grid_of(p)
            hf = p.to_hf()
            pixels.append(torch.as_tensor(hf["pixel_values_videos"]))
            grids.append(torch.as_tensor(hf["video_grid_thw"]).reshape(-1, 3))
            fps = getattr(getattr(p, "metadata", None), "average_fps", None)
            per = self.image_token * (h * w // self.merge_size ** 2)
            repl.append("".join(f"<|begin_of_image|>{per}<|end_of_image|>{s}"
                                for s in glm4v_frame_seconds(p.indices, fps, t)))
        return {"pixel_values_videos": torch.cat(pixels, 0), "video_grid_thw": torch.cat(grids, 0).long()}, repl

    def image_inputs(self, images: Sequence[Any]) -> tuple[dict[str, Any], list[str]]:
        import torch

        pixels, grids, repl = [], [], []
        for p in images:
            t, h, w = grid_of(p)
            hf = p.to_hf(as_image=True)
            pixels.append(torch.as_tensor(hf["pixel_values"]))
            grids.append(torch.as_tensor(hf["image_grid_thw"]).reshape(-1, 3))
            repl.append(self.image_token * (t * h * w // self.image_merge_size ** 2))
        return {"pixel_values": torch.cat(pixels, 0), "image_grid_thw": torch.cat(grids, 0).long()}, repl

    def mm_token_type_ids(self, input_ids: Any) -> Any:
        import torch

        image = self.token_id(self.image_token)
        start, end = self.token_id("<|begin_of_video|>"), self.token_id("<|end_of_video|>")
        inside = (torch.cumsum(input_ids == start, dim=-1) > torch.cumsum(input_ids == end, dim=-1))
        types = torch.zeros_like(input_ids)
        is_image = input_ids == image
        types[is_image & inside] = 2
        types[is_image & ~inside] = 1
        return types

    def batch_key(self, request: Request) -> Hashable:
        parts = [p for p in request if is_frames(p)]
        return (any(is_image(p) for p in parts), any(not is_image(p) for p in parts))

    def processor_kwargs(self, videos: Sequence[Any]) -> dict[str, Any]:
        return {"video_metadata": [hf_video_metadata(p) for p in videos]}
