"""The wheel, as a user gets it: built offline from a copy of the sources, installed into a folder, and
run from a folder outside the checkout. It must install one import package (``toolkit``, holding
``toolkit.plugins`` and ``toolkit.recipes``), find the built-in clusterers without entry-point metadata,
and run the packaged recipes by name."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds and installs a wheel, then runs it in subprocesses

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "toolkit", "plugins", "recipes")
BUILTINS = ("finch", "kmeans", "hdbscan", "single", "random")
RECIPES = ("cifar10", "custom_clusterer", "digits", "fashion_mnist", "mnist")


def _outside_checkout(entry: str) -> bool:
    """A path entry that cannot hand out the checkout's own modules: anywhere outside it, or the
    site-packages of a virtual environment kept inside it (where torch and the other dependencies are)."""
    p = Path(entry or ".").resolve()
    return (p != ROOT and ROOT not in p.parents) or "site-packages" in p.parts


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """Built from a copy: an in-tree build would write build/ into the checkout, and a stale build/lib
    there can slip old files into the wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    opts = ["--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp / "dist")]
    r = subprocess.run([*pip, "wheel", *opts, str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (whl,) = (tmp / "dist").glob("*.whl")
    return whl


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """The wheel installed into a folder, and a runner for ``python -S`` in a folder outside the checkout.

    ``-S`` skips the .pth files, so the editable install's import finder (a .pth hook that maps toolkit
    to the checkout) cannot answer; PYTHONPATH gives the wheel's folder first, then this interpreter's
    other path entries outside the checkout (where torch and the other dependencies live)."""
    tmp = tmp_path_factory.mktemp("installed")
    site = tmp / "site"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    path = [str(site), *(p for p in sys.path if p and _outside_checkout(p))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    away = tmp / "elsewhere"
    away.mkdir()

    def py(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-S", *args], capture_output=True, text=True, cwd=away, env=env)

    return site, away, py


def test_wheel_holds_one_import_package_and_no_builtin_entry_points(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry_points = "".join(z.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"toolkit"}
    assert {f"toolkit/plugins/{m}.py" for m in ("finch", "kmeans", "hdbscan", "single", "random_partition")} <= set(
        names
    )
    assert {f"toolkit/recipes/{name}.py" for name in RECIPES} <= set(names)
    assert "clusterers" not in entry_points  # the built-ins are registered in code


@pytest.fixture(scope="module")
def verbs_and_modules(installed):
    """One new interpreter on the installed wheel, outside the checkout: the CLI's plugins verb, then
    ``mnist --help``, then the files the toolkit's packages were imported from (and whether top-level
    ``plugins`` or ``recipes`` packages import), as JSON; the three outputs separated by a line "--"."""
    _, _, py = installed
    code = (
        "import json, sys\n"
        "from toolkit.__main__ import main\n"
        "assert main(['plugins']) == 0\n"
        "print('--')\n"
        "assert main(['mnist', '--help']) == 0\n"
        "print('--')\n"
        "import toolkit, toolkit.plugins, toolkit.recipes\n"
        "out = {m: sys.modules[m].__file__ for m in ('toolkit', 'toolkit.plugins', 'toolkit.recipes')}\n"
        "for top in ('plugins', 'recipes'):\n"
        "    try:\n"
        "        __import__(top)\n"
        "        out[top] = sys.modules[top].__file__\n"
        "    except ModuleNotFoundError:\n"
        "        out[top] = None\n"
        "print(json.dumps(out))\n"
    )
    r = py("-c", code)
    assert r.returncode == 0, r.stderr
    plugins, help_text, modules = r.stdout.split("\n--\n")
    return {"plugins": plugins, "help": help_text, "modules": json.loads(modules)}


def test_installed_toolkit_is_the_wheels_and_is_the_only_package(installed, verbs_and_modules):
    site, _, _ = installed
    found = verbs_and_modules["modules"]
    for module in ("toolkit", "toolkit.plugins", "toolkit.recipes"):
        assert Path(found[module]).resolve().is_relative_to(site.resolve()), (module, found[module])
    assert found["plugins"] is None and found["recipes"] is None, found


def test_plugins_verb_lists_the_builtins(verbs_and_modules):
    out = verbs_and_modules["plugins"]
    listed = {line.split("(")[0] for line in out.splitlines()}
    assert set(BUILTINS) <= listed, out


def test_packaged_recipe_runs_by_name(installed):
    _, away, py = installed
    run_dir = away / "run"
    r = py(
        "-m",
        "toolkit",
        "digits",
        "--pretrain.epochs=1",
        "--svdd.epochs=1",
        "--svdd.warmup_epochs=1",
        f"--run_dir={run_dir}",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads((run_dir / "config.json").read_text())["data"]["dataset"] == "digits"
    assert (run_dir / "results.json").is_file()


def test_help_of_a_packaged_recipe(verbs_and_modules):
    out = verbs_and_modules["help"]
    assert "Settings of mnist" in out and "--svdd.epochs" in out and "'lenet28'" in out
    assert all(name in out.split("Settings of")[0] for name in RECIPES)  # the usage names them
