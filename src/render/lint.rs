//! Lint findings as people and tools read them: human (grouped by cluster,
//! coloured), JSON (format_version 1), SARIF 2.1.0 (code-scanning annotations,
//! built through serde-sarif's types generated from the SARIF schema) and
//! GitHub workflow commands.

use super::human::Style;
use crate::lint::{Finding, Severity, RULES};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde::Serialize;
use serde_sarif::sarif;
use std::fmt::Write;
use std::path::{Component, Path, PathBuf};

fn location(f: &Finding) -> String {
    match (f.line, f.column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", f.file),
        (Some(l), None) => format!("{}:{l}", f.file),
        _ => f.file.clone(),
    }
}

pub fn human(findings: &[Finding], clusters: &[String], style: Style) -> String {
    let mut out = String::new();
    for cluster in clusters {
        let mine: Vec<&Finding> = findings.iter().filter(|f| &f.cluster == cluster).collect();
        writeln!(out, "{} {}", style.bold("cluster"), style.bold(cluster)).unwrap();
        if mine.is_empty() {
            writeln!(out, "  {}", style.green("no findings")).unwrap();
        }
        for f in mine {
            let label = match (f.severity, &f.ignored) {
                (_, Some(_)) => style.dim("ignored"),
                (Severity::Error, None) => style.red("error"),
                (Severity::Warning, None) => style.yellow("warning"),
            };
            writeln!(
                out,
                "  {label} [{}] {} ({})",
                f.rule,
                style.bold(&f.path),
                location(f)
            )
            .unwrap();
            writeln!(out, "      {}", f.message).unwrap();
            if let Some(reason) = &f.ignored {
                writeln!(
                    out,
                    "      {}",
                    style.dim(&format!("ignored by the plan file: {reason}"))
                )
                .unwrap();
            }
        }
        writeln!(out).unwrap();
    }
    out.push_str(&summary(findings));
    out.push('\n');
    out
}

pub fn summary(findings: &[Finding]) -> String {
    let errors = findings.iter().filter(|f| f.is_blocking()).count();
    let warnings = findings
        .iter()
        .filter(|f| f.severity == Severity::Warning && f.ignored.is_none())
        .count();
    let ignored = findings.iter().filter(|f| f.ignored.is_some()).count();
    format!("Lint: {errors} error(s), {warnings} warning(s), {ignored} ignored.")
}

#[derive(Serialize, schemars::JsonSchema)]
struct FindingView<'a> {
    cluster: &'a str,
    rule: &'a str,
    severity: Severity,
    path: &'a str,
    message: &'a str,
    file: &'a str,
    line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ignored: Option<&'a str>,
}

/// `lint --format json`.
#[derive(Serialize, schemars::JsonSchema)]
struct View<'a> {
    format_version: u32,
    findings: Vec<FindingView<'a>>,
}

/// The JSON Schema of `lint --format json` (for the generated reference).
pub fn json_schema() -> schemars::Schema {
    super::reference::output_schema::<View<'static>>()
}

