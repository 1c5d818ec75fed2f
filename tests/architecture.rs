//! The module layers of docs/architecture.md's "Architecture" section, enforced: every
//! top-level module of `src/` may use only the modules listed before it, so the
//! module graph has no cycle and, for example, the planner never reaches for a
//! provider; and every import edge is exactly what that page's table lists.
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
                "src/{module} is not in LAYERS: give it a place in tests/architecture.rs and docs/architecture.md"
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
    let readme = architecture_doc();
    let section = readme
        .split("## Architecture")
        .nth(1)
        .expect("docs/architecture.md has an Architecture section");
    // docs/architecture.md draws the stack top-down, so it lists LAYERS in reverse.
    let mut last = 0;
    for layer in LAYERS.iter().rev() {
        let at = section.find(&format!("`{layer}`")).unwrap_or_else(|| {
            panic!("docs/architecture.md's Architecture section does not name `{layer}`")
        });
        assert!(
            at >= last,
            "docs/architecture.md lists `{layer}` out of order (top-down: the reverse of LAYERS)"
        );
        last = at;
    }
}

/// The page that draws the layers (the README links to it).
fn architecture_doc() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md"))
        .unwrap()
}

/// docs/architecture.md's layer table: each layer's "may import" column, `None` for
/// "everything below".
fn readme_table() -> BTreeMap<String, Option<BTreeSet<String>>> {
    let readme = architecture_doc();
    let section = readme
        .split("## Architecture")
        .nth(1)
        .expect("docs/architecture.md has an Architecture section");
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
            None => wrong.push(format!(
                "docs/architecture.md's table has no row for `{layer}`"
            )),
            Some(None) => {}
            Some(Some(allowed)) => {
                for used in uses.difference(allowed) {
                    wrong.push(format!(
                        "{layer} imports {used}, which docs/architecture.md's table does not list for it"
                    ));
                }
                for listed in allowed.difference(&uses) {
                    wrong.push(format!(
                        "docs/architecture.md's table lets {layer} import {listed}, which it does not"
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

/// Every module of `src/` by its path (`execute::restore::folder`), with
/// its file.
fn module_files() -> BTreeMap<String, PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut modules = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap().with_extension("");
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().to_string())
            .collect();
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        if parts == ["lib"] || parts == ["main"] {
            continue;
        }
        modules.insert(parts.join("::"), file);
    }
    modules
}

/// The paths a file names (`crate::a::b`, `super::c`, `self::d`), with
/// `use` groups one level deep expanded (`use super::{a, b::c}`).
fn named_paths(text: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut paths = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !code.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let rest = &code[i..];
        let starts = ["crate::", "super::", "self::"]
            .iter()
            .any(|p| rest.starts_with(*p))
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if !starts {
            i += 1;
            continue;
        }
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let path = rest[..len].trim_end_matches(':').to_string();
        if rest[len..].starts_with('{') {
            let close = rest[len..].find('}').map_or(rest.len(), |c| len + c);
            for item in rest[len + 1..close].split(',') {
                let item = item.trim().split(" as ").next().unwrap_or("").trim();
                if !item.is_empty() && item != "self" {
                    paths.push(format!("{path}::{item}"));
                }
            }
            paths.push(path);
            i += close;
        } else {
            paths.push(path);
            i += len.max(1);
        }
    }
    paths
}

/// The module a path from module `from` lands in: the longest module path
/// it walks through (`super::X` with no module `X` lands in the parent).
fn resolve(path: &str, from: &str, modules: &BTreeMap<String, PathBuf>) -> Option<String> {
    let segments: Vec<&str> = path.split("::").collect();
    let mut base: Vec<&str> = Vec::new();
    let mut at = 1;
    match segments[0] {
        "crate" => {}
        "self" => base = from.split("::").collect(),
        "super" => {
            base = from.split("::").collect();
            at = 0;
            while segments.get(at) == Some(&"super") {
                base.pop();
                at += 1;
            }
        }
        _ => return None,
    }
    for segment in &segments[at..] {
        base.push(segment);
        if !modules.contains_key(&base.join("::")) {
            base.pop();
            break;
        }
    }
    let module = base.join("::");
    modules.contains_key(&module).then_some(module)
}

/// Issue 26: no import cycle anywhere, inside a folder too. A module's uses
/// of its own descendants (declaring and re-exporting them) are structure,
/// not dependencies; every other use between modules is an edge, and the
/// graph of them has no cycle.
#[test]
fn no_module_imports_form_a_cycle_inside_a_folder_either() {
    let modules = module_files();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).unwrap();
        for path in named_paths(&text) {
            let Some(to) = resolve(&path, module, &modules) else {
                continue;
            };
            let descendant = to.starts_with(&format!("{module}::"));
            if to != *module && !descendant {
                edges.entry(module.clone()).or_default().insert(to);
            }
        }
    }
    // Depth-first search with colours: grey on the stack, black done.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        colour: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
        cycles: &mut Vec<String>,
    ) {
        colour.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            match colour.get(next.as_str()).copied().unwrap_or(0) {
                0 => visit(next, edges, colour, stack, cycles),
                1 => {
                    let at = stack.iter().position(|s| s == next).unwrap();
                    cycles.push(format!("{} -> {next}", stack[at..].join(" -> ")));
                }
                _ => {}
            }
        }
        stack.pop();
        colour.insert(node.to_string(), 2);
    }
    let mut colour = BTreeMap::new();
    let mut cycles = Vec::new();
    for module in modules.keys() {
        if colour.get(module).copied().unwrap_or(0) == 0 {
            visit(module, &edges, &mut colour, &mut Vec::new(), &mut cycles);
        }
    }
    assert!(
        edges.values().map(BTreeSet::len).sum::<usize>() > 100,
        "the scanner sees the uses between modules: {edges:?}"
    );
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_scanner_resolves_paths_as_rust_does() {
    let modules: BTreeMap<String, PathBuf> = [
        "execute",
        "execute::restore",
        "execute::restore::folder",
        "format",
        "format::tar",
    ]
    .iter()
    .map(|m| (m.to_string(), PathBuf::new()))
    .collect();
    let r = |p: &str, from: &str| resolve(p, from, &modules);
    assert_eq!(
        r("crate::format::tar::scan", "execute").as_deref(),
        Some("format::tar")
    );
    assert_eq!(
        r("super::folder::check_dir", "execute::restore::unpack").as_deref(),
        Some("execute::restore::folder")
    );
    assert_eq!(
        r("super::ArchiveError", "execute::restore").as_deref(),
        Some("execute")
    );
    assert_eq!(
        r("super::super::super::format", "execute::restore::folder").as_deref(),
        Some("format")
    );
    assert_eq!(
        named_paths("use super::{folder, extract::x as y};\nlet a = crate::format::tar::scan(); // crate::nope"),
        ["super::folder", "super::extract::x", "super", "crate::format::tar::scan"]
    );
}

