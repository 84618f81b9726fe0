#!/usr/bin/env python3
"""Start a throwaway Synapse, register a user, and print what Synapse's
GET /_matrix/client/v3/voip/turnServer hands a client (Element) for the TURN server.

    tests/.venv/bin/python tests/py/synapse_turn.py --turn-port PORT --secret SECRET

Prints one JSON line: {"username", "password", "ttl", "uris", "user_id"}. Everything is on
127.0.0.1, bounded by --timeout, and Synapse is stopped (and its directory removed) on exit.
Uses only the standard library besides Synapse itself.
"""

import argparse
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SERVER_NAME = "localhost"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, token=None, timeout=10):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def write_config(d, http_port, turn_port, secret, reg_secret):
    # Synapse accepts JSON as YAML, which avoids depending on a YAML writer.
    cfg = {
        "server_name": SERVER_NAME,
        "pid_file": os.path.join(d, "homeserver.pid"),
        "listeners": [{
            "port": http_port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
            "x_forwarded": False,
            "resources": [{"names": ["client"], "compress": False}],
        }],
        "database": {"name": "sqlite3", "args": {"database": os.path.join(d, "homeserver.db")}},
        "media_store_path": os.path.join(d, "media"),
        "signing_key_path": os.path.join(d, "signing.key"),
        "log_config": os.path.join(d, "log.config"),
        "registration_shared_secret": reg_secret,
        "report_stats": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "enable_metrics": False,
        "url_preview_enabled": False,
        # Registration storms in tests would otherwise be rate-limited.
        "rc_login": {"address": {"per_second": 1000, "burst_count": 1000},
                     "account": {"per_second": 1000, "burst_count": 1000}},
        "turn_uris": [f"turn:127.0.0.1:{turn_port}?transport=udp",
                      f"turn:127.0.0.1:{turn_port}?transport=tcp"],
        "turn_shared_secret": secret,
        "turn_user_lifetime": "1h",
        "turn_allow_guests": False,
    }
    path = os.path.join(d, "homeserver.yaml")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    with open(cfg["log_config"], "w") as f:
        f.write(
            "version: 1\n"
            "formatters: {precise: {format: '%(asctime)s %(levelname)s %(name)s %(message)s'}}\n"
            "handlers: {file: {class: logging.FileHandler, formatter: precise, filename: "
            + json.dumps(os.path.join(d, "homeserver.log")) + "}}\n"
            "root: {level: WARNING, handlers: [file]}\n"
            "disable_existing_loggers: false\n")
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--turn-port", type=int, required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--user", default="alice")
    ap.add_argument("--timeout", type=float, default=90.0)
    ap.add_argument("--keep", action="store_true", help="keep the Synapse directory")
    args = ap.parse_args()
    deadline = time.monotonic() + args.timeout

    d = tempfile.mkdtemp(prefix="switchyard-synapse-")
    http_port = free_port()
    base = f"http://127.0.0.1:{http_port}"
    reg_secret = os.urandom(16).hex()
    conf = write_config(d, http_port, args.turn_port, args.secret, reg_secret)
    py = sys.executable
    proc = None
    try:
        subprocess.run([py, "-m", "synapse.app.homeserver", "-c", conf, "--generate-keys"],
                       check=True, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=max(1.0, deadline - time.monotonic()))
        out = open(os.path.join(d, "stdout.log"), "wb")
        proc = subprocess.Popen([py, "-m", "synapse.app.homeserver", "-c", conf], cwd=d,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"synapse exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("synapse /health not ready in time")
            time.sleep(0.2)

        # Shared-secret registration (Synapse admin API, docs/admin_api/register_api.md).
        status, body = http("GET", base + "/_synapse/admin/v1/register")
        if status != 200:
            raise RuntimeError(f"register nonce: {status} {body}")
        nonce = body["nonce"]
        password = os.urandom(12).hex()
        # HMAC-SHA1 over nonce NUL username NUL password NUL "admin"|"notadmin".
        mac = hmac.new(reg_secret.encode(),
                       "\x00".join([nonce, args.user, password, "notadmin"]).encode(),
                       hashlib.sha1)
        status, body = http("POST", base + "/_synapse/admin/v1/register", {
            "nonce": nonce, "username": args.user, "password": password, "admin": False,
            "mac": mac.hexdigest()})
        if status != 200:
            raise RuntimeError(f"register: {status} {body}")

        status, body = http("POST", base + "/_matrix/client/v3/login", {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": args.user}, "password": password})
        if status != 200:
            raise RuntimeError(f"login: {status} {body}")
        token, user_id = body["access_token"], body["user_id"]

        status, turn = http("GET", base + "/_matrix/client/v3/voip/turnServer", token=token)
        if status != 200:
            raise RuntimeError(f"voip/turnServer: {status} {turn}")
        turn["user_id"] = user_id
        print(json.dumps(turn), flush=True)
        return 0
    except Exception as e:  # report, with Synapse's own words, and fail
        log = ""
        for name in ("stdout.log", "homeserver.log"):
            p = os.path.join(d, name)
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    log += f"---- {name} ----\n" + "".join(f.readlines()[-30:])
        print(f"synapse_turn.py: {e}\n{log}", file=sys.stderr)
        print(json.dumps({"error": str(e)}), flush=True)
        return 1
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if args.keep:
            print(f"kept {d}", file=sys.stderr)
        else:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
