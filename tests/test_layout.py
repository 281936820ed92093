"""The import rules that keep the layout honest, read from the source with ``ast`` (nothing is imported).

- the stages are pure: they import no store, no run machinery, no evaluation kit;
- the store holds the schema and imports no algorithm: of labelgen, only the status codes (and its
  lock and chunk checks, which import no more);
- the labelling chain and everything it runs (all of labelgen outside ``labelgen/eval/``) imports
  the evaluation kit only inside functions, where a user asked for it; the CLI registers the
  kit's commands (``labelgen.eval.cli``) and nothing more of it;
- labelgen imports nothing of train (the label store joins them);
- in train, the losses import no network; the datasets and the evaluation import no trainer (nothing
  of ``train.engine`` or the workflows that run it); nothing in train imports ``train.cli``.

Each rule is also run on a made-up module that breaks it, so a rule that could never fail shows.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from tests.helpers import REPO_ROOT

ROOT = REPO_ROOT


def module_name(path: Path, root: Path = ROOT) -> str:
    """``labelgen/run/job.py`` -> ``labelgen.run.job``; a package's ``__init__.py`` is the package."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str = "", is_package: bool = False) -> list[tuple[str, bool]]:
    """``(imported module, at module level)`` for every import in ``source``.

    ``from a.b import c`` counts as importing ``a.b`` and ``a.b.c`` (``c`` may be a module);
    relative imports are resolved against ``module``. An import inside a function runs only
    when the function does; one in a class body or under ``if``/``try`` runs at import.

    Example:
        >>> imports_of("import a.b\\ndef f():\\n    from c import d")
        [('a.b', True), ('c', False), ('c.d', False)]
    """
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((alias.name, not in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[:len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                found.append((base, not in_function))
                found.extend((f"{base}.{alias.name}", not in_function) for alias in child.names)
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(source), False)
    return found


def project_imports(folder: str, root: Path = ROOT) -> dict[str, list[tuple[str, bool]]]:
    """Imports of every module under ``folder`` (a path relative to ``root``, the project), by file."""
    files = sorted((root / folder).rglob("*.py")) if (root / folder).is_dir() else [root / folder]
    assert files, f"nothing to check under {folder}"
    return {str(path.relative_to(root)): imports_of(path.read_text(), module_name(path, root), path.name == "__init__.py")
            for path in files}


def within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


def violations(folder: str, forbidden: tuple[str, ...], module_level_only: bool = False,
               allowed: dict[str, set[str]] | None = None, root: Path = ROOT) -> list[str]:
    """``file: module`` for each import under ``folder`` of a module within ``forbidden``."""
    allowed = allowed or {}
    return [f"{file}: {module}" for file, imports in project_imports(folder, root).items()
            for module, at_module_level in imports
            if within(module, forbidden) and (at_module_level or not module_level_only)
            and not within(module, tuple(allowed.get(file, ())))]


def test_the_checker_sees_each_kind_of_import():
    source = ("import labelgen.store\nfrom labelgen.eval import synth\nfrom . import worker\n"
              "class A:\n    from labelgen import run\n"
              "def f():\n    import labelgen.eval.quality\n")
    assert imports_of(source, "labelgen.run.job") == [
        ("labelgen.store", True), ("labelgen.eval", True), ("labelgen.eval.synth", True),
        ("labelgen.run", True), ("labelgen.run.worker", True),
        ("labelgen", True), ("labelgen.run", True), ("labelgen.eval.quality", False)]
    assert imports_of("from .. import store", "labelgen.run", is_package=True) == [
        ("labelgen", True), ("labelgen.store", True)]


def test_stages_import_no_store_run_or_evaluation_kit():
    assert violations("labelgen/stages", ("labelgen.store", "labelgen.run", "labelgen.run_lock", "labelgen.eval",
                                          "labelgen.chain", "labelgen.cli", "train")) == []


@pytest.mark.parametrize("module", ["labelgen/store.py", "labelgen/run_lock.py", "labelgen/integrity.py",
                                    "labelgen/object_lock.py", "labelgen/locations.py"])
def test_the_store_imports_no_algorithm(module):
    """Of labelgen the schema, its locks, its chunk checks and where stores are (a folder or a URL) import only
    each other and the status codes."""
    others = [name for name, _ in project_imports(module)[module] if within(name, ("labelgen",))
              and not within(name, ("labelgen.status", "labelgen.store", "labelgen.integrity", "labelgen.run_lock",
                                    "labelgen.object_lock", "labelgen.locations"))]
    assert others == []


def test_labelgen_imports_nothing_of_train():
    """The label store is the one join between the halves: train reads it, labelgen never needs train."""
    assert violations("labelgen", ("train",)) == []


def test_production_code_imports_the_evaluation_kit_only_where_a_user_asks_for_it():
    production = [path for path in sorted((ROOT / "labelgen").rglob("*.py"))
                  if not within(module_name(path), ("labelgen.eval",))]
    assert len(production) > 30  # the chain, stages, sources, store, run, CLI ...
    found = [line for path in production
             for line in violations(str(path.relative_to(ROOT)), ("labelgen.eval",), module_level_only=True,
                                    allowed={"labelgen/cli.py": {"labelgen.eval.cli"}})]
    assert found == []


TRAINER = ("train.engine", "train.workflows")  # the training loop, and what runs it
TRAIN_RULES = {  # folder: what nothing in it may import
    "train/losses": ("train.models",),  # a loss takes logits and labels, whatever network made them
    "train/datasets": TRAINER,  # data serves the trainer, benchmarks and evaluation alike
    "train/evaluation": TRAINER,  # scores any model file, however it was trained
    "train": ("train.cli",),  # the commands sit on top: nothing depends on them
}


@pytest.mark.parametrize("folder, forbidden", TRAIN_RULES.items(), ids=list(TRAIN_RULES))
def test_train_import_rules(folder, forbidden):
    assert violations(folder, forbidden) == []


@pytest.mark.parametrize("folder, forbidden", TRAIN_RULES.items(), ids=list(TRAIN_RULES))
def test_each_train_rule_fails_on_a_module_that_breaks_it(tmp_path, folder, forbidden):
    for module in forbidden:
        bad = tmp_path / folder / "sub" / f"uses_{module.replace('.', '_')}.py"
        bad.parent.mkdir(parents=True, exist_ok=True)
        bad.write_text(f"from {module.rpartition('.')[0]} import {module.rpartition('.')[2]}\n")
    assert [line.rpartition(": ")[2] for line in violations(folder, forbidden, root=tmp_path)] == list(forbidden)
