"""Tokens mode for InternVL 3 / 3.5 (HF format, ``InternVLForConditionalGeneration``).

Videos: msce's exact target of ``InternVLVideoProcessor`` (a fixed square resize). The
``<video>`` placeholder becomes one line per frame, joined by ``"\\n"``:
``Frame{i}: <img>`` + ``image_seq_length`` context tokens + ``</img>`` (i from 1).

Images (one-frame parts): the image processor (``GotOcr2ImageProcessor``) tiles each image
into up to ``max_patches`` crops at the closest aspect ratio plus a thumbnail when the
composite processor asks for ``crop_to_patches`` (``InternVLProcessor`` does), which is no
msce target; one-frame parts are loaded as uint8 frames and go through it, and the image's
context placeholder becomes ``<img>`` + ``image_seq_length * num_patches`` context tokens +
``</img>``.

The model takes every visual as one ``pixel_values`` tensor (frames and tiles, N x 3 x H x
W) in the order the visuals appear in the batch's texts, as ``InternVLProcessor`` lays it.
"""

from __future__ import annotations

from typing import Any, Sequence

from msce.models.backends._family import TokenFamily, check_batch_target
from msce.models.backends.base import Request, is_frames, is_image
from msce.targets import Frames, Target, VideoOrImage, target_for

__all__ = ["InternVLFamily"]


class InternVLFamily(TokenFamily):
    model_types = ("internvl",)
    image_fallback = True

    def __init__(self, processor: Any, config: Any, **_: Any):
        super().__init__(processor, config)
        self.seq = int(processor.image_seq_length)
        self.start = str(processor.start_image_token)
        self.end = str(processor.end_image_token)

    def target(self) -> Target:
        return VideoOrImage(video=target_for(self.processor), image=Frames(layout="NHWC", dtype="uint8"))

    def special_tokens(self) -> tuple[str, ...]:
        return (self.image_token, self.video_token, self.start, self.end)

    def video_inputs(self, videos: Sequence[Any]) -> tuple[dict[str, Any], list[str]]:
        import torch

        frames, repl = [], []
        tile = f"{self.start}{self.image_token * self.seq}{self.end}"
        for p in videos:
            check_batch_target(p, VideoOrImage, "videos")
            x = torch.as_tensor(p.to_hf()["pixel_values_videos"]).flatten(0, 1)  # (T, 3, H, W)
            frames.append(x)
            repl.append("\n".join(f"Frame{i + 1}: {tile}" for i in range(x.shape[0])))
        return {"_videos": frames}, repl

    def image_inputs(self, images: Sequence[Any]) -> tuple[dict[str, Any], list[str]]:
        out = self.hf_images(images)
        counts = [int(n) for n in (out["num_patches"].tolist() if hasattr(out["num_patches"], "tolist")
                                   else out["num_patches"])]
        tiles, start = [], 0
        for n in counts:
            tiles.append(out["pixel_values"][start:start + n])
            start += n
        repl = [f"{self.start}{self.image_token * self.seq * n}{self.end}" for n in counts]
        return {"_images": tiles}, repl

    def finish(self, inputs: dict[str, Any], requests: Sequence[Request]) -> dict[str, Any]:
        import torch

        videos = iter(inputs.pop("_videos", []))
        images = iter(inputs.pop("_images", []))
        ordered = [next(images) if is_image(p) else next(videos) for r in requests for p in r if is_frames(p)]
        if ordered:
            inputs["pixel_values"] = torch.cat(ordered, 0)
        return inputs
