"""Seed data for worker and end-to-end tests: subject modules for several levels and a user profile."""

from __future__ import annotations

from typing import Any

from .server import AppwriteTestServer

DEFAULT_USER = "user-1"

# (subject, educationLevel, grades, module names); `未分类` is the analyzer's fallback module name.
MODULES: tuple[tuple[str, str, list[int], tuple[str, ...]], ...] = (
    ("数学", "小学", [1, 2, 3, 4, 5, 6], ("数与运算", "图形与几何", "统计与概率", "未分类")),
    ("数学", "初中", [7, 8, 9], ("有理数", "一元二次方程", "函数", "三角形", "未分类")),
    ("数学", "高中", [10, 11, 12], ("集合与逻辑", "函数与导数", "数列", "立体几何", "未分类")),
    ("语文", "初中", [7, 8, 9], ("古诗文阅读", "现代文阅读", "写作", "未分类")),
    ("英语", "初中", [7, 8, 9], ("语法", "阅读理解", "完形填空", "未分类")),
    ("物理", "初中", [8, 9], ("力学", "电学", "光学", "未分类")),
    ("物理", "高中", [10, 11, 12], ("运动学", "电磁学", "未分类")),
    ("化学", "高中", [10, 11, 12], ("化学反应原理", "有机化学", "未分类")),
)


def seed_modules(aw: AppwriteTestServer) -> list[dict[str, Any]]:
    """Insert the `knowledge_points_library` modules; ids are stable (`mod-<n>`) across runs."""
    created = []
    n = 0
    for subject, level, grades, names in MODULES:
        for order, name in enumerate(names):
            n += 1
            data = {
                "subject": subject,
                "educationLevel": level,
                "grades": grades,
                "name": name,
                "description": f"{level}{subject}：{name}",
                "order": order * 10,
            }
            created.append(aw.insert("knowledge_points_library", data, document_id=f"mod-{n}"))
    return created


def seed_profile(aw: AppwriteTestServer, user_id: str = DEFAULT_USER, grade: int = 8, **fields: Any) -> dict[str, Any]:
    """A `profiles` document for `user_id` (looked up by the userId attribute, not the document id)."""
    data = {"userId": user_id, "grade": grade, "timezone": "Asia/Shanghai", **fields}
    return aw.insert("profiles", data, document_id=f"profile-{user_id}")


def seed_main(aw: AppwriteTestServer, user_id: str = DEFAULT_USER) -> dict[str, Any]:
    """The `main` database's buckets (from the schema), modules and one profile."""
    aw.state.store.create_database("main")
    return {"modules": seed_modules(aw), "profile": seed_profile(aw, user_id)}


def seed_record(
    aw: AppwriteTestServer,
    image_ids: list[str],
    user_id: str = DEFAULT_USER,
    record_id: str = "unique()",
    **fields: Any,
) -> dict[str, Any]:
    """A pending `mistake_records` document pointing at already stored images (no event fired)."""
    data = {"userId": user_id, "originalImageIds": image_ids, **fields}
    return aw.insert("mistake_records", data, document_id=record_id)
