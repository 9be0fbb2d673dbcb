"""skaffold.yaml validates against the v4beta14 schema, names only paths that exist, and wires images into values."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from chart_support import CHART, ROOT

pytestmark = pytest.mark.chart

SKAFFOLD = ROOT / "skaffold.yaml"


def load() -> dict[str, Any]:
    data = yaml.safe_load(SKAFFOLD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def validator(shared_schemas: Path) -> jsonschema.protocols.Validator:
    schema = json.loads((shared_schemas / "skaffold-v4beta14.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def test_skaffold_validates_against_the_schema(shared_schemas: Path) -> None:
    data = load()
    assert data["apiVersion"] == "skaffold/v4beta14"
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator(shared_schemas).iter_errors(data)]
    assert errors == []


def test_the_schema_catches_a_typo(shared_schemas: Path) -> None:
    data = load()
    data["build"]["artifacts"][0]["docker"]["dockerFile"] = data["build"]["artifacts"][0]["docker"].pop("dockerfile")
    assert list(validator(shared_schemas).iter_errors(data))


def _paths(data: dict[str, Any]) -> list[Path]:
    out: list[Path] = []
    for artifact in data["build"]["artifacts"]:
        context = ROOT / artifact.get("context", ".")
        out += [context, context / artifact["docker"]["dockerfile"]]
    for release in data["deploy"]["helm"]["releases"]:
        out.append(ROOT / release["chartPath"])
        out += [ROOT / f for f in release.get("valuesFiles", [])]
    for profile in data.get("profiles", []):
        for patch in profile.get("patches", []):
            if patch["path"].endswith("/valuesFiles"):
                out += [ROOT / f for f in patch["value"]]
    return out


def test_every_named_path_exists() -> None:
    missing = [str(p.relative_to(ROOT)) for p in _paths(load()) if not p.exists()]
    assert missing == [], f"skaffold.yaml names paths that do not exist: {missing}"


def test_both_images_are_built_and_wired_into_values() -> None:
    data = load()
    images = {a["image"]: a["docker"]["dockerfile"] for a in data["build"]["artifacts"]}
    assert images == {
        "mistake-analyzer-operator": "operator/Dockerfile",
        "mistake-analyzer-worker": "job_image/Dockerfile",
    }
    (release,) = data["deploy"]["helm"]["releases"]
    assert (ROOT / release["chartPath"]).resolve() == CHART
    templates = release["setValueTemplates"]
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    for key, template in templates.items():
        node: Any = values
        for part in key.split("."):
            assert isinstance(node, dict)
            assert part in node, f"setValueTemplates key {key} is not a chart value"
            node = node[part]
        image = re.fullmatch(r"\{\{\.IMAGE_(?:REPO|TAG)_(\w+)\}\}", template)
        assert image, template
        assert image.group(1) in {i.replace("-", "_") for i in images}
    assert {
        "operator.image.repository",
        "operator.image.tag",
        "job.image.repository",
        "job.image.tag",
    } <= templates.keys()


def test_profiles_for_local_and_production() -> None:
    profiles = {p["name"]: p for p in load()["profiles"]}
    assert {"local", "production"} <= profiles.keys()
    assert profiles["local"]["build"]["local"]["push"] is False
    assert profiles["production"]["build"]["local"]["push"] is True
    digests = [p["path"] for p in profiles["production"]["patches"] if p["path"].endswith(".digest")]
    assert len(digests) == 2
