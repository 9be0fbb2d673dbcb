"""The MistakeAnalysis contract shared by the operator, the worker and the chart.

Group/version/kind, spec and status models, phases, conditions, reasons, label keys and naming rules all live
here; the CRD YAML in the chart is generated from this package.
"""

from .builder import analysis_from_record
from .conditions import conditions_for, phase_patch, set_condition
from .constants import API_VERSION, GROUP, KIND, PLURAL, VERSION
from .models import (
    AnalysisError,
    AnalysisResult,
    Condition,
    MistakeAnalysis,
    MistakeAnalysisSpec,
    MistakeAnalysisStatus,
    Origin,
    Reanalysis,
    RecordRef,
    Source,
    rfc3339,
    utcnow,
)
from .naming import analysis_name, batch_name, record_key, user_key
from .reasons import REASONS, Outcome, Reason, analysis_error_text, is_retryable
from .states import ACTIVE_PHASES, TERMINAL_PHASES, ConditionStatus, ConditionType, Phase, is_terminal

__all__ = [
    "ACTIVE_PHASES",
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "REASONS",
    "TERMINAL_PHASES",
    "VERSION",
    "AnalysisError",
    "AnalysisResult",
    "Condition",
    "ConditionStatus",
    "ConditionType",
    "MistakeAnalysis",
    "MistakeAnalysisSpec",
    "MistakeAnalysisStatus",
    "Origin",
    "Outcome",
    "Phase",
    "Reanalysis",
    "Reason",
    "RecordRef",
    "Source",
    "analysis_error_text",
    "analysis_from_record",
    "analysis_name",
    "batch_name",
    "conditions_for",
    "is_retryable",
    "is_terminal",
    "phase_patch",
    "record_key",
    "rfc3339",
    "set_condition",
    "user_key",
    "utcnow",
]
