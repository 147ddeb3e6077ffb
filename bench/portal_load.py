#!/usr/bin/env python3
"""Registrations and CAC logins per second on the reference portal, with p50/p99 latency:
SQLite, PostgreSQL with one instance, and PostgreSQL with two instances behind one origin.

Not a test: a measurement to rerun. The load generator is wrk (bench/portal_load.lua), each
request a prepared form used once, because every challenge is single-use:

- CAC logins: the virtual card "doe" (registered to the demo account first) signs one token
  per login through the release host, each for the challenge of its own fresh visitor (GET
  /login); wrk then posts the CAC login forms. A login verifies the token (RSA-2048), spends
  the challenge in the database and creates a session.
- Registrations: each needs a certificate not registered yet, so these tokens come from
  P-256 keys and certificates issued on the spot by the test PKI's ID CA (signed here with
  the cryptography package, exactly as a card signs: ES256 over H(origin) || H(nonce)), one
  per account, each account signed in beforehand. A registration checks the password (Argon2,
  the dominant cost), verifies the token, spends the challenge and writes the registration
  and its history entry in one transaction.

Revocation checking is off here (the figures are the portal's and its database's; an OCSP
answer is cached until its nextUpdate, so a warm portal asks once per card anyway).

    tests/harness/testbed-setup
    cargo build --release -p cacbridge-portal -p cacbridge-host
    python3 bench/portal_load.py [--logins 600] [--registrations 150] [--connections 8]
"""
import argparse
import base64
import datetime
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORTAL = os.path.join(ROOT, "target", "release", "cacbridge-portal")
HOST = os.path.join(ROOT, "target", "release", "cacbridge-host")
VIRTUAL_PIV = os.path.join(ROOT, "target", "debug", "virtual-piv")
TESTBED = os.path.join(ROOT, "target", "testbed")
PKI = os.path.join(TESTBED, "golden", "pki")
GOLDEN_DOE = os.path.join(TESTBED, "golden", "cards", "doe", "state")
CHROME = "chrome-extension://hbgoeppihilglplcjaehcplpmmndoigi/"
LUA = os.path.join(ROOT, "bench", "portal_load.lua")
PASSWORD = "demo-password"


# ---- the portal ------------------------------------------------------------------------

def start_portal(data, database=None, origin=None, tls=None, port=0):
    trust = os.path.join(data, "trust.pem")
    with open(trust, "w") as out:
        for name in ("root.pem", "id-ca.pem", "email-ca.pem"):
            out.write(open(os.path.join(PKI, name)).read())
    args = [PORTAL, "--data-dir", data]
    if database:
        args += ["--database", database]
    args += ["serve", "--listen", f"127.0.0.1:{port}", "--demo-account", "--trust-bundle", trust,
             "--revocation", "off"]
    if origin:
        args += ["--origin", origin]
    if tls:
        args += ["--tls-cert", tls[0], "--tls-key", tls[1]]
    env = dict(os.environ, CACBRIDGE_PORTAL_LOG="warn")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    banner = proc.stdout.readline()
    match = re.search(r"portal: (\S+) \(listening on port (\d+)\)", banner)
    if not match:
        raise SystemExit(f"the portal did not start: {banner!r}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, match.group(1), int(match.group(2))


class Browser:
    """Cookies and one keep-alive connection to one instance."""

    def __init__(self, port):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=60)
        self.cookies = {}

    def cookie_header(self):
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def request(self, method, path, form=None):
        body = urllib.parse.urlencode(form) if form else None
        headers = {"Cookie": self.cookie_header()}
        if body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        text = response.read().decode()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";")[0]
        return response.status, response.getheader("Location"), text


def field(page, name):
    return re.search(rf'name="{name}" value="([^"]+)"', page).group(1)


def challenge(page):
    return re.search(r'<meta name="cacbridge-challenge" content="([^"]+)"', page).group(1)


# ---- tokens ------------------------------------------------------------------------------

