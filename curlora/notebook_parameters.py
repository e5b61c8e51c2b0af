"""A notebook's typed parameters cell, and checking values against it.

A notebook declares its parameters in one cell tagged ``parameters``, one ``name: type = value``
a line; papermill replaces them when the suite runs it.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any


def declared_parameters(path: Path) -> dict[str, tuple[str, Any]]:
    """The notebook's ``parameters`` cell as {name: (type annotation, default)}."""
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(
            f"{path.name} must have exactly one cell tagged 'parameters', found {len(tagged)}."
        )
    tree = ast.parse("".join(tagged[0]["source"]))
    params = {}
    for node in tree.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            raise ValueError(f"{path.name}: every parameters line must read `name: type = value`.")
        params[node.target.id] = (ast.unparse(node.annotation), ast.literal_eval(node.value))
    return params


def matches(value: Any, annotation: str) -> bool:
    """Whether ``value`` has the type a parameters cell's annotation names."""
    scalar = {"int": int, "float": (int, float), "str": str, "bool": bool}
    if annotation in scalar:
        if annotation != "bool" and isinstance(value, bool):
            return False
        return isinstance(value, scalar[annotation])
    if annotation.startswith("list[") and annotation.endswith("]"):
        inner = annotation[5:-1]
        return isinstance(value, list) and all(matches(v, inner) for v in value)
    if annotation.startswith("dict[str, ") and annotation.endswith("]"):
        inner = annotation[len("dict[str, ") : -1]
        return isinstance(value, dict) and all(
            isinstance(k, str) and matches(v, inner) for k, v in value.items()
        )
    return False


def validate(path: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """Check ``overrides`` against the notebook's declared names and types; returns them."""
    declared = declared_parameters(path)
    listing = ", ".join(f"{n}: {t}" for n, (t, _) in declared.items())
    for name, value in overrides.items():
        if name not in declared:
            raise ValueError(f"{path.name} has no parameter {name!r}. Its parameters: {listing}.")
        annotation = declared[name][0]
        if not matches(value, annotation):
            raise TypeError(
                f"{path.name}: parameter {name} expects {annotation}, got {value!r} "
                f"({type(value).__name__})."
            )
    return overrides


def parse_assignment(text: str) -> tuple[str, Any]:
    """'name=value' from the command line; the value is a Python literal, else a string."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"Expected -p name=value, got {text!r}.")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return name.strip(), value


#: Parameters that name models or tasks, which may be paths relative to where the runner starts.
REFERENCE_PARAMETERS = ("model", "models", "tasks")


def absolute_references(overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` with local files and folders among models and tasks made absolute.

    The runner starts wherever the user is, but papermill runs each notebook inside
    ``notebooks/``: a relative ``reviews.csv`` must name the same file in both places.
    """

    def absolute(ref: Any) -> Any:
        if not isinstance(ref, str) or ref.startswith("hub:"):
            return ref
        base, sep, query = ref.partition("?")
        path = Path(base).expanduser()
        return f"{path.resolve()}{sep}{query}" if path.exists() else ref

    return {
        k: ([absolute(r) for r in v] if isinstance(v, list) else absolute(v))
        if k in REFERENCE_PARAMETERS
        else v
        for k, v in overrides.items()
    }
