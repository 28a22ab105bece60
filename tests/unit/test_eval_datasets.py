"""Dataset loaders on fixture trees that mirror the DFEW and MAFW release layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from msce.eval import datasets
from msce.errors import ConfigError, DatasetError
from msce.labels import DFEW, MAFW

FAKE_MP4 = b"\x00\x00\x00\x18ftypmp42"


def make_dfew(root: Path, media: str = "video", n_folds: int = 5) -> dict[str, str]:
    """Ten clips over the 7 classes, 5 folds; returns id -> label name."""
    ids = list(range(1, 11))  # numeric names, zero-padded to 5 digits on disk
    label_ids = {i: (i - 1) % 7 + 1 for i in ids}
    for k in range(1, n_folds + 1):
        test = [i for i in ids if i % 5 == k % 5]
        train = [i for i in ids if i not in test]
        for part, rows in (("train", train), ("test", test)):
            d = root / "EmoLabel_DataSplit" / f"{part}(single-labeled)"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"set_{k}.csv").write_text(
                "video_name,label\n" + "".join(f"{i},{label_ids[i]}\n" for i in rows), encoding="utf-8"
            )
    for i in ids:
        sid = f"{i:05d}"
        if media == "video":
            p = root / "Clip" / "original" / f"{sid}.mp4"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(FAKE_MP4)
        else:
            d = root / "Clip" / "jpg_256" / sid
            d.mkdir(parents=True, exist_ok=True)
            for j in (1, 2, 10):
                (d / f"{j}.jpg").write_bytes(b"jpg")
    return {f"{i:05d}": DFEW.official_ids[label_ids[i]] for i in ids}


def make_mafw(root: Path, media: str = "video") -> dict[str, str]:
    names = list(MAFW.names)
    ids = [f"{i:05d}" for i in range(20, 42)]
    labels = {sid: names[j % len(names)] for j, sid in enumerate(ids)}
    base = root / "Train & Test Set" / "single" / "no_caption"
    for k in range(1, 6):
        test = ids[k - 1 :: 5]
        train = [i for i in ids if i not in test]
        d = base / f"set_{k}"
        d.mkdir(parents=True, exist_ok=True)
        # one capitalized label to check case-insensitive name matching
        (d / "train.txt").write_text("".join(f"{i}.mp4 {labels[i].capitalize()}\n" for i in train), encoding="utf-8")
        (d / "test.txt").write_text("".join(f"{i}.mp4 {labels[i]}\n" for i in test), encoding="utf-8")
    for sid in ids:
        if media == "video":
            p = root / "data" / "clips" / f"{sid}.mp4"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(FAKE_MP4)
        else:
            d = root / "data" / "frames" / sid
            d.mkdir(parents=True, exist_ok=True)
            (d / "00001.png").write_bytes(b"png")
    return labels


# ----------------------------------------------------------------------------- DFEW


def test_dfew_videos(tmp_path):
    truth = make_dfew(tmp_path)
    ds = datasets.load_dfew(tmp_path)
    assert ds.name == "dfew" and ds.label_set is DFEW and ds.root == tmp_path
    assert {s.id: s.label for s in ds.samples} == truth
    s = ds.get("00001")
    assert s.label == "happy"  # id 1 = happy
    assert ds.get("00007").label == "fear"  # id 7 = fear
    assert s.path == tmp_path / "Clip" / "original" / "00001.mp4" and not s.is_frame_folder
    assert sorted(ds.folds) == [1, 2, 3, 4, 5]
    f1 = ds.folds[1]
    assert set(f1.train) | set(f1.test) == set(truth) and not set(f1.train) & set(f1.test)
    assert ds.describe()["num_samples"] == 10


def test_dfew_frame_folders_and_frame_order(tmp_path):
    make_dfew(tmp_path, media="frames")
    ds = datasets.load_dfew(tmp_path)
    s = ds.get("00003")
    assert s.is_frame_folder and s.path == tmp_path / "Clip" / "jpg_256" / "00003"
    assert [p.name for p in datasets.frame_files(s.path)] == ["1.jpg", "2.jpg", "10.jpg"]


def test_dfew_media_choice(tmp_path):
    make_dfew(tmp_path, media="video")
    make_dfew(tmp_path, media="frames")
    assert not datasets.load_dfew(tmp_path).get("00001").is_frame_folder  # videos first
    assert datasets.load_dfew(tmp_path, media="frames").get("00001").is_frame_folder
    ds = datasets.load_dfew(tmp_path, media_dir="Clip/jpg_256")
    assert ds.media_dir == tmp_path / "Clip" / "jpg_256" and ds.get("00001").is_frame_folder
    with pytest.raises(ConfigError):
        datasets.load_dfew(tmp_path, media="audio")


def test_dfew_errors_name_the_path(tmp_path):
    with pytest.raises(DatasetError, match="nowhere"):
        datasets.load_dfew(tmp_path / "nowhere")
    (tmp_path / "EmoLabel_DataSplit").mkdir()
    with pytest.raises(DatasetError, match="set_1.csv"):
        datasets.load_dfew(tmp_path)


def test_dfew_missing_video(tmp_path):
    make_dfew(tmp_path)
    (tmp_path / "Clip" / "original" / "00004.mp4").unlink()
    with pytest.raises(DatasetError, match="00004"):
        datasets.load_dfew(tmp_path)
    ds = datasets.load_dfew(tmp_path, on_missing="skip")
    assert ds.skipped == ["00004"] and "00004" not in ds and len(ds) == 9


def test_dfew_missing_test_file_of_a_fold(tmp_path):
    make_dfew(tmp_path)
    gone = tmp_path / "EmoLabel_DataSplit" / "test(single-labeled)" / "set_3.csv"
    gone.unlink()
    ds = datasets.load_dfew(tmp_path)  # the other folds still load (as MAFW's do); the gap is named
    assert sorted(ds.folds) == [1, 2, 4, 5]
    assert ds.incomplete_folds == {3: str(gone)}


def test_dfew_conflicting_labels_and_bad_rows(tmp_path):
    make_dfew(tmp_path, n_folds=1)
    p = tmp_path / "EmoLabel_DataSplit" / "train(single-labeled)" / "set_2.csv"
    p.write_text("video_name,label\n1,2\n", encoding="utf-8")
    (p.parent.parent / "test(single-labeled)" / "set_2.csv").write_text("video_name,label\n2,2\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="00001"):
        datasets.load_dfew(tmp_path)
    p.write_text("video_name,label\n1,9\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="set_2.csv:2"):
        datasets.load_dfew(tmp_path)


def test_dfew_headerless_csv(tmp_path):
    make_dfew(tmp_path, n_folds=1)
    for part in ("train", "test"):
        p = tmp_path / "EmoLabel_DataSplit" / f"{part}(single-labeled)" / "set_1.csv"
        p.write_text(p.read_text().split("\n", 1)[1])
    assert len(datasets.load_dfew(tmp_path)) == 10


# ----------------------------------------------------------------------------- MAFW


def test_mafw_by_name(tmp_path):
    truth = make_mafw(tmp_path)
    ds = datasets.load_mafw(tmp_path)
    assert ds.label_set is MAFW
    assert {s.id: s.label for s in ds.samples} == truth
    assert ds.get("00025").path == tmp_path / "data" / "clips" / "00025.mp4"
    assert sorted(ds.folds) == [1, 2, 3, 4, 5]
    assert set(ds.class_counts()) == set(MAFW.names)


def test_mafw_frames_and_custom_media_dir(tmp_path):
    make_mafw(tmp_path, media="frames")
    ds = datasets.load_mafw(tmp_path)
    assert ds.get("00030").is_frame_folder
    other = tmp_path / "elsewhere"
    (tmp_path / "data" / "frames").rename(other)
    ds2 = datasets.load_mafw(tmp_path, media_dir=other)
    assert ds2.get("00030").path == other / "00030"


def test_mafw_rejects_numeric_and_unknown_labels(tmp_path):
    make_mafw(tmp_path)
    p = tmp_path / "Train & Test Set" / "single" / "no_caption" / "set_1" / "train.txt"
    p.write_text("00025.mp4 3\n")
    with pytest.raises(DatasetError, match="numeric MAFW label"):
        datasets.load_mafw(tmp_path)
    p.write_text("00025.mp4 boredom\n")
    with pytest.raises(DatasetError, match="train.txt:1"):
        datasets.load_mafw(tmp_path)


def test_mafw_missing_split_dir(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(DatasetError, match="no_caption"):
        datasets.load_mafw(tmp_path)


# ----------------------------------------------------------------------------- generic


def test_generic_folders_with_synonyms(tmp_path):
    for label, n in (("happiness", 2), ("Sad", 1)):
        d = tmp_path / label
        d.mkdir()
        for i in range(n):
            (d / f"c{i}.mp4").write_bytes(FAKE_MP4)
    frames = tmp_path / "happiness" / "seq"
    frames.mkdir()
    (frames / "0.png").write_bytes(b"png")
    (tmp_path / "happiness" / "notes.txt").write_text("ignored")
    ds = datasets.load_generic(tmp_path, labels="dfew")
    got = {s.id: (s.label, s.is_frame_folder) for s in ds.samples}
    assert got == {
        "happiness/c0": ("happy", False),
        "happiness/c1": ("happy", False),
        "happiness/seq": ("happy", True),
        "Sad/c0": ("sad", False),
    }


def test_generic_csv_inferred_labels(tmp_path):
    (tmp_path / "v").mkdir()
    for n in ("a", "b", "c"):
        (tmp_path / "v" / f"{n}.mp4").write_bytes(FAKE_MP4)
    csv_path = tmp_path / "list.csv"
    csv_path.write_text("path,label\nv/a.mp4,Calm\nv/b.mp4,tense\nv/c.mp4,calm\n")
    ds = datasets.load_generic(csv_path)
    assert ds.label_set.names == ("calm", "tense")
    assert [(s.id, s.label) for s in ds.samples] == [("v/a", "calm"), ("v/b", "tense"), ("v/c", "calm")]
    csv_path.write_text("v/a.mp4,calm\nv/missing.mp4,calm\n")
    with pytest.raises(DatasetError, match="missing.mp4"):
        datasets.load_generic(csv_path)
    assert datasets.load_generic(csv_path, on_missing="skip").skipped == ["v/missing"]
    csv_path.write_text("v/a.mp4,joy\n")
    with pytest.raises(DatasetError, match="list.csv:1"):
        datasets.load_generic(csv_path, labels=["calm", "tense"])


def test_load_dataset_dispatch_and_frame_files_errors(tmp_path):
    with pytest.raises(ConfigError):
        datasets.load_dataset("ferv39k", tmp_path)
    with pytest.raises(DatasetError, match="no images"):
        datasets.frame_files(tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        datasets.frame_files(tmp_path / "x")
