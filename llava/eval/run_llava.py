"""Ask one question about one (or several) image(s) from the command line.

    python -m llava.eval.run_llava --model-path PATH --image-file IMG --query "What is shown?" \
        [--conv-mode vicuna_v1] [--sparse --pruned_layer 2 --max_num_trunction 128 ...]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import torch

from llava.eval.pruning_args import add_pruning_args, dart_config_from_args
from llava.eval.prompting import build_prompt, infer_conv_mode
from llava.mm_utils import get_model_name_from_path, load_image, process_images, tokenizer_image_token
from llava.model import PruningRecord
from llava.model.builder import load_pretrained_model

logger = logging.getLogger("llava.run_llava")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--model-base", default=None)
    parser.add_argument("--image-file", required=True, help="an image path or URL; several separated by --sep")
    parser.add_argument("--query", required=True)
    parser.add_argument("--conv-mode", default=None, help="conversation template (default: inferred from the name)")
    parser.add_argument("--sep", default=",")
    parser.add_argument("--temperature", type=float, default=0.2)
    parser.add_argument("--top_p", type=float, default=None)
    parser.add_argument("--num_beams", type=int, default=1)
    parser.add_argument("--max_new_tokens", type=int, default=512)
    parser.add_argument("--device", default="cuda", help="cuda (falls back to cpu when unavailable) or cpu")
    parser.add_argument("--seed", type=int, default=0)
    add_pruning_args(parser)
    return parser.parse_args(argv)


def generation_kwargs(args: argparse.Namespace) -> dict:
    """LLaVA's convention: temperature 0 means greedy decoding."""
    sampling = args.temperature > 0
    kwargs = {"do_sample": sampling, "num_beams": args.num_beams, "max_new_tokens": args.max_new_tokens, "use_cache": True}
    if sampling:
        kwargs.update(temperature=args.temperature, top_p=args.top_p)
    return kwargs


def answer(args: argparse.Namespace) -> tuple[str, PruningRecord, float]:
    """Load the model, ask the question; returns (answer, pruning record, seconds spent generating)."""
    images = [load_image(path) for path in args.image_file.split(args.sep)]
    model_name = get_model_name_from_path(args.model_path)
    tokenizer, model, image_processor, _ = load_pretrained_model(
        args.model_path, args.model_base, model_name, device=args.device, attn_implementation=args.attn_implementation
    )
    model.config.DART_config = dart_config_from_args(args, model.config.num_hidden_layers)
    conv_mode = args.conv_mode or infer_conv_mode(model_name)
    prompt = build_prompt(args.query, conv_mode, len(images), getattr(model.config, "mm_use_im_start_end", False))
    input_ids = tokenizer_image_token(prompt, tokenizer, return_tensors="pt").unsqueeze(0).to(model.device)
    image_tensor = process_images(images, image_processor, model.config)
    image_tensor = (
        image_tensor.to(model.device, dtype=model.dtype)
        if isinstance(image_tensor, torch.Tensor)
        else [t.to(model.device, dtype=model.dtype) for t in image_tensor]
    )
    torch.manual_seed(args.seed)
    record = PruningRecord()
    start = time.perf_counter()
    output_ids = model.generate(
        input_ids,
        images=image_tensor,
        image_sizes=[img.size for img in images],
        pruning_record=record,
        pad_token_id=tokenizer.pad_token_id,
        **generation_kwargs(args),
    )
    seconds = time.perf_counter() - start
    return tokenizer.batch_decode(output_ids, skip_special_tokens=True)[0].strip(), record, seconds


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        text, record, seconds = answer(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(text)
    kept, total = record.num_kept_image_tokens(), record.num_image_tokens()
    if args.sparse:
        logger.info("DART kept %d of %d image tokens (%.1f%% pruned) in %.2fs", kept, total, 100 * (1 - kept / max(total, 1)), seconds)
    else:
        logger.info("no pruning: %d image tokens, %.2fs", total, seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
