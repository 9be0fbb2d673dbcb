"""Kopf operator that batches MistakeAnalyses into Kubernetes Jobs."""
