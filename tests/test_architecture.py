"""The package's shape: the import graph (every import statement, function-level ones included) has no
cycle and only points down the layers of docs/DESIGN.md; no module is over 300 lines; one folder per method."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "prompt_plugins"

#: bottom first; a module may import modules of its own layer or of lower ones (docs/DESIGN.md)
LAYERS = [
    ["_version", "errors", "precision", "config"],
    ["backends"],
    ["tokenization", "ops", "inputs", "classes", "files", "checkpoint", "losses"],
    ["text_blocks", "text_encoder", "text_cache", "text_requests", "text_targets", "prompts", "visual_hooks", "attachment", "towers"],
    ["model"],
    ["registry", "importers"],
    ["methods"],
    ["base_new", "training", "recipes", "data"],
    ["demo", "runs"],
    ["commands", "cli", "__main__"],
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str) -> str | None:
    """The package module ``name`` refers to (a submodule, else the nearest package), or None outside it."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names]  # a submodule, or a name in ``base``
        else:
            continue
        for name in names:
            target = resolve(name)
            if target is not None and target != module:
                found.add(target)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def layer_of(module: str) -> int:
    short = module.split(".")[1] if "." in module else ""
    for i, names in enumerate(LAYERS):
        if short in names:
            return i
    raise AssertionError(f"{module} is in no layer of LAYERS: add it (and to docs/DESIGN.md)")


def test_every_module_has_a_layer():
    for module in MODULES:
        if module != "prompt_plugins":
            layer_of(module)


def test_no_import_cycle():
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_imports_only_point_down():
    upward = [f"{m} -> {t}" for m, targets in GRAPH.items() if m != "prompt_plugins"
              for t in targets if t == "prompt_plugins" or layer_of(t) > layer_of(m)]
    assert not upward, "imports of a higher layer (or of the package root):\n" + "\n".join(sorted(upward))


@pytest.mark.parametrize("low", ["prompts", "losses", "backends"])
def test_lower_layers_import_nothing_above_them(low):
    for module, targets in GRAPH.items():
        if module.split(".")[1:2] == [low]:
            assert all(layer_of(t) <= layer_of(module) for t in targets), (module, targets)


def test_no_module_over_300_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 300}
    assert not long, long


def test_one_folder_per_method():
    import prompt_plugins as pp

    assert sorted(pp.METHODS) == ["coop", "dpc", "ga2", "ivlp", "kgcoop", "maple", "promptkd", "promptsrc"]
    for name in pp.METHODS:
        assert (PACKAGE / "methods" / name / "__init__.py").is_file()
        assert pp.METHODS[name].build.__module__.startswith(f"prompt_plugins.methods.{name}")


def test_the_checker_sees_a_cycle_and_an_upward_import():
    assert "prompt_plugins.registry" in GRAPH["prompt_plugins.methods.coop"]  # relative imports resolve
    assert GRAPH["prompt_plugins.errors"] == set()
    assert layer_of("prompt_plugins.methods.dpc.wrapper") > layer_of("prompt_plugins.registry")


def test_backend_resolved_once_per_wrap_and_load(tmp_path, monkeypatch):
    import prompt_plugins as pp
    import prompt_plugins.registry as registry
    from tiny_models import make_model

    calls = []
    real = registry.resolve
    monkeypatch.setattr(registry, "resolve", lambda model: calls.append(model) or real(model))
    model = make_model("openai")
    dpc = pp.wrap(model, ["red circle", "blue square"], method="dpc", n_ctx=2)
    assert len(calls) == 1
    pp.save_pretrained(dpc, tmp_path)
    dpc.eject()
    pp.from_pretrained(model, tmp_path)
    assert len(calls) == 2
