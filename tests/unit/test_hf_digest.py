"""The transformers backend's checkpoint digest (part of its cache fingerprint): weight
content, memoized by (path, size, mtime), and the directory a hub id resolves to."""

from __future__ import annotations

import hashlib
import os
import pathlib

import pytest

from msce.models.backends import hf
from msce.errors import BackendError


def make_checkpoint(root: pathlib.Path, weights: bytes, config: bytes = b'{"model_type": "qwen2_5_vl"}') -> pathlib.Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_bytes(config)
    (root / "model.safetensors").write_bytes(weights)
    return root


def set_mtime(path: pathlib.Path, seconds: int) -> None:
    os.utime(path, ns=(seconds * 10**9, seconds * 10**9))


@pytest.fixture(autouse=True)
def fresh_memo(monkeypatch):
    monkeypatch.setattr(hf, "_file_digests", {})


def test_same_content_same_digest_any_content_change_differs(tmp_path) -> None:
    blob = bytes(range(256)) * 4096  # 1 MiB
    a = make_checkpoint(tmp_path / "a", blob)
    b = make_checkpoint(tmp_path / "b", blob)
    assert hf._weights_digest(a) == hf._weights_digest(b)  # content, not location
    flipped = bytearray(blob)
    flipped[700_000] ^= 1  # deep inside the tensor bytes, same size
    c = make_checkpoint(tmp_path / "c", bytes(flipped))
    assert hf._weights_digest(c) != hf._weights_digest(a)
    d = make_checkpoint(tmp_path / "d", blob, config=b'{"model_type": "qwen3_vl"}')
    assert hf._weights_digest(d) != hf._weights_digest(a)
    (b / "chat_template.jinja").write_text("{{ messages }}")
    assert hf._weights_digest(b) != hf._weights_digest(a)
    # a training checkpoint in a subfolder is not the model: it changes nothing
    make_checkpoint(a / "checkpoint-10", b"other weights")
    assert hf._weights_digest(a) == hf._weights_digest(make_checkpoint(tmp_path / "e", blob))


def test_file_digest_is_the_content_sha256(tmp_path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc" * 100_000)
    assert hf._file_digest(f) == hashlib.sha256(b"abc" * 100_000).hexdigest()


def test_digest_memoized_by_path_size_and_mtime(tmp_path, monkeypatch) -> None:
    ckpt = make_checkpoint(tmp_path / "m", b"\x01" * 5000)
    set_mtime(ckpt / "model.safetensors", 1_600_000_000)
    reads: list[str] = []
    real_open = pathlib.Path.open

    def counting_open(self, *args, **kwargs):
        reads.append(self.name)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", counting_open)
    first = hf._weights_digest(ckpt)
    assert sorted(reads) == ["config.json", "model.safetensors"]
    reads.clear()
    assert hf._weights_digest(ckpt) == first and hf._weights_digest(ckpt) == first
    assert reads == []  # unchanged files are not read again
    # rewritten in place with the same size: a new mtime, so it is read and the digest follows
    (ckpt / "model.safetensors").write_bytes(b"\x02" * 5000)
    set_mtime(ckpt / "model.safetensors", 1_600_000_100)
    reads.clear()
    second = hf._weights_digest(ckpt)
    assert reads == ["model.safetensors"] and second != first


def test_no_weights_is_an_error(tmp_path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(BackendError, match="no weight files"):
        hf._weights_digest(tmp_path)


def test_hub_id_resolves_to_its_cached_snapshot(tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--org--tiny-vl"
    snap = make_checkpoint(repo / "snapshots" / commit, b"\x07" * 64)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert hf._resolved_model_dir("org/tiny-vl", None) == snap
    assert hf._resolved_model_dir("org/not-downloaded", None) is None
    assert hf._resolved_model_dir(str(snap), None) == snap.resolve()
    assert hf._weights_digest(hf._resolved_model_dir("org/tiny-vl", None)) == hf._weights_digest(snap)
