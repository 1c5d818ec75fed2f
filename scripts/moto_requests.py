"""Counts the AWS requests in a moto recording (MOTO_ENABLE_RECORDING), by
service and operation: the emulator's own count of what a client sent, for
tests (tests/common/mod.rs, Moto::operations) and bench/plan-fleet.sh.

    python3 scripts/moto_requests.py RECORDING [FIRST_LINE]

Prints JSON: {"services": {"s3": 5, ...}, "operations": [["s3", "GET ?versioning"], ...]}.
Lines before FIRST_LINE (0-based) are skipped, so one recording can be
counted run by run. moto's own API (/moto-api/) is left out.
"""
import base64
import collections
import json
import re
import sys
import urllib.parse

# The API version each query-protocol service sends (EC2 and RDS share the protocol).
QUERY_VERSIONS = {"2016-11-15": "ec2", "2014-10-31": "rds"}


def classify(r):
    url = urllib.parse.urlparse(r["url"])
    body = r.get("body") or ""
    if r.get("body_encoded"):
        body = base64.b64decode(body).decode(errors="replace")
    if "Action=" in body:
        form = urllib.parse.parse_qs(body)
        action = form.get("Action", ["?"])[0]
        return QUERY_VERSIONS.get(form.get("Version", [""])[0], "query"), action
    if url.path.startswith("/2013-04-01/"):
        # /2013-04-01/hostedzone/ID/rrset -> GET hostedzone/*/rrset
        path = re.sub(r"^/2013-04-01/", "", url.path)
        path = re.sub(r"/(?!rrset|change)[A-Za-z0-9]{6,}(?=/|$)", "/*", path)
        return "route53", f"{r['method']} {path}"
    query = "&".join(sorted(k for k in urllib.parse.parse_qs(url.query, keep_blank_values=True)))
    return "s3", f"{r['method']} ?{query}" if query else r["method"]


def main():
    path = sys.argv[1]
    first = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    lines = open(path).read().splitlines()  # a missing recording is an error, not zero
    operations = []
    for line in lines[first:]:
        if not line.strip():
            continue
        r = json.loads(line)
        if "/moto-api/" in r["url"]:
            continue
        operations.append(classify(r))
    services = collections.Counter(service for service, _ in operations)
    print(json.dumps({"lines": len(lines), "services": dict(sorted(services.items())), "operations": operations}))


if __name__ == "__main__":
    main()
