"""Constants shared by the model, the prompt builders and the workers (same values as LLaVA)."""

from pathlib import Path

CONTROLLER_HEART_BEAT_EXPIRATION = 30
WORKER_HEART_BEAT_INTERVAL = 15

LOGDIR = "."

# Labels with this value are ignored by the loss (PyTorch's CrossEntropyLoss default).
IGNORE_INDEX = -100
# Placeholder id that `tokenizer_image_token` puts where the image features are spliced in.
IMAGE_TOKEN_INDEX = -200
DEFAULT_IMAGE_TOKEN = "<image>"
DEFAULT_IMAGE_PATCH_TOKEN = "<im_patch>"
DEFAULT_IM_START_TOKEN = "<im_start>"
DEFAULT_IM_END_TOKEN = "<im_end>"
IMAGE_PLACEHOLDER = "<image-placeholder>"

# The embedded default model, used when no --model-path is given: a tiny LLaVA trained by this repository's
# own code on generated data (scripts/tiny/train_all.sh), committed in the source tree.
DEFAULT_MODEL_PATH = str(Path(__file__).resolve().parents[1] / "checkpoints" / "llava-v1.5-tiny")
