r"""Video-MME answers (multiple choice about a video; the release's test parquet, or its rows as JSON / JSONL).

    python -m llava.eval.benchmarks.videomme.worker --model-path Qwen/Qwen2-VL-7B-Instruct \
        --question-file ./playground/data/eval/videomme/videomme/test-00000-of-00001.parquet \
        --video-folder ./playground/data/eval/videomme/data \
        --answers-file A.jsonl --temperature 0 [--max_num_frames 32] [--fps 1] [DART flags]

Each question row names its video by `videoID`: <video-folder>/<videoID>.mp4 (else .MP4 or .mkv, as lmms-eval's
Video-MME task looks for it, else a folder of frames <videoID>/, taken at --frame-rate). Frames are sampled as
lmms-eval samples them (`llava.video`): at most --max_num_frames (lmms-eval's Qwen models' `max_num_frames`,
default 32), spread uniformly, and with --fps at most that many per second. The video goes before the question.

The prompt is lmms-eval's `videomme` task's (`videomme_doc_to_text` with its default post_prompt; its text says
"and the subtitles" although this task gives none), at most 16 new tokens as its generation_kwargs say; with
--prompt official it is the Video-MME README's prompt for the subtitle-free setting. `llava.eval.benchmarks.videomme.scorer`
scores the answers (`question_id` is the row's, e.g. "001-1").
"""

from __future__ import annotations

import argparse
import os
import sys

from llava.eval.core.common import Task, main as run_main
from llava.eval.benchmarks.videomme.scorer import read_parquet
from llava.eval.core.questions import Item, QuestionFileError, Row, read_json_list, read_jsonl
from llava.eval.core.scoring_io import ScoringInputError
from llava.video import MissingVideoDecoder, VideoRef, add_sampling_arguments, find_video, require_decoder

# lmms-eval's lmms_eval/tasks/videomme/utils.py (`videomme_doc_to_text`) and videomme.yaml (default post_prompt).
LMMS_EVAL_PRE_PROMPT = ("Select the best answer to the following multiple-choice question based on the video and the "
                        "subtitles. Respond with only the letter (A, B, C, or D) of the correct option.")
LMMS_EVAL_POST_PROMPT = "\nAnswer with the option's letter from the given choices directly."
# The Video-MME README's prompt, "without subtitles".
OFFICIAL_PRE_PROMPT = ("Select the best answer to the following multiple-choice question based on the video. "
                       "Respond with only the letter (A, B, C, or D) of the correct option.")
OFFICIAL_POST_PROMPT = "The best answer is:"
PROMPTS = {"lmms_eval": (LMMS_EVAL_PRE_PROMPT, LMMS_EVAL_POST_PROMPT), "official": (OFFICIAL_PRE_PROMPT, OFFICIAL_POST_PROMPT)}


def read_videomme(path: str) -> list[Row]:
    """The question rows: the release's parquet (needs pyarrow), a JSON list of its rows, or JSONL."""
    if path.endswith(".parquet"):
        try:
            return [Row(f"{path}[{i}]", row) for i, row in enumerate(read_parquet(path))]
        except ScoringInputError as exc:
            raise QuestionFileError(str(exc)) from None
    return read_jsonl(path) if path.endswith(".jsonl") else read_json_list(path)


def videomme_prompt(row: Row, style: str) -> str:
    """lmms-eval's layout: pre-prompt, question, one option per line, post-prompt, joined by line breaks."""
    options = row.data["options"]
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise QuestionFileError(f"{row.location}: field 'options' must be a list of strings like \"A. ...\"")
    pre, post = PROMPTS[style]
    return "\n".join([pre, row.text("question"), *options, post])


def videomme_items(row: Row, args: argparse.Namespace) -> list[Item]:
    row.require("question_id", "videoID", "question", "options")
    folder = os.path.expanduser(args.video_folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"video folder not found: {folder!r} (give --video-folder, Video-MME's data/)")
    path = find_video(folder, row.text("videoID"))
    if not os.path.isdir(path):
        try:
            require_decoder()
        except MissingVideoDecoder as exc:
            raise ValueError(str(exc)) from None
    text = videomme_prompt(row, args.prompt)
    video = VideoRef(path, max_frames=args.max_frames, fps=args.fps, frame_rate=args.frame_rate)
    return [Item({"question_id": row.key("question_id"), "prompt": text}, text, videos=(video,))]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video-folder", default="", help="Video-MME's data/ folder (<videoID>.mp4)")
    add_sampling_arguments(parser)
    parser.add_argument("--prompt", choices=sorted(PROMPTS), default="lmms_eval",
                        help="lmms_eval: lmms-eval's videomme task (default); official: the Video-MME README's")


TASK = Task(description=__doc__, read_questions=read_videomme, to_items=videomme_items, max_new_tokens=16,
            num_workers=4, add_arguments=add_arguments)


def main(argv=None) -> int:
    return run_main(TASK, argv)


if __name__ == "__main__":
    sys.exit(main())