class Card:
    """A fresh copy of the golden card "doe" in reader 0."""

    def __enter__(self):
        self.dir = tempfile.mkdtemp()
        for name in ("internal.bin", "external.bin"):
            shutil.copy(os.path.join(GOLDEN_DOE, name), self.dir)
        self.proc = subprocess.Popen([VIRTUAL_PIV, "--port", "35963", "--state", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while "Yes" not in subprocess.run(["opensc-tool", "-l"], capture_output=True, text=True).stdout:
            if time.time() > deadline:
                raise SystemExit("the virtual card did not appear")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Host:
    """The release host over native messaging: tokens from the card."""

    def __init__(self):
        env = dict(os.environ, CACBRIDGE_LOG="off")
        self.proc = subprocess.Popen([HOST, CHROME], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env)
        self.next = 0
        listed = self.call("list-certificates", {})
        self.certificate = next(c["id"] for c in listed["result"]["certificates"] if c["slot"] == "9A")

    def call(self, command, arguments):
        self.next += 1
        message = json.dumps({"id": str(self.next), "command": command, "arguments": arguments}).encode()
        self.proc.stdin.write(struct.pack("<I", len(message)) + message)
        self.proc.stdin.flush()
        while True:
            length = struct.unpack("<I", self.proc.stdout.read(4))[0]
            reply = json.loads(self.proc.stdout.read(length))
            if reply.get("id") == str(self.next):
                return reply

    def token(self, origin, nonce):
        reply = self.call("authenticate", {"certificateId": self.certificate, "challengeNonce": nonce,
                                           "origin": origin, "pin": "123456"})
        return json.dumps(reply["result"])

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


class SoftwareIssuer:
    """Certificates from the test PKI's ID CA for P-256 keys made here, and their tokens."""

    def __init__(self):
        self.ca_cert = x509.load_pem_x509_certificate(open(os.path.join(PKI, "id-ca.pem"), "rb").read())
        self.ca_key = serialization.load_pem_private_key(open(os.path.join(PKI, "id-ca.key"), "rb").read(), None)

    def token(self, n, origin, nonce):
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"LOAD.USER.{n:010d}")]))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )
        message = _sha256(origin.encode()) + _sha256(nonce.encode())
        r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return json.dumps({
            "format": "cacbridge:1",
            "unverifiedCertificate": base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode(),
            "algorithm": "ES256",
            "signature": base64.b64encode(signature).decode(),
            "appVersion": "bench",
        })


def _sha256(data):
    h = hashes.Hash(hashes.SHA256())
    h.update(data)
    return h.finalize()


# ---- preparing the forms -------------------------------------------------------------------

def cookie_line(browser):
    return browser.cookie_header()


def prepare_logins(ports, origin, host, count):
    """One fresh visitor per login, alternating over the instances' pages."""
    lines = []
    for i in range(count):
        browser = Browser(ports[i % len(ports)])
        _, _, page = browser.request("GET", "/login")
        nonce = challenge(page)
        form = {"csrf": field(page, "csrf"), "cacbridge_challenge": nonce,
                "cacbridge_token": host.token(origin, nonce)}
        lines.append("\t".join(["/login/cac", cookie_line(browser), urllib.parse.urlencode(form)]))
    return lines


def prepare_registrations(ports, origin, issuer, count, create_account):
    lines = []
    for i in range(count):
        username = f"load{i}"
        create_account(username)
        browser = Browser(ports[i % len(ports)])
        _, _, page = browser.request("GET", "/login")
        status, location, _ = browser.request("POST", "/login", {"csrf": field(page, "csrf"), "username": username,
                                                                 "password": PASSWORD})
        assert status == 303 and location == "/account", (status, location)
        _, _, page = browser.request("GET", "/account/cac")
        nonce = challenge(page)
        form = {"csrf": field(page, "csrf"), "cacbridge_challenge": nonce,
                "cacbridge_token": issuer.token(1_000_000 + i, origin, nonce), "password": PASSWORD}
        lines.append("\t".join(["/account/cac/register", cookie_line(browser), urllib.parse.urlencode(form)]))
    return lines


def register_card(port, origin, host):
    browser = Browser(port)
    _, _, page = browser.request("GET", "/login")
    browser.request("POST", "/login", {"csrf": field(page, "csrf"), "username": "demo", "password": PASSWORD})
    _, _, page = browser.request("GET", "/account/cac")
    nonce = challenge(page)
    status, location, body = browser.request("POST", "/account/cac/register", {
        "csrf": field(page, "csrf"), "cacbridge_challenge": nonce, "cacbridge_token": host.token(origin, nonce),
        "password": PASSWORD})
    assert status == 303, (status, location, body[:300])


def run_wrk(ports, lines, connections, scratch, name, expect):
    """wrk against each instance at once, each with its share of the lines, one connection a
    thread; interrupted once every thread has answered all its lines."""
    procs = []
    for k, port in enumerate(ports):
        path = os.path.join(scratch, f"{name}-{k}.tsv")
        with open(path, "w") as out:
            out.write("\n".join(lines[k::len(ports)]) + "\n")
        done = os.path.join(scratch, f"{name}-{k}.done")
        os.makedirs(done)
        procs.append((subprocess.Popen(
            ["wrk", f"-t{connections}", f"-c{connections}", "-d600s", "--timeout", "30s", "-s", LUA,
             f"https://127.0.0.1:{port}", "--", path, str(connections), done, expect],
            stdout=subprocess.PIPE, text=True), done))
    results = []
    for proc, done in procs:
        deadline = time.time() + 600
        while len(os.listdir(done)) < connections and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out = proc.communicate()[0]
        if os.environ.get("PORTAL_LOAD_DEBUG"):
            print(out)
        match = re.search(r"RESULT (.*)", out)
        if not match:
            raise SystemExit(f"wrk: {out}")
        result = dict(kv.split("=") for kv in match.group(1).split())
        if int(result["failed"]) > 0:
            raise SystemExit(f"{name}: failures: {out}")
        results.append(result)
    return results


