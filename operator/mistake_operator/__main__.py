"""`python -m mistake_operator`: run the operator (kopf, standalone: one replica with fast restarts).

Equivalent to `kopf run -m mistake_operator.handlers --standalone --namespace NS ...` with the namespaces taken
from the settings. Invalid settings stop start-up here, with the bad fields named.
"""

from __future__ import annotations

import logging
import os
import sys

import kopf

from .settings import SettingsError, load


def main() -> int:
    try:
        settings = load()
    except SettingsError as err:
        print(err, file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kopf logs every handler call at INFO; with thousands of analyses that drowns everything else.
    logging.getLogger("kopf.objects").setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))
    namespaces = settings.namespaces or [os.environ.get("POD_NAMESPACE", "default")]
    if not settings.namespaces:
        os.environ["MISTAKE_NAMESPACES"] = f'["{namespaces[0]}"]'
    from . import handlers  # noqa: F401 - registers the handlers with kopf

    if "*" in namespaces:
        kopf.run(standalone=True, clusterwide=True)
    else:
        kopf.run(standalone=True, namespaces=namespaces)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
