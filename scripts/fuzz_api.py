#!/usr/bin/env python3
"""Fuzzes the HTTP API from its own OpenAPI description with schemathesis,
for a bounded time, against a real local cluster (scripts/cluster.sh).

Fails on any 5xx, any answer whose status or body the document does not
describe. Runs as a normal user over /api/* and as the admin over the
read-only /admin/* operations (the admin's write operations fail nodes and
start processes: those are tested by the cluster tests instead).

    python3 scripts/fuzz_api.py [--seconds 60]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from bench import Cluster  # noqa: E402  (the same cluster harness as the benchmark)

SCHEMATHESIS = os.path.join(ROOT, "target", "venv", "bin", "schemathesis")
CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance"


def request_json(cluster, method, path, body, headers):
    c = cluster.conn()
    c.request(method, path, body=json.dumps(body), headers={**headers, "Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data) if data else None


def schemathesis(cluster, token, seconds, *filters):
    cmd = [SCHEMATHESIS, "run", f"http://127.0.0.1:{cluster.port}/api/openapi.json",
           "-H", f"Authorization: Bearer {token}", "--checks", CHECKS,
           "--phases", "examples,coverage,fuzzing", "--max-time", str(seconds), "--workers", "2",
           "--suppress-health-check", "all", "--request-timeout", "30", "--seed", "1", *filters]
    print("+", " ".join(c if not c.startswith("Authorization") else "Authorization: Bearer ..." for c in cmd),
          flush=True)
    return subprocess.run(cmd).returncode


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=60, help="time budget of the /api run")
    args = parser.parse_args()
    if not os.path.exists(SCHEMATHESIS):
        raise SystemExit(f"{SCHEMATHESIS} is missing: run scripts/setup.sh")
    work = tempfile.mkdtemp(prefix="tessera-fuzz-")
    cluster = None
    try:
        cluster = Cluster(os.path.join(work, "data"))
        user = {"username": "fuzz", "password": "fuzz-password", "quota_bytes": 256 << 20}
        status, body = request_json(cluster, "POST", "/admin/users", user, cluster.headers)
        assert status == 201, (status, body)
        status, body = request_json(cluster, "POST", "/api/auth/login",
                                    {"username": "fuzz", "password": "fuzz-password"}, {})
        assert status == 200, (status, body)
        user_token = body["token"]
        failed = schemathesis(cluster, user_token, args.seconds, "--include-path-regex", "^/api/",
                              "--exclude-path", "/api/auth/logout")
        failed |= schemathesis(cluster, cluster.token, max(10, args.seconds // 3),
                               "--include-path-regex", "^/(admin|healthz|readyz)",
                               "--exclude-method", "POST", "--exclude-method", "DELETE")
        if failed:
            raise SystemExit("schemathesis found failures (see above)")
        print("API fuzzing: no server error, every answer as documented")
    finally:
        if cluster:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
