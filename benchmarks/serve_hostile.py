"""The prediction API under hostile load: maximum-size images, hanging connections, a health probe.

Run from the project root (`python benchmarks/serve_hostile.py`); it writes
benchmarks/serve_hostile_results.md and prints it. A server process (`mnist-serve`, the
packaged model, its default limits) on 127.0.0.1 gets, all at once and for 30 seconds:

- 8 clients, each sending back to back one image of the largest size accepted: a
  6300x6300 RGBA PNG (39.7 million pixels, a few hundred kB on disk) holding a digit;
- 100 hanging connections: 50 that open and send nothing, 50 that send a request's
  headers and then one byte of its body a second; each reopens when the server closes it;
- a probe that asks GET /health every 100 ms on its own keep-alive connection.

Figures: the server's peak resident memory (VmHWM from /proc), /health's p50 and p99
latency and failures, the large requests served, and the hanging connections the server
closed by its request timeout. `tests/test_serving.py` runs a smaller round of the same
(`run(...)` with fewer clients and a short timeout) and checks what must hold.
"""

import argparse
import datetime
import io
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from serve_load import free_port  # this folder: run as a script, or imported with it on sys.path
from serve_load import wait_until_up

HERE = Path(__file__).parent
SIDE = 6300  # 39.7 million pixels: just under prediction.MAX_PIXELS


