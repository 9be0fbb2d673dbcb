"""`mistake-testbed appwrite-test-server`: run the Appwrite stand-in until Ctrl-C."""

from __future__ import annotations

import argparse
import threading

from .seed import seed_main
from .server import DEFAULT_PROJECT, AppwriteTestServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mistake-testbed appwrite-test-server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--project", default=DEFAULT_PROJECT, help="project id clients must send")
    parser.add_argument("--key", default=None, help="API key clients must send (default: random)")
    parser.add_argument("--schema", default=None, help="schema JSON file (default: the production schema)")
    parser.add_argument("--seed-data", action="store_true", help="add sample modules and a profile")
    parser.add_argument("--function-url", default=None, help="deliver mistake_records create/update events here")
    args = parser.parse_args(argv)
    if args.host not in {"127.0.0.1", "localhost", "::1"}:
        parser.error("the test server only listens on loopback")

    server = AppwriteTestServer(
        host=args.host, port=args.port, project_id=args.project, api_key=args.key, schema=args.schema
    )
    with server:
        if args.seed_data:
            seed_main(server)
        if args.function_url:
            server.subscribe(args.function_url)
        print(f"endpoint:   {server.endpoint}")
        print(f"project id: {server.project_id}")
        print(f"api key:    {server.api_key}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping")
    return 0
