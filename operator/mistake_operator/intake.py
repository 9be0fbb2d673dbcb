"""Intake decisions for a new MistakeAnalysis: is its spec usable, and does it supersede (or lose to) another?"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from mistake_api import MistakeAnalysisSpec, Reason
from mistake_api.constants import APPWRITE_ID_PATTERN

from .settings import Settings
from .state import AnalysisView, parse_time

_ID = re.compile(APPWRITE_ID_PATTERN)


@dataclass(frozen=True)
class Rejection:
    reason: Reason
    message: str


def check_spec(raw: dict[str, object], settings: Settings, original_image_count: int | None = None) -> Rejection | None:
    """None when the spec can be analysed; otherwise the named reason it cannot.

    `original_image_count` is the record's own count when the trigger had to cut the list to fit the resource.
    """
    try:
        spec = MistakeAnalysisSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return Rejection(Reason.INVALID_SPEC, f"spec.{where}: {first['msg']}")
    if not spec.image_ids:
        return Rejection(Reason.NO_IMAGES, "the record has no originalImageIds")
    count = max(len(spec.image_ids), original_image_count or 0)
    if count > settings.max_images_per_record:
        return Rejection(
            Reason.TOO_MANY_IMAGES,
            f"{count} images; at most {settings.max_images_per_record} are analysed together",
        )
    bad = [i for i in spec.image_ids if not _ID.match(i)]
    if bad:
        return Rejection(Reason.INVALID_SPEC, f"image id {bad[0][:60]!r} is not a valid Appwrite file id")
    if not spec.user_id:
        return Rejection(Reason.INVALID_SPEC, "spec.userId is empty")
    return None


def _order(view: AnalysisView) -> tuple[datetime, datetime, str]:
    """Newer revision wins; ties broken by creation time then name, so every process picks the same winner."""
    floor = datetime.min.replace(tzinfo=None)
    revision = parse_time(view.revision)
    created = view.created
    rev_key = revision.replace(tzinfo=None) if revision else floor
    created_key = created.replace(tzinfo=None) if created else floor
    return (rev_key, created_key, view.name)


def superseded(candidates: Iterable[AnalysisView]) -> list[AnalysisView]:
    """Of the active analyses of one record, all but the newest: they are to be cancelled as Superseded."""
    active = [v for v in candidates if v.active and not v.cancel]
    if len(active) < 2:
        return []
    newest = max(active, key=_order)
    return [v for v in active if v is not newest]