def largest_image(side: int = SIDE) -> bytes:
    "A side x side RGBA PNG: a dark 7 on transparent paper, with a little noise."
    from mnist_nbdev.data import load_mnist

    digit = load_mnist().test.images[4142].numpy()
    ink = Image.fromarray(digit).resize((side // 2, side // 2), Image.Resampling.BILINEAR)
    page = Image.new("RGBA", (side, side), (255, 255, 255, 0))
    dark = Image.new("RGBA", ink.size, (20, 20, 60, 255))
    page.paste(dark, (side // 4, side // 4), ink)
    rng = np.random.default_rng(0)
    specks = rng.integers(0, side, size=(2000, 2))  # noise PNG cannot compress away
    pixels = page.load()
    for x, y in specks:
        pixels[int(x), int(y)] = (120, 120, 120, 255)
    buffer = io.BytesIO()
    page.save(buffer, format="PNG")
    return buffer.getvalue()


def server_command(port: int, request_timeout: float | None) -> list[str]:
    "`mnist-serve` on `port`; with a request timeout other than the default, serve()."
    if request_timeout is None:
        return ["mnist-serve", "--port", str(port)]
    code = ("from mnist_nbdev.serving import serve; "
            f"serve(port={port}, request_timeout={request_timeout})")
    return [sys.executable, "-c", code]


def sender(url: str, png: bytes, until: float, results: list) -> None:
    "Post the large image back to back; append (status, label or error)."
    with httpx.Client(timeout=60) as http:
        while time.monotonic() < until:
            try:
                reply = http.post(url + "/predict",
                                  files={"files": ("large.png", png, "image/png")})
                answer = reply.json()
                read = answer[0].get("label", answer[0].get("error")) \
                    if isinstance(answer, list) else answer.get("detail")
                results.append((reply.status_code, read))
            except (httpx.HTTPError, ValueError) as e:
                results.append((None, type(e).__name__))


def hanger(port: int, slow: bool, until: float, closed: list) -> None:
    "Hold a connection that never completes a request; reopen it each time it is closed."
    while time.monotonic() < until:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=1)
        except OSError:
            time.sleep(0.1)
            continue
        with s:
            if slow:
                s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Type: multipart/form-data; boundary=b\r\n"
                          b"Content-Length: 100000\r\n\r\n")
            while time.monotonic() < until:
                try:
                    if s.recv(1024) == b"":  # the server closed it
                        closed.append(time.monotonic())
                        break
                except socket.timeout:
                    if slow:  # a byte a second: the body trickles
                        try:
                            s.sendall(b"-")
                        except OSError:
                            closed.append(time.monotonic())
                            break
                except OSError:
                    closed.append(time.monotonic())
                    break


def prober(url: str, until: float, latencies: list, failures: list) -> None:
    "GET /health every 100 ms; its latency, or the failure."
    with httpx.Client(timeout=10) as http:
        while time.monotonic() < until:
            t0 = time.perf_counter()
            try:
                status = http.get(url + "/health").status_code
            except httpx.HTTPError as e:
                status = type(e).__name__
            if status == 200:
                latencies.append(time.perf_counter() - t0)
            else:
                failures.append(status)
            time.sleep(max(0.0, 0.1 - (time.perf_counter() - t0)))


def memory_kb(pid: int) -> dict:
    "VmHWM (peak) and VmRSS (now) of a process, in kB."
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in lines)
    return {k: int(fields[k].split()[0]) for k in ("VmHWM", "VmRSS")}


def run(clients: int = 8, hanging: int = 100, seconds: float = 30,
        request_timeout: float | None = None, side: int = SIDE,
        fd_limit: int | None = None) -> dict:
    """One round; the figures as a dict. `request_timeout` None: mnist-serve's default;
    `fd_limit`: the server's limit on open files (`ulimit -n`), None: this process's."""
    load = os.getloadavg()[0]
    png = largest_image(side)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    def limit_files():
        if fd_limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

    server = subprocess.Popen(server_command(port, request_timeout), preexec_fn=limit_files,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_up(url, server)
        idle_rss = memory_kb(server.pid)["VmRSS"]
        sent, closed, latencies, failures = [], [], [], []
        until = time.monotonic() + seconds
        threads = [threading.Thread(target=hanger, args=(port, k % 2 == 1, until, closed))
                   for k in range(hanging)]
        threads += [threading.Thread(target=sender, args=(url, png, until, sent))
                    for _ in range(clients)]
        threads.append(threading.Thread(target=prober, args=(url, until, latencies, failures)))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        memory = memory_kb(server.pid)
        still_up = server.poll() is None
    finally:
        server.terminate()
        try:
            _, log = server.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            _, log = server.communicate()
    served = [read for status, read in sent if status == 200 and isinstance(read, int)]
    return {
        "clients": clients, "hanging": hanging, "seconds": seconds, "load_before": load,
        "image_bytes": len(png), "side": side, "still_up": still_up,
        "idle_rss_mb": idle_rss / 1024, "peak_rss_mb": memory["VmHWM"] / 1024,
        "end_rss_mb": memory["VmRSS"] / 1024,
        "health_n": len(latencies), "health_failures": failures,
        "health_p50_ms": 1000 * statistics.median(latencies) if latencies else None,
        "health_p99_ms": 1000 * float(np.percentile(latencies, 99)) if latencies else None,
        "sent": len(sent), "served": len(served), "right": served.count(7),
        "refused": [r for s, r in sent if s != 200 or not isinstance(r, int)][:5],
        "closed_by_timeout": len(closed), "log_bytes": len(log), "log_tail": log[-500:],
    }


def report(r: dict) -> str:
    today = datetime.date.today().isoformat()
    return (
        "| large requests served | read as 7 | peak RSS | RSS at the end | /health p50 "
        "| /health p99 | /health failures | hanging connections closed |\n"
        "|---|---|---|---|---|---|---|---|\n"
        f"| {r['served']} of {r['sent']} | {r['right']} | {r['peak_rss_mb']:,.0f} MB "
        f"| {r['end_rss_mb']:,.0f} MB | {r['health_p50_ms']:.1f} ms "
        f"| {r['health_p99_ms']:.1f} ms | {len(r['health_failures'])} of {r['health_n']} "
        f"| {r['closed_by_timeout']} |\n\n"
        f"For {r['seconds']:.0f} s, {r['clients']} clients each sent back to back one "
        f"{r['side']}x{r['side']} RGBA PNG ({r['image_bytes'] / 1e3:.0f} kB, "
        f"{r['side'] ** 2 / 1e6:.1f} million pixels: the largest accepted) while "
        f"{r['hanging']} connections hung (half sending nothing, half a byte a second of "
        "a request they never finish, each reopened when closed) and a probe asked "
        "GET /health every 100 ms. The server (`mnist-serve`, packaged model, default "
        f"limits) used {r['idle_rss_mb']:,.0f} MB idle; its log grew by "
        f"{r['log_bytes']:,} bytes. Server and clients shared {os.cpu_count()} CPU cores; "
        f"the 1-minute load average before the run was {r['load_before']:.1f}.\n\n"
        f"Measured {today} with `python benchmarks/serve_hostile.py`, "
        f"{platform.machine()}, Python {platform.python_version()}, CPU only.\n"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30, help="how long (default 30)")
    p.add_argument("--out", type=Path, default=HERE / "serve_hostile_results.md")
    args = p.parse_args()
    result = run(seconds=args.seconds)
    text = report(result)
    args.out.write_text(text)
    print(text)
    return 0 if result["still_up"] else 1


if __name__ == "__main__":
    sys.exit(main())
