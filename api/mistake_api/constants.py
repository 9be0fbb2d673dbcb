"""Names that identify the MistakeAnalysis resource, its labels and annotations.

Everything that talks about the resource (operator, worker, chart, trigger tests) imports these.
"""

from __future__ import annotations

from typing import Final

GROUP: Final = "mistakes.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "MistakeAnalysis"
LIST_KIND: Final = "MistakeAnalysisList"
PLURAL: Final = "mistakeanalyses"
SINGULAR: Final = "mistakeanalysis"
SHORT_NAMES: Final = ("ma",)
CATEGORIES: Final = ("mistakes",)
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

# Name prefix of every MistakeAnalysis and of every batch Job.
NAME_PREFIX: Final = "ma"
JOB_PREFIX: Final = "mab"

# Labels (values are always valid label values: hashes or fixed words, never raw user ids).
LABEL_RECORD: Final = f"{GROUP}/record"  # hash of (database, collection, document): all analyses of one record
LABEL_USER: Final = f"{GROUP}/user"  # hash of the Appwrite userId: per-user views without exposing the id
LABEL_BATCH: Final = f"{GROUP}/batch"  # on the Job and on its member analyses
LABEL_ORIGIN: Final = f"{GROUP}/origin"  # trigger | sweeper | cli
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
MANAGED_BY: Final = "mistake-analyzer-operator"
PART_OF: Final = "mistake-analyzer"
COMPONENT_JOB: Final = "analysis-job"

# Annotations.
ANNOTATION_MEMBERS: Final = f"{GROUP}/members"  # on the Job and its pod template: JSON list of member CR names
ANNOTATION_RECORD_ID: Final = f"{GROUP}/record-id"  # human-readable "<db>/<collection>/<document>"
# Set by the trigger when the record had more image ids than spec.imageIds can hold (MAX_IMAGE_IDS).
ANNOTATION_ORIGINAL_IMAGE_COUNT: Final = f"{GROUP}/original-image-count"
# Set by the operator beside spec.cancel when it cancels an analysis a Job holds (e.g. "Superseded").
ANNOTATION_CANCEL_REASON: Final = f"{GROUP}/cancel-reason"

# Environment the operator gives each Job pod (the worker reads these).
ENV_BATCH_MEMBERS: Final = "MISTAKE_BATCH_MEMBERS"
ENV_NAMESPACE: Final = "MISTAKE_NAMESPACE"
ENV_JOB_NAME: Final = "MISTAKE_JOB_NAME"

# Worker exit codes: the Job's podFailurePolicy maps PERMANENT to FailJob so a hopeless pod is not retried.
EXIT_OK: Final = 0
EXIT_RETRYABLE: Final = 1
EXIT_PERMANENT: Final = 42

# Appwrite defaults (domain model).
DEFAULT_DATABASE_ID: Final = "main"
DEFAULT_COLLECTION_ID: Final = "mistake_records"
DEFAULT_BUCKET_ID: Final = "origin_question_image"

# Bounds the CRD enforces; the operator applies stricter, configurable ones with named reasons.
MAX_IMAGE_IDS: Final = 64
APPWRITE_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,35}$"
APPWRITE_ID_MAX: Final = 36
