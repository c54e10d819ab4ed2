"""Every package the code imports is a declared dependency, and the wheel works on its own:
installed without extras into a fresh venv, every module of the package imports."""

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = ("webscale_rl", "jobs", "udfs", "schemas")  # installed as webscale_rl.*


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement).group()).lower()


def module_level_imports(path: Path) -> set[str]:
    """Top-level names imported when the module loads (not those inside functions)."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"webscale_rl", "__future__"}


def test_every_imported_package_is_a_declared_dependency():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"]}
    distributions = packages_distributions()
    undeclared = {}
    for folder in PACKAGE_DIRS:
        for path in (REPO / folder).rglob("*.py"):
            for module in module_level_imports(path):
                dists = {_name(d) for d in distributions.get(module, [module])}
                if not dists & declared:
                    undeclared.setdefault(module, []).append(str(path.relative_to(REPO)))
    assert undeclared == {}, f"imported but not in [project] dependencies: {undeclared}"
    assert "tokenizers" in {_name(r) for r in project["optional-dependencies"]["bench"]}


@pytest.mark.slow
def test_wheel_without_extras_in_a_fresh_venv_imports_every_module(tmp_path):
    # Build from a copy of the sources, so the checkout gets no build/ folder.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in PACKAGE_DIRS:
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", src],
        check=True,
        cwd=tmp_path,
    )
    wheel = next((tmp_path / "dist").glob("webscale_rl-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    # This venv's pip installs into the fresh one (from the local cache where it can).
    subprocess.run([*pip, "--python", python, "install", "-q", "--no-compile", wheel], check=True)
    check = (
        "import importlib, pkgutil, webscale_rl\n"
        "names = [m.name for m in pkgutil.walk_packages(webscale_rl.__path__, 'webscale_rl.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(len(names))\n"
    )
    out = subprocess.run(
        [python, "-c", check], capture_output=True, text=True, cwd=tmp_path, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.split()[-1]) > 60  # jobs, udfs and schemas are in the wheel too
