"""`mistake-analyzer`: operations on analyses from a terminal.

    mistake-analyzer requeue --record ID [--record ID ...]   re-analyse chosen records
    mistake-analyzer requeue --user USER_ID                  re-analyse every record of one user
    mistake-analyzer requeue --failed-since 2026-12-01T00:00:00Z
    mistake-analyzer stats [--url http://127.0.0.1:8080]     the operator's /queue/stats

Re-queueing sets each record back to `pending` (which gives it a new `$updatedAt`) and creates the
MistakeAnalysis for that new revision, with fresh attempt counters. The trigger fires on the same update and
creates the same name, so whichever comes second gets 409 and nothing is analysed twice. Appwrite settings come
from the operator's settings (`MISTAKE_APPWRITE__*` or `MISTAKE_SETTINGS_FILE`); Kubernetes from the kubeconfig
or the in-cluster service account.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.request
from collections.abc import AsyncIterator
from datetime import datetime

from appwrite.query import Query

from mistake_api import Origin, analysis_from_record, rfc3339

from .kubeapi import ApiError, KubeApi, analyses_path
from .records import FAILED, Record, RecordError, Records
from .settings import SettingsError, load


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("give a time zone, e.g. 2026-12-01T00:00:00Z")
    return moment


async def _selected(records: Records, args: argparse.Namespace) -> AsyncIterator[Record]:
    if args.record:
        for rid in args.record:
            found = await records.get(records.settings.database_id, records.settings.collection_id, rid)
            if found is None:
                print(f"record {rid}: not found", file=sys.stderr)
            else:
                yield found
        return
    if args.user:
        queries = [Query.equal("userId", args.user), Query.order_asc("$createdAt")]
    else:
        queries = [
            Query.equal("analysisStatus", FAILED),
            Query.greater_than_equal("$updatedAt", rfc3339(args.failed_since)),
            Query.order_asc("$updatedAt"),
        ]
    async for found in records.iterate(queries):
        yield found


async def requeue(args: argparse.Namespace) -> int:
    settings = load()
    records = Records(settings.appwrite)
    api = KubeApi()
    done = failed = 0
    try:
        async for record in _selected(records, args):
            if args.dry_run:
                print(f"would re-queue {record.id} ({record.status})")
                done += 1
                continue
            try:
                fresh = await records.set_pending(record)
                body = analysis_from_record(
                    {"$id": fresh.id, "$updatedAt": fresh.updated_at, **fresh.data},
                    database_id=fresh.database_id,
                    collection_id=fresh.collection_id,
                    namespace=args.namespace,
                    origin=Origin.CLI,
                    priority=args.priority,
                )
                try:
                    await api.create(analyses_path(args.namespace), body)
                except ApiError as err:
                    if err.status != 409:  # 409: the trigger was quicker with the same analysis
                        raise
                print(f"re-queued {record.id} as {body['metadata']['name']}")
                done += 1
            except (ApiError, RecordError) as err:
                print(f"record {record.id}: {err}", file=sys.stderr)
                failed += 1
    finally:
        await api.close()
    print(f"{done} re-queued, {failed} failed")
    return 1 if failed else 0


def stats(url: str) -> int:
    with urllib.request.urlopen(url.rstrip("/") + "/queue/stats", timeout=10) as resp:  # noqa: S310 - operator URL
        print(json.dumps(json.load(resp), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mistake-analyzer", description="Operate Mistake Analyzer analyses.")
    sub = parser.add_subparsers(dest="command", required=True)
    rq = sub.add_parser("requeue", help="re-analyse chosen records as new analyses")
    pick = rq.add_mutually_exclusive_group(required=True)
    pick.add_argument("--record", action="append", help="a record (document) id; repeat for several")
    pick.add_argument("--user", help="every record of this Appwrite userId")
    pick.add_argument("--failed-since", type=_parse_time, help="every record failed since this time (ISO 8601)")
    rq.add_argument("--namespace", default="default", help="where to create the analyses")
    rq.add_argument("--priority", type=int, default=0, help="priority of the new analyses (higher first)")
    rq.add_argument("--dry-run", action="store_true", help="list what would be re-queued")
    st = sub.add_parser("stats", help="print the operator's queue statistics")
    st.add_argument("--url", default="http://127.0.0.1:8080", help="the operator's metrics/health address")
    args = parser.parse_args(argv)
    try:
        if args.command == "requeue":
            return asyncio.run(requeue(args))
        return stats(args.url)
    except SettingsError as err:
        print(err, file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
