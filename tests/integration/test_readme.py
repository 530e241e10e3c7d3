"""The README's Python code runs as written: each ```python block on its own, in a fresh namespace, in an
empty folder (what a block writes goes there)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```$", README.read_text(), flags=re.MULTILINE | re.DOTALL)


def test_the_readme_shows_python_code():
    assert len(BLOCKS) >= 3  # the estimator, a grid search, TensorBoard from Python


@pytest.mark.slow  # each block fits a model (a few epochs)
@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=lambda i: f"block{i + 1}")
def test_a_readme_python_block_runs_as_written(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = compile(BLOCKS[index], f"README.md, python block {index + 1}", "exec")
    exec(code, {"__name__": "__main__"})


def test_the_readme_says_how_to_install_the_cpu_only_torch_first():
    text = README.read_text()
    setup = text[text.index("## Set-up") : text.index("\n## ", text.index("## Set-up") + 1)]
    commands = ["    pip install -e . && python -m toolkit\n", '    pip install -e ".[test]" && python -m pytest -q\n']
    assert all(c in setup for c in commands)  # the two set-up commands, as CI runs them
    cpu = "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu"
    assert cpu in setup and "CUDA" in setup
