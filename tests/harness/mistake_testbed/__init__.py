"""Local stand-ins for Kubernetes, Appwrite and an OpenAI-compatible LLM, for tests, benchmarks and the demo.

Everything here listens on loopback only.
"""
