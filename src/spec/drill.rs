//! The `drill` section: how often a restore drill must prove the backups work,
//! which point it restores to, and the SQL checks the restored server must pass.

use super::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Drill {
    /// A drill older than this is a problem in `plan`.
    pub every: Duration,
    /// `latest` (the default), or a span back from now such as `1h`.
    #[serde(default)]
    #[schemars(extend("pattern" = "^(latest|[0-9]+[smhdw])$"))]
    pub target: Option<String>,
    /// SQL run on the restored server; each must return true.
    #[serde(default)]
    pub checks: Vec<DrillCheck>,
    /// A measured switchover or failover at least this often (its RTO and RPO
    /// judged against the objectives).
    #[serde(default)]
    pub failover_every: Option<Duration>,
    /// A region-loss drill (`pgdr drill --from-copy NAME`: restored from a
    /// copy of the archive, the home bucket and the primary left alone) at
    /// least this often; `plan` reads the reports stored in the copies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_every: Option<Duration>,
    /// A check slower than it was in the newest passed drill by more than
    /// this factor fails (`2` = twice as slow). Differences under 100 ms are
    /// never judged: they are noise, not a slower plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1.0))]
    pub max_slowdown: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DrillCheck {
    /// The check's name in the drill report.
    pub name: String,
    /// SQL run on the restored server; its first column of its first row must be true.
    pub sql: String,
    /// The check fails when it takes longer than this (`2s`, `1m`): the
    /// playbook's "query performance before promoting".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<Duration>,
}

/// Where a drill restores to, as the plan file says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrillTarget {
    Latest,
    /// This long before the drill starts.
    Ago(Duration),
}

pub const TARGET_ACCEPTED: &str = "`latest` or a span back from now (\"1h\", \"30m\")";

impl Drill {
    pub fn target(&self) -> Result<DrillTarget, String> {
        match self.target.as_deref().map(str::trim) {
            None | Some("latest") => Ok(DrillTarget::Latest),
            Some(text) => Duration::parse(text)
                .map(DrillTarget::Ago)
                .map_err(|_| format!("`{text}` is not a drill target; expected {TARGET_ACCEPTED}")),
        }
    }
}
