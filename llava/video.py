"""Videos for the models that take them: a video file, a folder of frames or a list of frames -> `Video`.

    video = load_video("videomme/data/fFjv93ACGo8.mp4", max_frames=32)          # 32 frames, uniformly spread
    video = load_video("videomme/data/fFjv93ACGo8.mp4", max_frames=32, fps=1)   # at most one per second
    video = load_video("frames/clip_001/", max_frames=8, frame_rate=2)         # 00001.jpg, 00002.jpg, ...

Frames are sampled as lmms-eval samples them for these models (`lmms_eval/models/model_utils/load_video.py`:
`read_video`, its PyAV reader, and `_compute_sample_count`; LLaVA-OneVision's decord reader takes the same
`linspace` indices without the fps cap), so that a model sees the frames it would see there:

    n = min(total_frames, max_frames)
    if fps is given:  n = min(n, int(total_frames / frame_rate * fps))       # at most `fps` frames per second
    n = max(1, n)                                                             # (lmms-eval's _compute_sample_count)
    indices = numpy.linspace(0, total_frames - 1, n, dtype=int)              # first and last frame included

`total_frames` is the stream's frame count and `frame_rate` its average rate, as lmms-eval reads them; where the
container does not state the count, every frame is decoded and counted (lmms-eval's packet fallback). A frame's
timestamp is its presentation time in seconds from the first frame (index / frame_rate for a folder or a list).
`Video.fps` is the rate of the sampled frames, n / total_frames * frame_rate, as qwen_vl_utils gives it to
Qwen's processors (`sample_fps`). lmms-eval's Qwen2-VL / Qwen2.5-VL wrappers subsample the frames qwen_vl_utils
read with the same `linspace` rule over `max_num_frames`.

Decoding a file needs PyAV (`pip install 'llava-dart[video]'`), imported only when a file is read.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from llava.model.families.base import Video

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# Where lmms-eval's Video-MME task looks for a video besides <id>.mp4 (`videomme_doc_to_visual`).
VIDEO_SUFFIXES = (".mp4", ".MP4", ".mkv")
INSTALL_HINT = "pip install 'llava-dart[video]'"


class MissingVideoDecoder(ModuleNotFoundError):
    """PyAV is not installed: video files cannot be decoded."""


def _pyav():
    try:
        import av
    except ModuleNotFoundError as exc:
        raise MissingVideoDecoder(f"decoding video files needs PyAV: {INSTALL_HINT}") from exc
    return av


def require_decoder() -> None:
    """Fail now, with the install hint, rather than on every video of a run."""
    _pyav()


def sample_indices(total_frames: int, frame_rate: float, max_frames: int, fps: float | None = None) -> list[int]:
    """The indices lmms-eval's `read_video` keeps of `total_frames` frames shown at `frame_rate` (see above)."""
    if total_frames < 1:
        raise ValueError("the video has no frames")
    n = min(total_frames, max_frames)
    if fps is not None:
        n = min(n, int(total_frames / frame_rate * fps))
    return np.linspace(0, total_frames - 1, max(1, n), dtype=int).tolist()


def _check_settings(max_frames: int, fps: float | None, frame_rate: float | None) -> None:
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    if fps is not None and fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if frame_rate is not None and frame_rate <= 0:
        raise ValueError(f"frame_rate must be positive, got {frame_rate}")


def _from_frames(frames: Sequence[Image.Image], source: str, max_frames: int, fps: float | None,
                 frame_rate: float | None) -> Video:
    if frame_rate is None:
        raise ValueError(f"{source}: give frame_rate, the rate the frames were taken at (frames per second)")
    indices = sample_indices(len(frames), frame_rate, max_frames, fps)
    return Video(frames=[frames[i].convert("RGB") for i in indices], timestamps=[i / frame_rate for i in indices],
                 fps=len(indices) / len(frames) * frame_rate, source=source)


def _frame_folder(folder: Path) -> list[Image.Image]:
    names = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    if not names:
        raise ValueError(f"{folder}: no frame images ({', '.join(FRAME_SUFFIXES)}) in the folder")
    frames = []
    for path in names:
        try:
            with Image.open(path) as image:
                frames.append(image.convert("RGB"))
        except (OSError, SyntaxError) as exc:  # PIL raises both for unreadable files
            raise ValueError(f"cannot read frame {path}: {exc}") from exc
    return frames


