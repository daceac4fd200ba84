"""`python -m bench.mutation`: break the pure and dispatch modules on purpose, count what the tests catch.

Outside CI (it runs each module's fast tests once per mutant). For every target module it
parses the source, enumerates small semantic mutations (a comparison flipped, a condition
negated, a boolean operator swapped, a constant changed, a returned value dropped), writes each
mutant into a scratch copy of the repository and runs that module's tests there. A mutant is
*killed* when the tests fail (or time out) and *survives* when they pass. Survivors are listed
with the reason recorded for them in `bench/mutation_survivors.json`, or as UNEXPLAINED.

The operators are a curated handful, not mutmut's full set: each one corresponds to a way a
safety claim can break (a check inverted, a default changed, a filter dropped).
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SURVIVORS_FILE = Path(__file__).resolve().parent / "mutation_survivors.json"

# Module → the fast tests that pin its behaviour (no engine, no long waits).
TARGETS: dict[str, list[str]] = {
    "infra/providers/sandbox.py": [
        "tests/infra/test_diffs.py",
        "tests/infra/test_payloads.py",
        "tests/infra/test_image_recipe.py",
    ],
    "infra/config.py": ["tests/infra/test_config.py"],
    "orchestrator_app/workers.py": ["tests/orchestrator_app/test_workers.py"],
    "orchestrator_app/webhooks.py": ["tests/orchestrator_app/test_webhooks.py"],
    "orchestrator_app/dispatch.py": [
        "tests/orchestrator_app/test_dispatch.py",
        "tests/orchestrator_app/test_work_queue.py",
    ],
}

COMPARE_SWAPS: dict[type, type] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
IGNORED_PATHS = (".git", ".venv", ".state", ".mypy_cache", ".ruff_cache", ".pytest_cache")


@dataclass(frozen=True)
class Mutation:
    """One change at one node: `index` counts nodes in `ast.walk` order."""

    index: int
    line: int
    kind: str
    description: str


@dataclass
class ModuleResult:
    """The outcome for one target module."""

    module: str
    killed: int = 0
    survived: list[dict[str, object]] = field(default_factory=list)
    baseline_seconds: float = 0.0
    error: str | None = None

    @property
    def total(self) -> int:
        return self.killed + len(self.survived)


def _describe_constant(node: ast.Constant) -> tuple[str, bool | int] | None:
    """The replacement for a constant worth mutating, or None (strings and None are skipped)."""
    value = node.value
    if isinstance(value, bool):
        return f"{value} → {not value}", not value
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value} → {value + 1}", value + 1
    return None


def _in_docstring_or_annotation(tree: ast.AST) -> set[int]:
    """Ids of nodes inside annotations and docstrings, which mutate nothing at run time."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        parts: list[ast.AST] = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            parts += [a.annotation for a in node.args.args if a.annotation]
            parts += [node.returns] if node.returns else []
        if isinstance(node, ast.AnnAssign):
            parts.append(node.annotation)
        for part in parts:
            skipped.update(id(child) for child in ast.walk(part))
    return skipped


def _returns_none(node: ast.Return) -> bool:
    return node.value is None or (isinstance(node.value, ast.Constant) and node.value.value is None)


