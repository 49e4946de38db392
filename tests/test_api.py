"""The public API: ``import talkfreq`` imports no torch, every name of ``__all__`` resolves, and the README's Python
example runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import talkfreq

README = Path(__file__).resolve().parents[1] / "README.md"


def test_import_is_cheap_and_every_export_resolves():
    code = "import sys, talkfreq; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    assert out.stdout.strip() == "False"
    for name in talkfreq.__all__:
        assert getattr(talkfreq, name) is not None, name
    assert set(talkfreq.__all__) <= set(dir(talkfreq))


@pytest.mark.heavy
def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    section = README.read_text().split("## Python API", 1)[1]
    (example,) = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], flags=re.S)
    monkeypatch.chdir(tmp_path)
    exec(compile(example, str(README), "exec"), {"__name__": "readme_example"})
    assert "25 frames; 32 px;" in capsys.readouterr().out
    assert (tmp_path / "dubbed.mp4").is_file() and (tmp_path / "eval" / "report.html").is_file()
