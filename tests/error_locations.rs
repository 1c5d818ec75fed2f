//! Every kind of error the plan-file and policy-file loaders report points at the
//! offending key or value: one test per kind, asserting line, column and key path
//! exactly. Editors, `file:line:col` jumps and SARIF readers depend on them.

use pgdr::spec::{load_str, load_str_with, SpecError};
use std::path::Path;

/// A valid plan file the tests edit; line numbers below refer to it.
const BASE: &str = "\
version: 1
cluster: orders
tier: mvp
objectives:
  rpo: 5m
  rto: 1h
primary:
  postgres: \"host=db port=5432\"
settings:
  archive_timeout: 60s
standbys:
  - name: orders-b
    postgres: \"host=b\"
    max_lag: 30s
";

/// The one error loading `text` gives: (line, column, key path, message).
fn error_of(text: &str) -> (usize, usize, String, String) {
    let errors = load_str(Path::new("plan.yaml"), text).expect_err("the file must be refused");
    assert_eq!(errors.0.len(), 1, "one error expected: {errors}");
    unpack(&errors.0[0])
}

fn unpack(e: &SpecError) -> (usize, usize, String, String) {
    (
        e.line.unwrap_or_else(|| panic!("no line in `{e}`")),
        e.column.unwrap_or_else(|| panic!("no column in `{e}`")),
        e.path.clone(),
        e.message.clone(),
    )
}

fn assert_at(text: &str, line: usize, column: usize, path: &str, fragment: &str) {
    let (l, c, p, m) = error_of(text);
    assert_eq!((l, c, p.as_str()), (line, column, path), "message: {m}");
    assert!(m.contains(fragment), "`{m}` lacks `{fragment}`");
    // The position is inside the file: an editor can jump to it.
    let lines = text.lines().count().max(1);
    assert!(l <= lines, "line {l} is past the file's {lines} lines");
}

#[test]
fn the_base_file_loads() {
    load_str(Path::new("plan.yaml"), BASE).expect("BASE is valid");
}

#[test]
fn yaml_syntax_error_is_placed_where_the_parser_stopped() {
    let text = BASE.replace("  rto: 1h\n", "  rto: 1h\n  - 2h\n");
    let (l, c, _, m) = error_of(&text);
    assert_eq!((l, c), (7, 3), "{m}");
    assert!(m.contains("did not find expected key"), "{m}");
}

#[test]
fn unknown_anchor_is_placed_on_the_alias() {
    let text = BASE.replace("rto: 1h", "rto: *later");
    assert_at(&text, 6, 8, "", "unknown anchor");
}

#[test]
fn duplicate_top_level_key_points_at_its_second_appearance() {
    let text = BASE.replace("tier: mvp\n", "tier: mvp\ncluster: payments\n");
    assert_at(&text, 4, 1, "", "duplicate key `cluster`");
}

#[test]
fn duplicate_nested_key_points_at_its_second_appearance() {
    let text = BASE.replace("  rto: 1h\n", "  rto: 1h\n  rpo: 1m\n");
    assert_at(&text, 7, 3, "objectives", "duplicate key `rpo`");
}

#[test]
fn duplicate_key_in_a_flow_mapping_points_at_its_second_appearance() {
    let text = BASE.replace(
        "objectives:\n  rpo: 5m\n  rto: 1h\n",
        "objectives: { rpo: 5m, rto: 1h, rpo: 1m }\n",
    );
    assert_at(&text, 4, 33, "objectives", "duplicate key `rpo`");
}

#[test]
fn duplicate_key_in_a_list_item_points_at_its_second_appearance() {
    let text = BASE.replace(
        "    max_lag: 30s\n",
        "    max_lag: 30s\n    name: orders-c\n",
    );
    assert_at(&text, 15, 5, "standbys[0]", "duplicate key `name`");
}

#[test]
fn duplicate_setting_is_refused_not_silently_overwritten() {
    let text = BASE.replace(
        "  archive_timeout: 60s\n",
        "  archive_timeout: 60s\n  work_mem: 4MB\n  archive_timeout: 5min\n",
    );
    assert_at(&text, 12, 3, "settings", "duplicate key `archive_timeout`");
}

