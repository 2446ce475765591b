"""generate_answer on a plain language model (the tiny default's text-only stage 0 writes one): the new
tokens only, equal to a greedy loop over the model's own logits; images are refused."""

import pytest
import torch

from llava.eval.core.common import generate_answer
from llava.model.builder import load_pretrained_model
from llava.model.tiny_checkpoint import build_tiny_base_llm


@pytest.fixture(scope="module")
def plain_llm(tmp_path_factory):
    path = build_tiny_base_llm(tmp_path_factory.mktemp("plain") / "llm", seed=0)
    tokenizer, model, _, _ = load_pretrained_model(str(path), None, device="cpu")
    return tokenizer, model


def test_plain_llm_answers_with_its_greedy_continuation(plain_llm):
    tokenizer, model = plain_llm
    prompt = tokenizer("USER: Is there a red circle? ASSISTANT:", return_tensors="pt").input_ids[0]
    # min_new_tokens keeps eos out, so exactly 5 tokens come back from a random model.
    out = generate_answer(model, tokenizer, prompt, None, None, {"do_sample": False, "max_new_tokens": 5, "min_new_tokens": 5})
    ids = prompt.unsqueeze(0)
    eos = tokenizer.eos_token_id
    with torch.no_grad():
        for _ in range(5):
            logits = model(input_ids=ids).logits[0, -1]
            logits[eos] = float("-inf")
            ids = torch.cat([ids, logits.argmax().view(1, 1)], dim=1)
    assert out.num_tokens == 5
    assert out.text == tokenizer.decode(ids[0, len(prompt):], skip_special_tokens=True).strip()
    assert not out.record.pruned


def test_plain_llm_refuses_images(plain_llm):
    tokenizer, model = plain_llm
    with pytest.raises(ValueError, match="without a vision tower"):
        generate_answer(model, tokenizer, torch.tensor([1, 5]), torch.zeros(1, 3, 336, 336), None, {"max_new_tokens": 1})
