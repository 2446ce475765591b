"""Video-MME: videomme/videomme/test.json (the rows of the release's test parquet) and videomme/data/<videoID>.mp4.

The release (lmms-lab/Video-MME on the hub, the files lmms-eval's `videomme` task reads) has one row per
question: video_id ("001"), duration (short / medium / long), domain, sub_category, url, videoID (the file name
under data/), question_id ("001-1"), task_type, question, options (["A. ...", "B. ...", "C. ...", "D. ..."]) and
answer (the letter); three questions per video. The sample videos are a few synthetic scenes shown in turn,
each for a few seconds; the questions ask about one part of the video or about when something is shown.
"""

from __future__ import annotations

import importlib.util
import random
import string
from collections import Counter
from pathlib import Path

from llava.data.layouts.common import Summary, draw_scene, rng_for, write_json
from llava.data.questions import LETTERS, ask_mc
from llava.data.scenes import COLORS, KINDS, Scene
from llava.data.shapes import encode, render

QUESTIONS_PER_VIDEO = 3  # as in Video-MME (900 videos, 2,700 questions)
SEGMENTS = ("At the beginning of the video", "In the middle of the video", "At the end of the video")
FRAMES_PER_SEGMENT = 2
FRAME_RATE = 1  # frames per second: each scene is shown for FRAMES_PER_SEGMENT seconds
FRAME_SIZE = 224  # px; scenes are rendered at 336 and scaled down to keep the committed videos small
DURATIONS = ("short", "medium", "long")
# (domain, sub-category) pairs of the release's taxonomy (six domains, 30 sub-categories); one per domain.
DOMAINS = (("Knowledge", "Astronomy"), ("Film & Television", "Animation"), ("Sports Competition", "Basketball"),
           ("Artistic Performance", "Magic Show"), ("Life Record", "Daily Life"), ("Multilingual", "Multilingual"))
# Video-MME's task type for each kind of question asked about one part of the video.
TASK_TYPES = {"color": "Attribute Perception", "shape": "Object Recognition", "count": "Counting Problem",
              "position": "Spatial Perception", "relation": "Spatial Reasoning"}
WHEN_OPTIONS = ("At the beginning of the video.", "In the middle of the video.", "At the end of the video.",
                "It is not shown in the video.")
ID_CHARACTERS = string.ascii_letters + string.digits + "-_"  # a YouTube id's alphabet, as videoID holds


def has_video_encoder() -> bool:
    return importlib.util.find_spec("av") is not None


def _option(letter: str, text: str) -> str:
    return f"{letter}. {text[0].upper()}{text[1:]}" + ("" if text.endswith(".") else ".")


def _about_a_part(scenes: list[Scene], rng: random.Random, bases: list[str]) -> tuple[str, list[str], str, str]:
    """A multiple-choice question about what one part of the video shows."""
    while True:
        segment, base = rng.randrange(len(scenes)), rng.choice(bases)
        qa = ask_mc(scenes[segment], rng, base=base, hint="")
        if qa is not None:
            bases.remove(base)  # the video's questions are of different kinds
            question = f"{SEGMENTS[segment]}, {qa.question[0].lower()}{qa.question[1:]}"
            return question, [_option(LETTERS[i], o) for i, o in enumerate(qa.options)], qa.answer, TASK_TYPES[base]


def _when(scenes: list[Scene], rng: random.Random) -> tuple[str, list[str], str, str] | None:
    """When a shape is shown: in exactly one part of the video, or not at all."""
    shown = [{(s.color, s.kind) for s in scene.shapes} for scene in scenes]
    segment = rng.randrange(len(scenes) + 1)
    if segment == len(scenes):
        candidates = sorted({(c, k) for c in COLORS for k in KINDS} - set().union(*shown))
    else:
        candidates = sorted(o for o in shown[segment] if sum(o in other for other in shown) == 1)
    if not candidates:
        return None
    color, kind = rng.choice(candidates)
    options = [_option(LETTERS[i], o) for i, o in enumerate(WHEN_OPTIONS)]
    article = "an" if color[0] in "aeiou" else "a"
    return f"When is {article} {color} {kind} shown in the video?", options, LETTERS[segment], "Temporal Perception"


