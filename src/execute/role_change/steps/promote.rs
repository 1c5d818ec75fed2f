//! promote: the standby becomes the primary (`pg_promote`, or RDS's
//! PromoteReadReplica, after which RDS reboots the instance: it is promoted
//! once it no longer names a source and is available again).

use super::RoleChange;
use crate::execute::steps::{Decision, Step};
use crate::providers::poll::{poll_until, Polled};
use crate::providers::postgres::role as pg_role;
use crate::providers::{rds, ProviderError};
use std::time::Duration;

pub struct Promote;

impl<'a> Step<RoleChange<'a>> for Promote {
    type Seen = bool;
    type Act = ();
    type Error = ProviderError;
    fn name(&self) -> &str {
        "promote"
    }
    async fn observe(&self, ctx: &RoleChange<'a>) -> Result<bool, ProviderError> {
        Ok(!ctx.taking_over().await?.0)
    }
    fn decide(&self, promoted: &bool) -> Decision {
        if *promoted {
            Decision::Done("it accepts writes".into())
        } else {
            Decision::Act("promote the standby".into(), ())
        }
    }
    async fn act(&self, ctx: &RoleChange<'a>, _: ()) -> Result<(), ProviderError> {
        if let Some(info) = &ctx.to.postgres {
            if ctx.to.rds.is_none() {
                return pg_role::promote(&ctx.role_of_to(), info, &ctx.systems.pg).await;
            }
        }
        let instance = ctx.rds_instance().await?;
        let client = ctx.systems.aws.rds(ctx.standby_region()).await;
        rds::promote_read_replica(&client, &instance.id).await?;
        let promoted = poll_until(
            Duration::from_secs(5),
            Duration::from_secs(1800),
            || async {
                let now = ctx.rds_instance().await?;
                Ok::<_, ProviderError>(
                    if now.replica_source.is_none() && now.status == "available" {
                        Polled::Ready(())
                    } else {
                        Polled::Waiting(now.status)
                    },
                )
            },
        )
        .await?;
        promoted.map_err(|status| {
            ProviderError::new(
                format!("rds.{}", instance.id),
                format!("still `{status}` 30 minutes after PromoteReadReplica"),
            )
        })
    }
}
