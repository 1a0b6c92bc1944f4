"""The mutants of scripts/mutation.py: cosmic-ray's operators, minus lines that cannot matter."""

from __future__ import annotations

import ast
import difflib
import functools
import hashlib
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Operators left out (as mutation.sh did): shifts, powers, modulo, floor division and XOR as
# replacements (mostly incompetent mutants that crash at once), ==/< -> `is` (equivalent on
# small ints), and the variable inserter/replacer (random names; noise more than signal).
EXCLUDE = re.compile(
    r"core/ReplaceBinaryOperator_\w+_(LShift|RShift|Pow|Mod|FloorDiv|BitXor)$"
    r"|core/ReplaceComparisonOperator_(Eq|NotEq|Lt|LtE|Gt|GtE)_(Is|IsNot)$"
    r"|core/VariableInserter|core/VariableReplacer"
)
LOG_METHODS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}
LOG_RECEIVER = re.compile(r"(^|\.)_?(log|logger|LOG|LOGGER|logging)$")
# ExceptionReplacer writes `except CosmicRayTestingException:`; defining the name (after the
# last line, so no line moves) makes that a handler that never matches instead of a NameError.
NEVER_RAISED = "\n\nclass CosmicRayTestingException(Exception):\n    pass\n"


@dataclass
class Mutant:
    """One mutant: where, which operator, and the lines it changes."""

    id: str
    module: str
    line: int
    col: int
    operator: str
    occurrence: int
    diff: list[str]
    # (first line index, lines replaced, new lines): enough to rebuild it without cosmic-ray
    patch: list[tuple[int, int, list[str]]] = field(default_factory=list)
    appendix: str = ""

    def apply(self, source: str) -> str:
        lines = source.split("\n")
        for start, count, new in reversed(self.patch):
            lines[start : start + count] = new
        return "\n".join(lines) + self.appendix

    def public(self) -> dict[str, Any]:
        out = asdict(self)
        del out["patch"], out["appendix"]
        return out


