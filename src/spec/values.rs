//! Validated value types of the plan file (names, slots, buckets, regions,
//! CIDR blocks, setting values), parsed inside serde's visitor so that an error
//! is placed at the value itself.

use super::Conninfo;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{de, Deserialize, Deserializer, Serialize};
use std::borrow::Cow;
use std::fmt;

macro_rules! validated_string {
    ($(#[$doc:meta])* $name:ident, $check:path, $schema:expr) => {
        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                $schema
            }
        }
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);
        impl $name {
            pub fn parse(text: &str) -> Result<Self, String> {
                $check(text).map(|()| $name(text.to_string()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str(StrVisitor($name::parse))
            }
        }
    };
}

/// Parses a string in the visitor, so that serde places an error at the value
/// itself (line, column and key path) rather than at the enclosing mapping.
struct StrVisitor<T>(fn(&str) -> Result<T, String>);

impl<T> de::Visitor<'_> for StrVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.0)(v).map_err(E::custom)
    }
}

fn check_name(text: &str) -> Result<(), String> {
    let ok = (1..=40).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{text}` is not a valid name; expected 1-40 characters of a-z, 0-9 and `-`"
        ))
    }
}

fn check_slot(text: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("`{text}` is not a valid replication slot name; expected 1-63 characters of a-z, 0-9 and `_`"))
    }
}

/// S3's bucket naming rules for general-purpose buckets.
fn check_bucket(text: &str) -> Result<(), String> {
    let why = if !(3..=63).contains(&text.len()) {
        Some("must be 3-63 characters long")
    } else if !text
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        Some("may contain only a-z, 0-9, `.` and `-`")
    } else if !text.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !text.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        Some("must begin and end with a letter or digit")
    } else if text.contains("..") {
        Some("must not contain two adjacent periods")
    } else if text.parse::<std::net::Ipv4Addr>().is_ok() {
        Some("must not be formatted as an IP address")
    } else if text.starts_with("xn--") || text.starts_with("sthree-") {
        Some("must not start with `xn--` or `sthree-`")
    } else if text.ends_with("-s3alias") || text.ends_with("--ol-s3") {
        Some("must not end with `-s3alias` or `--ol-s3`")
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(format!("`{text}` is not a valid S3 bucket name: it {why}")),
    }
}

fn check_region(text: &str) -> Result<(), String> {
    let parts: Vec<&str> = text.split('-').collect();
    let ok = parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{text}` is not an AWS region; expected a name like `us-east-1` or `eu-central-1`"
        ))
    }
}

validated_string!(
    /// A cluster or standby name: `[a-z0-9-]{1,40}`.
    Name, check_name, json_schema!({ "type": "string", "pattern": "^[a-z0-9-]{1,40}$" }));
validated_string!(
    /// A physical replication slot name: `[a-z0-9_]{1,63}`.
    SlotName, check_slot, json_schema!({ "type": "string", "pattern": "^[a-z0-9_]{1,63}$" }));
validated_string!(
    /// An S3 bucket name, checked against S3's naming rules.
    BucketName, check_bucket, json_schema!({ "type": "string", "pattern": "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", "description": "an S3 bucket name" }));
validated_string!(
    /// An AWS region name such as `us-east-1`.
    Region, check_region, json_schema!({ "type": "string", "pattern": "^[a-z]+(-[a-z]+)+-[0-9]+$", "examples": ["us-east-1"] }));

impl JsonSchema for Conninfo {
    fn schema_name() -> Cow<'static, str> {
        "Conninfo".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "libpq key=value conninfo; no password (use PGPASSWORD or ~/.pgpass)",
            "not": { "pattern": "(^|\\s)password\\s*=" },
            "examples": ["host=db.internal port=5432 user=dr_admin dbname=postgres sslmode=require"]
        })
    }
}

impl JsonSchema for Cidr {
    fn schema_name() -> Cow<'static, str> {
        "Cidr".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // The same blocks Cidr::parse takes: an address, then a prefix length that fits it.
        json_schema!({
            "type": "string",
            "description": "an IPv4 or IPv6 CIDR block",
            "pattern": "^(((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])/0*(3[0-2]|[12]?[0-9])|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*/0*(12[0-8]|1[01][0-9]|[1-9]?[0-9]))$",
            "examples": ["10.1.0.0/16", "2001:db8::/32"]
        })
    }
}

impl JsonSchema for SettingValue {
    fn schema_name() -> Cow<'static, str> {
        "SettingValue".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean"], "description": "a server setting value as PostgreSQL accepts it" })
    }
}

impl<'de> Deserialize<'de> for Conninfo {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor(Conninfo::parse))
    }
}

/// An IPv4 or IPv6 network in CIDR notation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Cidr(String);

impl Cidr {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad =
            || format!("`{text}` is not a CIDR block; expected e.g. 10.1.0.0/16 or 2001:db8::/32");
        let (addr, bits) = text.split_once('/').ok_or_else(bad)?;
        let addr: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
        let bits: u8 = bits.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if bits > max {
            return Err(bad());
        }
        Ok(Cidr(text.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor(Cidr::parse))
    }
}

/// A server setting's desired value as text, the way `ALTER SYSTEM` takes it.
/// YAML numbers and booleans are accepted and turned into Postgres' spelling.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SettingValue(pub String);

impl<'de> Deserialize<'de> for SettingValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any {
            Bool(bool),
            Int(i64),
            Float(f64),
            Text(String),
        }
        let value = Any::deserialize(d).map_err(|_: D::Error| {
            de::Error::custom("expected a setting value: a string, a number or a boolean")
        })?;
        Ok(SettingValue(match value {
            Any::Bool(true) => "on".into(),
            Any::Bool(false) => "off".into(),
            Any::Int(i) => i.to_string(),
            Any::Float(f) => f.to_string(),
            Any::Text(s) => s,
        }))
    }
}