def _from_file(path: Path, max_frames: int, fps: float | None, frame_rate: float | None) -> Video:
    av = _pyav()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = float(stream.average_rate) if stream.average_rate else frame_rate
            if rate is None:
                raise ValueError(f"{path}: the container does not say its frame rate; give frame_rate")
            total = int(stream.frames or 0)
            if total < 1:  # no count in the container: decode them all, as lmms-eval's packet fallback does
                frames = list(container.decode(stream))
                indices = sample_indices(len(frames), rate, max_frames, fps)
                chosen, first = [frames[i] for i in indices], frames[0] if frames else None
                total = len(frames)
            else:
                indices = sample_indices(total, rate, max_frames, fps)
                chosen, first = _decode_indices(container, stream, indices)
            if len(chosen) < len(indices):
                raise ValueError(f"{path}: the container says {total} frames but only {len(chosen)} of the "
                                 f"{len(indices)} sampled ones could be decoded")
            start = first.time if first is not None and first.time is not None else 0.0
            timestamps = [f.time - start if f.time is not None else i / rate for f, i in zip(chosen, indices)]
            images = [f.to_image().convert("RGB") for f in chosen]
    except av.FFmpegError as exc:
        raise ValueError(f"cannot decode {path}: {exc}") from exc
    return Video(frames=images, timestamps=timestamps, fps=len(indices) / total * rate, source=str(path))


def _decode_indices(container, stream, indices: list[int]):
    """The frames at `indices` (ascending), decoding from the start and stopping after the last one (as
    lmms-eval's `record_video_length_stream` does), and the first frame (for the time origin)."""
    wanted, last = set(indices), indices[-1]
    chosen, first = [], None
    for i, frame in enumerate(container.decode(stream)):
        if i == 0:
            first = frame
        if i in wanted:
            chosen.append(frame)
        if i >= last:
            break
    return chosen, first


def load_video(source: str | os.PathLike | Sequence[Image.Image], *, max_frames: int, fps: float | None = None,
               frame_rate: float | None = None) -> Video:
    """A video, its frames sampled by lmms-eval's rule (module docstring).

    source: a video file (decoded with PyAV), a folder of frame images (taken in order of their names) or a
        list of PIL images.
    max_frames: the most frames to keep (lmms-eval's `max_num_frames` / `max_frames_num`).
    fps: keep at most this many frames per second of video (lmms-eval's `fps`); None: `max_frames` alone.
    frame_rate: the rate a folder's or a list's frames were taken at (frames per second); for a file, used only
        where its container does not say.
    FileNotFoundError for a path that does not exist, ValueError for one that cannot be read (both name it),
    MissingVideoDecoder when a file needs PyAV and it is not installed.
    """
    _check_settings(max_frames, fps, frame_rate)
    if not isinstance(source, (str, os.PathLike)):
        return _from_frames(list(source), "frames", max_frames, fps, frame_rate)
    path = Path(source).expanduser()
    if path.is_dir():
        return _from_frames(_frame_folder(path), str(path), max_frames, fps, frame_rate)
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    return _from_file(path, max_frames, fps, frame_rate)


def add_sampling_arguments(parser: argparse.ArgumentParser, frames_default: int = 32) -> None:
    """The frame-sampling flags every video command takes, under lmms-eval's names and ours (`max_frames`, `fps`,
    `frame_rate` in the namespace)."""
    parser.add_argument("--max-frames", "--max_num_frames", dest="max_frames", type=int, default=frames_default,
                        help=f"frames sampled per video, uniformly (lmms-eval's max_num_frames; default "
                             f"{frames_default})")
    parser.add_argument("--fps", type=float, default=None,
                        help="at most this many sampled frames per second of video (lmms-eval's fps; default: "
                             "--max-frames alone)")
    parser.add_argument("--frame-rate", type=float, default=1.0,
                        help="the rate of videos given as folders of frames, frames per second (default 1)")


def find_video(folder: str, video_id: str) -> str:
    """Where video `video_id` lies in `folder`: <id>.mp4, else .MP4 or .mkv (as lmms-eval's Video-MME task
    looks), else a folder of frames <id>/; <id>.mp4 when none exists (opening it then says it is missing)."""
    base = os.path.join(folder, video_id)
    for suffix in VIDEO_SUFFIXES:
        if os.path.isfile(base + suffix):
            return base + suffix
    return base if os.path.isdir(base) else base + VIDEO_SUFFIXES[0]


@dataclasses.dataclass(frozen=True)
class VideoRef:
    """A video of a question, loaded when the question is prepared (see `load_video` for the arguments)."""

    path: str
    max_frames: int
    fps: float | None = None
    frame_rate: float | None = None

    def describe(self) -> str:
        return self.path

    def open(self) -> Video:
        return load_video(self.path, max_frames=self.max_frames, fps=self.fps, frame_rate=self.frame_rate)


def write_video(path: str | os.PathLike, frames: Sequence[Image.Image], frame_rate: int) -> None:
    """Write `frames` (same size, even sides) as an H.264 MP4 shown at `frame_rate` frames per second.

    The same frames give the same bytes: one encoder thread and FFmpeg's bitexact flags (no library version in
    the file), so generated sample sets are reproducible with a given PyAV.
    """
    av = _pyav()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = frames[0].size
    with av.open(str(path), "w", format="mp4", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libx264", rate=frame_rate, options={"threads": "1"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_image(image.convert("RGB"))):
                container.mux(packet)
        for packet in stream.encode():  # flush the encoder's delayed frames
            container.mux(packet)
