//! sslmode against a real server that only accepts TLS (hostssl), with a test CA:
//! require encrypts, verify-ca checks the chain, verify-full also the host name.

use crate::common;

use crate::common::{pgdr, write_plan, Postgres};
use std::path::Path;
use std::process::Command;

fn sh(dir: &Path, script: &str) {
    let out = common::run(
        Command::new("bash").arg("-c").arg(script).current_dir(dir),
        common::COMMAND_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for `localhost` only (not 127.0.0.1), and an unrelated CA.
fn make_certs(dir: &Path) {
    sh(
        dir,
        "set -e
         openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=pgdr-test-ca 2>/dev/null
         openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other-ca.crt -days 2 -subj /CN=other-ca 2>/dev/null
         openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
         printf 'subjectAltName=DNS:localhost\\nbasicConstraints=CA:FALSE\\n' > ext
         openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile ext 2>/dev/null
         chmod 600 server.key
         if [ \"$(id -u)\" -eq 0 ]; then chown postgres: server.key server.crt; fi",
    );
}

/// Refuse every connection that is not TLS.
fn hostssl_only(pg: &Postgres) {
    let hba = pg.data_dir().join("pg_hba.conf");
    let text = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(&hba, text.replace("\nhost ", "\nhostssl ")).unwrap();
    pg.psql("SELECT pg_reload_conf()");
}

fn plan_with(dir: &Path, conninfo: &str) -> common::Run {
    let file = write_plan(
        dir,
        "tls.yaml",
        &common::minimal_plan("tls", conninfo, "  wal_level: replica\n"),
    );
    pgdr(
        None,
        &["plan", file.to_str().unwrap(), "--detailed-exitcode"],
    )
}

#[test]
fn sslmodes_behave_as_in_libpq() {
    let certs = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        certs.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    make_certs(certs.path());
    let d = certs.path().display();
    let pg = Postgres::start_with(&format!(
        "ssl = on\nssl_cert_file = '{d}/server.crt'\nssl_key_file = '{d}/server.key'\n"
    ));
    // Refuse every connection that is not TLS.
    hostssl_only(&pg);

    let port = pg.port;
    let base = format!("port={port} user=postgres dbname=postgres");
    let work = tempfile::tempdir().unwrap();

    let require = plan_with(
        work.path(),
        &format!("host=127.0.0.1 {base} sslmode=require"),
    );
    assert_eq!(
        require.code, 0,
        "require: {}{}",
        require.stdout, require.stderr
    );

    let disable = plan_with(
        work.path(),
        &format!("host=127.0.0.1 {base} sslmode=disable"),
    );
    assert_eq!(disable.code, 1);
    assert!(
        disable.stdout.contains("no encryption") || disable.stdout.contains("pg_hba.conf"),
        "{}",
        disable.stdout
    );

    let full = plan_with(
        work.path(),
        &format!("host=localhost {base} sslmode=verify-full sslrootcert={d}/ca.crt"),
    );
    assert_eq!(full.code, 0, "verify-full: {}{}", full.stdout, full.stderr);

    // The root certificate from PGSSLROOTCERT, then from ~/.postgresql/root.crt,
    // as libpq looks for it; the wrong CA in either place is refused.
    let file = write_plan(
        work.path(),
        "root.yaml",
        &common::minimal_plan(
            "tls",
            &format!("host=localhost {base} sslmode=verify-full"),
            "  wal_level: replica\n",
        ),
    );
    let file = file.to_str().unwrap();
    let home = tempfile::tempdir().unwrap();
    let home_path = home.path().to_str().unwrap();
    let ca = format!("{d}/ca.crt");
    let other = format!("{d}/other-ca.crt");
    let with = |envs: &[(&str, &str)]| common::pgdr_env(None, &["plan", file], envs);
    let from_env = with(&[("PGSSLROOTCERT", &ca), ("HOME", home_path)]);
    assert_eq!(from_env.code, 0, "PGSSLROOTCERT: {}", from_env.stdout);
    let wrong_env = with(&[("PGSSLROOTCERT", &other), ("HOME", home_path)]);
    assert_eq!(
        wrong_env.code, 1,
        "PGSSLROOTCERT with the wrong CA: {}",
        wrong_env.stdout
    );
    let nowhere = with(&[("PGSSLROOTCERT", ""), ("HOME", home_path)]);
    assert_eq!(nowhere.code, 1);
    assert!(nowhere.stdout.contains("root.crt"), "{}", nowhere.stdout);
    std::fs::create_dir_all(home.path().join(".postgresql")).unwrap();
    std::fs::copy(&ca, home.path().join(".postgresql/root.crt")).unwrap();
    let from_home = with(&[("PGSSLROOTCERT", ""), ("HOME", home_path)]);
    assert_eq!(
        from_home.code, 0,
        "~/.postgresql/root.crt: {}",
        from_home.stdout
    );
    std::fs::copy(&other, home.path().join(".postgresql/root.crt")).unwrap();
    let wrong_home = with(&[("PGSSLROOTCERT", ""), ("HOME", home_path)]);
    assert_eq!(
        wrong_home.code, 1,
        "~/.postgresql/root.crt with the wrong CA"
    );

    // The certificate names localhost, not 127.0.0.1: verify-full refuses, verify-ca accepts.
    let wrong_name = plan_with(
        work.path(),
        &format!("host=127.0.0.1 {base} sslmode=verify-full sslrootcert={d}/ca.crt"),
    );
    assert_eq!(wrong_name.code, 1);
    assert!(
        wrong_name.stdout.contains("cannot connect"),
        "{}",
        wrong_name.stdout
    );
    let ca_only = plan_with(
        work.path(),
        &format!("host=127.0.0.1 {base} sslmode=verify-ca sslrootcert={d}/ca.crt"),
    );
    assert_eq!(
        ca_only.code, 0,
        "verify-ca: {}{}",
        ca_only.stdout, ca_only.stderr
    );

    let wrong_ca = plan_with(
        work.path(),
        &format!("host=localhost {base} sslmode=verify-ca sslrootcert={d}/other-ca.crt"),
    );
    assert_eq!(wrong_ca.code, 1);
    assert!(
        wrong_ca.stdout.contains("certificate") || wrong_ca.stdout.contains("UnknownIssuer"),
        "{}",
        wrong_ca.stdout
    );

    let no_root = plan_with(
        work.path(),
        &format!("host=localhost {base} sslmode=verify-full sslrootcert={d}/missing.crt"),
    );
    assert_eq!(no_root.code, 1);
    assert!(no_root.stdout.contains("missing.crt"), "{}", no_root.stdout);
}

#[test]
fn passwords_come_from_pgpassword_or_pgpass_never_the_file() {
    let pg = Postgres::start();
    pg.psql("CREATE ROLE dr_admin LOGIN SUPERUSER PASSWORD 's3cret-pass'");
    let hba = pg.data_dir().join("pg_hba.conf");
    let text = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(&hba, text.replace("host    all             all             127.0.0.1/32            trust", "host    all             dr_admin        127.0.0.1/32            scram-sha-256\nhost    all             all             127.0.0.1/32            trust")).unwrap();
    pg.psql("SELECT pg_reload_conf()");
    let work = tempfile::tempdir().unwrap();
    let conninfo = format!(
        "host=127.0.0.1 port={} user=dr_admin dbname=postgres sslmode=disable",
        pg.port
    );
    let file = write_plan(
        work.path(),
        "p.yaml",
        &common::minimal_plan("pw", &conninfo, "  wal_level: replica\n"),
    );
    let file = file.to_str().unwrap();
    let bin = env!("CARGO_BIN_EXE_pgdr");
    let run = |envs: &[(&str, &str)]| {
        let mut cmd = Command::new(bin);
        cmd.args(["plan", file])
            .env_remove("PGPASSWORD")
            .env("HOME", work.path())
            .env("PGDR_LOCK_DIR", work.path());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        common::run(&mut cmd, common::COMMAND_TIMEOUT)
    };

    let none = run(&[]);
    assert_eq!(none.status.code(), Some(1));
    let text = String::from_utf8_lossy(&none.stdout);
    assert!(text.contains("PGPASSWORD"), "hint names PGPASSWORD: {text}");

    let wrong = run(&[("PGPASSWORD", "nope-wrong")]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        !String::from_utf8_lossy(&wrong.stdout).contains("nope-wrong"),
        "password echoed"
    );

    assert_eq!(run(&[("PGPASSWORD", "s3cret-pass")]).status.code(), Some(0));

    let pgpass = work.path().join(".pgpass");
    std::fs::write(
        &pgpass,
        format!("127.0.0.1:{}:*:dr_admin:s3cret-pass\n", pg.port),
    )
    .unwrap();
    std::fs::set_permissions(&pgpass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let from_file = run(&[]);
    assert_eq!(
        from_file.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&from_file.stdout)
    );

    std::fs::set_permissions(&pgpass, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let loose = run(&[]);
    assert_eq!(loose.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&loose.stderr).contains("group or world access"));
    std::fs::remove_file(&pgpass).unwrap();

    // A password file elsewhere: named by PGPASSFILE, or by passfile= in the conninfo.
    let elsewhere = tempfile::tempdir().unwrap();
    let other = elsewhere.path().join("pw");
    std::fs::write(&other, format!("*:{}:*:dr_admin:s3cret-pass\n", pg.port)).unwrap();
    std::fs::set_permissions(&other, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let other = other.to_str().unwrap();
    assert_eq!(
        run(&[]).status.code(),
        Some(1),
        "no password anywhere (the control)"
    );
    let via_env = run(&[("PGPASSFILE", other)]);
    assert_eq!(
        via_env.status.code(),
        Some(0),
        "PGPASSFILE: {}",
        String::from_utf8_lossy(&via_env.stdout)
    );
    let with_passfile = write_plan(
        work.path(),
        "p.yaml",
        &common::minimal_plan(
            "pw",
            &format!("{conninfo} passfile={other}"),
            "  wal_level: replica\n",
        ),
    );
    assert_eq!(with_passfile.to_str().unwrap(), file);
    let via_conninfo = run(&[]);
    assert_eq!(
        via_conninfo.status.code(),
        Some(0),
        "passfile=: {}",
        String::from_utf8_lossy(&via_conninfo.stdout)
    );
    for out in [&via_env, &via_conninfo] {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains("s3cret-pass"), "password shown: {all}");
    }
}

#[test]
fn require_encrypts_to_a_server_with_a_self_signed_certificate() {
    let certs = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        certs.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    sh(
        certs.path(),
        "set -e
         openssl req -x509 -newkey rsa:2048 -nodes -keyout server.key -out server.crt -days 2 -subj /CN=localhost 2>/dev/null
         chmod 600 server.key
         if [ \"$(id -u)\" -eq 0 ]; then chown postgres: server.key server.crt; fi",
    );
    let d = certs.path().display();
    let pg = Postgres::start_with(&format!(
        "ssl = on\nssl_cert_file = '{d}/server.crt'\nssl_key_file = '{d}/server.key'\n"
    ));
    hostssl_only(&pg);
    let work = tempfile::tempdir().unwrap();
    let base = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres",
        pg.port
    );
    let require = plan_with(work.path(), &format!("{base} sslmode=require"));
    assert_eq!(require.code, 0, "{}{}", require.stdout, require.stderr);
    // Not trusted by any root: verify-ca refuses it.
    let verify = plan_with(
        work.path(),
        &format!("{base} sslmode=verify-ca sslrootcert=system"),
    );
    assert_eq!(verify.code, 1, "{}", verify.stdout);
}
