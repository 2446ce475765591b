"""The prompt ids of original LLaVA checkpoints are LLaVA's, whatever `model_type` the config says.

The released LLaVA-1.5 / 1.6 configs say `"model_type": "llava"`, ours `"llava_llama"`; both ship a SentencePiece
`tokenizer.model` with a `tokenizer_config.json` naming `LlamaTokenizer` (`legacy: false`). LLaVA tokenized its
prompts with the slow `LlamaTokenizer` of transformers 4.3x. Its rules are recomputed here from SentencePiece
directly: the text gets one leading "▁"; it is split at special tokens; a piece of text starting with a space is
encoded after an "<unk>" prefix that is then removed (so no second "▁" appears), any other piece without the
SentencePiece dummy prefix; BOS first. LLaVA's `tokenizer_image_token` tokenizes the text around each `<image>`
on its own and keeps a single BOS.
"""

import json
import re
import shutil

import pytest
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2

from llava.constants import IMAGE_TOKEN_INDEX
from llava.conversation import conv_templates
from llava.mm_utils import tokenizer_image_token
from llava.model.builder import load_pretrained_model

SPECIAL = {"<unk>": 0, "<s>": 1, "</s>": 2}
UNDERLINE = "\u2581"


class SlowLlamaRules:
    """transformers 4.3x's slow LlamaTokenizer with `legacy: false`, from the SentencePiece model alone."""

    def __init__(self, model_file):
        proto = sentencepiece_model_pb2.ModelProto()
        proto.ParseFromString(open(model_file, "rb").read())
        proto.normalizer_spec.add_dummy_prefix = False  # what `legacy: false` loads the model with
        self.sp = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
        self.unk_length = len(self.sp.encode("<unk>", out_type=str))

    def _text_pieces(self, text):
        if not text.startswith((UNDERLINE, " ")):
            return self.sp.encode(text, out_type=str)
        return self.sp.encode("<unk>" + text, out_type=str)[self.unk_length:]

    def ids(self, text):
        pieces = []
        if text:
            for part in re.split("(" + "|".join(map(re.escape, SPECIAL)) + ")", UNDERLINE + text.replace(UNDERLINE, " ")):
                if part in SPECIAL:
                    pieces.append(part)
                elif part:
                    pieces += self._text_pieces(part)
            if len(pieces) > 1 and pieces[0] == UNDERLINE and pieces[1] in SPECIAL:
                pieces = pieces[1:]
        return [SPECIAL["<s>"]] + [SPECIAL[p] if p in SPECIAL else self.sp.piece_to_id(p) for p in pieces]

    def prompt_ids(self, prompt):
        """LLaVA's `tokenizer_image_token`: chunks around <image>, one BOS."""
        chunks = [self.ids(chunk) for chunk in prompt.split("<image>")]
        ids = chunks[0]
        for chunk in chunks[1:]:
            ids = ids + [IMAGE_TOKEN_INDEX] + chunk[1:]
        return ids


@pytest.fixture(scope="module")
def tokenizers(tiny_ckpt, tmp_path_factory):
    """The tokenizer `load_pretrained_model` returns for the same files under each model type."""
    released = tmp_path_factory.mktemp("released") / "llava-v1.5-tiny"
    shutil.copytree(tiny_ckpt, released)
    config = json.loads((released / "config.json").read_text())
    config["model_type"] = "llava"
    (released / "config.json").write_text(json.dumps(config))
    return {kind: load_pretrained_model(str(path), None, device="cpu")[0]
            for kind, path in (("llava_llama", tiny_ckpt), ("llava", released))}


def conversation(name):
    """A two-turn exchange with an image in the first question, ending with an open assistant turn."""
    conv = conv_templates[name].copy()
    conv.append_message(conv.roles[0], "<image>\nWhat is this?")
    conv.append_message(conv.roles[1], "A red square.")
    conv.append_message(conv.roles[0], "And the colour of the circle?")
    conv.append_message(conv.roles[1], None)
    return conv.get_prompt()


@pytest.mark.parametrize("template", sorted(conv_templates))
def test_prompt_ids_are_llavas_on_both_model_types(template, tokenizers, tiny_ckpt):
    prompt = conversation(template)
    expected = SlowLlamaRules(tiny_ckpt / "tokenizer.model").prompt_ids(prompt)
    for kind, tokenizer in tokenizers.items():
        assert type(tokenizer).__name__ == "LlamaTokenizer", kind
        assert tokenizer_image_token(prompt, tokenizer) == expected, kind


def test_the_vicuna_prompt_keeps_the_prefix_space_of_its_first_word_and_after_the_image(tokenizers, tiny_ckpt):
    """What went wrong under `model_type: llava`: "A" lost its "▁", and the "▁" before "\\n" after <image> went."""
    conv = conv_templates["vicuna_v1"].copy()
    conv.append_message(conv.roles[0], "<image>\nWhat is this?")
    conv.append_message(conv.roles[1], None)
    ids = tokenizer_image_token(conv.get_prompt(), tokenizers["llava"])
    sp = spm.SentencePieceProcessor(model_file=str(tiny_ckpt / "tokenizer.model"))
    assert ids[1] == sp.piece_to_id(UNDERLINE + "A")
    image = ids.index(IMAGE_TOKEN_INDEX)
    assert ids[image + 1 : image + 3] == [sp.piece_to_id(UNDERLINE), sp.piece_to_id("<0x0A>")]
