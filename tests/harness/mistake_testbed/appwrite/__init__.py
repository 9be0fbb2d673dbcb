"""Local Appwrite stand-in: Databases, TablesDB and Storage over loopback HTTP, with Functions-style events.

Start one with `AppwriteTestServer` (see docs/test-servers.md); `runtime` runs a function's `main(context)`
in process and `function_host` serves it over HTTP the way open-runtimes does.
"""

from .errors import AppwriteError
from .events import EventRecord, Execution, Subscription
from .faults import Fault
from .schema import Schema, load_schema
from .server import AppwriteTestServer

__all__ = [
    "AppwriteError",
    "AppwriteTestServer",
    "EventRecord",
    "Execution",
    "Fault",
    "Schema",
    "Subscription",
    "load_schema",
]
