"""The closed set of reasons an analysis can end Failed or Cancelled with, or be retried for.

A reason is what operators see in `kubectl get ma -o wide`, what metrics are labelled with, and what the app
shows (prefixed) in `analysisError`. Adding a reason is a contract change: update docs/reasons.md too
(a test keeps the two in step).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    RETRY = "retry"  # go back to Queued with backoff, until maxAttempts or the maximum age
    FAIL = "fail"  # Failed at once: the same input would fail again
    CANCEL = "cancel"  # Cancelled: nothing is wrong, the work is no longer wanted


class Reason(StrEnum):
    # Spec problems, found at intake by the operator.
    INVALID_SPEC = "InvalidSpec"
    NO_IMAGES = "NoImages"
    TOO_MANY_IMAGES = "TooManyImages"
    # Images.
    IMAGE_NOT_FOUND = "ImageNotFound"
    IMAGE_TOO_LARGE = "ImageTooLarge"
    IMAGE_UNSUPPORTED = "ImageUnsupported"
    IMAGE_CORRUPT = "ImageCorrupt"
    IMAGE_BOMB = "ImageBomb"
    # The LLM.
    LLM_RATE_LIMITED = "LLMRateLimited"
    LLM_UNAVAILABLE = "LLMUnavailable"
    LLM_TIMEOUT = "LLMTimeout"
    LLM_AUTH_FAILED = "LLMAuthFailed"
    LLM_BAD_REQUEST = "LLMBadRequest"
    LLM_REFUSED = "LLMRefused"
    LLM_CONTENT_FILTERED = "LLMContentFiltered"
    LLM_TRUNCATED = "LLMTruncated"
    LLM_INVALID_OUTPUT = "LLMInvalidOutput"
    # Appwrite.
    APPWRITE_UNAVAILABLE = "AppwriteUnavailable"
    APPWRITE_AUTH_FAILED = "AppwriteAuthFailed"
    APPWRITE_REJECTED = "AppwriteRejected"
    MODULE_NOT_FOUND = "ModuleNotFound"
    # The Job and its pod.
    POD_LOST = "PodLost"
    JOB_DEADLINE_EXCEEDED = "JobDeadlineExceeded"
    WORKER_CRASHED = "WorkerCrashed"
    INTERRUPTED = "Interrupted"
    INTERNAL_ERROR = "InternalError"
    # Budgets.
    RETRIES_EXHAUSTED = "RetriesExhausted"
    EXPIRED = "Expired"
    # Cancellations.
    CANCELLED = "Cancelled"
    SUPERSEDED = "Superseded"
    RECORD_DELETED = "RecordDeleted"
    NOT_PENDING = "NotPending"


@dataclass(frozen=True)
class ReasonInfo:
    outcome: Outcome
    summary: str  # English, for operators
    user_text: str  # Chinese, shown to students in the app through analysisError

    @property
    def retryable(self) -> bool:
        return self.outcome is Outcome.RETRY


R = Reason
O = Outcome  # noqa: E741 - a short alias keeps the table readable
REASONS: dict[Reason, ReasonInfo] = {
    R.INVALID_SPEC: ReasonInfo(O.FAIL, "the analysis spec is invalid (ids, bucket or user)", "分析请求无效"),
    R.NO_IMAGES: ReasonInfo(O.FAIL, "the record has no images", "错题记录缺少图片"),
    R.TOO_MANY_IMAGES: ReasonInfo(O.FAIL, "the record has more images than allowed", "图片数量超过上限"),
    R.IMAGE_NOT_FOUND: ReasonInfo(O.FAIL, "an image file does not exist in storage", "图片不存在或已被删除"),
    R.IMAGE_TOO_LARGE: ReasonInfo(O.FAIL, "an image file is larger than the download cap", "图片文件过大"),
    R.IMAGE_UNSUPPORTED: ReasonInfo(O.FAIL, "a file is not a supported image type", "文件不是支持的图片格式"),
    R.IMAGE_CORRUPT: ReasonInfo(O.FAIL, "an image cannot be decoded (truncated or damaged)", "图片已损坏，无法读取"),
    R.IMAGE_BOMB: ReasonInfo(O.FAIL, "an image declares more pixels than allowed", "图片尺寸异常"),
    R.LLM_RATE_LIMITED: ReasonInfo(O.RETRY, "the LLM provider answered 429", "识别服务繁忙"),
    R.LLM_UNAVAILABLE: ReasonInfo(O.RETRY, "the LLM provider failed (5xx or connection)", "识别服务暂不可用"),
    R.LLM_TIMEOUT: ReasonInfo(O.RETRY, "the LLM call timed out", "识别服务超时"),
    R.LLM_AUTH_FAILED: ReasonInfo(O.RETRY, "the LLM provider rejected the credentials", "识别服务配置错误"),
    R.LLM_BAD_REQUEST: ReasonInfo(O.FAIL, "the LLM provider rejected the request (4xx)", "识别请求被拒绝"),
    R.LLM_REFUSED: ReasonInfo(O.FAIL, "the model refused to analyse the content", "模型拒绝分析该内容"),
    R.LLM_CONTENT_FILTERED: ReasonInfo(
        O.FAIL, "the provider's content filter stopped the answer", "内容未通过安全审核"
    ),
    R.LLM_TRUNCATED: ReasonInfo(O.FAIL, "the answer hit the output token limit", "识别结果过长被截断"),
    R.LLM_INVALID_OUTPUT: ReasonInfo(O.FAIL, "the answer was invalid even after one repair", "识别结果格式无效"),
    R.APPWRITE_UNAVAILABLE: ReasonInfo(O.RETRY, "Appwrite failed (5xx, 429 or connection)", "数据服务暂不可用"),
    R.APPWRITE_AUTH_FAILED: ReasonInfo(O.RETRY, "Appwrite rejected the API key", "数据服务配置错误"),
    R.APPWRITE_REJECTED: ReasonInfo(O.FAIL, "Appwrite rejected a write (4xx)", "保存分析结果失败"),
    R.MODULE_NOT_FOUND: ReasonInfo(O.FAIL, "no subject module exists for the question", "找不到对应的学科模块"),
    R.POD_LOST: ReasonInfo(O.RETRY, "the Job or its pod disappeared before reporting", "分析任务中断"),
    R.JOB_DEADLINE_EXCEEDED: ReasonInfo(O.RETRY, "the Job ran past activeDeadlineSeconds", "分析任务超时"),
    R.WORKER_CRASHED: ReasonInfo(O.RETRY, "the worker exited without reporting this analysis", "分析任务异常退出"),
    R.INTERRUPTED: ReasonInfo(O.RETRY, "the worker was stopped (SIGTERM) and released the analysis", "分析任务被中断"),
    R.INTERNAL_ERROR: ReasonInfo(O.RETRY, "an unexpected error in the worker", "内部错误"),
    R.RETRIES_EXHAUSTED: ReasonInfo(O.FAIL, "retryable failures reached maxAttempts", "多次重试后仍失败"),
    R.EXPIRED: ReasonInfo(O.FAIL, "the analysis passed its maximum age", "分析等待时间过长"),
    R.CANCELLED: ReasonInfo(O.CANCEL, "spec.cancel was set or the analysis was deleted", "分析已取消"),
    R.SUPERSEDED: ReasonInfo(O.CANCEL, "a newer revision of the record asked for analysis", "已被新的分析请求取代"),
    R.RECORD_DELETED: ReasonInfo(O.CANCEL, "the Appwrite record no longer exists", "错题记录已删除"),
    R.NOT_PENDING: ReasonInfo(O.CANCEL, "the record is no longer waiting for this analysis", "错题记录无需分析"),
}


def info(reason: Reason | str) -> ReasonInfo:
    return REASONS[Reason(reason)]


def is_retryable(reason: Reason | str) -> bool:
    return info(reason).retryable


def analysis_error_text(reason: Reason | str, detail: str, limit: int = 1000) -> str:
    """The `analysisError` written to Appwrite: the student-facing text, then the reason and detail for support.

    Bounded to the column size so the write itself can never fail on length.
    """
    r = Reason(reason)
    text = f"{REASONS[r].user_text} [{r.value}]"
    if detail:
        text = f"{text}: {detail}"
    return text if len(text) <= limit else text[: limit - 1] + "…"
