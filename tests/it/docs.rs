//! The documentation cannot drift: the generated reference pages in
//! `docs/reference/` equal what `pgdr generate-docs` writes now, and every
//! relative link and anchor in README.md and docs/ resolves (GitHub's
//! heading anchors: lower case, punctuation dropped, spaces to hyphens,
//! `-1`, `-2` for repeats).

use crate::common;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out
}

#[test]
fn the_generated_reference_pages_are_current() {
    let dir = tempfile::tempdir().unwrap();
    let run = common::pgdr(
        None,
        &["generate-docs", "--reference", dir.path().to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let committed = common::repo().join("docs/reference");
    let generated = files_under(dir.path());
    assert!(generated.len() > 10, "{generated:?}");
    let mut stale = Vec::new();
    for file in &generated {
        let now = std::fs::read_to_string(dir.path().join(file)).unwrap();
        match std::fs::read_to_string(committed.join(file)) {
            Ok(was) if was == now => {}
            Ok(_) => stale.push(format!("{} differs", file.display())),
            Err(_) => stale.push(format!("{} is missing", file.display())),
        }
    }
    // A generated page the code no longer makes (a rule removed) is stale too.
    for file in files_under(&committed) {
        let text = std::fs::read_to_string(committed.join(&file)).unwrap();
        if text.starts_with("<!-- Generated") && !generated.contains(&file) {
            stale.push(format!("{} is no longer generated", file.display()));
        }
    }
    assert!(
        stale.is_empty(),
        "docs/reference is stale: {stale:?}\n  fix: cargo run -- generate-docs --reference docs/reference"
    );
}

/// GitHub's anchor for a heading's text (the one the generated pages use).
fn anchor(heading: &str) -> String {
    pgdr::render::reference::anchor_of(heading)
}

/// The anchors of a markdown file's headings (outside code fences).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let Some(heading) = line.trim_start_matches('#').strip_prefix(' ') else {
            continue;
        };
        let base = anchor(heading);
        let n = seen.entry(base.clone()).or_default();
        out.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

/// `(line, target)` of every `[text](target)` link outside code fences.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("```") {
            fenced = !fenced;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = after.find(')').unwrap_or(after.len());
            out.push((i + 1, after[..end].to_string()));
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn every_relative_link_and_anchor_in_the_docs_resolves() {
    let repo = common::repo();
    let mut pages: Vec<PathBuf> = vec![PathBuf::from("README.md")];
    pages.extend(
        files_under(&repo.join("docs"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .map(|p| Path::new("docs").join(p)),
    );
    assert!(pages.len() > 20, "{pages:?}");
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(repo.join(page)).unwrap();
        let dir = page.parent().unwrap();
        for (line, target) in links(&text) {
            if target.starts_with("http://")
                || target.starts_with("https://")
                || target.starts_with("mailto:")
            {
                continue;
            }
            checked += 1;
            let (path, fragment) = match target.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                page.clone()
            } else {
                dir.join(path)
            };
            let Ok(resolved) = repo.join(&file).canonicalize() else {
                broken.push(format!("{}:{line}: {target}: no such file", page.display()));
                continue;
            };
            if let Some(fragment) = fragment {
                let target_text = std::fs::read_to_string(&resolved).unwrap_or_default();
                if !anchors(&target_text).contains(fragment) {
                    broken.push(format!(
                        "{}:{line}: {target}: no heading makes #{fragment}",
                        page.display()
                    ));
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_anchor_rules_match_githubs() {
    assert_eq!(
        anchor("Metrics: `status --format openmetrics`"),
        "metrics-status---format-openmetrics"
    );
    assert_eq!(
        anchor("Backup types: full, diff, incr, chains and delta restore"),
        "backup-types-full-diff-incr-chains-and-delta-restore"
    );
    let text = "# A\n```\n# not a heading\n```\n## A\n";
    assert_eq!(
        anchors(text),
        BTreeSet::from(["a".to_string(), "a-1".to_string()])
    );
}

#[test]
fn the_readme_stays_an_entry_point() {
    let readme = std::fs::read_to_string(common::repo().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= 250,
        "README.md has {lines} lines; move detail into docs/"
    );
    for section in ["## Install", "## Quick start", "## Where to read on"] {
        assert!(readme.contains(section), "README.md lacks {section}");
    }
}

/// Each rule's SARIF `helpUri` names its page, and the page is there.
#[test]
fn every_lint_rule_has_the_page_its_help_uri_names() {
    for rule in pgdr::lint::RULES {
        let uri = pgdr::render::lint::rule_help_uri(rule.id);
        let path = uri
            .strip_prefix("https://github.com/pgdr/pgdr/blob/main/")
            .unwrap_or_else(|| panic!("{uri}"));
        let page = std::fs::read_to_string(common::repo().join(path))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(page.contains(&format!("# `{}`", rule.id)), "{path}");
    }
}
