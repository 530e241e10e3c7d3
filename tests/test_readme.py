"""The README's Python code runs as written: each ```python block on its own, in a fresh namespace, in an
empty folder (what a block writes goes there)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```$", README.read_text(), flags=re.MULTILINE | re.DOTALL)


def test_the_readme_shows_python_code():
    assert len(BLOCKS) >= 3  # the estimator, a grid search, TensorBoard from Python


@pytest.mark.slow  # each block fits a model (a few epochs)
@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=lambda i: f"block{i + 1}")
def test_a_readme_python_block_runs_as_written(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = compile(BLOCKS[index], f"README.md, python block {index + 1}", "exec")
    exec(code, {"__name__": "__main__"})
