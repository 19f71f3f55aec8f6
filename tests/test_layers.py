"""The layers point one way, and only the engine loads llama.cpp (ARCHITECTURE.md).

Read from the source with ast, so an import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FOLDERS = {"app": "llamadesk.app", "convert": "llamadesk.convert", "quantize": "llamadesk.quantize"}

# Layer of each package, lowest first; a module may import its own layer and those below it.
LAYERS = [
    ("core", ("llamadesk.app.core",)),
    ("engine", ("llamadesk.app.engine",)),
    ("convert and quantize", ("llamadesk.convert", "llamadesk.quantize")),
]
APPLICATION = "application"


def layer_of(module: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return len(LAYERS)  # everything else in app/ is the application, on top


def layer_name(rank: int) -> str:
    return LAYERS[rank][0] if rank < len(LAYERS) else APPLICATION


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = [FOLDERS[rel.parts[0]], *rel.parts[1:]]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import statement, and every import_module("...") string."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import (use absolute imports)"
            found += [(node.lineno, node.module or "")]
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module",
            "find_spec",
            "__import__",
        ):
            for arg in node.args[:1]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.append((node.lineno, arg.value))
    return found


def source_files() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (REPO / folder).rglob("*.py"))


def test_the_layers_are_found():
    names = {module_name(p) for p in source_files()}
    assert "llamadesk.app.core.errors" in names and "llamadesk.app.engine.llama_engine" in names
    assert "llamadesk.convert.converter" in names and "llamadesk.quantize.quantize_model" in names


def violations(path: Path, module: str) -> list[str]:
    """Every import in `path` (the source of `module`) that breaks a layering rule."""
    own = layer_of(module)
    found = []
    for line, imported in imports_of(path):
        if imported.startswith("llamadesk.") and layer_of(imported) > own:
            found.append(
                f"line {line} imports {imported} ({layer_name(layer_of(imported))}) from the "
                f"{layer_name(own)} layer; lower layers never import higher ones"
            )
        if imported.split(".")[0] == "llama_cpp" and not module.startswith("llamadesk.app.engine"):
            found.append(f"line {line} imports {imported}: only app/engine loads llama.cpp")
        if module.startswith("llamadesk.convert") and imported.startswith("llamadesk.quantize"):
            # checkpoint -> quantized GGUF in one step joins the two above both
            # (app/library/checkpoint_conversion.py); convert/ never needs the quantizer.
            found.append(f"line {line} imports {imported}: convert/ does not depend on quantize/")
    return found


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_module_keeps_to_its_layer(path):
    assert violations(path, module_name(path)) == [], str(path.relative_to(REPO))


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("llamadesk.app.core.probe", "from llamadesk.app.chat.store import Store\n"),
        ("llamadesk.app.core.probe", "def f():\n    from llamadesk.app.engine import types\n"),
        ("llamadesk.app.engine.probe", "import llamadesk.app.library.catalog\n"),
        ("llamadesk.convert.probe", "from llamadesk.app.hub.pull import pull_model\n"),
        ("llamadesk.quantize.probe", "from llamadesk.app.tui.app import run_app\n"),
        ("llamadesk.quantize.probe", "import llama_cpp\n"),
        ("llamadesk.app.library.probe", "import importlib\nimportlib.import_module('llama_cpp.llama_cpp')\n"),
        ("llamadesk.convert.probe", "from llamadesk.quantize.quant_types import QUANT_TYPES\n"),
    ],
)
def test_a_violation_is_caught(tmp_path, module, source):
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    assert violations(probe, module)


def test_allowed_imports_pass(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from llamadesk.app.core.errors import BadInputError\nfrom llamadesk.app.engine import types\n")
    assert violations(probe, "llamadesk.quantize.probe") == []
    assert violations(probe, "llamadesk.app.tui.probe") == []


def imported_test_modules(path: Path, root: Path = REPO) -> list[str]:
    """The test modules (tests/**/test_*.py) that a file imports: shared helpers and fixtures belong in
    conftest.py or a helper module, so that one test file runs alone and files spread over workers."""
    return [
        f"{path.relative_to(root)}:{line}: imports {name}"
        for line, name in imports_of(path)
        if name.split(".")[0] == "tests" and any(part.startswith("test_") for part in name.split(".")[1:])
    ]


def test_no_test_file_imports_another():
    found = [v for p in sorted((REPO / "tests").rglob("*.py")) for v in imported_test_modules(p)]
    assert found == []


def test_a_test_file_importing_another_is_caught(tmp_path):
    probe = tmp_path / "tests" / "test_probe.py"
    probe.parent.mkdir()
    probe.write_text("from tests.tui.test_chat_actions import store\nfrom tests.tui.chat_pilot import ask\n")
    assert imported_test_modules(probe, tmp_path) == [
        "tests/test_probe.py:1: imports tests.tui.test_chat_actions",
        "tests/test_probe.py:1: imports tests.tui.test_chat_actions.store",
    ]
