"""Caption-folder and WebVid data sets: items equal decode + sample of their file; unreadable,
truncated and too-short clips are skipped with one warning line and counted; a set with no usable
clip raises one clear T2VError; missing paths are named."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from clips import make_clip

from t2v.data.caption_folder import CaptionFolderDataset
from t2v.data.sampling import FrameSampling, item_generator, sample_clip
from t2v.data.video_io import read_video, write_video
from t2v.data.webvid import WebVidDataset, read_webvid_csv
from t2v.errors import T2VError

SAMPLING = FrameSampling(num_frames=4, height=16, width=16, sample_stride=2)


def _folder(tmp_path):
    """Three good captioned clips: an mp4, a gif and a folder of PNG frames."""
    root = tmp_path / "videos"
    write_video(root / "a.mp4", make_clip(10, 24, 32, seed=0), fps=10)
    write_video(root / "b.gif", make_clip(9, 20, 20, seed=1), fps=10)
    write_video(root / "c", make_clip(8, 16, 24, seed=2), fps=8)
    (root / "a.txt").write_text("a drifting gradient\n")
    (root / "b.txt").write_text("  a   second\nclip ")
    (root / "c.txt").write_text("frames in a folder")
    return root


def test_caption_folder_items_are_decoded_and_sampled(tmp_path):
    root = _folder(tmp_path)
    ds = CaptionFolderDataset(root, SAMPLING, seed=5)
    assert len(ds) == 3
    assert [ds[i]["caption"] for i in range(3)] == ["a drifting gradient", "a second clip", "frames in a folder"]
    for i, name in enumerate(["a.mp4", "b.gif", "c"]):
        item = ds[i]
        frames, fps = read_video(root / name)
        ref = sample_clip(frames, fps, SAMPLING, item_generator(5, 0, i))
        assert item["source"] == str(root / name)
        assert item["video"].shape == (3, 4, 16, 16) and torch.equal(item["video"], ref)
        assert item["fps"] == pytest.approx(fps / 2)
    assert torch.equal(ds[1]["video"], ds[1]["video"])  # same seed, epoch, index: same sample
    assert ds.skipped == [] and ds.skip_summary() == "skipped 0 of 3 clips"


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_manifest(tmp_path, kind):
    root = _folder(tmp_path)
    rows = [("a.mp4", "first caption"), ("c", "third, with a comma"), ("gone.mp4", "missing file")]
    if kind == "csv":
        import csv

        with open(tmp_path / "m.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "caption"])
            w.writerows(rows)
    else:
        (tmp_path / "m.jsonl").write_text("\n".join(json.dumps({"video": p, "text": c}) for p, c in rows) + "\n")
    ds = CaptionFolderDataset(root, SAMPLING, manifest=tmp_path / f"m.{kind}")
    assert len(ds) == 2
    assert [ds[0]["caption"], ds[1]["caption"]] == ["first caption", "third, with a comma"]
    assert ds.skip_counts() == {"missing": 1} and "gone.mp4" in ds.skipped[0].detail


def test_corrupted_copy_of_a_real_video_is_skipped_and_counted(assets, tmp_path, caplog):
    root = _folder(tmp_path)
    data = (assets / "videos" / "wolf.mp4").read_bytes()
    (root / "b2-wolf-cut.mp4").write_bytes(data[: len(data) // 3])  # sorts between b.gif and c
    (root / "b2-wolf-cut.txt").write_text("a wolf")
    write_video(root / "b3-short.mp4", make_clip(3, 16, 16), fps=8)  # 3 frames; SAMPLING needs 7
    (root / "b3-short.txt").write_text("too short")
    ds = CaptionFolderDataset(root, SAMPLING)
    assert len(ds) == 5
    with caplog.at_level(logging.WARNING, logger="t2v.data"):
        items = [ds[i] for i in range(len(ds))]
        again = ds[2]
    # the two bad entries hand over to the next good one, deterministically
    assert [it["caption"] for it in items] == ["a drifting gradient", "a second clip", "frames in a folder", "frames in a folder", "frames in a folder"]
    assert torch.equal(again["video"], items[4]["video"])
    records = [r for r in caplog.records if r.name == "t2v.data"]
    assert len(records) == 2  # one line per bad clip, not per access
    assert all("\n" not in r.getMessage() for r in records)
    assert "b2-wolf-cut.mp4 (unreadable)" in records[0].getMessage()
    assert "b3-short.mp4 (too short)" in records[1].getMessage()
    assert ds.skip_counts() == {"unreadable": 1, "too short": 1}
    assert ds.skip_summary() == "skipped 2 of 5 clips (1 too short, 1 unreadable)"


def test_all_corrupt_set_raises_one_line(assets, tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    data = (assets / "videos" / "wolf.mp4").read_bytes()
    for k in range(2):
        (root / f"w{k}.mp4").write_bytes(data[: 20_000 * (k + 1)])
        (root / f"w{k}.txt").write_text("a wolf")
    ds = CaptionFolderDataset(root, SAMPLING)
    with pytest.raises(T2VError) as e:
        ds[0]
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"no usable clip in caption folder {root}")
    assert msg.endswith("skipped 2 of 2 clips (2 unreadable)")


def test_missing_and_empty_paths_are_named(tmp_path):
    with pytest.raises(T2VError, match="caption folder not found: .*nowhere"):
        CaptionFolderDataset(tmp_path / "nowhere", SAMPLING)
    (tmp_path / "empty").mkdir()
    with pytest.raises(T2VError, match="no videos in .*empty"):
        CaptionFolderDataset(tmp_path / "empty", SAMPLING)
    root = _folder(tmp_path)
    with pytest.raises(T2VError, match="manifest not found: .*m.csv"):
        CaptionFolderDataset(root, SAMPLING, manifest=tmp_path / "m.csv")
    (root / "a.txt").unlink()
    (root / "b.txt").unlink()
    (root / "c.txt").unlink()
    with pytest.raises(T2VError, match=r"no usable clip .*\(3 no caption\)"):
        CaptionFolderDataset(root, SAMPLING)


# ------------------------------------------------------------------------------------------------
# WebVid
# ------------------------------------------------------------------------------------------------
def test_real_webvid_csv_parses(assets):
    rows = read_webvid_csv(assets / "webvid" / "test_webvid.csv")
    assert len(rows) == 20
    assert list(rows[0]) == ["videoid", "name", "page_idx", "page_dir", "duration", "contentUrl"]
    assert rows[0]["videoid"] == "1053841541" and rows[0]["page_dir"] == "027701_027750"
    assert rows[0]["name"] == "Travel blogger shoot a story on top of mountains. young man holds camera in forest."
    assert all(r["videoid"].isdigit() and r["name"] and r["contentUrl"].startswith("https://") for r in rows)


def test_webvid_finds_videos_under_page_dir_or_root(assets, tmp_path):
    csv_path = assets / "webvid" / "test_webvid.csv"
    rows = read_webvid_csv(csv_path)
    with pytest.raises(T2VError, match=r"no usable clip .*\(20 missing\)"):
        WebVidDataset(csv_path, tmp_path, SAMPLING)
    write_video(tmp_path / rows[0]["page_dir"] / f"{rows[0]['videoid']}.mp4", make_clip(8, 16, 16), fps=8)
    write_video(tmp_path / f"{rows[5]['videoid']}.mp4", make_clip(8, 16, 16, seed=3), fps=8)
    ds = WebVidDataset(csv_path, tmp_path, SAMPLING)
    assert len(ds) == 2
    assert [ds[0]["caption"], ds[1]["caption"]] == [" ".join(rows[0]["name"].split()), " ".join(rows[5]["name"].split())]
    assert ds[0]["video"].shape == (3, 4, 16, 16)
    assert ds.skip_counts() == {"missing": 18} and ds.skip_summary() == "skipped 18 of 20 clips (18 missing)"


def test_webvid_bad_input(tmp_path, assets):
    (tmp_path / "x.csv").write_text("path,caption\na.mp4,hello\n")
    with pytest.raises(T2VError, match="not a WebVid CSV: no videoid, name column"):
        WebVidDataset(tmp_path / "x.csv", tmp_path, SAMPLING)
    with pytest.raises(T2VError, match="WebVid CSV not found: .*nope.csv"):
        WebVidDataset(tmp_path / "nope.csv", tmp_path, SAMPLING)
    with pytest.raises(T2VError, match="video folder not found: .*novids"):
        WebVidDataset(assets / "webvid" / "test_webvid.csv", tmp_path / "novids", SAMPLING)


def test_batches_are_b_c_f_h_w_and_frame_folders_take_their_rate(tmp_path):
    from torch.utils.data import DataLoader

    root = _folder(tmp_path)
    ds = CaptionFolderDataset(root, SAMPLING, folder_fps=4)
    assert ds[2]["fps"] == 2.0  # frames folder at 4 fps, every 2nd frame
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert batch["video"].shape == (3, 3, 4, 16, 16) and batch["caption"][0] == "a drifting gradient"
