//! The Debian package, as a user gets it: `scripts/package` builds it (from
//! this test build's binary: `PGDR_PACKAGE_PROFILE=dev`, no rebuild),
//! `dpkg-deb` lists it, `lintian` finds no error, and `dpkg -i` installs it
//! into a throw-away copy of this machine (an overlay over `/` in a private
//! mount namespace, chrooted: the host is untouched). There: the installed
//! `pgdr --version` and `man pgdr`, the `pgdr` user, `systemd-analyze
//! verify` of every unit, cron's parser on the crontab example, and the
//! command `pgdr-due@.service` runs (its `ExecStart`, as its `User`, with its
//! `Environment`) takes a backup and a drill of a real cluster. systemd is not PID 1 on these machines, so the
//! timer firing is not part of the suite: booting a copy of the machine
//! under systemd-nspawn (which starts every service it has) was done by hand
//! for the closing note of issue 29.

use crate::common;
use crate::common::{write_plan, Moto, Postgres};
use std::path::Path;
use std::process::Command;

const BUCKET: &str = "package-test";

fn sh(script: &str, envs: &[(String, String)]) -> (i32, String) {
    let out = common::run(
        Command::new("bash")
            .arg("-c")
            .arg(script)
            .envs(envs.iter().cloned()),
        common::COMMAND_TIMEOUT * 4,
    );
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Builds the package from the test binary; its path.
fn build_package(work: &Path) -> std::path::PathBuf {
    let target = work.join("target");
    std::fs::create_dir_all(target.join("debug")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_pgdr"), target.join("debug/pgdr")).unwrap();
    let envs = vec![
        ("CARGO_TARGET_DIR".to_string(), target.display().to_string()),
        ("PGDR_PACKAGE_PROFILE".into(), "dev".into()),
        ("PGDR_PACKAGE_NO_BUILD".into(), "1".into()),
    ];
    let (code, out) = sh(
        &format!("{}/scripts/package", common::repo().display()),
        &envs,
    );
    assert_eq!(code, 0, "scripts/package: {out}");
    let deb = out
        .lines()
        .rev()
        .find(|l| l.ends_with(".deb"))
        .unwrap_or_else(|| panic!("no .deb path printed: {out}"))
        .trim()
        .to_string();
    std::path::PathBuf::from(deb)
}

#[test]
fn the_debian_package_installs_and_its_run_due_unit_backs_up_and_drills() {
    assert!(
        nix_is_root(),
        "the package test installs into an overlay of / and needs root"
    );
    let work = tempfile::tempdir().unwrap();
    let deb = build_package(work.path());
    let name = deb.file_name().unwrap().to_string_lossy().to_string();
    assert!(name.starts_with("pgdr_0.1.0-1_"), "{name}");

    // What it holds, by dpkg-deb.
    let (code, listing) = sh(&format!("dpkg-deb -c {}", deb.display()), &[]);
    assert_eq!(code, 0, "{listing}");
    for path in [
        "./usr/bin/pgdr",
        "./usr/share/man/man1/pgdr.1.gz",
        "./usr/share/man/man1/pgdr-run-due.1.gz",
        "./usr/share/bash-completion/completions/pgdr",
        "./usr/share/zsh/vendor-completions/_pgdr",
        "./usr/share/fish/vendor_completions.d/pgdr.fish",
        "./usr/share/doc/pgdr/examples/plans/saas.yaml",
        "./usr/share/doc/pgdr/examples/prometheus/pgdr-alerts.yml",
        "./lib/systemd/system/pgdr-watch@.service",
        "./lib/systemd/system/pgdr-guard@.service",
        "./lib/systemd/system/pgdr-due@.service",
        "./lib/systemd/system/pgdr-due@.timer",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(path)),
            "{path} missing: {listing}"
        );
    }

    // lintian: warnings are allowed, errors are not.
    let (code, judged) = sh(&format!("lintian {} 2>&1", deb.display()), &[]);
    assert!(
        !judged.lines().any(|l| l.starts_with("E:")),
        "lintian errors:\n{judged}"
    );
    assert_eq!(code, 0, "{judged}");

    // A real cluster archiving into the emulator, for the installed run-due.
    let moto = Moto::start();
    moto.create_bucket(BUCKET);
    let pg = Postgres::start_archiving(
        &moto.endpoint(),
        &format!("{{pgdr}} wal-push s3://{BUCKET}/pkg/ %p"),
        "",
        "--data-checksums",
    );
    pg.psql("CREATE TABLE orders AS SELECT g AS id FROM generate_series(1, 1000) g");
    let plan = write_plan(
        work.path(),
        "pkg.yaml",
        &format!(
            "version: 1\ncluster: pkg\ntier: saas\nobjectives: {{ rpo: 5m, rto: 30m }}\naws: {{ region: us-east-1 }}\nprimary:\n  postgres: \"{}\"\narchive:\n  bucket: {BUCKET}\n  prefix: pkg/\n  base_backups: {{ every: 1d, keep: 2 }}\ndrill:\n  every: 7d\n  checks:\n    - name: orders\n      sql: \"select count(*) = 1000 from orders\"\n",
            pg.conninfo()
        ),
    );
    let root = work.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let aws: Vec<String> = common::aws_env(&moto.endpoint())
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    // Inside a private mount namespace: an overlay of / (writes go to a
    // tmpfs), the real /tmp (the cluster's folder, the drill's scratch
    // folders), then everything a user would do, chrooted.
    let script = format!(
        r#"set -euo pipefail
mount -t tmpfs tmpfs {root}
mkdir -p {root}/upper {root}/work {root}/merged
mount -t overlay overlay -o lowerdir=/,upperdir={root}/upper,workdir={root}/work {root}/merged
for d in proc sys dev tmp; do mount --rbind /$d {root}/merged/$d; done
in_root() {{ chroot {root}/merged "$@"; }}
in_root dpkg -i {deb} >/dev/null
echo "installed: $(in_root dpkg-query -W -f '${{Package}} ${{Version}} ${{Status}}' pgdr)"
echo "version: $(in_root /usr/bin/pgdr --version)"
echo "user: $(in_root id -un pgdr) dir: $(in_root stat -c %a /etc/pgdr)"
in_root env MANPAGER=cat MANWIDTH=120 man pgdr-run-due | grep -m1 -- '--dry-run' | sed 's/^ */man: /'
in_root env MANPAGER=cat MANWIDTH=120 man pgdr | grep -m1 -o 'pgdr-run-due(1)' | sed 's/^/man see-also: /'
for unit in pgdr-due@pkg.service pgdr-due@pkg.timer pgdr-watch@pkg.service pgdr-guard@pkg.service; do
  in_root systemd-analyze verify --man=no /lib/systemd/system/${{unit/@pkg/@}} 2>&1 | sed "s/^/verify $unit: /"
  echo "verified: $unit"
done
# cron's parser on the crontab example, and on a broken copy.
cp {repo}/examples/cron/pgdr.crontab {root}/merged/tmp/pgdr.crontab.$$
in_root crontab -u postgres /tmp/pgdr.crontab.$$
echo "crontab: $(in_root crontab -u postgres -l | grep -c '^7 .*pgdr run-due') run-due line"
sed -i 's/^7 \* \* \* \*/7 * * */' {root}/merged/tmp/pgdr.crontab.$$
in_root crontab -u postgres /tmp/pgdr.crontab.$$ 2>/dev/null && echo "crontab: broken copy accepted"
rm {root}/merged/tmp/pgdr.crontab.$$
cp {plan} {root}/merged/etc/pgdr/pkg.yaml
chmod 644 {root}/merged/etc/pgdr/pkg.yaml
# What systemd does for pgdr-due@pkg.service: its StateDirectory, then its
# ExecStart as its User with its Environment.
unit={root}/merged/lib/systemd/system/pgdr-due@.service
user=$(sed -n 's/^User=//p' "$unit")
exec_start=$(sed -n 's/^ExecStart=//p' "$unit" | head -1 | sed 's/%i/pkg/g')
envs=$(sed -n 's/^Environment=//p' "$unit")
in_root install -d -o "$user" /var/lib/pgdr
echo "running as $user: $exec_start"
set +e
in_root runuser -u "$user" -- env $envs {aws} $exec_start
echo "exit: $?"
set -e
echo "metrics:"
cat {root}/merged/var/lib/pgdr/pkg.prom
echo "metrics end"
"#,
        root = root.display(),
        deb = deb.display(),
        plan = plan.display(),
        aws = aws.join(" "),
        repo = common::repo().display(),
    );
    let (code, out) = sh(&format!("unshare -m bash -c {}", shell_quote(&script)), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("installed: pgdr 0.1.0-1 install ok installed"),
        "{out}"
    );
    assert!(out.contains("version: pgdr 0.1.0"), "{out}");
    assert!(out.contains("crontab: 1 run-due line"), "{out}");
    assert!(!out.contains("broken copy accepted"), "{out}");
    assert!(out.contains("user: pgdr dir: 755"), "{out}");
    assert!(
        out.contains("man: ") && out.contains("man see-also: pgdr-run-due(1)"),
        "{out}"
    );
    for unit in [
        "pgdr-due@pkg.service",
        "pgdr-due@pkg.timer",
        "pgdr-watch@pkg.service",
        "pgdr-guard@pkg.service",
    ] {
        assert!(out.contains(&format!("verified: {unit}")), "{out}");
        assert!(
            !out.contains(&format!("verify {unit}:")),
            "systemd-analyze verify complained: {out}"
        );
    }
    assert!(
        out.contains("running as postgres: /usr/bin/pgdr run-due /etc/pgdr/pkg.yaml"),
        "{out}"
    );
    assert!(
        out.contains("backup: due (full): the archive has no backup yet"),
        "{out}"
    );
    assert!(out.contains("drill: due: no drill yet"), "{out}");
    assert!(out.contains("Drill of pkg PASSED"), "{out}");
    assert!(out.contains("exit: 0"), "{out}");
    let metrics = out
        .split("metrics:\n")
        .nth(1)
        .and_then(|m| m.split("metrics end\n").next())
        .unwrap_or_default();
    assert_eq!(common::promtool_check_metrics(metrics), "", "{metrics}");
    assert!(
        metrics.contains("pgdr_last_drill_success{cluster=\"pkg\"} 1"),
        "{metrics}"
    );
    // Independently: the backup and the drill report are in the bucket.
    assert!(
        moto.keys(BUCKET, "pkg/base/")
            .iter()
            .any(|k| k.ends_with("/backup.json")),
        "{out}"
    );
    assert_eq!(moto.keys(BUCKET, "pkg/drills/").len(), 1, "{out}");
    // And the host is untouched.
    assert!(
        !Path::new("/etc/pgdr/pkg.yaml").exists(),
        "the install leaked out of its overlay"
    );
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