def digest(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def mutant_id(module: str, operator: str, occurrence: int) -> str:
    return f"{module.removeprefix('service/')}:{operator.removeprefix('core/')}:{occurrence}"


def enumerate_module(root: Path, module: str) -> tuple[list[Mutant], dict[str, int]]:
    """Every mutant of one module in cosmic-ray's (operator, occurrence) numbering, and how
    many were skipped why."""
    # Imported here: only enumeration needs cosmic-ray; running a saved plan does not.
    from cosmic_ray.ast import ast_nodes, get_ast
    from cosmic_ray.mutating import mutate_code
    from cosmic_ray.plugins import get_operator, operator_names

    source = (root / module).read_text()
    dead = DeadCode(source)
    nodes = list(ast_nodes(get_ast(source)))
    mutants = []
    skipped: Counter[str] = Counter()
    for name in operator_names():
        if EXCLUDE.match(name):
            continue
        operator = get_operator(name)()
        positions = [start for node in nodes for start, _ in operator.mutation_positions(node)]
        for occurrence, (line, col) in enumerate(positions):
            reason = dead.reason(line, col)
            if reason:
                skipped[reason] += 1
                continue
            try:
                mutated = mutate_code(source, operator, occurrence)
            except Exception:  # cosmic-ray 8.x: `except (binascii.Error, ValueError)`
                skipped[f"{name.split('/')[-1]} failed"] += 1
                continue
            if mutated is None or mutated == source:
                skipped["no change"] += 1
                continue
            patch, diff = _patch(source, mutated)
            appendix = NEVER_RAISED if name == "core/ExceptionReplacer" else ""
            mutants.append(
                Mutant(
                    mutant_id(module, name, occurrence),
                    module,
                    line,
                    col,
                    name,
                    occurrence,
                    diff,
                    patch,
                    appendix,
                )
            )
    return mutants, dict(skipped)


def _patch(source: str, mutated: str) -> tuple[list[tuple[int, int, list[str]]], list[str]]:
    old, new = source.split("\n"), mutated.split("\n")
    patch, diff = [], []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            patch.append((i1, i2 - i1, new[j1:j2]))
            diff += [f"-{line.strip()}" for line in old[i1:i2]]
            diff += [f"+{line.strip()}" for line in new[j1:j2]]
    return patch, diff


class DeadCode:
    """Source spans where a mutant cannot change behaviour a test could see: docstrings,
    type annotations, log calls, the message text of a raised exception, `__all__`, and
    `if TYPE_CHECKING:` blocks."""

    def __init__(self, source: str) -> None:
        self._lines = source.split("\n")
        self.spans: list[tuple[tuple[int, int], tuple[int, int], str]] = []
        for node in ast.walk(ast.parse(source)):
            self._collect(node)

    def reason(self, line: int, col: int) -> str | None:
        """Why a mutant at (line, col) (parso: 1-based line, column in characters) can't
        matter, or None."""
        for start, end, why in self.spans:
            if start <= (line, col) < end:
                return why
        return None

    def _add(self, node: ast.AST, why: str) -> None:
        start = (node.lineno, self._chars(node.lineno, node.col_offset))  # type: ignore[attr-defined]
        end_line = node.end_lineno  # type: ignore[attr-defined]
        end = (end_line, self._chars(end_line, node.end_col_offset))  # type: ignore[attr-defined]
        self.spans.append((start, end, why))

    def _chars(self, line: int, byte_col: int) -> int:
        # ast counts UTF-8 bytes, parso characters (checks.py has a "±" in a message)
        return len(self._lines[line - 1].encode()[:byte_col].decode(errors="ignore"))

    def _collect(self, node: ast.AST) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if node.returns:
                self._add(node.returns, "annotation")
            args = node.args
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                if arg.annotation:
                    self._add(arg.annotation, "annotation")
            for arg in (args.vararg, args.kwarg):
                if arg and arg.annotation:
                    self._add(arg.annotation, "annotation")
        if isinstance(node, ast.AnnAssign):
            self._add(node.annotation, "annotation")
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                self._add(body[0], "docstring")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = ast.unparse(node.func.value)
            if node.func.attr in LOG_METHODS and LOG_RECEIVER.search(receiver):
                self._add(node, "log call")
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
            message = node.exc.args[0]
            if _is_text(message):
                self._add(message, "exception message")
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            self._add(node, "__all__")
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            self._add(node, "TYPE_CHECKING")


def _is_text(node: ast.expr) -> bool:
    """A string literal, an f-string, or a concatenation of them."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    return isinstance(node, ast.BinOp) and _is_text(node.left) and _is_text(node.right)


@functools.cache  # once per module, not once per mutant
def statement_lines(source: str) -> dict[int, set[int]]:
    """For each source line, the lines coverage may have recorded it under: the first line of
    the innermost statement holding it (and, for a decorated def or class, its decorators')."""
    lines: dict[int, set[int]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.stmt):
            first = {node.lineno}
            decorators = getattr(node, "decorator_list", [])
            first |= {d.lineno for d in decorators}
            top = min(first)
            end = node.end_lineno or node.lineno
            body_start = _body_start(node)
            for line in range(top, min(end, body_start - 1) + 1):
                # ast.walk is breadth-first: inner statements come later and win
                lines[line] = {line} | first
    return lines


def _body_start(node: ast.stmt) -> int:
    """The first line of a compound statement's body (its header ends before it)."""
    body = getattr(node, "body", None)
    if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
        return body[0].lineno
    return (node.end_lineno or node.lineno) + 1


@functools.cache
def enclosing_functions(source: str) -> list[tuple[int, int, int, int]]:
    """(header start, body start, body end, depth) of every def: a mutant in a def's header
    (a default value, a decorator) shows in the tests that run its body."""
    out = []

    def visit(node: ast.AST, depth: int) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                top = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                out.append((top, child.body[0].lineno, child.end_lineno or child.lineno, depth))
            visit(child, depth + 1)

    visit(ast.parse(source), 0)
    return out
