r"""Ask one question about one (or several) image(s) or video(s) from the command line.

    python -m llava.eval.cli.run_llava --image-file playground/data/eval/gqa/data/images/n000679.jpg \
        --query "What shape is at the top left?" --sparse        # the embedded default, with DART
    python -m llava.eval.cli.run_llava --model-path PATH --image-file IMG --query "What is shown?" \
        [--conv-mode vicuna_v1] [--sparse --pruned_layer 2 --max_num_trunction 128 ...]
    python -m llava.eval.cli.run_llava --model-path Qwen/Qwen2-VL-7B-Instruct --image-file IMG --query "..." \
        --sparse --reduction_ratio 0.778        # Qwen2-VL / Qwen2.5-VL: the budget is the ratio alone
    python -m llava.eval.cli.run_llava --model-path Qwen/Qwen2-VL-7B-Instruct --video-file clip.mp4 --query "..." \
        [--max-frames 32] [--fps 1]             # families that take videos (docs/Families.md)

Videos go first in the prompt, then the images, then the question. Their frames are sampled as lmms-eval samples
them (`llava.video`): at most --max-frames, spread uniformly, and with --fps at most that many per second; a folder
of frame images is a video taken at --frame-rate. DART prunes each video's span as it prunes an image's, and the
log line's counts are the visual tokens of both.

The embedded default was trained on LLaVA-1.5's short-answer prompts only: questions to it get the
short-answer instruction added (logged), and open questions ("Describe the image.") get poor answers.
"""

from __future__ import annotations

import argparse
import logging
import sys

import torch

from llava.constants import DEFAULT_MODEL_PATH
from llava.eval.core.common import check_takes_video, generate_answers, generation_kwargs, load_model
from llava.eval.core.pruning_args import add_pruning_args
from llava.eval.core.prompting import EMBEDDED_DEFAULT_NOTICE, check_conv_mode, is_embedded_default, with_answer_instruction
from llava.mm_utils import get_model_name_from_path, load_image
from llava.model import PruningRecord
from llava.pruning_settings import METHOD_LABELS
from llava.video import MissingVideoDecoder, add_sampling_arguments, load_video

logger = logging.getLogger("llava.run_llava")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-path", default=DEFAULT_MODEL_PATH, help="default: the embedded tiny model")
    parser.add_argument("--model-base", default=None)
    parser.add_argument("--image-file", default=None, help="an image path or URL; several separated by --sep")
    parser.add_argument("--video-file", action="append", default=[],
                        help="a video file or a folder of frames; repeat it, or separate several by --sep (give "
                             "--image-file, --video-file or both)")
    add_sampling_arguments(parser)
    parser.add_argument("--query", required=True)
    parser.add_argument("--conv-mode", default=None,
                        help="LLaVA conversation template (default: the one the checkpoint records, else guessed from its "
                        "name; families with a chat template use it: docs/Families.md)")
    parser.add_argument("--sep", default=",")
    parser.add_argument("--temperature", type=float, default=0.2)
    parser.add_argument("--top_p", type=float, default=None)
    parser.add_argument("--num_beams", type=int, default=1)
    parser.add_argument("--max_new_tokens", type=int, default=512)
    parser.add_argument("--device", default="cuda", help="cuda (falls back to cpu when unavailable) or cpu")
    parser.add_argument("--seed", type=int, default=0)
    add_pruning_args(parser)
    args = parser.parse_args(argv)
    if not args.image_file and not args.video_file:
        parser.error("give --image-file, --video-file or both")
    return args


def video_paths(args: argparse.Namespace) -> list[str]:
    """--video-file's paths: every use of the flag, each split at --sep."""
    return [path for value in args.video_file for path in value.split(args.sep) if path]


def answer(args: argparse.Namespace) -> tuple[str, PruningRecord, float]:
    """Load the model, ask the question; returns (answer, pruning record, seconds spent generating)."""
    if args.conv_mode:
        check_conv_mode(args.conv_mode)  # an unknown name fails before the model loads
    images = [load_image(path) for path in args.image_file.split(args.sep)] if args.image_file else []
    paths = video_paths(args)
    if paths:
        check_takes_video(args.model_path)  # from the config: a family without videos fails before any decoding
    videos = [load_video(path, max_frames=args.max_frames, fps=args.fps, frame_rate=args.frame_rate)
              for path in paths]
    loaded = load_model(args, args.device)
    conv_mode = loaded.conv_mode(args.conv_mode, get_model_name_from_path(args.model_path))
    query = with_answer_instruction(args.query) if is_embedded_default(args.model_path) else args.query
    if query != args.query:
        logger.info(EMBEDDED_DEFAULT_NOTICE)
    inputs = loaded.question_inputs(query, images, conv_mode, videos)
    torch.manual_seed(args.seed)
    (answer,) = generate_answers(loaded, [inputs], generation_kwargs(args))
    return answer.text, answer.record, answer.seconds


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        text, record, seconds = answer(args)
    except (FileNotFoundError, ValueError, MissingVideoDecoder) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(text)
    # The record counts every vision span, videos' included: with a video they are visual tokens, not images'.
    tokens = "visual tokens" if args.video_file else "image tokens"
    kept, total = record.num_kept_image_tokens(), record.num_image_tokens()
    if args.sparse:
        method = METHOD_LABELS.get(args.pruning_method, args.pruning_method)
        logger.info("%s kept %d of %d %s (%.1f%% pruned) in %.2fs", method, kept, total, tokens,
                    100 * (1 - kept / max(total, 1)), seconds)
    else:
        logger.info("no pruning: %d %s, %.2fs", total, tokens, seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