/// The number of lines of each function of `text` (from its `fn` line to
/// its closing brace), skipping braces in strings, chars and comments.
fn function_lengths(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        let t = t
            .strip_prefix("pub ")
            .or_else(|| t.strip_prefix("pub(crate) "))
            .or_else(|| t.strip_prefix("pub(super) "))
            .unwrap_or(t);
        let t = t.strip_prefix("async ").unwrap_or(t);
        let Some(rest) = t.strip_prefix("fn ") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let mut depth = 0i32;
        let mut opened = false;
        'lines: for (j, l) in lines.iter().enumerate().skip(i) {
            let mut chars = l.chars().peekable();
            let mut in_str = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' if in_str => {
                        chars.next();
                    }
                    '"' => in_str = !in_str,
                    '/' if !in_str && chars.peek() == Some(&'/') => break,
                    '\'' if !in_str => {
                        // A char literal ('{', '\'') or a lifetime ('a).
                        let ahead: String = chars.clone().take(3).collect();
                        if ahead.starts_with('\\') {
                            chars.nth(2);
                        } else if ahead.chars().nth(1) == Some('\'') {
                            chars.nth(1);
                        }
                    }
                    '{' if !in_str => {
                        depth += 1;
                        opened = true;
                    }
                    '}' if !in_str => depth -= 1,
                    ';' if !in_str && !opened && depth == 0 => break 'lines,
                    _ => {}
                }
            }
            if opened && depth == 0 {
                found.push((name.clone(), j - i + 1));
                break;
            }
        }
    }
    found
}

/// Functions longer than this are split, unless they are a flat list of
/// independent checks or cases (named in [`FLAT_LISTS`]).
const MAX_FUNCTION_LINES: usize = 120;
const MAX_FILE_LINES: usize = 700;
/// `file:function`: one independent case after another, each short.
const FLAT_LISTS: &[&str] = &[];

#[test]
fn no_file_over_700_lines_and_no_function_over_120() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let rel = file.strip_prefix(&src).unwrap().display().to_string();
        let lines = text.lines().count();
        if lines > MAX_FILE_LINES {
            wrong.push(format!("{rel}: {lines} lines"));
        }
        for (name, length) in function_lengths(&text) {
            if length > MAX_FUNCTION_LINES
                && !FLAT_LISTS.contains(&format!("{rel}:{name}").as_str())
            {
                wrong.push(format!("{rel}: fn {name} is {length} lines"));
            }
        }
    }
    assert_eq!(
        function_lengths(
            "fn a() {\n    let c = '{';\n    let s = \"}\";\n}\nfn b(x: &'static str);\n"
        )
        .len(),
        1,
        "the length scanner skips braces in chars and strings"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
