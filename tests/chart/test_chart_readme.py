"""The chart README's configuration table documents exactly the keys values.yaml documents, with their defaults."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from chart_support import CHART

pytestmark = pytest.mark.chart

README = CHART / "README.md"
VALUES = CHART / "values.yaml"


def documented_values() -> dict[str, str]:
    """Keys of values.yaml that carry a `# --` comment (helm-docs style), with the comment text."""
    out: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    comment: list[str] = []
    for line in VALUES.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            comment = [stripped.removeprefix("# --").strip()]
            continue
        if stripped.startswith("#") and comment:
            comment.append(stripped.lstrip("#").strip())
            continue
        match = re.match(r"^( *)([A-Za-z_][\w]*):", line)
        if not match or stripped.startswith("-"):
            continue
        indent = len(match.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match.group(2)))
        if comment:
            out[".".join(k for _, k in stack)] = " ".join(comment)
        comment = []
    return out


def leaves(node: Any, prefix: str = "") -> set[str]:
    if isinstance(node, dict) and node:
        return set().union(*(leaves(v, f"{prefix}{k}.") for k, v in node.items()))
    return {prefix.rstrip(".")}


def readme_table() -> dict[str, str]:
    section = README.read_text(encoding="utf-8").split("\n## Configuration\n", 1)[1]
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+) \| (.*?) \|", section, re.M)
    return {key: default.strip() for key, _, default in rows}


def default_of(key: str) -> str:
    node: Any = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    for part in key.split("."):
        node = node[part]
    return f"`{json.dumps(node, separators=(',', ':'))}`"


def test_every_value_is_documented_in_values_yaml() -> None:
    documented = documented_values()
    values = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    for leaf in leaves(values):
        parts = leaf.split(".")
        prefixes = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        assert prefixes & documented.keys(), f"{leaf} has no `# --` comment in values.yaml"


def test_readme_table_matches_values_yaml() -> None:
    documented = documented_values()
    table = readme_table()
    assert len(table) >= 50
    assert sorted(table) == sorted(documented), "regenerate the README table (see its header)"
    for key, default in table.items():
        assert default == default_of(key), f"{key}: README default {default} != values.yaml {default_of(key)}"


def test_schema_knows_every_documented_key() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    for key in documented_values():
        node = schema
        for part in key.split("."):
            assert part in node.get("properties", {}), f"{key} is missing from values.schema.json"
            node = node["properties"][part]


def render_table() -> str:
    """The table README.md carries (printed by `python tests/chart/test_chart_readme.py`)."""
    lines = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    values = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    for key, text in documented_values().items():
        node: Any = values
        for part in key.split("."):
            node = node[part]
        kind = {dict: "object", list: "list", bool: "bool", int: "int", float: "float", str: "string"}.get(
            type(node), "null"
        )
        lines.append(f"| `{key}` | {kind} | {default_of(key)} | {text.replace('|', '/')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_table())
