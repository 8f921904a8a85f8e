"""The package's layers: each concern imports only the layers below it, and docs/architecture.md says so."""

import ast
import re

from tests.conftest import REPO

PACKAGE = REPO / "lstm_lm"
COMMON = {"errors", "config", "atomic", "reading", "targets", "lstm_lm"}  # lstm_lm: __version__
# What each layer may import besides itself and the common modules (docs/architecture.md, "The rules").
MAY_IMPORT = {
    "common": set(),
    "hardware": set(),
    "data": set(),
    "kernels": set(),
    "model": {"kernels"},
    "rundir": {"model", "data", "hardware"},
    "evaluate": {"rundir", "model", "data", "hardware"},
    "train": {"evaluate", "rundir", "model", "data", "hardware"},
    "agreement": {"evaluate", "rundir", "model", "data", "hardware"},
    "foreign": {"evaluate", "rundir", "model", "data", "hardware"},
    "export": {"rundir", "model", "data", "hardware", "evaluate"},
    "cli": {"train", "evaluate", "rundir", "agreement", "foreign", "export", "model", "data", "hardware", "kernels"},
}


def package_imports() -> dict[str, set[str]]:
    """Each module of lstm_lm (`train.trainer`, `agreement.scoring`) and the lstm_lm modules it imports from."""
    imports = {}
    for file in sorted(PACKAGE.rglob("*.py")):
        parts = file.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            continue
        here = list(parts[:-1])
        found = set()
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = here[:len(here) - (node.level - 1)]
                if node.module:
                    found.add(".".join(base + [node.module]))
                for alias in node.names if not node.module else []:
                    name = ".".join(base + [alias.name])
                    is_module = (PACKAGE / (name.replace(".", "/") + ".py")).exists()
                    found.add(name if is_module else ".".join(base) or "lstm_lm")
        imports[".".join(parts)] = found
    return imports


def layer(module: str) -> str:
    top = module.split(".")[0]
    if top in COMMON:
        return "common"
    return "cli" if top == "__main__" else top


def test_every_import_goes_down_the_layers():
    wrong = []
    for module, imported in package_imports().items():
        allowed = MAY_IMPORT[layer(module)] | {layer(module), "common"}
        wrong += [f"{module} imports {name}" for name in sorted(imported) if layer(name) not in allowed]
    assert wrong == []


def test_the_model_never_imports_data_or_training_and_data_never_the_model():
    imports = package_imports()
    for module, imported in imports.items():
        layers = {layer(name) for name in imported}
        if layer(module) == "model":
            assert not layers & {"data", "train", "rundir", "evaluate"}, module
        if layer(module) == "data":
            assert "model" not in layers, module


def test_architecture_lists_every_module_and_what_it_imports():
    text = (REPO / "docs/architecture.md").read_text(encoding="utf-8")
    table = text.split("| module | imports from `lstm_lm` |", 1)[1]
    documented = {}
    for module, imports in re.findall(r"^\| `([\w.]+)` \| (.*) \|$", table, re.M):
        documented[module] = set(re.findall(r"`([\w.]+)`", imports))
    assert documented == package_imports()


def test_architecture_states_the_rule_of_every_layer():
    text = (REPO / "docs/architecture.md").read_text(encoding="utf-8")
    rules = text.split("## The rules", 1)[1].split("\n## ", 1)[0]
    for name in MAY_IMPORT:
        assert re.search(rf"^\| `{name}/?` \|", rules, re.M), name