#[test]
fn unknown_top_level_key_points_at_the_key() {
    let text = BASE.replace("settings:\n", "setings:\n");
    let (l, c, p, m) = error_of(&text);
    assert_eq!((l, c, p.as_str()), (9, 1, ""), "{m}");
    assert!(
        m.contains("unknown field `setings`") && m.contains("settings"),
        "{m}"
    );
}

#[test]
fn unknown_key_in_a_list_item_points_at_the_key() {
    let text = BASE.replace("    max_lag: 30s", "    max_lga: 30s");
    assert_at(&text, 14, 5, "standbys[0]", "unknown field `max_lga`");
}

#[test]
fn missing_top_level_key_points_at_the_start_of_the_file() {
    let text = format!("# orders: the plan\n{}", BASE.replace("tier: mvp\n", ""));
    // The first key of the mapping that lacks it, after the leading comment.
    assert_at(&text, 2, 1, "", "missing field `tier`");
}

#[test]
fn missing_nested_key_points_at_the_key_whose_mapping_lacks_it() {
    let text = BASE.replace("  rto: 1h\n", "");
    assert_at(&text, 4, 1, "objectives", "missing field `rto`");
}

#[test]
fn missing_key_in_a_list_item_points_at_the_item() {
    let text = BASE.replace(
        "  - name: orders-b\n    postgres: \"host=b\"\n",
        "  - postgres: \"host=b\"\n",
    );
    assert_at(&text, 12, 3, "standbys[0]", "missing field `name`");
}

#[test]
fn wrong_type_points_at_the_value() {
    let text = BASE.replace(
        "objectives:\n  rpo: 5m\n  rto: 1h\n",
        "objectives: [5m, 1h]\n",
    );
    assert_at(&text, 4, 13, "objectives", "expected a mapping of keys");
}

#[test]
fn wrong_scalar_type_points_at_the_value() {
    let text = BASE.replace("version: 1", "version: one");
    assert_at(&text, 1, 10, "version", "expected a whole number");
}

#[test]
fn bad_value_points_at_the_value() {
    let text = BASE.replace("max_lag: 30s", "max_lag: 30 parsecs");
    assert_at(&text, 14, 14, "standbys[0].max_lag", "unknown unit");
}

#[test]
fn unknown_variant_points_at_the_value() {
    let text = BASE.replace("tier: mvp", "tier: gold");
    assert_at(&text, 3, 7, "tier", "unknown variant `gold`");
}

#[test]
fn top_level_sequence_points_at_its_start() {
    assert_at("- 1\n- 2\n", 1, 1, "", "expected a mapping of keys");
}

#[test]
fn second_document_points_at_its_separator() {
    let text = format!("{BASE}---\nversion: 1\n");
    assert_at(&text, 15, 1, "", "a second YAML document");
}

#[test]
fn empty_file_points_at_its_first_line() {
    assert_at("", 1, 1, "", "the file is empty");
    assert_at("# nothing yet\n\n", 1, 1, "", "the file is empty");
}

#[test]
fn bad_value_in_a_list_item_points_at_the_value() {
    let text = BASE.replace("  - name: orders-b\n", "  - name: Orders_B\n");
    assert_at(&text, 12, 11, "standbys[0].name", "not a valid name");
}

#[test]
fn check_after_parsing_points_into_a_list_item() {
    let text = BASE.replace(
        "    max_lag: 30s\n",
        "    max_lag: 30s\n  - name: orders-b\n    postgres: \"host=c\"\n    slot: orders_c\n",
    );
    assert_at(&text, 15, 5, "standbys[1].name", "used twice");
}

#[test]
fn caller_check_points_at_the_key() {
    let text = format!("{BASE}lint:\n  ignore:\n    - rule: no-such-rule\n      reason: because\n");
    let errors = load_str_with(Path::new("plan.yaml"), &text, &[pgdr::lint::check_ignores])
        .expect_err("an unknown rule is refused");
    let (l, c, p, m) = unpack(&errors.0[0]);
    assert_eq!((l, c, p.as_str()), (17, 7, "lint.ignore[0].rule"), "{m}");
}

