"""The README's Python examples run as written (quick start, then the synapse example)."""

import os
import re
import runpy
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_quick_start_and_synapse_example_run(tmp_path, capsys):
    blocks = python_blocks()
    assert len(blocks) >= 2
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        (tmp_path / "quick.py").write_text(blocks[0])
        runpy.run_path("quick.py", run_name="__main__")
        assert "float32" in capsys.readouterr().out
        (tmp_path / "synapses.csv").write_text("600, 300, 300\n640, 200, 400\n")
        (tmp_path / "synapse.py").write_text(blocks[1])
        runpy.run_path("synapse.py", run_name="__main__")
        count, painted = capsys.readouterr().out.split()[-2:]
        assert int(count) >= 1 and float(painted) > 0
    finally:
        os.chdir(cwd)
