//! The `failover` section: whether `pgdr watch` fails over by itself when the
//! primary is lost, how long it waits, how often it looks, how the old
//! primary is fenced (a STONITH command, the guard beside it), how soon it may
//! act again, and whom it tells.

use super::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Failover {
    /// `true`: `pgdr watch` fails over when the primary is lost; `false` (the
    /// default): it only reports.
    #[serde(default)]
    pub automatic: bool,
    /// The primary unreachable this long (consecutive failed probes, counted
    /// from the last one that answered) before acting. Default 30s.
    #[serde(default = "default_after")]
    pub after: Duration,
    /// How often the watcher probes, and the guard renews its lease. Default 2s.
    #[serde(default = "default_check_every")]
    pub check_every: Duration,
    /// A STONITH hook (e.g. Debian's fence_aws): run with the old primary's
    /// identity in its environment; exit 0 means it is fenced.
    #[serde(default)]
    pub fence_command: Option<String>,
    /// `true`: a `pgdr watch --guard` runs beside the primary and fences it
    /// when it is cut off from its standbys and the bucket.
    #[serde(default)]
    pub guard: bool,
    /// No second automatic failover within this of the last. Default 1h.
    #[serde(default = "default_cooldown")]
    pub cooldown: Duration,
    /// Run after an automatic failover (or a refusal to fail over), with a
    /// JSON summary on its standard input.
    #[serde(default)]
    pub notify_command: Option<String>,
}

fn default_after() -> Duration {
    Duration::from_secs(30)
}

fn default_check_every() -> Duration {
    Duration::from_secs(2)
}

fn default_cooldown() -> Duration {
    Duration::from_secs(3600)
}

impl Failover {
    /// How long a standby's WAL receiver waits for its primary before it
    /// gives up on it (`wal_receiver_timeout`): half of `after`, so every
    /// standby — a witness of the primary — has noticed a primary that went
    /// silent (a cut link sends no reset) before the watcher decides.
    pub fn receiver_timeout(&self) -> Duration {
        Duration::from_secs((self.after.as_secs() / 2).max(2))
    }

    /// How long the watcher's lease lasts: a watcher whose lease stood
    /// still this long is gone, and another takes over.
    pub fn lease_time(&self) -> Duration {
        self.after
    }

    /// How long the guard's lease lasts: half of `after` (at least two
    /// checks), so that when the primary's host dies the lease has lapsed,
    /// with its margin, by the time the primary has been lost for `after` —
    /// the guard's lease never makes a failover wait longer than `after`.
    pub fn guard_lease_time(&self) -> Duration {
        let half = self.after.as_secs() / 2;
        Duration::from_secs(half.max(2 * self.check_every.as_secs()).max(1))
    }
}
