//! Every plan file shipped in plans/ and examples/ is valid: users copy them.

use std::path::Path;

#[test]
fn one_example_per_tier_and_all_parse() {
    let mut tiers = Vec::new();
    for path in pgdr::spec::plan_files(Path::new("plans")).unwrap() {
        let desired = pgdr::spec::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
        tiers.push(format!("{:?}", desired.plan.tier));
    }
    tiers.sort();
    assert_eq!(tiers, ["Financial", "MultiRegion", "Mvp", "Saas"]);
}

#[test]
fn the_sandbox_template_parses() {
    let text = std::fs::read_to_string("examples/sandbox.yaml.in")
        .unwrap()
        .replace("@PGPORT@", "5432")
        .replace("@STANDBYPORT@", "5433")
        .replace("@PGDR@", "/usr/local/bin/pgdr");
    pgdr::spec::load_str(Path::new("examples/sandbox.yaml.in"), &text)
        .unwrap_or_else(|e| panic!("{e}"));
}