pub fn json(findings: &[Finding]) -> String {
    let view = View {
        format_version: 1,
        findings: findings
            .iter()
            .map(|f| FindingView {
                cluster: &f.cluster,
                rule: f.rule,
                severity: f.severity,
                path: &f.path,
                message: &f.message,
                file: &f.file,
                line: f.line,
                ignored: f.ignored.as_deref(),
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&view).expect("findings serialise");
    text.push('\n');
    text
}

/// Each rule's page (generated from [`RULES`] by `pgdr generate-docs`):
/// its SARIF `helpUri`.
pub fn rule_help_uri(id: &str) -> String {
    format!("https://github.com/pgdr/pgdr/blob/main/docs/reference/rules/{id}.md")
}

/// The `uriBaseId` that relative artifact URIs are resolved against: the
/// directory pgdr ran in, declared in `run.originalUriBaseIds`.
const SRCROOT: &str = "%SRCROOT%";

/// SARIF 2.1.0 for code scanning. `srcroot` is the absolute directory pgdr ran
/// in: a plan file under it is named by a URI relative to it (what GitHub maps
/// onto the repository when the job runs at the checkout's root), any other by
/// an absolute `file://` URI, so no URI is a bare absolute path that a reader
/// would wrongly combine with the base.
pub fn sarif(findings: &[Finding], srcroot: &Path) -> String {
    let rules: Vec<sarif::ReportingDescriptor> = RULES
        .iter()
        .map(|r| {
            let uri = rule_help_uri(r.id);
            sarif::ReportingDescriptor::builder()
                .id(r.id)
                // SARIF wants `name` to be a readable identifier distinct from the opaque id.
                .name(pascal_case(r.id))
                .short_description(&r.summary.to_string())
                .full_description(&r.explain.to_string())
                .help(
                    sarif::MultiformatMessageString::builder()
                        .text(format!(
                            "{}. The rule, why it matters and what satisfies it: {uri}",
                            r.summary
                        ))
                        .markdown(format!(
                            "{}. See [the rule's page]({uri}) for why it matters and what satisfies it; a plan file can silence it under `lint.ignore` with a reason.",
                            r.summary
                        ))
                        .build(),
                )
                .help_uri(&uri)
                .default_configuration(
                    sarif::ReportingConfiguration::builder()
                        .level(serde_json::json!(level(r.severity)))
                        .build(),
                )
                .build()
        })
        .collect();
    let results: Vec<sarif::Result> = findings
        .iter()
        .map(|f| {
            let mut physical = sarif::PhysicalLocation::builder()
                .artifact_location(artifact_location(&f.file, srcroot))
                .build();
            // A finding about a key the file lacks has no line of its own; it
            // is shown on the file's first line, since code scanning (and the
            // multitool's SARIF2017) wants every result placed in a region.
            let mut region = sarif::Region::builder()
                .start_line(f.line.unwrap_or(1) as i64)
                .build();
            region.start_column = f.column.map(|c| c as i64);
            physical.region = Some(region);
            let location = sarif::Location::builder()
                .physical_location(physical)
                .build();
            let mut result = sarif::Result::builder()
                .rule_id(f.rule)
                .rule_index(RULES.iter().position(|r| r.id == f.rule).unwrap_or(0) as i64)
                .message(&format!(
                    "{} ({}; cluster {})",
                    f.message, f.path, f.cluster
                ))
                .level(match f.severity {
                    Severity::Error => sarif::ResultLevel::Error,
                    Severity::Warning => sarif::ResultLevel::Warning,
                })
                .locations(vec![location])
                .build();
            if let Some(reason) = &f.ignored {
                result.suppressions = Some(vec![sarif::Suppression::builder()
                    .kind(serde_json::json!("inSource"))
                    .justification(reason.clone())
                    .build()]);
            }
            result
        })
        .collect();
    let driver = sarif::ToolComponent::builder()
        .name("pgdr")
        .version(env!("CARGO_PKG_VERSION"))
        .information_uri("https://github.com/pgdr/pgdr")
        .rules(rules)
        .build();
    let mut run = sarif::Run::builder().tool(driver).results(results).build();
    run.original_uri_base_ids = Some(
        [(
            SRCROOT.to_string(),
            sarif::ArtifactLocation::builder()
                .uri(file_uri(srcroot, true))
                .build(),
        )]
        .into(),
    );
    let log = sarif::Sarif::builder()
        .version(serde_json::json!(sarif::Version::V2_1_0.to_string()))
        .schema(sarif::SCHEMA_URL)
        .runs(vec![run])
        .build();
    let mut text = serde_json::to_string_pretty(&log).expect("SARIF serialises");
    text.push('\n');
    text
}

/// `wal-retention-covers-backups` → `WalRetentionCoversBackups`.
fn pascal_case(id: &str) -> String {
    id.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or(String::new(), |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// The plan file as a SARIF artifact: relative to [`SRCROOT`] when it lies
/// under `srcroot`, else an absolute `file://` URI (which takes no base id).
fn artifact_location(file: &str, srcroot: &Path) -> sarif::ArtifactLocation {
    let absolute = normalise(&srcroot.join(file));
    let under = absolute
        .strip_prefix(srcroot)
        .ok()
        .map(Path::to_path_buf)
        .or_else(|| {
            // The same place through a symlink (a workspace path that is a link).
            let real = std::fs::canonicalize(&absolute).ok()?;
            let root = std::fs::canonicalize(srcroot).ok()?;
            real.strip_prefix(root).ok().map(Path::to_path_buf)
        });
    match under {
        Some(relative) => sarif::ArtifactLocation::builder()
            .uri(encode_path(&relative))
            .uri_base_id(SRCROOT)
            .build(),
        None => sarif::ArtifactLocation::builder()
            .uri(file_uri(&absolute, false))
            .build(),
    }
}

/// Resolves `.` and `..` without touching the file system (the file may be
/// named through a path that no longer exists by the time this is read).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Characters a URI path cannot hold as they are (RFC 3986 `pchar` plus `/`),
/// and `:`, which would make a relative path's first segment read as a scheme.
const URI_PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b':')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

fn encode_path(path: &Path) -> String {
    let segments: Vec<String> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => {
                Some(utf8_percent_encode(&part.to_string_lossy(), URI_PATH).to_string())
            }
            _ => None,
        })
        .collect();
    segments.join("/")
}

/// `file:///abs/path`, with a trailing `/` for a directory (a base URI must end in one).
fn file_uri(absolute: &Path, directory: bool) -> String {
    let mut uri = format!("file:///{}", encode_path(absolute));
    if directory && !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// GitHub workflow commands: one annotation per finding on the plan file's line.
pub fn github(findings: &[Finding]) -> String {
    // Workflow commands need %, CR and LF escaped in data, and also , and : in properties.
    let data = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let prop = |s: &str| data(s).replace(':', "%3A").replace(',', "%2C");
    let mut out = String::new();
    for f in findings {
        let command = match (f.severity, &f.ignored) {
            (_, Some(_)) => "notice",
            (Severity::Error, None) => "error",
            (Severity::Warning, None) => "warning",
        };
        let mut props = format!("file={}", prop(&f.file));
        if let Some(line) = f.line {
            write!(props, ",line={line}").unwrap();
        }
        if let Some(col) = f.column {
            write!(props, ",col={col}").unwrap();
        }
        write!(
            props,
            ",title={}",
            prop(&format!("pgdr {} ({})", f.rule, f.path))
        )
        .unwrap();
        let mut message = f.message.clone();
        if let Some(reason) = &f.ignored {
            write!(message, " [ignored: {reason}]").unwrap();
        }
        writeln!(out, "::{command} {props}::{}", data(&message)).unwrap();
    }
    out
}
