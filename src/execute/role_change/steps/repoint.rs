//! repoint-standbys: the new primary has a slot for every standby of the new
//! roles, and the other standbys stream from it through them. A standby that
//! does not answer is left for a person, with a note.

use super::{info_address, RoleChange};
use crate::execute::steps::{Decision, Step};
use crate::providers::postgres::role::{self as pg_role, Follow};
use crate::providers::ProviderError;
use crate::spec::Conninfo;

pub struct Repoint;

/// A standby to point at the new primary: its name, conninfo and slot.
pub struct Follower {
    name: String,
    info: Conninfo,
    slot: String,
}

#[derive(Default)]
pub struct RepointSeen {
    /// The new primary (its conninfo, host and port), when pgdr reaches it over SQL.
    primary: Option<(Conninfo, String, String)>,
    missing_slots: Vec<String>,
    to_repoint: Vec<Follower>,
    unreachable: Vec<String>,
}

/// What `act` does: the slots to create on the new primary, and who follows it where.
pub struct Repointing {
    primary: Conninfo,
    host: String,
    port: String,
    missing_slots: Vec<String>,
    to_repoint: Vec<(String, Conninfo, String)>,
}

impl<'a> Step<RoleChange<'a>> for Repoint {
    type Seen = RepointSeen;
    type Act = Repointing;
    type Error = ProviderError;
    fn name(&self) -> &str {
        "repoint-standbys"
    }
    async fn observe(&self, ctx: &RoleChange<'a>) -> Result<RepointSeen, ProviderError> {
        let mut seen = RepointSeen::default();
        let (Some(info), None, Some((host, port))) =
            (&ctx.to.postgres, &ctx.to.rds, ctx.new_address())
        else {
            return Ok(seen);
        };
        let primary = pg_role::state(&ctx.role_of_to(), info, &ctx.systems.pg).await?;
        seen.missing_slots = ctx
            .slots_needed()
            .into_iter()
            .filter(|s| !primary.slots.contains(s))
            .collect();
        seen.primary = Some((info.clone(), host, port));
        for standby in ctx.others() {
            let Some(info) = &standby.postgres else {
                continue;
            };
            match pg_role::state(&format!("standby.{}", standby.name), info, &ctx.systems.pg).await
            {
                Ok(state) if ctx.points_at_new(&state) => {}
                Ok(_) => seen.to_repoint.push(Follower {
                    name: standby.name.to_string(),
                    info: info.clone(),
                    slot: standby.slot_name(),
                }),
                Err(e) if e.unreachable => {
                    ctx.note(format!(
                        "standby `{}` does not answer: when it is back, point its primary_conninfo at the new primary ({})",
                        standby.name,
                        info_address(ctx.to.postgres.as_ref())
                    ));
                    seen.unreachable.push(standby.name.to_string());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(seen)
    }
    fn decide(&self, seen: &RepointSeen) -> Decision<Repointing> {
        let primary = match &seen.primary {
            Some(primary) if !seen.missing_slots.is_empty() || !seen.to_repoint.is_empty() => {
                primary
            }
            _ => {
                let mut done = "every other standby streams from the new primary".to_string();
                if !seen.unreachable.is_empty() {
                    done = format!(
                        "{done}, except {} (not answering)",
                        seen.unreachable.join(", ")
                    );
                }
                return Decision::Done(done);
            }
        };
        let mut what = Vec::new();
        if !seen.missing_slots.is_empty() {
            what.push(format!(
                "create slot(s) {} on the new primary",
                seen.missing_slots.join(", ")
            ));
        }
        if !seen.to_repoint.is_empty() {
            let names: Vec<&str> = seen.to_repoint.iter().map(|f| f.name.as_str()).collect();
            what.push(format!("point {} at the new primary", names.join(", ")));
        }
        let (info, host, port) = primary.clone();
        Decision::Act(
            what.join("; "),
            Repointing {
                primary: info,
                host,
                port,
                missing_slots: seen.missing_slots.clone(),
                to_repoint: seen
                    .to_repoint
                    .iter()
                    .map(|f| (f.name.clone(), f.info.clone(), f.slot.clone()))
                    .collect(),
            },
        )
    }
    async fn act(&self, ctx: &RoleChange<'a>, with: Repointing) -> Result<(), ProviderError> {
        pg_role::ensure_slots(
            &ctx.role_of_to(),
            &with.primary,
            &ctx.systems.pg,
            &with.missing_slots,
        )
        .await?;
        for (name, info, slot) in &with.to_repoint {
            pg_role::follow(
                &format!("standby.{name}"),
                info,
                &ctx.systems.pg,
                &Follow {
                    host: &with.host,
                    port: &with.port,
                    application_name: name,
                    slot,
                },
            )
            .await?;
        }
        Ok(())
    }
}
