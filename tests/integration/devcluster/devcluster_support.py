"""Helpers shared by the dev-cluster tests (a module of its own: test folders here are not packages)."""

from __future__ import annotations

from typing import Any

GROUP, VERSION, PLURAL = "mistakes.dev", "v1alpha1", "mistakeanalyses"


def analysis(name: str, **spec: Any) -> dict[str, Any]:
    """A valid MistakeAnalysis body (the real CRD's required fields)."""
    body: dict[str, Any] = {
        "record": {"databaseId": "main", "collectionId": "mistake_records", "documentId": f"doc-{name}"[:36]},
        "userId": "user-1",
        "revision": "2026-01-01T00:00:00.000+00:00",
    }
    body.update(spec)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MistakeAnalysis",
        "metadata": {"name": name},
        "spec": body,
    }
