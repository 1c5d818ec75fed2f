//! Tier policies as data: `policies/tiers.yaml` is built in, and `--policy FILE`
//! replaces it with an organisation's own file of the same shape.

use crate::spec::{locate, yaml, Duration, LockMode, SpecError, SpecErrors};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

pub const BUILT_IN: &str = include_str!("../../policies/tiers.yaml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub version: u32,
    #[serde(deserialize_with = "crate::spec::yaml::unique_map")]
    pub tiers: BTreeMap<String, TierPolicy>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierPolicy {
    pub description: String,
    #[serde(default)]
    pub require_archive: bool,
    #[serde(default)]
    pub max_base_backup_interval: Option<Duration>,
    #[serde(default)]
    pub min_wal_retention: Option<Duration>,
    #[serde(default)]
    pub require_versioning: bool,
    #[serde(default)]
    pub object_lock: Option<LockMode>,
    #[serde(default)]
    pub require_kms: bool,
    #[serde(default)]
    pub require_deletion_protection: bool,
    #[serde(default)]
    pub min_standbys_other_zone: u32,
    #[serde(default)]
    pub min_synchronous_standbys: u32,
    #[serde(default)]
    pub min_standbys_other_region: u32,
    /// archive.copies in a region other than aws.region.
    #[serde(default)]
    pub min_archive_copies_other_region: u32,
    #[serde(default)]
    pub max_rpo: Option<Duration>,
    /// drill.every must be at most this.
    #[serde(default)]
    pub max_drill_interval: Option<Duration>,
}

impl PolicyFile {
    /// Parses a policy file; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, SpecErrors> {
        let error = |line, column, key: String, message: String| {
            SpecErrors(vec![SpecError {
                file: path.to_path_buf(),
                line,
                column,
                path: key,
                message,
            }])
        };
        let policy: PolicyFile = yaml::from_str(text).map_err(|e| {
            let (line, column) = locate::place_parse_error(text, &e);
            error(Some(line), Some(column), e.path, e.message)
        })?;
        let at =
            |key: &str| locate::locate(text, key).map_or((None, None), |(l, c)| (Some(l), Some(c)));
        if policy.version != 1 {
            let (line, column) = at("version");
            return Err(error(
                line,
                column,
                "version".into(),
                format!(
                    "policy version {} is not supported; expected 1",
                    policy.version
                ),
            ));
        }
        for tier in ["mvp", "saas", "financial", "multi-region"] {
            if !policy.tiers.contains_key(tier) {
                let (line, column) = at("tiers");
                return Err(error(line, column, "tiers".into(), format!("tier `{tier}` is missing; a policy file defines mvp, saas, financial and multi-region")));
            }
        }
        Ok(policy)
    }

    pub fn built_in() -> Self {
        Self::parse(Path::new("policies/tiers.yaml"), BUILT_IN)
            .expect("the built-in policy is valid")
    }

    pub fn load(path: &Path) -> Result<Self, SpecErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SpecErrors::unreadable(path, "policy file", &e))?;
        Self::parse(path, &text)
    }
}
