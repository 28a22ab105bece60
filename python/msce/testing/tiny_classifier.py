"""Build a tiny random-weight VideoMAE video classifier offline.

The checkpoint is a real ``VideoMAEForVideoClassification`` (the architecture of
MAE-DFER and HiCMAE-style DFER models) at toy sizes: 32x32 crops, 8x8 patches, tubelets
of 2 frames, ``num_frames=4``, hidden 32, 2 layers, 2 heads, saved with a
``VideoMAEVideoProcessor`` (bilinear resize of the shorter side to 32, centre crop 32,
ImageNet mean/std). ``AutoModelForVideoClassification`` and ``AutoVideoProcessor``
reload it. Its outputs mean nothing; everything that does not care what weights mean
(label mapping, frame handling, batching, fine-tuning) runs on it in well under a second.

The same arguments always give byte-identical files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from msce.testing.tiny import TINY_MARKER_FILE, mark_tiny, seeded_model

__all__ = ["make_tiny_videomae", "TINY_VIDEOMAE_SIZE", "TINY_VIDEOMAE_FRAMES"]

TINY_VIDEOMAE_SIZE = 32
TINY_VIDEOMAE_FRAMES = 4
_DEFAULT_LABELS = ("Happiness", "Sadness", "Neutral", "Anger", "Surprise", "Disgust", "Fear")


def make_tiny_videomae(directory: str | os.PathLike, labels: Sequence[str] = _DEFAULT_LABELS, seed: int = 0,
                       num_frames: int = TINY_VIDEOMAE_FRAMES) -> Path:
    """Write a tiny random-weight ``VideoMAEForVideoClassification`` + video processor.

    Args:
        directory: output folder (created; files of the same names are replaced).
        labels: the classifier's ``id2label`` names in id order (the default is DFEW's
            seven classes spelled as MAFW-style nouns, so that mapping by name is exercised).
        seed: weight seed; the same seed always gives the same weights.
        num_frames: frames per clip the model takes (a multiple of the tubelet size 2).

    Returns:
        The directory, loadable with ``AutoModelForVideoClassification.from_pretrained``
        and ``AutoVideoProcessor.from_pretrained``.
    """
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification, VideoMAEVideoProcessor

    from msce.errors import ConfigError

    labels = [str(name) for name in labels]
    if not labels or len(set(labels)) != len(labels):
        raise ConfigError(f"labels must be distinct and non-empty, got {labels!r}")
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 2 or num_frames % 2:
        raise ConfigError(f"num_frames must be an even int >= 2 (tubelet size 2), got {num_frames!r}")
    config = VideoMAEConfig(
        image_size=TINY_VIDEOMAE_SIZE, patch_size=8, num_channels=3, num_frames=num_frames, tubelet_size=2,
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        use_mean_pooling=True, id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)},
    )
    model = seeded_model(VideoMAEForVideoClassification, config, seed)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    mark_tiny(model, "msce-tiny-videomae")
    model.save_pretrained(out)
    processor = VideoMAEVideoProcessor(size={"shortest_edge": TINY_VIDEOMAE_SIZE},
                                       crop_size={"height": TINY_VIDEOMAE_SIZE, "width": TINY_VIDEOMAE_SIZE})
    processor.save_pretrained(out)
    (out / TINY_MARKER_FILE).write_text(json.dumps({"kind": "videomae", "seed": seed, "labels": labels,
                                                    "num_frames": num_frames}, indent=2) + "\n")
    return out