def summary(results):
    ok = sum(int(r["ok"]) for r in results)
    seconds = max(float(r["seconds"]) for r in results)
    return {
        "ok": ok,
        "rate": ok / seconds,
        "p50": max(float(r["p50_ms"]) for r in results),
        "p99": max(float(r["p99_ms"]) for r in results),
    }


# ---- PostgreSQL ---------------------------------------------------------------------------------

class Postgres:
    def __init__(self):
        self.bin = sorted(p for p in (os.path.join("/usr/lib/postgresql", v, "bin") for v in os.listdir("/usr/lib/postgresql"))
                          if os.path.exists(os.path.join(p, "initdb")))[-1]
        self.dir = tempfile.mkdtemp()
        self.root = os.geteuid() == 0
        if self.root:
            shutil.chown(self.dir, "postgres", "postgres")
        self.port = 15432
        data = os.path.join(self.dir, "data")
        self.run("initdb", "-D", data, "-U", "cacbridge", "-A", "trust", "-E", "UTF8")
        self.run("pg_ctl", "-D", data, "-o", f"-h 127.0.0.1 -p {self.port} -k {self.dir} -c max_connections=200",
                 "-l", os.path.join(self.dir, "log"), "-w", "start")
        self.url = f"postgres://cacbridge@127.0.0.1:{self.port}/postgres"

    def run(self, tool, *args):
        command = [os.path.join(self.bin, tool), *args]
        if self.root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.dir)

    def stop(self):
        self.run("pg_ctl", "-D", os.path.join(self.dir, "data"), "-m", "fast", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- one configuration ---------------------------------------------------------------------------

def measure(label, instances, use_postgres, args, host, issuer):
    scratch = tempfile.mkdtemp()
    pg = Postgres() if use_postgres else None
    procs = []
    try:
        data_a = os.path.join(scratch, "a")
        os.makedirs(data_a)
        proc, origin, port = start_portal(data_a, pg.url if pg else None)
        procs.append(proc)
        ports = [port]
        if instances == 2:
            data_b = os.path.join(scratch, "b")
            os.makedirs(data_b)
            tls = (os.path.join(data_a, "portal-cert.pem"), os.path.join(data_a, "portal-key.pem"))
            proc_b, _, port_b = start_portal(data_b, pg.url, origin=origin, tls=tls)
            procs.append(proc_b)
            ports.append(port_b)
        database = pg.url if pg else os.path.join(data_a, "portal.db")

        def create_account(username):
            subprocess.run([PORTAL, "--data-dir", data_a, "--database", database, "create-account", "--username",
                            username], input=PASSWORD + "\n", text=True, check=True, capture_output=True)

        register_card(ports[0], origin, host)
        t = time.time()
        logins = prepare_logins(ports, origin, host, args.logins)
        registrations = prepare_registrations(ports, origin, issuer, args.registrations, create_account)
        print(f"  {label}: {len(logins)} login and {len(registrations)} registration forms prepared in "
              f"{time.time() - t:.0f} s", flush=True)
        login = summary(run_wrk(ports, logins, args.connections, scratch, "logins", "/account"))
        register = summary(run_wrk(ports, registrations, args.connections, scratch, "registrations",
                                   "/account/cac/registrations/"))
        return label, login, register
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        if pg:
            pg.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logins", type=int, default=600)
    parser.add_argument("--registrations", type=int, default=150)
    parser.add_argument("--connections", type=int, default=8,
                        help="concurrent connections per instance (one wrk thread each)")
    parser.add_argument("--only", help="sqlite, postgres-1 or postgres-2")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk")
    configs = [("SQLite, 1 instance", 1, False), ("PostgreSQL, 1 instance", 1, True),
               ("PostgreSQL, 2 instances", 2, True)]
    if args.only:
        keys = {"sqlite": 0, "postgres-1": 1, "postgres-2": 2}
        configs = [configs[keys[args.only]]]
    issuer = SoftwareIssuer()
    rows = []
    with Card():
        host = Host()
        try:
            for label, instances, use_postgres in configs:
                rows.append(measure(label, instances, use_postgres, args, host, issuer))
        finally:
            host.close()
    print()
    print(f"| Configuration | CAC logins/s | login p50 / p99 (ms) | registrations/s | registration p50 / p99 (ms) |")
    print("|---|---|---|---|---|")
    for label, login, register in rows:
        print(f"| {label} | {login['rate']:.0f} ({login['ok']}) | {login['p50']:.1f} / {login['p99']:.1f} | "
              f"{register['rate']:.1f} ({register['ok']}) | {register['p50']:.0f} / {register['p99']:.0f} |")


if __name__ == "__main__":
    main()
