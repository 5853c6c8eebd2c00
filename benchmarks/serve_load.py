"""Load test of the prediction API: a server process, 8 clients, one drawing a request.

Run from the project root (`python benchmarks/serve_load.py`); it writes
benchmarks/serve_results.md and prints it. Each client is a thread with its own
keep-alive connection that sends one 280x280 PNG drawing (an MNIST test digit drawn dark
on white, as the page's canvas sends it) per request, back to back, for 20 seconds, to
127.0.0.1 only. A request fails if it raises, times out, or answers other than 200 with
one reading. The clients share the machine's cores with the server: the figures are a
floor.
"""

import argparse
import datetime
import io
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image

from mnist_nbdev.data import load_mnist

HERE = Path(__file__).parent


def server_command(port: int) -> list[str]:
    "The server's command line (as in tests/test_serving.py)."
    return ["mnist-serve", "--port", str(port)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, deadline_s: float = 60) -> None:
    "Return once GET /health answers 200; fail if the server exits or time runs out."
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        try:
            server.wait(
                timeout=0.1
            )  # the pause between polls; returns at once if it exited
            raise SystemExit(f"the server exited with status {server.returncode}")
        except subprocess.TimeoutExpired:
            pass
    raise SystemExit(f"the server did not answer within {deadline_s:.0f} s")


def drawings(n: int = 32) -> list[tuple[bytes, int]]:
    "PNG drawings of MNIST test digits, dark on a white 280x280 canvas, and labels."
    test = load_mnist().test
    out = []
    for i in range(n):
        digit = Image.fromarray(255 - test.images[i].numpy()).resize(
            (280, 280), Image.BILINEAR
        )
        buffer = io.BytesIO()
        digit.save(buffer, format="PNG")
        out.append((buffer.getvalue(), int(test.labels[i])))
    return out


def client(url: str, images: list, until: float, results: list, offset: int) -> None:
    "Send requests back to back until `until`; append (seconds, ok, right) for each."
    with httpx.Client(timeout=10) as http:
        i = offset
        while time.monotonic() < until:
            png, label = images[i % len(images)]
            i += 1
            t0 = time.perf_counter()
            try:
                reply = http.post(
                    url + "/predict", files={"files": ("drawing.png", png, "image/png")}
                )
                ok = reply.status_code == 200 and len(reply.json()) == 1
                right = ok and reply.json()[0].get("label") == label
            except (httpx.HTTPError, ValueError):
                ok = right = False
            results.append((time.perf_counter() - t0, ok, right))


def run(clients: int, seconds: float) -> dict:
    load = os.getloadavg()[0]  # other work on the machine, before we start
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        server_command(port), stdout=subprocess.DEVNULL  # its log goes to stderr
    )
    try:
        wait_until_up(url, server)
        images = drawings()
        for png, _ in images[:clients]:  # warm up: first calls allocate
            httpx.post(
                url + "/predict",
                files={"files": ("warm.png", png, "image/png")},
                timeout=30,
            )
        results: list = []
        until = time.monotonic() + seconds
        threads = [
            threading.Thread(target=client, args=(url, images, until, results, k * 4))
            for k in range(clients)
        ]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    latencies = sorted(s for s, ok, _ in results if ok)
    failed = sum(not ok for _, ok, _ in results)
    return {
        "clients": clients,
        "load_before": load,
        "seconds": elapsed,
        "requests": len(results),
        "failed": failed,
        "right": sum(right for *_, right in results),
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * float(np.percentile(latencies, 99)),
    }


def report(r: dict) -> str:
    today = datetime.date.today().isoformat()
    return (
        "| clients | seconds | requests | requests/s | p50 latency | p99 latency "
        "| failed |\n"
        "|---|---|---|---|---|---|---|\n"
        f"| {r['clients']} | {r['seconds']:.0f} | {r['requests']:,} | {r['rps']:.0f} | "
        f"{r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms | {r['failed']} |\n\n"
        "Each request is one 280x280 PNG drawing (MNIST test digits drawn dark on "
        "white); "
        f"{r['right']:,} of {r['requests']:,} answers named the digit drawn. "
        "One server process "
        f"(uvicorn, packaged model) and the {r['clients']} client threads shared "
        f"{os.cpu_count()} CPU cores; their 1-minute load average before the run was "
        f"{r['load_before']:.1f} (other work on the machine).\n\n"
        f"Measured {today} with `python benchmarks/serve_load.py` on torch "
        f"{torch.__version__}, "
        f"{platform.machine()}, Python {platform.python_version()}, CPU only.\n"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--clients", type=int, default=8, help="concurrent clients (default 8)"
    )
    p.add_argument("--seconds", type=float, default=20, help="how long (default 20)")
    p.add_argument("--out", type=Path, default=HERE / "serve_results.md")
    args = p.parse_args()
    text = report(run(args.clients, args.seconds))
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
