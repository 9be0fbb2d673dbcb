"""Shared pytest configuration: fixtures live in the mistake_testbed package so the demo can reuse them."""

pytest_plugins = [
    "mistake_testbed.fixtures.paths",
    "mistake_testbed.fixtures.kube",
    "mistake_testbed.fixtures.appwrite",
    "mistake_testbed.fixtures.llm",
]
