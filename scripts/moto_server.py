"""moto_server, with two differences from AWS removed.

1. moto sends Route53 record values wrapped in CDATA (<Value><![CDATA[1.2.3.4]]></Value>);
   AWS sends escaped text, and the AWS SDK for Rust reads CDATA as empty.
2. After PromoteReadReplica, moto still names the replica's source
   (ReadReplicaSourceDBInstanceIdentifier) and keeps it in the source's replica
   list; on AWS a promoted instance is standalone and names no source.

pgdr is written for AWS's behaviour, so the test emulator is made to answer like
AWS. Used by scripts/lib.sh and the test harness; arguments are moto_server's.
"""
import sys

import moto.route53.responses as route53

route53.LIST_RRSET_RESPONSE = route53.LIST_RRSET_RESPONSE.replace(
    "<![CDATA[{{ resource }}]]>", "{{ resource|e }}"
)
assert "CDATA" not in route53.LIST_RRSET_RESPONSE, "moto's Route53 template changed"

import moto.rds.models as rds  # noqa: E402

_promote = rds.RDSBackend.promote_read_replica


def _promote_like_aws(self, db_kwargs):
    database = _promote(self, db_kwargs)
    source_id = database.source_db_instance_identifier
    if source_id:
        source = self.databases.get(source_id)
        if source is not None and database.db_instance_identifier in source.replicas:
            source.replicas.remove(database.db_instance_identifier)
        database.source_db_instance_identifier = None
    return database


rds.RDSBackend.promote_read_replica = _promote_like_aws

from moto.server import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