def _video_id(rng: random.Random, used: set[str]) -> str:
    while True:
        name = "".join(rng.choice(ID_CHARACTERS) for _ in range(11))
        if name not in used and not name.startswith("-"):  # a leading dash would read as a flag
            used.add(name)
            return name


def _write_video(root: Path, video_id: str, scenes: list[Scene], truth: dict[str, Scene]) -> str:
    """The scenes in turn as <videoID>.mp4 (PyAV installed) or as a folder of PNG frames at the scenes' own size
    (lossless, so their pixels can be checked against the scenes); its path under root."""
    shown = [scene for scene in scenes for _ in range(FRAMES_PER_SEGMENT)]
    frames = [render(scene) for scene in shown]
    if has_video_encoder():
        from llava.video import write_video

        relative = f"videomme/data/{video_id}.mp4"
        write_video(root / relative, [frame.resize((FRAME_SIZE, FRAME_SIZE)) for frame in frames], FRAME_RATE)
        truth.update({f"{relative}#{k}": scene for k, scene in enumerate(shown)})  # frame k shows this scene
        return relative
    relative = f"videomme/data/{video_id}"
    (root / relative).mkdir(parents=True, exist_ok=True)
    for k, (frame, scene) in enumerate(zip(frames, shown)):
        (root / relative / f"{k:05d}.png").write_bytes(encode(frame, "png"))
        truth[f"{relative}/{k:05d}.png"] = scene
    return relative


def write_videomme(root: Path, seed: int, n: int) -> Summary:
    """About n questions, three per video, over ceil(n / 3) videos of three scenes each."""
    rng, seen, used, truth, rows, answers = rng_for(seed, "videomme"), set(), set(), {}, [], Counter()
    for v in range(-(-n // QUESTIONS_PER_VIDEO)):
        scenes = [draw_scene(rng, lambda s: True, seen)[0] for _ in SEGMENTS]
        video_id = _video_id(rng, used)
        _write_video(root, video_id, scenes, truth)
        bases = list(TASK_TYPES)
        asked = [_about_a_part(scenes, rng, bases), _about_a_part(scenes, rng, bases)]
        when = None
        while when is None:
            when = _when(scenes, rng)
        asked.append(when)
        domain, sub_category = DOMAINS[v % len(DOMAINS)]
        for q, (question, options, answer, task_type) in enumerate(asked, 1):
            rows.append({"video_id": f"{v + 1:03d}", "duration": DURATIONS[v % len(DURATIONS)], "domain": domain,
                         "sub_category": sub_category, "url": "", "videoID": video_id,
                         "question_id": f"{v + 1:03d}-{q}", "task_type": task_type, "question": question,
                         "options": options, "answer": answer})
            answers[answer] += 1
    write_json(root / "videomme" / "videomme" / "test.json", rows, indent=1)
    videos = "videomme/data/<videoID>.mp4" if has_video_encoder() else "videomme/data/<videoID>/<frame>.png"
    return Summary(
        "Video-MME", ["videomme/videomme/test.json", videos], len(rows),
        answers, ["a constant letter: 25% on average (four options)"],
        [f"{len(rows) // QUESTIONS_PER_VIDEO} videos of {len(SEGMENTS)} scenes, each shown for "
         f"{FRAMES_PER_SEGMENT} s at {FRAME_RATE} frame per second ({FRAME_SIZE}x{FRAME_SIZE}); the duration "
         "labels (short / medium / long) and domains are given in turn so that every group is scored, the videos "
         "themselves are all a few seconds long",
         "Rows as the release's test parquet: {video_id, duration, domain, sub_category, url, videoID, "
         "question_id, task_type, question, options, answer}; task types: " + ", ".join(
             sorted(set(TASK_TYPES.values()) | {"Temporal Perception"})) + " (the release has twelve)"],
        scenes=truth)
