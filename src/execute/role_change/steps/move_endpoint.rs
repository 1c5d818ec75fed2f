//! move-endpoint: the endpoint record points at the new primary, and
//! Route53 has the change in sync. Never while the new primary does not take
//! writes, and never while the old one still does (split brain).

use super::RoleChange;
use crate::execute::steps::{Decision, Step};
use crate::plan::route53::{self as route53_plan, wanted_record};
use crate::providers::{route53, ProviderError};
use crate::state::rds::RdsLive;
use crate::state::route53::Record;
use crate::state::Live;
use std::time::Duration;

pub struct MoveEndpoint;

pub struct EndpointSeen {
    /// The plan file has no endpoint.
    none: bool,
    zone_id: String,
    have: Option<Record>,
    want: Result<Record, String>,
    new_writable: bool,
    old_writable: bool,
}

/// The record to write over what is there, in its zone.
pub struct Moving {
    zone_id: String,
    have: Option<Record>,
    want: Record,
}

impl<'a> Step<RoleChange<'a>> for MoveEndpoint {
    type Seen = EndpointSeen;
    type Act = Moving;
    type Error = ProviderError;
    fn name(&self) -> &str {
        "move-endpoint"
    }
    async fn observe(&self, ctx: &RoleChange<'a>) -> Result<EndpointSeen, ProviderError> {
        let Some(endpoint) = &ctx.desired.plan.endpoint else {
            return Ok(EndpointSeen {
                none: true,
                zone_id: String::new(),
                have: None,
                want: Err(String::new()),
                new_writable: true,
                old_writable: false,
            });
        };
        let client = ctx.systems.aws.route53().await;
        // The record, the new primary's RDS address (an RDS primary is
        // reached through it) and both servers' roles, read at once.
        let rds_instance = async {
            match ctx.to.rds {
                Some(_) => ctx.rds_instance().await.map(Some),
                None => Ok(None),
            }
        };
        let (live, instance, taking_over, old) = tokio::join!(
            route53::observe(&client, &endpoint.hosted_zone, &endpoint.record),
            rds_instance,
            ctx.taking_over(),
            ctx.old()
        );
        let live = live?;
        if let Some(why) = live.unmanageable {
            return Err(ProviderError::new(
                format!("route53.{}", endpoint.record),
                why,
            ));
        }
        let after_live = Live {
            rds: instance?.map(|primary| RdsLive {
                primary: Some(primary),
                ..RdsLive::default()
            }),
            ..Live::default()
        };
        let want = wanted_record(&ctx.after, &after_live);
        let new_writable = !taking_over?.0;
        let old_writable = match old {
            Some(Ok(s)) => !s.in_recovery && !s.read_only,
            _ => false,
        };
        Ok(EndpointSeen {
            none: false,
            zone_id: live.zone_id,
            have: live.record,
            want,
            new_writable,
            old_writable,
        })
    }
    fn decide(&self, seen: &EndpointSeen) -> Decision<Moving> {
        if seen.none {
            return Decision::Done("the plan file has no endpoint".into());
        }
        let want = match &seen.want {
            Ok(want) => want,
            Err(why) => {
                return Decision::Refuse(format!(
                    "cannot tell where the endpoint should point: {why}"
                ))
            }
        };
        if seen
            .have
            .as_ref()
            .is_some_and(|h| route53_plan::same(h, want))
        {
            return Decision::Done(format!(
                "points at {} ({})",
                want.values.join(", "),
                want.rtype
            ));
        }
        if !seen.new_writable {
            return Decision::Refuse(
                "the new primary does not accept writes: the endpoint is not moved".into(),
            );
        }
        if seen.old_writable {
            return Decision::Refuse(
                "split brain: the old primary accepts writes as well; the endpoint is not moved. Stop or fence the old primary, then run again".into(),
            );
        }
        Decision::Act(
            format!(
                "point the endpoint at {} ({}), was {}",
                want.values.join(", "),
                want.rtype,
                seen.have
                    .as_ref()
                    .map_or("absent".into(), |h| h.values.join(", "))
            ),
            Moving {
                zone_id: seen.zone_id.clone(),
                have: seen.have.clone(),
                want: want.clone(),
            },
        )
    }
    async fn act(&self, ctx: &RoleChange<'a>, with: Moving) -> Result<(), ProviderError> {
        let Some(endpoint) = &ctx.desired.plan.endpoint else {
            return Ok(());
        };
        let client = ctx.systems.aws.route53().await;
        let change = route53::write(
            &client,
            &with.zone_id,
            &endpoint.record,
            with.have.as_ref(),
            &with.want,
        )
        .await?;
        route53::wait_in_sync(
            &client,
            &endpoint.record,
            &change,
            Duration::from_millis(500),
            ctx.dns_timeout,
        )
        .await
    }
}
