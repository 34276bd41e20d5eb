"""docs/tutorial.md runs: its python blocks, in order, in one namespace, in a fresh directory.

Markers in the markdown (HTML comments, invisible when rendered), on the lines just before a
```python block:
    <!-- not run -->             the block is skipped (long training, placeholders)
    <!-- test: "A" -> "B" -->    the block runs with A replaced by B (e.g. fewer iterations)
A comment line `# text` right after a line calling `print(` is the printed output: the
block's output must contain `text`. Shell blocks (```sh) are never run.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial.md"

FENCE = re.compile(r"^```(\w*)\s*$")
REPLACE = re.compile(r'^<!--\s*test:\s*"(.*)"\s*->\s*"(.*)"\s*-->$')
SKIP = re.compile(r"^<!--\s*not run\s*-->$")


def python_blocks(text: str) -> list[tuple[int, str, list[tuple[str, str]], bool]]:
    """(line number, code, replacements, skipped) of each ```python block."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        language, start = match.group(1), i
        i += 1
        body = []
        while i < len(lines) and not FENCE.match(lines[i]):
            body.append(lines[i])
            i += 1
        i += 1  # closing fence
        if language != "python":
            continue
        replacements, skipped = [], False
        j = start - 1
        while j >= 0 and (lines[j].startswith("<!--") or not lines[j].strip()):
            line = lines[j].strip()
            if SKIP.match(line):
                skipped = True
            elif rep := REPLACE.match(line):
                replacements.append((rep.group(1), rep.group(2)))
            elif line.startswith("<!--"):
                raise AssertionError(f"tutorial.md:{j + 1}: unknown marker {line}")
            j -= 1
        blocks.append((start + 1, "\n".join(body), replacements, skipped))
    return blocks


def expected_output(code: str) -> list[str]:
    """The `# text` comment lines right after a line that prints."""
    lines = code.splitlines()
    out = []
    for before, line in zip(lines, lines[1:]):
        if "print(" in before and line.strip().startswith("# "):
            out.append(line.strip()[2:].strip())
    return out


def test_markers_are_parsed():
    text = '<!-- not run -->\n```python\nx = 1\n```\n<!-- test: "2000" -> "3" -->\n\n```python\n'
    text += "for i in range(2000):\n    print(i)\n    # 1999\n```\n```sh\nls\n```\n"
    blocks = python_blocks(text)
    assert [(b[2], b[3]) for b in blocks] == [([], True), ([("2000", "3")], False)]
    assert expected_output(blocks[1][1]) == ["1999"]


@pytest.mark.timeout(300)
def test_tutorial_runs(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    blocks = python_blocks(TUTORIAL.read_text())
    run = [b for b in blocks if not b[3]]
    assert len(run) >= 8, "the tutorial lost its runnable blocks"
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # paths as from the repository root
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setitem(os.environ, "MPLBACKEND", "Agg")
    for name in ("unet", "make_volume", "train", "predict"):  # the example's modules, fresh
        monkeypatch.delitem(sys.modules, name, raising=False)
    namespace: dict = {"__name__": "__main__"}
    start = time.perf_counter()
    for line, code, replacements, _ in run:
        for old, new in replacements:
            assert old in code, f"tutorial.md:{line}: marker replaces {old!r}, not in the block"
            code = code.replace(old, new)
        stdout = io.StringIO()
        try:
            with contextlib.redirect_stdout(stdout):
                exec(compile(code, f"tutorial.md:{line}", "exec"), namespace)
        except Exception as e:
            raise AssertionError(
                f"the block at tutorial.md:{line} failed: {type(e).__name__}: {e}\n{code}"
            ) from e
        printed = stdout.getvalue()
        if not replacements:
            for text in expected_output(code):
                assert text in printed, (
                    f"tutorial.md:{line}: the tutorial shows {text!r}, the code printed {printed!r}"
                )
    seconds = time.perf_counter() - start
    # what the text says the code writes
    assert (tmp_path / "batch.png").exists()
    assert (tmp_path / "run" / "log" / "loss.csv").exists()
    assert (tmp_path / "prediction.zarr").exists()
    assert seconds < 90, f"the tutorial took {seconds:.0f} s"
