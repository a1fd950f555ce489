"""A real TAXII 2.1 server for the tests: medallion (memory backend, HTTP basic auth) on loopback.

It runs as its own process on a free 127.0.0.1 port, with two collections (one writable,
one read-only), and is stopped when the context ends. Nothing in it dials out.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

WRITABLE = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"
READ_ONLY = "52892447-4d7e-4f70-b94d-d7f22742ff63"


@dataclass(frozen=True)
class Taxii:
    api_root: str
    collection: str
    read_only: str
    user: str
    password: str
    port: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_medallion(workdir: Path, *, max_content_length: int = 100_000) -> Iterator[Taxii]:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    collection = {"can_read": True, "media_types": ["application/stix+json;version=2.1"], "objects": [], "manifest": []}
    data = {
        "/discovery": {"title": "fedledger test TAXII server", "description": "loopback only", "default": f"{base}/api1/",
                       "api_roots": [f"{base}/api1/"]},
        "api1": {
            "information": {"title": "intel", "description": "test API root", "versions": ["application/taxii+json;version=2.1"],
                            "max_content_length": max_content_length},
            "status": [],
            "collections": [
                {"id": WRITABLE, "title": "alerts", "description": "writable", "can_write": True, **collection},
                {"id": READ_ONLY, "title": "feed", "description": "read only", "can_write": False, **collection},
            ],
        },
    }  # fmt: skip
    (workdir / "data.json").write_text(json.dumps(data), encoding="utf-8")
    users = {"analyst": "correct horse battery staple"}
    conf = {
        "backend": {"module": "medallion.backends.memory_backend", "module_class": "MemoryBackend",
                    "filename": str(workdir / "data.json")},
        "users": users, "taxii": {"max_page_size": 1000},
    }  # fmt: skip
    (workdir / "medallion.json").write_text(json.dumps(conf), encoding="utf-8")
    log = open(workdir / "medallion.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "medallion.scripts.run", "--host", "127.0.0.1", "--port", str(port), str(workdir / "medallion.json")],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_ready(proc, f"{base}/taxii2/", ("analyst", users["analyst"]), workdir / "medallion.log")
        yield Taxii(f"{base}/api1/", WRITABLE, READ_ONLY, "analyst", users["analyst"], port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def _wait_ready(proc: subprocess.Popen, url: str, auth: tuple[str, str], log: Path, timeout: float = 30.0) -> None:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if proc.poll() is not None:
            raise RuntimeError(f"medallion exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            r = requests.get(url, auth=auth, headers={"Accept": "application/taxii+json;version=2.1"}, timeout=2)
            if r.status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"medallion did not answer on {url} within {timeout:g} s")