def mutations_of(source: str) -> list[Mutation]:
    """Every mutation the operators find in `source` (pure: no I/O)."""
    tree = ast.parse(source)
    skipped = _in_docstring_or_annotation(tree)
    found: list[Mutation] = []
    for index, node in enumerate(ast.walk(tree)):
        if id(node) in skipped:
            continue
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Compare) and type(node.ops[0]) in COMPARE_SWAPS:
            new = COMPARE_SWAPS[type(node.ops[0])].__name__
            found.append(Mutation(index, line, "compare", f"{type(node.ops[0]).__name__} → {new}"))
        elif isinstance(node, ast.BoolOp):
            found.append(Mutation(index, line, "boolop", "and ↔ or"))
        elif isinstance(node, ast.If | ast.While | ast.IfExp):
            found.append(Mutation(index, line, "negate", "condition negated"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            found.append(Mutation(index, line, "drop-not", "`not` removed"))
        elif isinstance(node, ast.Constant) and _describe_constant(node):
            described = _describe_constant(node)
            assert described is not None
            found.append(Mutation(index, line, "constant", described[0]))
        elif isinstance(node, ast.Return) and not _returns_none(node):
            found.append(Mutation(index, line, "return-none", "returns None"))
    return found


class _Apply(ast.NodeTransformer):
    """Applies one mutation at the node with the given walk index."""

    def __init__(self, target: ast.AST) -> None:
        self.target = target

    def visit(self, node: ast.AST) -> ast.AST:
        node = self.generic_visit(node)
        if node is not self.target:
            return node
        if isinstance(node, ast.Compare):
            node.ops[0] = COMPARE_SWAPS[type(node.ops[0])]()
        elif isinstance(node, ast.BoolOp):
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        elif isinstance(node, ast.If | ast.While | ast.IfExp):
            node.test = ast.UnaryOp(op=ast.Not(), operand=node.test)
        elif isinstance(node, ast.UnaryOp):
            return node.operand
        elif isinstance(node, ast.Constant):
            described = _describe_constant(node)
            assert described is not None
            return ast.copy_location(ast.Constant(value=described[1]), node)
        elif isinstance(node, ast.Return):
            node.value = None
        return node


def apply_mutation(source: str, mutation: Mutation) -> str:
    """The source of the mutant (pure); comments are lost, semantics otherwise kept."""
    tree = ast.parse(source)
    target = next(n for i, n in enumerate(ast.walk(tree)) if i == mutation.index)
    mutated = _Apply(target).visit(copy.copy(tree))
    return ast.unparse(ast.fix_missing_locations(mutated))


def spread(items: list[Mutation], limit: int | None) -> list[Mutation]:
    """At most `limit` items, evenly spaced over the module (deterministic sampling)."""
    if limit is None or len(items) <= limit:
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def scratch_copy() -> Path:
    """A copy of the repository to mutate (without the venv, git and caches)."""
    root = Path(tempfile.mkdtemp(prefix="cma-mutation-"))
    shutil.copytree(REPO, root / "repo", ignore=shutil.ignore_patterns(*IGNORED_PATHS))
    return root / "repo"


def run_tests(repo: Path, tests: list[str], timeout: float) -> tuple[bool, float]:
    """(passed, seconds) of the tests in the scratch copy, with the project's interpreter."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "DO_NOT_TRACK": "1"}
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
            cwd=repo,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, time.monotonic() - started
    return done.returncode == 0, time.monotonic() - started


def known_reasons() -> dict[str, str]:
    """Recorded reasons for survivors, keyed `module:line:kind:description`."""
    if not SURVIVORS_FILE.exists():
        return {}
    return dict(json.loads(SURVIVORS_FILE.read_text()))


def survivor_key(module: str, mutation: Mutation) -> str:
    return f"{module}:{mutation.line}:{mutation.kind}:{mutation.description}"


def mutate_module(
    repo: Path, module: str, tests: list[str], limit: int | None
) -> Iterator[tuple[Mutation, bool] | ModuleResult]:
    """Yields each mutant's (mutation, killed), then the module's result."""
    result = ModuleResult(module)
    path = repo / module
    if not path.exists():
        result.error = "module not found (update TARGETS)"
        yield result
        return
    original = path.read_text()
    passed, result.baseline_seconds = run_tests(repo, tests, timeout=600)
    if not passed:
        result.error = "its tests fail before any mutation"
        yield result
        return
    timeout = max(30.0, 10 * result.baseline_seconds)
    reasons = known_reasons()
    try:
        for mutation in spread(mutations_of(original), limit):
            path.write_text(apply_mutation(original, mutation))
            survived, _ = run_tests(repo, tests, timeout)
            if survived:
                key = survivor_key(module, mutation)
                result.survived.append(
                    {**asdict(mutation), "reason": reasons.get(key, "UNEXPLAINED")}
                )
            else:
                result.killed += 1
            yield mutation, not survived
    finally:
        path.write_text(original)
    yield result


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.mutation", description=__doc__)
    parser.add_argument("--module", action="append", help="only this target (repeatable)")
    parser.add_argument("--max-per-module", type=int, default=40, help="sample at most N mutants")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    targets = {m: t for m, t in TARGETS.items() if not args.module or m in args.module}
    repo = scratch_copy()
    results: list[ModuleResult] = []
    try:
        for module, tests in targets.items():
            for event in mutate_module(repo, module, tests, args.max_per_module):
                if isinstance(event, ModuleResult):
                    results.append(event)
                elif not args.json:
                    mutation, killed = event
                    mark = "killed  " if killed else "SURVIVED"
                    print(f"  {mark} {module}:{mutation.line} {mutation.description}", flush=True)
    finally:
        shutil.rmtree(repo.parent, ignore_errors=True)
    if args.json:
        print(json.dumps([{**asdict(r), "total": r.total} for r in results], indent=2))
    else:
        print_table(results)
    return 1 if any(r.error for r in results) else 0


def print_table(results: list[ModuleResult]) -> None:
    print(f"\n{'module':40} {'killed':>7} {'survived':>9} {'total':>6}")
    for r in results:
        if r.error:
            print(f"{r.module:40} error: {r.error}")
            continue
        print(f"{r.module:40} {r.killed:7} {len(r.survived):9} {r.total:6}")
    for r in results:
        for s in r.survived:
            print(f"survivor {r.module}:{s['line']} {s['kind']} {s['description']}: {s['reason']}")


if __name__ == "__main__":
    raise SystemExit(main())
