"""The import arrows run one way: jobs -> udfs -> schemas. Executor-side code (udfs) never
imports the jobs or the CLI that drive it, and schemas import neither."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


FORBIDDEN = {
    "udfs": ("webscale_rl.jobs", "webscale_rl.cli", "webscale_rl.commands"),
    "schemas": ("webscale_rl.jobs", "webscale_rl.udfs", "webscale_rl.cli", "webscale_rl.commands"),
}


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_imports_run_one_way(folder):
    files = sorted((REPO / folder).rglob("*.py"))
    assert files
    wrong = {
        f"{f.relative_to(REPO)} imports {name}"
        for f in files
        for name in imported_modules(f)
        if name.startswith(FORBIDDEN[folder])
    }
    assert not wrong, sorted(wrong)


def test_udfs_modules_sit_in_rooms_by_concern():
    loose = sorted(p.name for p in (REPO / "udfs").glob("*.py") if p.name != "__init__.py")
    assert loose == ["frames.py"], (
        "put a new udfs module in read/, text/, decontam/, llm/ or publish/"
    )
    for room in ("read", "text", "decontam", "llm", "publish"):
        assert (REPO / "udfs" / room / "__init__.py").exists()


def test_the_check_sees_a_wrong_arrow(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from webscale_rl.jobs import pipeline\nimport webscale_rl.cli\n")
    assert {"webscale_rl.jobs", "webscale_rl.cli"} <= imported_modules(bad)
