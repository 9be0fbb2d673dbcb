"""The sample set: which question photos and bad inputs exist, and what a correct analysis of each says."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# Bump when rendering or the catalogue changes: cached files are keyed by it.
SAMPLES_VERSION = 2

BadKind = Literal["empty", "truncated_jpeg", "pdf_as_jpg", "html_as_jpg", "decompression_bomb", "oversize"]


@dataclass(frozen=True)
class Page:
    """What is printed on one photographed page (display text, not LaTeX)."""

    lines: tuple[str, ...]
    options: tuple[str, ...] = ()
    student_mark: str | None = None
    """Handwriting the student added (blue pen), e.g. the chosen option."""


@dataclass(frozen=True)
class Expected:
    """The analysis a correct model would return (the LLM test server answers with these facts)."""

    subject: str
    type: str
    content: str
    """Question text as Markdown + LaTeX (\\( \\) inline)."""
    snippet: str
    """A short piece of `content` a test can look for."""
    options: tuple[str, ...] = ()
    answer: str = ""
    student_answer: str = ""
    knowledge_points: tuple[str, ...] = ()

    def facts(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "type": self.type,
            "content": self.content,
            "options": list(self.options),
            "answer": self.answer,
            "studentAnswer": self.student_answer,
            "knowledgePoints": [
                {"name": n, "role": "primary" if i == 0 else "secondary"} for i, n in enumerate(self.knowledge_points)
            ],
        }


@dataclass(frozen=True)
class PhotoSpec:
    name: str
    description: str
    expected: Expected
    pages: tuple[Page, ...]
    size: tuple[int, int] = (1240, 1754)
    """Upright (display) width x height of each page."""
    image_format: Literal["JPEG", "PNG"] = "JPEG"
    exif_orientation: int = 1
    """EXIF Orientation tag; 6 stores the pixels rotated so that applying the tag shows the page upright."""

    def file_names(self) -> list[str]:
        ext = "jpg" if self.image_format == "JPEG" else "png"
        if len(self.pages) == 1:
            return [f"{self.name}.{ext}"]
        return [f"{self.name}.p{i + 1}.{ext}" for i in range(len(self.pages))]

    def markers(self) -> list[str]:
        if len(self.pages) == 1:
            return [self.name]
        return [f"{self.name}.p{i + 1}" for i in range(len(self.pages))]


@dataclass(frozen=True)
class BadSpec:
    name: str
    file_name: str
    kind: BadKind
    description: str
    expected_error: str
    """What a careful system should conclude (a short code the worker can map to its own error reasons)."""
    lazy: bool = field(default=False)
    """Generated only on request (large on disk)."""


MATH_CHOICE = Expected(
    subject="math",
    type="choice",
    content="已知函数 \\(f(x)=x^{2}-2x+3\\)，则 \\(f(2)\\) 的值为（  ）",
    snippet="f(2)",
    options=("A. 1", "B. 2", "C. 3", "D. 4"),
    answer="C",
    student_answer="B",
    knowledge_points=("函数值的计算", "二次函数"),
)

PHOTOS: tuple[PhotoSpec, ...] = (
    PhotoSpec(
        name="math-choice",
        description="math, choice with options A-D, inline formula; student circled a wrong option",
        expected=MATH_CHOICE,
        pages=(
            Page(
                lines=("1. 已知函数 f(x) = x² − 2x + 3，则 f(2) 的值为（    ）",),
                options=("A. 1", "B. 2", "C. 3", "D. 4"),
                student_mark="B",
            ),
        ),
    ),
    PhotoSpec(
        name="math-fill",
        description="math, fill-in-blank with a square root",
        expected=Expected(
            subject="math",
            type="fillBlank",
            content="若 \\(\\sqrt{x-1}\\) 在实数范围内有意义，则 \\(x\\) 的取值范围是______。",
            snippet="取值范围",
            answer="\\(x \\ge 1\\)",
            student_answer="x > 1",
            knowledge_points=("二次根式有意义的条件",),
        ),
        pages=(
            Page(lines=("2. 若 √(x − 1) 在实数范围内有意义，", "   则 x 的取值范围是 ______。"), student_mark="x > 1"),
        ),
        image_format="PNG",
    ),
    PhotoSpec(
        name="physics-choice",
        description="physics, choice with units",
        expected=Expected(
            subject="physics",
            type="choice",
            content=(
                "一物体从静止开始做匀加速直线运动，加速度为 \\(2\\,\\mathrm{m/s^2}\\)，"
                "则 \\(3\\,\\mathrm{s}\\) 末的速度为（  ）"
            ),
            snippet="匀加速直线运动",
            options=("A. 2 m/s", "B. 4 m/s", "C. 6 m/s", "D. 9 m/s"),
            answer="C",
            student_answer="D",
            knowledge_points=("匀变速直线运动的速度与时间的关系",),
        ),
        pages=(
            Page(
                lines=("3. 一物体从静止开始做匀加速直线运动，", "   加速度为 2 m/s²，则 3 s 末的速度为（    ）"),
                options=("A. 2 m/s", "B. 4 m/s", "C. 6 m/s", "D. 9 m/s"),
                student_mark="D",
            ),
        ),
    ),
    PhotoSpec(
        name="chemistry-fill",
        description="chemistry, fill-in-blank equation balancing with subscripts",
        expected=Expected(
            subject="chemistry",
            type="fillBlank",
            content="配平化学方程式：___\\(\\text{H}_2\\) + ___\\(\\text{O}_2\\) \\(=\\) ___\\(\\text{H}_2\\text{O}\\)",
            snippet="配平化学方程式",
            answer="2；1；2",
            student_answer="1；1；1",
            knowledge_points=("化学方程式的配平", "质量守恒定律"),
        ),
        pages=(Page(lines=("4. 配平化学方程式：", "   ___ H₂ + ___ O₂ ＝ ___ H₂O"), student_mark="1  1  1"),),
    ),
    PhotoSpec(
        name="english-choice",
        description="english, dialogue completion choice",
        expected=Expected(
            subject="english",
            type="choice",
            content="— Would you mind opening the window?\n— ______. It's too hot in here.",
            snippet="opening the window",
            options=("A. Never mind", "B. Of course not", "C. Yes, please", "D. That's right"),
            answer="B",
            student_answer="C",
            knowledge_points=("情景交际：Would you mind ...? 的答语",),
        ),
        pages=(
            Page(
                lines=("5. — Would you mind opening the window?", "   — ______. It's too hot in here."),
                options=("A. Never mind", "B. Of course not", "C. Yes, please", "D. That's right"),
                student_mark="C",
            ),
        ),
    ),
    PhotoSpec(
        name="chinese-short",
        description="chinese, short answer about a classical poem",
        expected=Expected(
            subject="chinese",
            type="shortAnswer",
            content="阅读诗句“春风又绿江南岸，明月何时照我还。”诗中“绿”字有什么妙处？",
            snippet="春风又绿江南岸",
            answer="“绿”字把形容词用作动词，写出了春风吹过、江南变绿的动态过程，色彩鲜明，生动形象。",
            student_answer="写出了春天的颜色。",
            knowledge_points=("古诗词炼字赏析",),
        ),
        pages=(
            Page(
                lines=("6. 阅读诗句“春风又绿江南岸，明月何时照我还。”", "   诗中“绿”字有什么妙处？", "", "   答："),
                student_mark="写出了春天的颜色。",
            ),
        ),
    ),
    PhotoSpec(
        name="math-two-page",
        description="math, one question photographed as two pages (stem, then sub-questions)",
        expected=Expected(
            subject="math",
            type="shortAnswer",
            content=(
                "如图，在 \\(\\triangle ABC\\) 中，\\(AB=AC=5\\)，\\(BC=6\\)，\\(AD \\perp BC\\) 于点 \\(D\\)。\n"
                "(1) 求 \\(AD\\) 的长；\n(2) 求 \\(\\triangle ABC\\) 的面积。"
            ),
            snippet="AD \\perp BC",
            answer="(1) \\(AD=4\\)；(2) \\(S=12\\)",
            student_answer="(1) AD=4 (2) S=24",
            knowledge_points=("等腰三角形三线合一", "勾股定理"),
        ),
        pages=(
            Page(lines=("7. 如图，在 △ABC 中，AB = AC = 5，BC = 6，", "   AD ⊥ BC 于点 D。", "   （见下页）")),
            Page(lines=("   (1) 求 AD 的长；", "   (2) 求 △ABC 的面积。"), student_mark="(1) AD=4  (2) S=24"),
        ),
    ),
    PhotoSpec(
        name="physics-choice-phone",
        description="phone photo: 4032x3024 JPEG with EXIF Orientation 6 (pixels stored rotated)",
        expected=Expected(
            subject="physics",
            type="choice",
            content="下列物理量中，属于矢量的是（  ）",
            snippet="属于矢量",
            options=("A. 质量", "B. 时间", "C. 路程", "D. 速度"),
            answer="D",
            student_answer="C",
            knowledge_points=("矢量和标量",),
        ),
        pages=(
            Page(
                lines=("8. 下列物理量中，属于矢量的是（    ）",),
                options=("A. 质量", "B. 时间", "C. 路程", "D. 速度"),
                student_mark="C",
            ),
        ),
        size=(3024, 4032),
        exif_orientation=6,
    ),
    PhotoSpec(
        name="math-choice-phone-upright",
        description="phone photo: 3024x4032 JPEG, Orientation 1, same question as math-choice",
        expected=MATH_CHOICE,
        pages=(
            Page(
                lines=("1. 已知函数 f(x) = x² − 2x + 3，则 f(2) 的值为（    ）",),
                options=("A. 1", "B. 2", "C. 3", "D. 4"),
                student_mark="B",
            ),
        ),
        size=(3024, 4032),
    ),
)

BAD_INPUTS: tuple[BadSpec, ...] = (
    BadSpec("empty", "empty.jpg", "empty", "zero bytes", "empty_file"),
    BadSpec("truncated", "truncated.jpg", "truncated_jpeg", "a JPEG cut off at 60 %", "truncated_image"),
    BadSpec("pdf-as-jpg", "document.jpg", "pdf_as_jpg", "a PDF document named .jpg", "not_an_image"),
    BadSpec("html-as-jpg", "error-page.jpg", "html_as_jpg", "an HTML error page named .jpg", "not_an_image"),
    BadSpec(
        "decompression-bomb",
        "bomb.png",
        "decompression_bomb",
        "a ~50 KB PNG declaring 20000x20000 pixels (400 MP)",
        "image_too_large",
    ),
    BadSpec(
        "oversize",
        "oversize.jpg",
        "oversize",
        "a valid JPEG padded with comment segments to more than 30,000,000 bytes",
        "file_too_large",
        lazy=True,
    ),
)

OVERSIZE_BYTES = 30_000_000 + 4096


def photo(name: str) -> PhotoSpec:
    for spec in PHOTOS:
        if spec.name == name:
            return spec
    raise KeyError(name)


def bad_input(name: str) -> BadSpec:
    for spec in BAD_INPUTS:
        if spec.name == name:
            return spec
    raise KeyError(name)
