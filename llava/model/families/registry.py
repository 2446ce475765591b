"""The families by `config.model_type`: which family a checkpoint's config belongs to.

Several families may share a model_type when their layouts differ (the original LLaVA-1.5 releases and the
llava-hf ones both say "llava"): the first registered family whose `accepts(config)` is true wins. A config no
family accepts is a plain language model (the text-only family), as LLaVA's builder treats it.
"""

from __future__ import annotations

from llava.model.families.base import Family

_FAMILIES: dict[str, list[Family]] = {}
_FALLBACK: list[Family] = []


def register(family: Family, *, fallback: bool = False) -> Family:
    """Add `family` under each of its model types (`fallback`: the family of configs no other accepts)."""
    for model_type in family.model_types:
        entries = _FAMILIES.setdefault(model_type, [])
        if any(type(entry) is type(family) for entry in entries):
            continue
        entries.append(family)
    if fallback:
        _FALLBACK[:] = [family]
    return family


def unregister(family: Family) -> None:
    """Remove `family` (tests that register one of their own)."""
    for model_type in family.model_types:
        entries = _FAMILIES.get(model_type, [])
        if family in entries:
            entries.remove(family)
        if not entries:
            _FAMILIES.pop(model_type, None)


def family_for(config) -> Family:
    """The family of a checkpoint's config (a transformers config or anything with `model_type`)."""
    for family in _FAMILIES.get(getattr(config, "model_type", None), []):
        if family.accepts(config):
            return family
    if not _FALLBACK:
        raise LookupError(f"no model family takes model_type {getattr(config, 'model_type', None)!r}")
    return _FALLBACK[0]


def family_of(model) -> Family:
    """The family of a loaded model."""
    return family_for(model.config)


def families() -> list[Family]:
    """Every registered family, once, in registration order (the fallback last)."""
    seen: list[Family] = []
    for entries in _FAMILIES.values():
        seen += [family for family in entries if family not in seen]
    return seen + [family for family in _FALLBACK if family not in seen]
