"""The analysis prompt and its JSON schema.

The system prompt is a constant, byte-identical on every request, so provider prefix caches hit; everything that
varies (candidate modules, the user's knowledge points, re-analysis feedback, the pages) is in the user message.
The response schema is strict-mode compatible (every property required, no additional properties, no numeric or
length keywords that strict mode rejects); bounds are enforced by validation instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from mistake_api.subjects import SUBJECTS

QUESTION_TYPES: Final = ("choice", "fillBlank", "shortAnswer", "essay")
KP_CATEGORIES: Final = ("primary", "secondary", "related")
IMPORTANCE: Final = ("high", "basic", "normal")
# The app's errorReason vocabulary, so the cause can be shown with the app's own labels.
ERROR_CAUSES: Final = (
    "conceptError",
    "carelessness",
    "calculationError",
    "methodError",
    "incompleteAnswer",
    "misunderstanding",
    "timeConstrain",
    "other",
)
FALLBACK_MODULE: Final = "未分类"
SCHEMA_NAME: Final = "mistake_analysis"

SYSTEM_PROMPT: Final = "\n".join(
    (
        "你是一名经验丰富的中小学教师，负责分析学生拍照上传的错题。"
        "图片按页序给出，多张图片是同一道题的连续页面，必须合并为一道题。",
        "",
        "请只输出一个 JSON 对象（不要 Markdown 代码块，不要多余文字），字段如下：",
        "- content：题目原文（忽略学生的手写作答和老师的批改痕迹），Markdown 格式；"
        "数学、物理、化学公式一律用 LaTeX：行内公式用 \\( \\)，独立公式用 \\[ \\] 并单独成行；"
        "化学式写在 \\text{} 中。保持原题的段落、小问编号与空格（填空处用 ______）。选择题的选项不要写进 content。",
        "- type：题型，choice（选择题）、fillBlank（填空题）、shortAnswer（解答、计算、简答题）、"
        "essay（作文或开放写作）之一。",
        '- options：选择题的选项，每项一行并带标号，如 "A. …"；非选择题为 []。',
        "- subject：学科代码，math、physics、chemistry、biology、chinese、english、history、geography、politics 之一。",
        "- answer：正确答案，简洁（选择题给出选项字母）。",
        "- explanation：完整的解题过程，分步书写，公式同样使用 LaTeX。",
        "- modules：该题所属的学科模块名称，只能从用户消息给出的“候选模块”中原样选择，且必须属于你判断的学科；"
        '通常 1 个，最多 2 个；没有合适的模块时用 "未分类"。',
        "- knowledgePoints：1 到 3 个精确的知识点，每项包含 name（知识点名称，简洁、可复用；"
        "若用户已有同义的知识点，直接沿用其名称）、module（所属模块，必须是 modules 中的一项）、"
        "category（primary 为本题核心考点，secondary 为间接涉及，related 为相关拓展；primary 有 1 到 2 个）、"
        "importance（high 为高频考点，basic 为基础知识，normal 为一般）。",
        "- solvingHint：Markdown + LaTeX，分两部分：【本题思路点拨】（点明思路方向，不给出完整步骤）"
        "和【方法论】（同类题的一般方法与易错点），语气亲切、鼓励。",
        "- errorCause：学生错误原因，category 为 conceptError、carelessness、calculationError、methodError、"
        "incompleteAnswer、misunderstanding、timeConstrain、other 之一；"
        "explanation 结合图片中学生的作答（如可见）说明错在哪里。",
        "- difficulty：难度，1（最易）到 5（最难）的整数。",
        "- figures：题目中需要保留的插图（几何图、电路图、函数图像等；装饰性图片不算），"
        "每项包含 page（从 1 开始的页序号）、box（[x1, y1, x2, y2]，按该页宽高归一化到 0–1000 的整数）、"
        "caption（图注，没有则为空字符串）；没有插图时为 []。",
        "",
        "如果用户消息中包含“重新分析”的反馈，说明上一次识别有误：请认真对照图片，纠正用户指出的问题，不要重复之前的错误。",
    )
)


def analysis_schema(module_names: Sequence[str]) -> dict[str, Any]:
    """The response schema; `modules` and knowledge-point `module` are limited to the candidate names.

    The candidates depend only on the education level, so a provider sees few distinct schemas and can cache
    their compiled grammars.
    """
    modules = sorted({*module_names, FALLBACK_MODULE})

    def obj(properties: dict[str, Any]) -> dict[str, Any]:
        return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}

    string = {"type": "string"}
    return obj(
        {
            "content": string,
            "type": {"type": "string", "enum": list(QUESTION_TYPES)},
            "options": {"type": "array", "items": string},
            "subject": {"type": "string", "enum": list(SUBJECTS)},
            "answer": string,
            "explanation": string,
            "modules": {"type": "array", "items": {"type": "string", "enum": modules}},
            "knowledgePoints": {
                "type": "array",
                "items": obj(
                    {
                        "name": string,
                        "module": {"type": "string", "enum": modules},
                        "category": {"type": "string", "enum": list(KP_CATEGORIES)},
                        "importance": {"type": "string", "enum": list(IMPORTANCE)},
                    }
                ),
            },
            "solvingHint": string,
            "errorCause": obj({"category": {"type": "string", "enum": list(ERROR_CAUSES)}, "explanation": string}),
            "difficulty": {"type": "integer", "enum": [1, 2, 3, 4, 5]},
            "figures": {
                "type": "array",
                "items": obj(
                    {
                        "page": {"type": "integer"},
                        "box": {"type": "array", "items": {"type": "integer"}},
                        "caption": string,
                    }
                ),
            },
        }
    )


@dataclass(frozen=True)
class PreviousQuestion:
    content: str = ""
    type: str = ""
    subject: str = ""
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class PromptContext:
    """The per-request part of the prompt."""

    education_level: str
    # subject code -> candidate module names at the user's level (in library order)
    candidates: Mapping[str, Sequence[str]]
    # subject code -> the user's existing knowledge point names
    user_knowledge_points: Mapping[str, Sequence[str]] = field(default_factory=dict)
    wrong_reason: str | None = None
    previous: PreviousQuestion | None = None
    page_count: int = 1


def user_text(ctx: PromptContext) -> str:
    lines = [f"学生学段：{ctx.education_level}。"]
    if ctx.page_count > 1:
        lines.append(f"以下 {ctx.page_count} 张图片是同一道题按顺序拍摄的连续页面，请合并为一道题。")
    lines.append("候选模块（按学科，modules 只能从对应学科中选择）：")
    for code, chinese in SUBJECTS.items():
        names = [n for n in ctx.candidates.get(code, ()) if n != FALLBACK_MODULE]
        lines.append(f"- {code}（{chinese}）：{'、'.join(names) if names else '（无）'}；以及 {FALLBACK_MODULE}")
    known = {code: names for code, names in ctx.user_knowledge_points.items() if names}
    if known:
        lines.append("该学生已有的知识点（同义时请沿用名称）：")
        for code, known_names in known.items():
            lines.append(f"- {code}：{'、'.join(known_names)}")
    if ctx.wrong_reason or ctx.previous:
        lines.append("")
        lines.append("【重新分析】上一次的识别结果有误，请对照图片重新识别并纠正。")
        if ctx.previous is not None:
            previous = {
                "type": ctx.previous.type,
                "subject": ctx.previous.subject,
                "content": ctx.previous.content,
                "options": list(ctx.previous.options),
            }
            lines.append("上一次的结果：" + json.dumps(previous, ensure_ascii=False))
        if ctx.wrong_reason:
            lines.append(f"用户指出的问题：{ctx.wrong_reason}")
    lines.append("")
    lines.append("请按系统要求输出 JSON。")
    return "\n".join(lines)


def repair_text(problems: str) -> str:
    return (
        "你上一次的输出不符合要求："
        f"{problems}\n请严格按照最初的要求，针对同样的图片重新输出完整的 JSON 对象，不要输出其他内容。"
    )
