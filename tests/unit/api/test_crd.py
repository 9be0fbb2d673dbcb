"""The committed CRD matches the generator, is a valid structural CRD, and accepts exactly what the models do."""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from mistake_api import constants as c
from mistake_api import crd
from mistake_api.models import MistakeAnalysisSpec, MistakeAnalysisStatus

pytestmark = pytest.mark.unit

K8S_VERSIONS = ["1.30.0", kubernetes_validate.utils.latest_version()]


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(crd.default_path().read_text(encoding="utf-8"))
    return doc


@pytest.fixture(scope="module")
def openapi(committed: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = committed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_committed_crd_matches_the_generator() -> None:
    assert crd.main(["--check"]) == 0, "run `python -m mistake_api.crd` and commit the result"


def test_check_fails_on_drift(tmp_path: Any) -> None:
    stale = tmp_path / "crd.yaml"
    stale.write_text(crd.render().replace("maxItems: 64", "maxItems: 65"), encoding="utf-8")
    assert crd.main(["--check", "--output", str(stale)]) == 1


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_crd_validates_with_kubernetes_validate(committed: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(committed, version, strict=True)


def test_names_and_columns(committed: dict[str, Any]) -> None:
    spec = committed["spec"]
    assert spec["group"] == c.GROUP
    assert spec["names"]["shortNames"] == ["ma"]
    assert spec["names"]["categories"] == ["mistakes"]
    version = spec["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [col["name"] for col in version["additionalPrinterColumns"] if not col.get("priority")]
    assert columns == ["Record", "Phase", "Attempts", "Job", "Subject", "Age"]


def _walk(node: dict[str, Any], path: str = "") -> list[str]:
    """Paths that break the structural-schema rules: a node without type, or a forbidden keyword."""
    problems = []
    if "type" not in node and not node.get("x-kubernetes-int-or-string"):
        problems.append(f"{path or '/'}: no type")
    for bad in ("$ref", "anyOf", "oneOf", "allOf", "additionalProperties", "definitions", "$defs"):
        if bad in node:
            problems.append(f"{path}: uses {bad}")
    for name, sub in node.get("properties", {}).items():
        problems += _walk(sub, f"{path}/{name}")
    if "items" in node:
        problems += _walk(node["items"], f"{path}[]")
    return problems


def test_schema_is_structural(openapi: dict[str, Any]) -> None:
    assert _walk(openapi) == []


def test_immutable_spec_fields_carry_transition_rules(openapi: dict[str, Any]) -> None:
    props = openapi["properties"]["spec"]["properties"]
    mutable = {name for name, p in props.items() if "x-kubernetes-validations" not in p}
    assert mutable == {"priority", "cancel"}


def _valid_spec() -> dict[str, Any]:
    return {
        "record": {"databaseId": "main", "collectionId": "mistake_records", "documentId": "r1"},
        "userId": "u1",
        "imageIds": ["f1", "f2"],
        "revision": "2026-12-04T10:00:00.000+00:00",
        "priority": 5,
    }


BAD_SPECS: list[tuple[str, dict[str, Any]]] = [
    ("missing revision", {"revision": None}),
    ("bad document id", {"record": {"databaseId": "main", "collectionId": "c", "documentId": "-x"}}),
    ("too many images", {"imageIds": [f"f{i}" for i in range(65)]}),
    ("priority too high", {"priority": 1001}),
    ("priority as a string", {"priority": "high"}),
    ("user id too long", {"userId": "u" * 37}),
    ("unknown origin", {"source": {"origin": "elsewhere"}}),
]


@pytest.mark.parametrize(("label", "change"), BAD_SPECS, ids=[b[0] for b in BAD_SPECS])
def test_schema_and_model_reject_the_same_bad_specs(
    openapi: dict[str, Any], label: str, change: dict[str, Any]
) -> None:
    spec = {**_valid_spec(), **change}
    spec = {k: v for k, v in spec.items() if v is not None}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(spec, openapi["properties"]["spec"])
    with pytest.raises(ValueError, match="validation error"):
        MistakeAnalysisSpec.model_validate(spec)


def test_schema_accepts_what_the_models_write(openapi: dict[str, Any]) -> None:
    from mistake_api import Phase, phase_patch

    spec = MistakeAnalysisSpec.model_validate(_valid_spec()).to_api()
    jsonschema.validate(spec, openapi["properties"]["spec"])
    status = phase_patch(None, Phase.QUEUED, generation=1, attempts=0)
    jsonschema.validate(status, openapi["properties"]["status"])
    assert MistakeAnalysisStatus.model_validate(status).phase == Phase.QUEUED
