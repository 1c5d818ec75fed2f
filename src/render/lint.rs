//! Lint findings as people and tools read them: human (grouped by cluster,
//! coloured), JSON (format_version 1), SARIF 2.1.0 (code-scanning annotations,
//! built through serde-sarif's types generated from the SARIF schema) and
//! GitHub workflow commands.

use super::human::Style;
use crate::lint::{Finding, Severity, RULES};
use serde::Serialize;
use serde_sarif::sarif;
use std::fmt::Write;

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

#[derive(Serialize)]
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

pub fn json(findings: &[Finding]) -> String {
    #[derive(Serialize)]
    struct View<'a> {
        format_version: u32,
        findings: Vec<FindingView<'a>>,
    }
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

pub fn sarif(findings: &[Finding]) -> String {
    let rules: Vec<sarif::ReportingDescriptor> = RULES
        .iter()
        .map(|r| {
            sarif::ReportingDescriptor::builder()
                .id(r.id)
                .name(r.id)
                .short_description(&r.summary.to_string())
                .full_description(&r.summary.to_string())
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
            let mut region = sarif::Region::builder()
                .start_line(f.line.unwrap_or(1) as i64)
                .build();
            region.start_column = f.column.map(|c| c as i64);
            let location = sarif::Location::builder()
                .physical_location(
                    sarif::PhysicalLocation::builder()
                        .artifact_location(
                            sarif::ArtifactLocation::builder()
                                .uri(f.file.clone())
                                .build(),
                        )
                        .region(region)
                        .build(),
                )
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
    let run = sarif::Run::builder().tool(driver).results(results).build();
    let log = sarif::Sarif::builder()
        .version(serde_json::json!(sarif::Version::V2_1_0.to_string()))
        .schema(sarif::SCHEMA_URL)
        .runs(vec![run])
        .build();
    let mut text = serde_json::to_string_pretty(&log).expect("SARIF serialises");
    text.push('\n');
    text
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