#[test]
fn policy_file_errors_point_at_the_key() {
    use pgdr::lint::policy::PolicyFile;
    let built_in = std::fs::read_to_string("policies/tiers.yaml").unwrap();
    let at = |text: &str| {
        let errors = PolicyFile::parse(Path::new("tiers.yaml"), text).expect_err("refused");
        unpack(&errors.0[0])
    };
    // A tier given twice: its second appearance.
    let second = built_in.find("\n  saas:").expect("saas tier") + 1;
    let text = format!(
        "{}  mvp:\n    {{}}\n{}",
        &built_in[..second],
        &built_in[second..]
    );
    let line = text[..second].lines().count() + 1;
    let (l, c, p, m) = at(&text);
    assert_eq!((l, c, p.as_str()), (line, 3, "tiers"), "{m}");
    assert!(m.contains("duplicate key `mvp`"), "{m}");
    // An unsupported version: the version key.
    let text = built_in.replacen("version: 1", "version: 2", 1);
    let line = text
        .lines()
        .position(|l| l.starts_with("version:"))
        .unwrap()
        + 1;
    let (l, c, p, _) = at(&text);
    assert_eq!((l, c, p.as_str()), (line, 1, "version"));
}

#[test]
fn an_unreadable_file_names_the_file_and_has_no_line() {
    let errors = pgdr::spec::load_file(Path::new("/nonexistent/plan.yaml")).unwrap_err();
    let e = &errors.0[0];
    assert_eq!((e.line, e.column), (None, None));
    assert!(e
        .to_string()
        .starts_with("/nonexistent/plan.yaml: cannot read the plan file"));
}

#[test]
fn a_copy_of_the_archive_is_checked_where_it_is_written() {
    let archive = "aws:\n  region: us-east-1\narchive:\n  bucket: orders-wal\n  prefix: orders/\n  encryption: { kms_key: arn:aws:kms:us-east-1:111122223333:key/abc }\n  copies:\n";
    let with = |copies: &str| format!("{BASE}{archive}{copies}");
    // Line 22: the first copy; a region-bound home key needs the copy's own.
    assert_at(
        &with("    - { bucket: orders-wal-west, region: us-west-2 }\n"),
        22,
        5,
        "archive.copies[0].kms_key",
        "a key of one region",
    );
    assert_at(
        &with("    - { bucket: orders-wal-west, region: us-west-2, kms_key: alias/x }\n    - { bucket: orders-wal-west2, region: us-west-2, kms_key: alias/y }\n"),
        23,
        5,
        "archive.copies[1].name",
        "`us-west-2` names two copies",
    );
    assert_at(
        &with("    - { bucket: orders-wal, region: us-east-1, kms_key: alias/x }\n"),
        22,
        9,
        "archive.copies[0].bucket",
        "the copy is the home archive itself",
    );
    assert_at(
        &with("    - { name: west, bucket: orders-wal-west, region: \"us west\", kms_key: alias/x }\n"),
        22,
        46,
        "archive.copies[0].region",
        "not an AWS region name",
    );
}

#[test]
fn an_active_active_section_is_checked_where_it_is_written() {
    let section = |body: &str| format!("{BASE}active_active:\n{body}");
    // Line 18: the second peer, named like the primary's node (the cluster).
    assert_at(
        &section("  peers:\n    - { name: west, postgres: \"host=w\" }\n    - { name: orders, postgres: \"host=o\" }\n"),
        18,
        9,
        "active_active.peers[1].name",
        "`orders` names two nodes",
    );
    assert_at(
        &section("  provider: native\n  peers:\n    - { name: west, postgres: \"host=w\" }\n"),
        16,
        3,
        "active_active.provider",
        "designed but not built",
    );
    assert_at(
        &section("  tables:\n    - orders\n  peers:\n    - { name: west, postgres: \"host=w\" }\n"),
        17,
        5,
        "active_active.tables[0]",
        "expected schema.table",
    );
}
