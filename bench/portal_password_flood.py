#!/usr/bin/env python3
"""A flood of wrong passwords against the reference portal, and what it does to everyone else.

Not a test: a measurement to rerun. Starts the release portal, then N clients (default 200)
at once, each from its own loopback address (127.0.0.0/8 is all loopback on Linux, so the
per-address throttle lets each one through) and for an unknown username (which still costs
an Argon2 hash, as a known one does): each fetches the login page and posts a wrong
password. Meanwhile one more client fetches GET /login over and over. Prints the latency of
those page views while the flood runs, how long the flood took, and the portal's resident
memory (VmRSS sampled, VmHWM at the end).

    cargo build --release -p cacbridge-portal && python3 bench/portal_password_flood.py [--clients 200]
"""
import argparse
import http.client
import os
import re
import ssl
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORTAL = os.path.join(ROOT, "target", "release", "cacbridge-portal")


def start_portal(data):
    proc = subprocess.Popen(
        [PORTAL, "--data-dir", data, "serve", "--listen", "127.0.0.1:0", "--demo-account"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    banner = proc.stdout.readline()
    port = int(re.search(r"listening on port (\d+)", banner).group(1))
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, port


class Client:
    """One browser: its own source address, its cookies, one keep-alive connection."""

    def __init__(self, port, source):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, source_address=(source, 0), timeout=120)
        self.cookies = {}

    def request(self, method, path, form=None):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        text = response.read().decode()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";")[0]
        return response.status, text


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as data:
        proc, port = start_portal(data)
        try:
            run(proc, port, args.clients)
        finally:
            proc.kill()
            proc.wait()


def run(proc, port, clients):
    # Each flooding client gets its page and CSRF token first, so the flood is the posts alone.
    flooders = []
    for n in range(clients):
        client = Client(port, f"127.0.{1 + n // 250}.{1 + n % 250}")
        status, page = client.request("GET", "/login")
        assert status == 200, status
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        flooders.append((client, csrf, n))

    idle = []
    watcher = Client(port, "127.0.9.9")
    for _ in range(20):
        start = time.perf_counter()
        watcher.request("GET", "/login")
        idle.append((time.perf_counter() - start) * 1000)

    go = threading.Event()
    statuses = []

    def flood(client, csrf, n):
        go.wait()
        status, _ = client.request("POST", "/login", {"csrf": csrf, "username": f"nobody{n}", "password": "wrong-password"})
        statuses.append(status)

    threads = [threading.Thread(target=flood, args=entry) for entry in flooders]
    for thread in threads:
        thread.start()
    rss_samples = []
    latencies = []
    started = time.perf_counter()
    go.set()
    while any(thread.is_alive() for thread in threads):
        start = time.perf_counter()
        status, _ = watcher.request("GET", "/login")
        assert status == 200
        latencies.append((time.perf_counter() - start) * 1000)
        rss_samples.append(rss_kib(proc.pid))
        time.sleep(0.01)
    flood_seconds = time.perf_counter() - started
    for thread in threads:
        thread.join()

    def summary(values):
        values = sorted(values)
        return f"median {statistics.median(values):.1f} ms, p95 {values[int(len(values) * 0.95) - 1]:.1f} ms, max {values[-1]:.1f} ms"

    print(f"cores: {os.cpu_count()}; portal: {PORTAL}")
    print(f"GET /login before the flood ({len(idle)}): {summary(idle)}")
    print(f"{clients} wrong passwords at once: answered in {flood_seconds:.1f} s; statuses {sorted(set(statuses))}")
    print(f"GET /login during the flood ({len(latencies)}): {summary(latencies)}")
    print(f"portal memory: VmRSS max sampled {max(rss_samples) / 1024:.1f} MiB, VmHWM {rss_kib(proc.pid, 'VmHWM') / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
