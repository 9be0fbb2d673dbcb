"""One worker process analysing a batch, and what image preparation saves in LLM input tokens.

Run: .venv/bin/python bench/worker.py [--records 400] [--concurrency 50] [--latency 0.5]

Part 1 (throughput): the Appwrite and LLM test servers and the dev cluster run in this process; the LLM answers
every request after a fixed simulated latency. N records (each with one small page photo) and their Scheduled
MistakeAnalysis members are seeded, then `python -m mistake_worker` runs the whole batch as a child process with
`MISTAKE_WORKER_CONCURRENCY=C`. Printed: achieved records/s over the ideal bound C / latency (target >= 0.9),
the child's CPU milliseconds per record and its peak RSS.

Part 2 (tokens): a 4032x3024 phone photo before and after `prepare_image`, in image input tokens under the
pixel-proportional accounting of the production provider class (Doubao/Qwen-VL style, one token per 28x28
patch; target after/before <= 0.3), with OpenAI's tile formula printed alongside for comparison.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
for sub in ("api", "job_image", "tests/harness"):
    sys.path.insert(0, str(ROOT / sub))

from mistake_api import GROUP, PLURAL, analysis_from_record, phase_patch  # noqa: E402
from mistake_api.constants import DEFAULT_BUCKET_ID  # noqa: E402
from mistake_api.states import Phase  # noqa: E402
from mistake_testbed.appwrite.seed import seed_main, seed_record  # noqa: E402
from mistake_testbed.appwrite.server import AppwriteTestServer  # noqa: E402
from mistake_testbed.kube import DevCluster  # noqa: E402
from mistake_testbed.llm import FaultRule, LLMTestServer, image_tokens  # noqa: E402
from mistake_testbed.samples import SampleSet  # noqa: E402
from mistake_worker.images import ImageLimits, prepare_image  # noqa: E402

CR = (GROUP, PLURAL)
TARGET_THROUGHPUT = 0.9
TARGET_TOKENS = 0.3


def patch_tokens(width: int, height: int) -> int:
    """Pixel-proportional image tokens: one per 28x28 patch (Qwen-VL; Doubao vision is of the same kind)."""
    return math.ceil(width / 28) * math.ceil(height / 28)


def small_page(i: int) -> bytes:
    image = Image.new("RGB", (640, 480), (245, 245, 240))
    image.paste((20, 20, 20), (40 + i % 50, 40, 400, 60))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def throughput(records: int, concurrency: int, latency: float) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    crds = ROOT / "charts" / "mistake-analyzer" / "crds"
    with (
        AppwriteTestServer(seed=1) as aw,
        LLMTestServer(latency=FaultRule(kind="latency", delay=latency)) as llm,
        DevCluster(workdir=workdir, preload=[crds]) as cluster,
    ):
        seed_main(aw)
        namespace = "bench"
        cluster.create_namespace(namespace)
        job = "mab-bench"
        members = []
        for i in range(records):
            file_id = f"page{i}"
            aw.put_file(DEFAULT_BUCKET_ID, small_page(i), filename=f"{file_id}.jpg", file_id=file_id)
            record = seed_record(aw, [file_id], record_id=f"rec{i}")
            body = analysis_from_record(
                record, database_id="main", collection_id="mistake_records", namespace=namespace
            )
            name = str(cluster.create(CR, namespace, body)["metadata"]["name"])
            status = phase_patch({}, Phase.SCHEDULED, job_name=job, attempts=1)
            cluster.call(lambda n=name, s=status: cluster.emu.patch_status(CR, namespace, n, s))
            members.append(name)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "MISTAKE_", "OPENAI_", "APPWRITE_"))}
        env.update(aw.env())
        env.update(
            OPENAI_BASE_URL=llm.base_url,
            OPENAI_API_KEY=llm.api_key,
            LLM_MODEL=llm.model,
            KUBECONFIG=str(cluster.kubeconfig),
            MISTAKE_BATCH_MEMBERS=json.dumps(members),
            MISTAKE_NAMESPACE=namespace,
            MISTAKE_JOB_NAME=job,
            MISTAKE_WORKER_CONCURRENCY=str(concurrency),
            MISTAKE_WORKER_LOG_LEVEL="WARNING",
            PYTHONPATH=os.pathsep.join(str(ROOT / p) for p in ("job_image", "api")),
        )
        started = time.monotonic()
        child = subprocess.run([sys.executable, "-m", "mistake_worker"], env=env, check=False)
        ended = time.monotonic()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = sum(
            1 for m in members if (cluster.get(CR, namespace, m) or {}).get("status", {}).get("phase") == "Succeeded"
        )
        first_llm = min((r.arrival for r in llm.requests), default=started)
    ideal = concurrency / latency
    steady = ended - first_llm
    print(f"records={records} concurrency={concurrency} latency={latency}s exit={child.returncode} succeeded={done}")
    print(f"process wall {ended - started:.2f}s (incl. interpreter start), first LLM request to exit {steady:.2f}s")
    print(f"peak LLM concurrency seen by the server: {llm.peak_concurrency}")
    achieved = done / steady
    print(
        f"achieved {achieved:.1f} records/s; ideal bound {ideal:.1f}/s; ratio {achieved / ideal:.3f} "
        f"(target >= {TARGET_THROUGHPUT}) [whole process: {done / (ended - started) / ideal:.3f}]"
    )
    cpu = (usage.ru_utime + usage.ru_stime) * 1000 / max(records, 1)
    print(f"worker CPU {cpu:.1f} ms/record; peak RSS {usage.ru_maxrss / 1024:.0f} MiB")


def tokens() -> None:
    sample = SampleSet.default().photo("physics-choice-phone")
    raw = sample.read()
    started = time.process_time()
    prepared = prepare_image(raw, ImageLimits())
    cpu_ms = (time.process_time() - started) * 1000
    w, h = prepared.source_width, prepared.source_height
    before, after = patch_tokens(w, h), patch_tokens(prepared.width, prepared.height)
    print(
        f"photo {w}x{h} {len(raw)} B -> {prepared.width}x{prepared.height} {len(prepared.data)} B ({cpu_ms:.0f} ms CPU)"
    )
    print(
        f"image tokens (28px patches): before {before}, after {after}, ratio {after / before:.3f} "
        f"(target <= {TARGET_TOKENS})"
    )
    tb, ta = image_tokens(w, h), image_tokens(prepared.width, prepared.height)
    print(f"image tokens (OpenAI tiles, provider downscales itself): before {tb}, after {ta}, ratio {ta / tb:.3f}")
    print(f"request bytes (base64): before {math.ceil(len(raw) / 3) * 4}, after {len(prepared.data_url())}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.5)
    args = parser.parse_args()
    tokens()
    throughput(args.records, args.concurrency, args.latency)


if __name__ == "__main__":
    main()
