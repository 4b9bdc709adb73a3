"""The public SDK (plugin_host.sdk): what it offers, that the built-ins use nothing else, that it stays cheap."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import plugin_host
from plugin_host import sdk

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "plugins"
#: The public modules and the names each offers; everything else in plugin_host is internal.
PUBLIC = {"plugin_host.sdk": set(sdk.__all__), "plugin_host.testing": {"MethodConformance"},
          "plugin_host": set(plugin_host.__all__)}


def host_imports(path: Path):
    """``(line, module, names)`` for every import of plugin_host or a module inside it in ``path``."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "plugin_host" or alias.name.startswith("plugin_host."):
                    yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                node.module == "plugin_host" or node.module.startswith("plugin_host.")):
            yield node.lineno, node.module, [alias.name for alias in node.names]


def outside(paths, allowed: dict[str, set[str]]) -> list[str]:
    found = []
    for path in paths:
        for line, module, names in host_imports(path):
            bad = module not in allowed or names is not None and set(names) - allowed[module]
            if bad:
                shown = f"import {module}" if names is None else f"from {module} import {', '.join(names)}"
                where = path.relative_to(REPO) if path.is_relative_to(REPO) else path.name
                found.append(f"{where}:{line}: {shown}")
    return found


def test_builtin_methods_import_only_the_sdk():
    files = sorted((REPO / "plugins").rglob("*.py"))
    assert len(files) > 10
    assert outside(files, {"plugin_host.sdk": PUBLIC["plugin_host.sdk"]}) == []


def test_the_plugins_in_the_author_docs_import_only_public_names(tmp_path):
    """The example packages' files, and every Python block of the pages."""
    files = sorted(DOCS.rglob("*.py"))
    for page in sorted(DOCS.glob("*.md")):
        for number, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)):
            files.append(tmp_path / f"{page.stem}-block{number}.py")
            files[-1].write_text(block, encoding="utf-8")
    assert len(files) > 10
    assert outside(files, PUBLIC) == []


def test_the_check_catches_private_imports(tmp_path):
    sample = tmp_path / "hooks.py"
    sample.write_text("from plugin_host.imaging.io import load_image\nimport plugin_host.losses\n"
                      "from plugin_host import schema\nfrom plugin_host.sdk import load_image, not_public\n"
                      "def f():\n    from plugin_host.runner import Session\n")
    found = [line.split(": ", 1)[1] for line in outside([sample], PUBLIC)]
    assert found == ["from plugin_host.imaging.io import load_image", "import plugin_host.losses",
                     "from plugin_host import schema", "from plugin_host.sdk import load_image, not_public",
                     "from plugin_host.runner import Session"]


def test_every_name_resolves_and_the_lazy_ones_are_spelt_out_for_type_checkers():
    assert all(getattr(sdk, name) is not None for name in sdk.__all__)
    tree = ast.parse((REPO / "plugin_host" / "sdk.py").read_text())
    checking = next(n for n in tree.body if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test))
    spelt = {alias.name for node in checking.body for alias in node.names}
    assert spelt == set(sdk._LAZY)
    assert sdk.resize_max_side.__module__ == "plugin_host.imaging.resize"
    with pytest.raises(AttributeError, match="no attribute 'resize'"):
        sdk.resize  # noqa: B018


def test_importing_the_sdk_and_listing_imports_no_torch():
    """A hooks module imports the SDK; registering, listing, writing cards and extracting weights stay torch-free."""
    code = """
import sys, tempfile, zipfile
from pathlib import Path
from plugin_host.sdk import Method, hookimpl, packaged_models, package_model, load_registry
from plugin_host.weights.archive import extract_member
folder = Path(tempfile.mkdtemp())
(folder / "m.pth").write_bytes(b"weights")
package_model(folder / "m.pth", folder / "pack", {"name": "m", "model_kind": "perceptual-style"})
assert [e.name for e in packaged_models(folder / "pack")] == ["m"]
with zipfile.ZipFile(folder / "a.zip", "w") as zf:
    zf.writestr("x", b"y")
extract_member(folder / "a.zip", "x", folder / "x")
registry = load_registry()
assert registry.methods and not registry.failures, registry.failures
[m.method.to_json() for m in registry.methods.values()]
print(sorted(name for name in sys.modules if name == "torch" or name.startswith("torch.")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_sdk_page_documents_every_name_once():
    text = (DOCS / "sdk.md").read_text(encoding="utf-8")
    first_cells = re.findall(r"^\| (`.*?) \|", text, re.M)  # a table row's first cell: `name` or `a`, `b`
    documented = [name for cell in first_cells for name in re.findall(r"`(\w+)`", cell)]
    assert sorted(documented) == sorted(set(documented)), "a name is documented twice"
    assert set(documented) == set(sdk.__all__)
