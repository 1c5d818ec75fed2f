//! The module layers of the README's "Architecture" section, enforced: every
//! top-level module of `src/` may use only the modules listed before it, so the
//! module graph has no cycle and, for example, the planner never reaches for a
//! provider; and every import edge is exactly what the README's table lists.
//! Reads the source text; runs no server.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom to top. A module may import only modules earlier in this list.
const LAYERS: &[&str] = &[
    "spec",
    "settings",
    "state",
    "format",
    "providers",
    "observe",
    "plan",
    "lint",
    "execute",
    "render",
    "cli",
    "commands",
];

/// Stricter than the order alone: what each module must never import, and why.
const FORBIDDEN: &[(&str, &str, &str)] = &[
    (
        "plan",
        "providers",
        "the planner is pure: it plans from the live model in state",
    ),
    (
        "plan",
        "observe",
        "the planner is pure: it is handed the live state",
    ),
    ("lint", "state", "lint is offline: it reads plan files only"),
    (
        "lint",
        "providers",
        "lint is offline: it reads plan files only",
    ),
    ("state", "settings", "the live model is plain data"),
    (
        "format",
        "settings",
        "the archive's formats are pure: bytes in, values out",
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to (`src/plan/s3.rs` → `plan`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (name != "lib" && name != "main").then(|| name.to_string())
}

/// Every `crate::<module>` a file names outside comments.
fn imports(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
            rest = after;
        }
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let entry = graph.entry(module.clone()).or_default();
        entry.extend(imports(&text).into_iter().filter(|m| *m != module));
    }
    graph
}

#[test]
fn every_module_imports_only_the_layers_below_it() {
    let graph = graph();
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut wrong = Vec::new();
    for (module, uses) in &graph {
        let Some(mine) = rank(module) else {
            wrong.push(format!(
                "src/{module} is not in LAYERS: give it a place in tests/architecture.rs and the README"
            ));
            continue;
        };
        for used in uses {
            match rank(used) {
                Some(theirs) if theirs < mine => {}
                Some(_) => wrong.push(format!("{module} imports {used}, which is not below it")),
                None => wrong.push(format!(
                    "{module} imports crate::{used}, which is not a module in LAYERS"
                )),
            }
        }
    }
    for (module, banned, why) in FORBIDDEN {
        if graph.get(*module).is_some_and(|u| u.contains(*banned)) {
            wrong.push(format!("{module} imports {banned}: {why}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "module layering broken:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_check_sees_the_imports_it_polices() {
    // A positive control: the scanner finds known imports, so an empty graph
    // (a broken scanner) cannot pass the check above.
    let graph = graph();
    assert!(graph["commands"].contains("plan"), "{graph:?}");
    assert!(graph["observe"].contains("providers"), "{graph:?}");
    assert!(graph["plan"].contains("state"), "{graph:?}");
    assert!(
        LAYERS.iter().all(|l| graph.contains_key(*l)),
        "every layer exists: {graph:?}"
    );
    assert_eq!(
        imports("use crate::plan::Op; // crate::providers\nlet x = crate::spec::load;"),
        BTreeSet::from(["plan".to_string(), "spec".to_string()])
    );
}

#[test]
fn the_readme_draws_the_same_layers() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("## Architecture")
        .nth(1)
        .expect("README has an Architecture section");
    // The README draws the stack top-down, so it lists LAYERS in reverse.
    let mut last = 0;
    for layer in LAYERS.iter().rev() {
        let at = section
            .find(&format!("`{layer}`"))
            .unwrap_or_else(|| panic!("README's Architecture section does not name `{layer}`"));
        assert!(
            at >= last,
            "README lists `{layer}` out of order (top-down: the reverse of LAYERS)"
        );
        last = at;
    }
}

/// The README's layer table: each layer's "may import" column, `None` for
/// "everything below".
fn readme_table() -> BTreeMap<String, Option<BTreeSet<String>>> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("## Architecture")
        .nth(1)
        .expect("README has an Architecture section");
    let mut table = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let layer = cells[0].trim_matches('`').to_string();
        let may = cells.last().unwrap();
        let allowed = match *may {
            "everything below" => None,
            "—" => Some(BTreeSet::new()),
            list => Some(list.split(',').map(|m| m.trim().to_string()).collect()),
        };
        table.insert(layer, allowed);
    }
    table
}

#[test]
fn every_import_edge_is_the_one_the_readme_table_lists() {
    let graph = graph();
    let table = readme_table();
    let mut wrong = Vec::new();
    for layer in LAYERS {
        let uses = graph.get(*layer).cloned().unwrap_or_default();
        match table.get(*layer) {
            None => wrong.push(format!("the README's table has no row for `{layer}`")),
            Some(None) => {}
            Some(Some(allowed)) => {
                for used in uses.difference(allowed) {
                    wrong.push(format!(
                        "{layer} imports {used}, which the README's table does not list for it"
                    ));
                }
                for listed in allowed.difference(&uses) {
                    wrong.push(format!(
                        "the README's table lets {layer} import {listed}, which it does not"
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// `text` without every item or statement marked `#[cfg(feature = "failpoints")]`
/// (its braces matched, or up to its `;`): what a build without the feature
/// compiles.
fn without_failpoint_items(text: &str) -> String {
    const MARK: &str = "#[cfg(feature = \"failpoints\")]";
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let after = &rest[at + MARK.len()..];
        let brace = after.find('{');
        let semi = after.find(';');
        let end = match (brace, semi) {
            (Some(b), Some(s)) if s < b => s + 1,
            (None, Some(s)) => s + 1,
            (Some(b), _) => {
                let mut depth = 0usize;
                let mut end = after.len();
                for (i, c) in after[b..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = b + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (None, None) => after.len(),
        };
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Issue 25: the test hooks are not a production switch. Only
/// `execute/failpoint.rs` reads `PGDR_FAILPOINT`, and only in code compiled
/// with the `failpoints` feature, so a build without it (release, `cargo
/// install`) cannot be paused or aborted from the environment.
#[test]
fn failpoints_exist_only_in_builds_with_the_feature() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let hook = src.join("execute/failpoint.rs");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        if file != &hook {
            assert!(
                !text.contains("\"PGDR_FAILPOINT\""),
                "{} reads PGDR_FAILPOINT: only execute/failpoint.rs may, behind the feature",
                file.display()
            );
        }
    }
    let text = std::fs::read_to_string(&hook).unwrap();
    assert!(text.contains("\"PGDR_FAILPOINT\""), "the hooks moved?");
    let production = without_failpoint_items(&text);
    for needle in ["\"PGDR_FAILPOINT\"", "abort()", "panic!", "sleep("] {
        assert!(
            !production.contains(needle),
            "execute/failpoint.rs has `{needle}` outside #[cfg(feature = \"failpoints\")]:\n{production}"
        );
    }
    let cargo =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    assert!(
        !cargo.contains("default = [\"failpoints\"") && cargo.contains("failpoints = []"),
        "failpoints is an opt-in feature"
    );
}
