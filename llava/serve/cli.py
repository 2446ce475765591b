r"""Chat about an image (or a video) in the terminal, with DART pruning.

    python -m llava.serve.cli --image-file playground/data/eval/gqa/data/images/n000679.jpg --sparse
    python -m llava.serve.cli --image-file view.jpg [--model-path PATH] [--conv-mode llava_v1] \
        [--sparse --pruned_layer 2 --max_num_trunction 128 --pivot_image_token 4 --pivot_text_token 4]
    python -m llava.serve.cli --image-file view.jpg --model-path Qwen/Qwen2-VL-7B-Instruct --sparse --reduction_ratio 0.778
    python -m llava.serve.cli --video-file clip.mp4 --model-path Qwen/Qwen2-VL-7B-Instruct [--max-frames 32] [--fps 1]

Type a question after the prompt; the answer streams in, followed by a line with the image tokens DART
kept and the prefill time. An empty line or end of input (Ctrl-D) ends the chat. The image goes with the
first question; later questions continue the same conversation (as LLaVA's CLI), and each turn's prompt,
image included, is prefilled (and pruned) again. The embedded default (no --model-path) answers short
questions about its generated scenes ("What color is the star?", "Is there a blue circle in the image?",
"How many red shapes are there?"): each question gets the short-answer instruction it was trained with.

A video (`--video-file`, for the families that take videos: docs/Families.md) goes with the first question as the
image does, in front of it (and of the image, if both are given); its frames are sampled as `llava.eval.cli.run_llava`
samples them (--max-frames, --fps, --frame-rate), so a first turn gets run_llava's answer.
"""

from __future__ import annotations

import argparse
import logging
import sys

import torch

from llava.constants import DEFAULT_MODEL_PATH
from llava.conversation import get_conv_template
from llava.eval.core.prompting import (
    CHAT_TEMPLATE,
    EMBEDDED_DEFAULT_NOTICE,
    check_conv_mode,
    insert_image_tokens,
    is_embedded_default,
    with_answer_instruction,
)
from llava.eval.core.common import check_takes_video
from llava.eval.core.pruning_args import add_pruning_args, dart_config_from_args
from llava.mm_utils import get_model_name_from_path, load_image
from llava.model.families import PromptError, load_model
from llava.pruning_settings import method_label
from llava.video import MissingVideoDecoder, add_sampling_arguments, load_video
from llava.serve.inference import SamplingParams, StreamedGeneration, fit_to_context

logger = logging.getLogger("llava.serve.cli")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-path", default=DEFAULT_MODEL_PATH, help="default: the embedded tiny model")
    parser.add_argument("--model-base", default=None)
    parser.add_argument("--image-file", default=None, help="an image path or http(s) URL")
    parser.add_argument("--video-file", action="append", default=[],
                        help="a video file or a folder of frames; repeat it, or separate several by commas (give "
                             "--image-file, --video-file or both)")
    add_sampling_arguments(parser)
    parser.add_argument("--device", default="cuda", help="cuda (falls back to the CPU when unavailable) or cpu")
    parser.add_argument("--conv-mode", default=None, help="conversation template (default: the one the checkpoint records, else guessed from its name)")
    parser.add_argument("--temperature", type=float, default=0.2, help="0 means greedy decoding")
    parser.add_argument("--top_p", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--load-8bit", action="store_true")
    parser.add_argument("--load-4bit", action="store_true")
    parser.add_argument("--seed", type=int, default=0, help="torch seed, for sampling")
    parser.add_argument("--debug", action="store_true", help="also print each prompt")
    add_pruning_args(parser)
    args = parser.parse_args(argv)
    if not args.image_file and not args.video_file:
        parser.error("give --image-file, --video-file or both")
    return args


def pruning_line(pruning: dict) -> str:
    kept, total = pruning["kept_image_tokens"], pruning["image_tokens"]
    prefill = pruning["prefill_seconds"]
    timing = f", prefill {prefill:.3f} s" if prefill is not None else ""
    if pruning["pruned"]:
        return f"[{method_label(pruning.get('config'))} kept {kept} of {total} image tokens ({100 * (1 - kept / max(total, 1)):.1f}% pruned){timing}]"
    return f"[no pruning: {total} image tokens{timing}]"


def read_question(prompt: str, stdin, stdout) -> str | None:
    """The next question, or None when the user ends the chat (an empty line or end of input)."""
    stdout.write(prompt)
    stdout.flush()
    line = stdin.readline()
    question = line.strip()
    if not question:
        stdout.write("\n" if not line else "")
        return None
    return question


def stream_answer(generation: StreamedGeneration, stdout):
    """Write the answer as it streams, then its pruning line; the report, or None (error written) on failure."""
    for delta in generation.start():
        stdout.write(delta)
        stdout.flush()
    if generation.error is not None:
        stdout.write(f"\nerror: generation failed: {generation.error}\n")
        return None
    stdout.write("\n" + pruning_line(generation.report.pruning()) + "\n")
    return generation.report


def chat(args: argparse.Namespace, stdin=sys.stdin, stdout=sys.stdout) -> int:
    if args.conv_mode:
        check_conv_mode(args.conv_mode)  # an unknown name fails before the model loads
    images = [load_image(args.image_file)] if args.image_file else []
    paths = [path for value in args.video_file for path in value.split(",") if path]
    if paths:
        check_takes_video(args.model_path)  # from the config: a family without videos fails before any decoding
    videos = [load_video(path, max_frames=args.max_frames, fps=args.fps, frame_rate=args.frame_rate)
              for path in paths]
    model_name = get_model_name_from_path(args.model_path.rstrip("/"))
    loaded = load_model(args.model_path, args.model_base, model_name=model_name, load_8bit=args.load_8bit,
                        load_4bit=args.load_4bit, device=args.device, attn_implementation=args.attn_implementation)
    dart_config = dart_config_from_args(args, loaded.model.config.get_text_config().num_hidden_layers)
    conv_mode = loaded.conv_mode(args.conv_mode, model_name)
    # The speaker names shown: the conversation template's (USER / ASSISTANT), or the chat template's roles.
    roles = get_conv_template(conv_mode).roles if conv_mode not in (None, CHAT_TEMPLATE) else ("user", "assistant")
    torch.manual_seed(args.seed)
    short_answers = is_embedded_default(args.model_path)
    if short_answers:
        stdout.write(f"[{EMBEDDED_DEFAULT_NOTICE}]\n")

    messages: list[dict[str, str]] = []
    while True:
        question = read_question(f"{roles[0]}: ", stdin, stdout)
        if question is None:
            return 0
        if short_answers:
            question = with_answer_instruction(question)
        # The image (and video) stays in the first turn, so every turn's prompt carries it (as in LLaVA's CLI).
        messages.append({"role": "user",
                         "content": insert_image_tokens(question, 0 if messages else len(images), False)})
        try:
            inputs, stop = loaded.chat_inputs(messages, images, conv_mode, videos)
            params = SamplingParams(args.temperature, args.top_p, fit_to_context(inputs, loaded, args.max_new_tokens),
                                    stop)
        except PromptError as exc:
            stdout.write(f"\nerror: {exc}; start a new chat\n")
            return 2
        if args.debug:
            stdout.write(f"\n[prompt] {inputs.text}\n")
        stdout.write(f"{roles[1]}: ")
        report = stream_answer(StreamedGeneration(loaded, inputs, params, dart_config), stdout)
        if report is None:
            return 1
        messages.append({"role": "assistant", "content": report.text})


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        return chat(args)
    except (FileNotFoundError, ValueError, MissingVideoDecoder) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
