"""The package's modules form one-way layers: cli -> sync/scheduler -> store/providers ->
records/errors, with the emulator engine below the providers and naming none of them.

Read from the source with ``ast``: every import statement, also inside functions and
TYPE_CHECKING blocks, so a circle cannot hide behind a deferred import statement. (Loading
a module by name with importlib, as the provider registry does, is not an import edge.)
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "inventory"
PROVIDER_NAMES = ("qingcloud", "tencent", "ksyun", "kingsoft", "huawei", " iec", " ims", "kec")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # "from x import y" imports the module x.y when there is one, else x.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


GRAPH = _graph()


def _imports(prefix: str) -> dict[str, set[str]]:
    return {m: deps for m, deps in GRAPH.items() if m == prefix or m.startswith(prefix + ".")}


def test_no_import_circle() -> None:
    """Tarjan's strongly connected components: every one is a single module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in GRAPH[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert circles == []


def test_config_imports_the_providers_one_way() -> None:
    assert "inventory.providers" in GRAPH["inventory.config"]
    for module, deps in _imports("inventory.providers").items():
        assert "inventory.config" not in deps, module


def test_lower_layers_never_reach_up() -> None:
    upper = {
        "inventory.cli",
        "inventory.sync",
        "inventory.scheduler",
        "inventory.store",
        "inventory.db",
        "inventory.demo",
        "inventory.reports",
        "inventory.metrics",
        "inventory.config",
    }
    for prefix in ("inventory.providers", "inventory.emulation"):
        for module, deps in _imports(prefix).items():
            assert not deps & upper, (module, deps & upper)
    for module in (
        "inventory.records",
        "inventory.errors",
        "inventory.secrets",
        "inventory.source",
    ):
        assert not {d for d in GRAPH[module] if d.startswith("inventory.")} - {
            "inventory.errors",
            "inventory.secrets",
        }, module
    assert not {m for m, deps in GRAPH.items() if "inventory.cli" in deps}
    assert not any(d.startswith("inventory.providers") for d in GRAPH["inventory.store"])


def test_the_emulator_engine_names_no_provider() -> None:
    for module, deps in _imports("inventory.emulation").items():
        assert not any(d.startswith("inventory.providers") for d in deps), module
    for path in (PACKAGE / "emulation").glob("*.py"):
        text = path.read_text().lower()
        assert [name for name in PROVIDER_NAMES if name in text] == [], path.name
