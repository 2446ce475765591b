"""Our models in an unmodified lmms-eval (0.7.x): registered through the `lmms_eval.models` entry-point group
(see pyproject.toml), so `pip install -e '.[lmms]'` makes `--model llava_dart`, `qwen2_vl_dart`,
`qwen2_5_vl_dart`, `qwen3_vl_dart` and `llava_onevision_dart` available; local sample tasks for offline runs are in `llava/lmms_plugin/tasks/`
(`--include_path llava/lmms_plugin/tasks`). See docs/LmmsEval.md."""

from __future__ import annotations

MODELS = {
    "llava_dart": "llava.lmms_plugin.models.LlavaDart",
    "qwen2_vl_dart": "llava.lmms_plugin.models.Qwen2VLDart",
    "qwen2_5_vl_dart": "llava.lmms_plugin.models.Qwen2_5_VLDart",
    "qwen3_vl_dart": "llava.lmms_plugin.models.Qwen3VLDart",
    "llava_onevision_dart": "llava.lmms_plugin.models.LlavaOnevisionDart",
}


def manifests():
    """The entry point's payload: one manifest per model (lmms-eval imports a class only when it is asked for).

    lmms-eval calls it as its model registry starts, in every lmms-eval process (whichever model it runs): the
    moment to send our log lines to its log, so that its own `--model llava`, which loads through our code,
    says whether the model prunes."""
    from lmms_eval.models.registry_v2 import ModelManifest

    from llava.lmms_plugin.logs import running_lmms_eval, send_logs_to_lmms_eval

    if running_lmms_eval():
        send_logs_to_lmms_eval()
    return [ModelManifest(model_id=model_id, simple_class_path=path) for model_id, path in MODELS.items()]
