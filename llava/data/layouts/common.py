"""What every benchmark writer shares: seeded streams, file writers, scene drawing and the summary record."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from llava.data.questions import QA
from llava.data.scenes import Scene, sample_scene, scene_split
from llava.data.shapes import encode, render


@dataclass
class Summary:
    """What SYNTHETIC_README.md says about one benchmark."""

    name: str
    files: list[str]
    n_questions: int
    answers: Counter
    chance: list[str]
    notes: list[str] = field(default_factory=list)
    # image (path under root, or tsv#index) -> what it shows: a Scene, or another generator's ground truth with a
    # `to_dict()` whose "type" names it (documents, infographics, charts: `ground_truth_from_dict`)
    scenes: dict[str, Scene | Any] = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return len(self.scenes)


def rng_for(seed: int, name: str) -> random.Random:
    return random.Random(f"eval/{seed}/{name}")


def write_json(path: Path, obj, indent: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=indent) + "\n")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def save_image(root: Path, relative: str, scene: Scene, scenes: dict[str, Scene]) -> None:
    """Render `scene` to root/relative (format from the suffix) and note its ground truth in `scenes`."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(render(scene), path.suffix.lstrip(".")))
    scenes[relative] = scene


def draw_scene(
    rng: random.Random, make: Callable[[Scene], object], seen: set[str], **scene_kwargs
) -> tuple[Scene, object]:
    """Draw eval scenes until `make(scene)` returns something (not None) for a scene not used yet."""
    return draw_new(lambda: sample_scene(rng, split="eval", **scene_kwargs), make, seen, "evaluation scene")


def draw_new(sample: Callable[[], Any], make: Callable[[Any], object], seen: set[str], what: str) -> tuple[Any, object]:
    """Draw with `sample()` until `make(drawn)` returns something (not None) for a drawing whose `signature()` is
    not in `seen` (which it then joins): a benchmark never shows the same image twice."""
    for _ in range(10_000):
        drawn = sample()
        if drawn.signature() in seen:
            continue
        made = make(drawn)
        if made is not None:
            seen.add(drawn.signature())
            return drawn, made
    raise RuntimeError(f"could not draw a suitable {what}")


def unique_name(rng: random.Random, used: set[str], pattern: str, digits: int) -> str:
    """pattern.format(random number of `digits` digits), never one in `used` (which it then joins)."""
    while True:
        name = pattern.format(rng.randrange(10**digits))
        if name not in used:
            used.add(name)
            return name


def yes_no_pair(ask: Callable[..., QA | None], scene: Scene, rng: random.Random, **kwargs):
    """A yes and a no question. The no question replays the rng state of the yes one, so that verify
    questions are about the same object (and relation) and differ only in the claim."""
    state = rng.getstate()
    yes = ask(scene, rng, want=True, **kwargs)
    after = rng.getstate()
    rng.setstate(state)
    no = ask(scene, rng, want=False, **kwargs)
    rng.setstate(after)
    return (yes, no) if yes is not None and no is not None else None


def ground_truth_from_dict(d: dict):
    """A SYNTHETIC_SCENES.jsonl row's ground truth: a Scene, or by its "type" a page or a chart."""
    from llava.data import charts, documents

    if d.get("type") in ("document", "infographic"):
        return documents.page_from_dict(d)
    if d.get("type") == "chart":
        return charts.Chart.from_dict(d)
    return Scene.from_dict(d)


def ground_truth_split(truth) -> str:
    """The split ("train" / "eval") a ground truth falls in, by its own generator's rule."""
    from llava.data import charts, documents

    if isinstance(truth, documents.Document):
        return documents.document_split(truth)
    if isinstance(truth, documents.Infographic):
        return documents.infographic_split(truth)
    if isinstance(truth, charts.Chart):
        return charts.chart_split(truth)
    return scene_split(truth)
