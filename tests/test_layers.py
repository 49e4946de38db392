"""Imports point down: a module of ``src/talkfreq`` may import its own package and the layers below it, never a
higher layer, and in the layers above the primitives never a sibling package of its own layer.

The primitives (io, audio, face, models, losses) build on one another freely: a network and the face geometry it
masks with, a loss and the network it wraps. Above them each package is a separate consumer of what lies below, so
an arrow between siblings (training -> report, demo -> bench) would be a seam that only goes one way by accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "talkfreq"

# lowest first; a top-level module or package of talkfreq not named here fails the test (place it when adding it)
LAYERS: list[tuple[str, ...]] = [
    ("errors", "config", "device", "_lazy"),
    ("io", "audio", "face", "models", "losses", "configs"),
    ("data", "metrics"),
    ("pipeline",),
    ("training", "report"),
    ("model_cost",),  # what bench and benchmarks/models.py measure
    ("demo", "bench"),
    ("cli",),
    ("__init__",),  # the public API re-exports everything (lazily)
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}
PRIMITIVES = 1  # the layer whose packages may import one another


def _unit(module: str) -> str:
    """``talkfreq.pipeline.infer`` -> ``pipeline``; ``talkfreq`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every talkfreq import in ``path``, at any depth (function-level ones too)."""
    name = _module_name(path, root)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((node.lineno, target))
    return [(line, t) for line, t in out if t == "talkfreq" or t.startswith("talkfreq.")]


def violations(root: Path = SRC) -> list[str]:
    bad = []
    for path in sorted(root.rglob("*.py")):
        src = _unit(_module_name(path, root))
        if src not in RANK:
            bad.append(f"{path.relative_to(root)}: talkfreq.{src} has no layer in tests/test_layers.py")
            continue
        for line, target in _imports(path, root):
            dst = _unit(target)
            if dst == src:
                continue
            if dst not in RANK:
                bad.append(f"{path.relative_to(root)}:{line}: imports {target}, which has no layer")
            elif RANK[dst] > RANK[src]:
                bad.append(f"{path.relative_to(root)}:{line}: {src} imports {target}, a higher layer")
            elif RANK[dst] == RANK[src] and RANK[src] > PRIMITIVES:
                bad.append(f"{path.relative_to(root)}:{line}: {src} imports {target}, a sibling of its layer")
    return bad


def test_imports_point_down():
    assert violations() == []


@pytest.mark.parametrize("where, code, expect", [
    ("pipeline/x.py", "from talkfreq.training.stage1 import Config\n", "a higher layer"),
    ("models/x.py", "from ..pipeline import infer\n", "a higher layer"),
    ("data/x.py", "def f():\n    import talkfreq.report.evaluate\n", "a higher layer"),
    ("report/x.py", "from talkfreq.training.stage1 import Config\n", "a sibling of its layer"),
    ("training/x.py", "from talkfreq.pipeline.inputs import audio_spec\n", None),
    ("face/x.py", "from talkfreq.models.freak import FREAK\n", None),
])
def test_a_wrong_arrow_is_caught(tmp_path, where, code, expect):
    path = tmp_path / "talkfreq" / where
    path.parent.mkdir(parents=True)
    path.write_text(code)
    found = violations(tmp_path / "talkfreq")
    assert (found == []) if expect is None else (len(found) == 1 and expect in found[0])
