"""llava.video: frames sampled by lmms-eval's rule (hand-computed indices), their timestamps, and clear errors."""

import sys

import numpy as np
import pytest
from PIL import Image

from llava.video import MissingVideoDecoder, find_video, load_video, sample_indices, write_video

pytest.importorskip("av")

FRAME_RATE = 5
TOTAL = 10


def gray(level: int) -> Image.Image:
    return Image.new("RGB", (32, 32), (level, level, level))


def level_of(frame: Image.Image) -> int:
    """Which frame this is: frame k is a flat gray of 20 * k (H.264 keeps a flat frame within a few levels)."""
    return round(float(np.asarray(frame, dtype=float).mean()) / 20)


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_video(path, [gray(20 * k) for k in range(TOTAL)], FRAME_RATE)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("frames")
    for k in reversed(range(TOTAL)):  # written out of order: the names give the order
        gray(20 * k).save(path / f"{k:05d}.png")
    (path / "notes.txt").write_text("not a frame")
    return path


# (max_frames, fps, the indices by hand): n = min(10, max_frames, int(10 / 5 * fps)), at least 1;
# indices = floor(linspace(0, 9, n)).
CASES = [
    (4, None, [0, 3, 6, 9]),
    (3, None, [0, 4, 9]),  # 4.5 -> 4
    (32, None, list(range(10))),  # more asked than there are: all of them
    (8, 1.0, [0, 9]),  # 2 s of video at 1 frame per second: 2 frames
    (8, 2.0, [0, 3, 6, 9]),  # 4 frames
    (2, 4.0, [0, 9]),  # max_frames is the tighter bound
    (8, 0.1, [0]),  # int(0.2) = 0 -> at least one frame
    (1, None, [0]),
]


@pytest.mark.parametrize("max_frames, fps, expected", CASES)
def test_sample_indices_follow_lmms_evals_rule(max_frames, fps, expected):
    assert sample_indices(TOTAL, FRAME_RATE, max_frames, fps) == expected


@pytest.mark.parametrize("max_frames, fps, expected", CASES)
def test_mp4_frames_and_timestamps(mp4, max_frames, fps, expected):
    video = load_video(mp4, max_frames=max_frames, fps=fps)
    assert [level_of(f) for f in video.frames] == expected
    assert video.timestamps == pytest.approx([k / FRAME_RATE for k in expected])
    assert video.fps == pytest.approx(len(expected) / TOTAL * FRAME_RATE)
    assert all(f.mode == "RGB" and f.size == (32, 32) for f in video.frames)
    assert video.source == str(mp4)


@pytest.mark.parametrize("max_frames, fps, expected", CASES)
def test_frame_folder_and_list(folder, max_frames, fps, expected):
    video = load_video(folder, max_frames=max_frames, fps=fps, frame_rate=FRAME_RATE)
    assert [level_of(f) for f in video.frames] == expected  # sorted by name, the text file left out
    assert video.timestamps == pytest.approx([k / FRAME_RATE for k in expected])
    frames = [gray(20 * k) for k in range(TOTAL)]
    listed = load_video(frames, max_frames=max_frames, fps=fps, frame_rate=FRAME_RATE)
    assert [level_of(f) for f in listed.frames] == expected
    assert listed.timestamps == video.timestamps and listed.fps == video.fps


def test_the_same_frames_as_lmms_evals_pyav_reader(mp4):
    load_video_module = pytest.importorskip("lmms_eval.models.model_utils.load_video")
    for max_frames, fps, _ in CASES[:6]:
        theirs = load_video_module.read_video(str(mp4), num_frm=max_frames, fps=fps)
        ours = load_video(mp4, max_frames=max_frames, fps=fps)
        assert np.array_equal(np.stack([np.asarray(f) for f in ours.frames]), theirs)


def test_errors_name_the_source(tmp_path, folder):
    with pytest.raises(FileNotFoundError, match="video not found: .*missing.mp4"):
        load_video(tmp_path / "missing.mp4", max_frames=4)
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="bad.mp4"):
        load_video(tmp_path / "bad.mp4", max_frames=4)
    with pytest.raises(ValueError, match="give frame_rate"):
        load_video(folder, max_frames=4)
    with pytest.raises(ValueError, match="max_frames must be at least 1"):
        load_video(folder, max_frames=0, frame_rate=1)
    with pytest.raises(ValueError, match="fps must be positive"):
        load_video(folder, max_frames=4, fps=0, frame_rate=1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no frame images"):
        load_video(tmp_path / "empty", max_frames=4, frame_rate=1)


def test_without_pyav_a_file_asks_for_the_video_extra(mp4, folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # import av now fails
    with pytest.raises(MissingVideoDecoder, match=r"pip install 'llava-dart\[video\]'"):
        load_video(mp4, max_frames=4)
    assert len(load_video(folder, max_frames=4, frame_rate=1).frames) == 4  # frames need no decoder


def test_find_video_looks_where_lmms_eval_looks(tmp_path):
    assert find_video(str(tmp_path), "abc") == str(tmp_path / "abc.mp4")  # none: the .mp4 (its error names it)
    (tmp_path / "abc").mkdir()
    assert find_video(str(tmp_path), "abc") == str(tmp_path / "abc")
    (tmp_path / "abc.mkv").write_bytes(b"")
    assert find_video(str(tmp_path), "abc") == str(tmp_path / "abc.mkv")
    (tmp_path / "abc.mp4").write_bytes(b"")
    assert find_video(str(tmp_path), "abc") == str(tmp_path / "abc.mp4")


def test_written_videos_are_reproducible(tmp_path):
    frames = [gray(20 * k) for k in range(4)]
    write_video(tmp_path / "a.mp4", frames, 2)
    write_video(tmp_path / "b.mp4", frames, 2)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()
