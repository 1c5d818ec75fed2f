"""Counts the AWS requests in a moto recording (MOTO_ENABLE_RECORDING), by
service and operation: the emulator's own count of what a client sent, for
tests (tests/common/mod.rs, Moto::operations) and bench/plan-fleet.sh.

    python3 scripts/moto_requests.py RECORDING [FIRST_LINE]

Prints JSON: {"lines": N, "services": {"s3": 5, ...}, "operations": [["s3",
"GET ?versioning"], ...], "writes": N, "lock_writes": N}. Lines before
FIRST_LINE (0-based) are skipped, so one recording can be counted run by run.
moto's own API (/moto-api/) is left out. A write changes state: a REST call
with PUT, POST or DELETE, or a query-protocol call (EC2, RDS) whose Action is
not Describe*/List*/Get*; writes of the run lock's own objects
(`<prefix>locks/*.json`, pgdr's bookkeeping, not live state) are counted apart.
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
    """(service, operation, is a write) of one recorded request."""
    url = urllib.parse.urlparse(r["url"])
    body = r.get("body") or ""
    if r.get("body_encoded"):
        body = base64.b64decode(body).decode(errors="replace")
    if "Action=" in body:
        form = urllib.parse.parse_qs(body)
        action = form.get("Action", ["?"])[0]
        service = QUERY_VERSIONS.get(form.get("Version", [""])[0], "query")
        return service, action, not action.startswith(("Describe", "List", "Get"))
    write = r["method"] in ("PUT", "POST", "DELETE")
    if url.path.startswith("/2013-04-01/"):
        # /2013-04-01/hostedzone/ID/rrset -> GET hostedzone/*/rrset
        path = re.sub(r"^/2013-04-01/", "", url.path)
        path = re.sub(r"/(?!rrset|change)[A-Za-z0-9]{6,}(?=/|$)", "/*", path)
        return "route53", f"{r['method']} {path}", write
    query = "&".join(sorted(k for k in urllib.parse.parse_qs(url.query, keep_blank_values=True)))
    return "s3", f"{r['method']} ?{query}" if query else r["method"], write


def records(lines):
    """Each recorded request. moto's recorder writes a record and its newline
    as two writes from the server's threads, so under concurrent requests two
    records can share a line (and an empty line follows): read every JSON
    object on a line, one after the other."""
    decoder = json.JSONDecoder()
    for line in lines:
        at = 0
        while True:
            while at < len(line) and line[at].isspace():
                at += 1
            if at == len(line):
                break
            record, at = decoder.raw_decode(line, at)
            yield record


def main():
    path = sys.argv[1]
    first = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    lines = open(path).read().splitlines()  # a missing recording is an error, not zero
    operations = []
    writes = lock_writes = 0
    for r in records(lines[first:]):
        if "/moto-api/" in r["url"]:
            continue
        service, operation, write = classify(r)
        operations.append((service, operation))
        path = urllib.parse.urlparse(r["url"]).path
        if "/locks/" in path and path.endswith(".json"):
            lock_writes += write
        else:
            writes += write
    services = collections.Counter(service for service, _ in operations)
    print(json.dumps({
        "lines": len(lines),
        "services": dict(sorted(services.items())),
        "operations": operations,
        "writes": writes,
        "lock_writes": lock_writes,
    }))


if __name__ == "__main__":
    main()
