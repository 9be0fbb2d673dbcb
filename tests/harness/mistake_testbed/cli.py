"""`mistake-testbed` command: start the local stand-ins for a person to use."""

from __future__ import annotations

import importlib
import sys

# subcommand -> module whose `main(argv)` runs it; imported lazily so one broken part never hides the others.
COMMANDS: dict[str, tuple[str, str]] = {
    "dev-cluster": ("mistake_testbed.kube.cli", "emulated Kubernetes API with a Job controller (`dev-cluster up`)"),
    "appwrite-test-server": ("mistake_testbed.appwrite.cli", "local Appwrite REST stand-in"),
    "llm-test-server": ("mistake_testbed.llm.cli", "local OpenAI-compatible LLM stand-in"),
    "samples": ("mistake_testbed.samples.cli", "write the generated sample question photos to a folder"),
    "demo": ("mistake_testbed.demo", "the whole system on the dev cluster"),
}


def usage() -> str:
    lines = ["usage: mistake-testbed COMMAND [args]", "", "commands:"]
    lines += [f"  {name:<22} {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"} or args[0] not in COMMANDS:
        print(usage())
        return 0 if not args or args[0] in {"-h", "--help"} else 2
    module = importlib.import_module(COMMANDS[args[0]][0])
    result: int = module.main(args[1:])
    return result


if __name__ == "__main__":
    raise SystemExit(main())
