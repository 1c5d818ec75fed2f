"""moto_server, with one wire-format difference from AWS removed.

moto sends Route53 record values wrapped in CDATA (<Value><![CDATA[1.2.3.4]]></Value>);
AWS sends escaped text, and the AWS SDK for Rust reads CDATA as empty. pgdr is
written for AWS's behaviour, so the test emulator is made to answer like AWS.
Used by scripts/lib.sh and the test harness; arguments are moto_server's.
"""
import sys

import moto.route53.responses as route53

route53.LIST_RRSET_RESPONSE = route53.LIST_RRSET_RESPONSE.replace(
    "<![CDATA[{{ resource }}]]>", "{{ resource|e }}"
)
assert "CDATA" not in route53.LIST_RRSET_RESPONSE, "moto's Route53 template changed"

from moto.server import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
