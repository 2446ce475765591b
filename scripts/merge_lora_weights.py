r"""Merge a LoRA checkpoint into its base model and save a plain LLaVA checkpoint.

    python scripts/merge_lora_weights.py --model-path checkpoints/llava-v1.5-7b-lora \
        --model-base lmsys/vicuna-7b-v1.5 --save-model-path checkpoints/llava-v1.5-7b-merged
"""

import argparse

from llava.model.builder import load_pretrained_model
from llava.model.weights import save_llava_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--model-base", required=True)
    parser.add_argument("--save-model-path", required=True)
    parser.add_argument("--device", default="cpu", help="where to merge (cpu needs RAM for the full model)")
    args = parser.parse_args()
    tokenizer, model, _, _ = load_pretrained_model(args.model_path, args.model_base, device=args.device)
    save_llava_checkpoint(model, tokenizer, args.save_model_path)
    print(f"merged {args.model_path} into {args.model_base}: saved to {args.save_model_path}")


if __name__ == "__main__":
    main()
