"""One deploy as the booted client does it, for bench/incremental.py: run inside the client's network namespace.

    incremental_deploy.py TARGET --http URL [--chunks-url URL [--chunks-batch-url URL]]
                                                                    the task's storage over HTTP (deploy_over_http)
    incremental_deploy.py TARGET --dir IMAGE_DIR                    an image on a mounted store (the NFS mount)

Prints one JSON line: wall seconds of the deploy and the figures of its result (reused/fetched/wrote when the
deploy reports them). Exit 1 with the error's message on failure.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contract.task import TaskStorage  # noqa: E402
from imager.errors import ImagerError  # noqa: E402
from imager.ops.context import OpContext  # noqa: E402
from imager.progress import Progress  # noqa: E402

FIGURES = ("reused_bytes", "fetched_bytes", "wrote_bytes")


def deploy(target: str, http: str | None, chunks_url: str | None, batch_url: str | None,
           image_dir: str | None) -> dict[str, Any]:
    if http:
        from imager.ops.deploy import deploy_over_http  # what the deploy task runs when its storage says http
        storage: TaskStorage = {"export": "", "transport": "http", "url": http}
        if chunks_url:
            storage["chunks_url"] = chunks_url
        if batch_url:
            storage["chunks_batch_url"] = batch_url
        name = http.rstrip("/").rsplit("/", 1)[-1]
        ctx = OpContext.local(Progress(), image=name, disk=target)
        ctx.task["storage"] = storage
        return deploy_over_http(ctx)
    from imager.ops.deploy import deploy_image
    assert image_dir is not None
    return deploy_image(image_dir, target, Progress())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--http")
    source.add_argument("--dir")
    parser.add_argument("--chunks-url")
    parser.add_argument("--chunks-batch-url")
    args = parser.parse_args()
    started = time.perf_counter()
    try:
        result = deploy(args.target, args.http, args.chunks_url, args.chunks_batch_url, args.dir)
    except ImagerError as exc:
        print(f"deploy failed: {exc}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, **{k: result.get(k) for k in FIGURES}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
