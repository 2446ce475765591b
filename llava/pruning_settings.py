"""The pruning settings, declared once: every place a user sets them follows this table.

The CLI flags of the workers, `run_llava`, the CLI chat and the model worker (`llava.eval.core.pruning_args`), the
model worker's request model (`llava.serve.protocol.DartOverrides`), the defaults of the settings dataclasses
(`DEFAULTS`) and so the DART_config dict each builds are derived from `SETTINGS`; the Gradio controls,
`scripts/eval_lib.sh`, `scripts/lmms_eval_lib.sh` and the sweep are checked against it by the tests
(`tests/test_pruning_settings.py`). Adding a setting means
adding a row here; a method's own setting names its method, whose settings class declares the field. Names are
the DART release's flag names (`max_num_trunction` included); `key` is the DART_config key a setting fills.

Kept free of torch and transformers, so the controller and the clients that validate requests stay light.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Setting:
    """One pruning setting.

    name: the flag (`--name`) and the request field. key: the DART_config key it sets.
    kind: int, float or str; nullable: None is a value ("unset"). minimum / maximum: the range a request
    may ask for, the maximum inclusive for integers and exclusive for floats (a ratio of 1 prunes all); the
    model's own limits, such as K below its depth, are checked when the config is parsed.
    per_request: a served request may override it (the span hints are only meaningful per checkpoint).
    method: the method whose own settings class (`PruningMethod.settings_class`) holds the setting; None for the
        settings every method shares (`llava.model.pruning.config.PruningSettings`).
    """

    name: str
    key: str
    kind: type
    default: Any
    help: str
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    per_request: bool = True
    method: str | None = None


SETTINGS: tuple[Setting, ...] = (
    Setting("pruned_layer", "K", int, 2, "K: prune after decoder layer K-1", minimum=1, maximum=1024),
    Setting("image_token_start_index", "image_token_start_index", int, None,
            "expected image start (checked against the actual splice; the splice wins)", nullable=True,
            minimum=0, per_request=False),
    Setting("image_token_length", "image_token_length", int, None, "expected number of image tokens (checked)",
            nullable=True, minimum=0, per_request=False),
    Setting("max_num_trunction", "max_num_trunction", int, 128,
            "image tokens selected besides the pivots (the DART release's 128 keeps 4 + 8 * 16 = 132 of 576); "
            "none: from --reduction_ratio (Qwen always uses the ratio)", nullable=True, minimum=0, maximum=65536),
    Setting("reduction_ratio", "reduction_ratio", float, 0.778, "used when --max_num_trunction is unset",
            minimum=0, maximum=1),
    Setting("pivot_image_token", "pivot_image_token", int, 4, "pivots among the image tokens", minimum=0, maximum=256),
    Setting("pivot_text_token", "pivot_text_token", int, 4, "pivots among the text tokens", minimum=0, maximum=256),
    Setting("retain_token_num_for_llava_next", "retain_token_num_for_llava_next", int, None,
            "budget for LLaVA-1.6 (anyres) inputs", nullable=True, minimum=0, maximum=65536),
    Setting("pruning_method", "method", str, "dart", "the method: dart (default), fastv, pdrop, sparsevlm, random, dart_k0 (inside the language model), visionzip, divprune, pooling, holov, vispruner, cdpruner (before it)"),
    Setting("vispruner_important_ratio", "vispruner_important_ratio", float, 0.5,
            "vispruner: the fraction of the kept tokens chosen by the [CLS] attention (the rest for diversity)",
            minimum=0, method="vispruner"),
    Setting("pdrop_layers", "pdrop_layers", str, None,
            "pdrop: the layers before which it prunes, e.g. 8,16,24 (default: those of 32 scaled to the depth)",
            nullable=True, method="pdrop"),
    Setting("pdrop_ratios", "pdrop_ratios", str, None,
            "pdrop: the fraction of the image's tokens kept at each of those layers, e.g. 0.5,0.25,0.125",
            nullable=True, method="pdrop"),
    Setting("pdrop_positions", "pdrop_positions", str, None,
            "pdrop: the kept tokens' positions after each stage: renumbered (default, as released) or original",
            nullable=True, method="pdrop"),
    Setting("sparsevlm_layers", "sparsevlm_layers", str, None,
            "sparsevlm: the three layers whose attention ranks, pruning after each, e.g. 2,6,15 (default: those "
            "of 32 scaled to the depth)", nullable=True, method="sparsevlm"),
    Setting("sparsevlm_positions", "sparsevlm_positions", str, None,
            "sparsevlm: renumbered (default, as released: positions renumbered after each stage, deleted tokens "
            "recycled) or original (original positions, no recycling)", nullable=True, method="sparsevlm"),
)

BY_NAME = {setting.name: setting for setting in SETTINGS}
# The defaults by DART_config key: the one place they are written. The settings dataclasses
# (`llava.model.pruning.config`), hence make_dart_config, take their field defaults from here.
DEFAULTS: dict[str, Any] = {setting.key: setting.default for setting in SETTINGS}

# The switch itself and the attention backend: flags beside the table, not DART_config keys.
SPARSE_FLAG = "sparse"
ATTENTION_BACKENDS = ("eager", "sdpa", "flash_attention_2")


def dart_config_values(values: dict[str, Any]) -> dict[str, Any]:
    """{setting name: value} -> {DART_config key: value}, for the settings present in `values`."""
    return {BY_NAME[name].key: value for name, value in values.items() if name in BY_NAME}


# How summaries name each method ("DART kept 132 of 576 image tokens", "FastV kept ...").
METHOD_LABELS = {"dart": "DART", "fastv": "FastV", "pdrop": "PDrop", "random": "random pruning",
                 "visionzip": "VisionZip", "divprune": "DivPrune", "pooling": "pooling", "vispruner": "VisPruner",
                 "cdpruner": "CDPruner",
                 "sparsevlm": "SparseVLM", "holov": "HoloV", "dart_k0": "DART (K=0)"}


def method_label(dart_config: dict[str, Any] | None) -> str:
    method = (dart_config or {}).get("method", "dart")
    return METHOD_LABELS.get(method, method)


# The DART release's on / off switch inside a DART_config (llava.model.pruning.config.SWITCH_KEYS).
_SWITCH_KEYS = ("Sparse", "sparse")


def pruning_summary(dart_config: dict[str, Any] | None) -> str:
    """One log line on what a model's `DART_config` does: which method prunes with which settings, or that it
    does not prune (none set, or the DART release's `Sparse` switch false)."""
    if not dart_config:
        return "the model does not prune: its config has no DART_config (set one through customized_config)"
    switch = next((dart_config[key] for key in _SWITCH_KEYS if key in dart_config), True)
    if switch is False:
        return "the model does not prune: its DART_config's Sparse switch is false"
    shown = {key: value for key, value in dart_config.items() if key not in ("method", *_SWITCH_KEYS)}
    settings = ", ".join(f"{key}={value}" for key, value in shown.items())
    return f"{method_label(dart_config)} prunes every call of the model: {settings}"
