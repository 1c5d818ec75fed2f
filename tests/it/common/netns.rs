//! Another host on this machine, for the partition tests: a network
//! namespace joined to the host by a veth pair (`10.x.y.1` on the host's
//! side, `10.x.y.2` inside). [`Netns::cut`] sets the host's end down — the
//! link is cut, packets are lost, nobody is told — and [`Netns::heal`] sets it
//! up again. Needs root (`ip netns`, iproute2); removed when dropped, with
//! every interface in it.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Netns {
    pub name: String,
    /// The host's end of the link (cut and healed).
    host_if: String,
    /// The host's address, as seen from inside.
    pub host_addr: String,
    /// The address inside the namespace.
    pub addr: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

#[track_caller]
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// Whether this machine lets the tests make namespaces (root, iproute2).
    pub fn available() -> bool {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        root && Command::new("ip")
            .args(["netns", "list"])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    pub fn new() -> Netns {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // Names of interfaces are at most 15 bytes; subnets unique per
        // process and namespace (10.200–249.n.0/24).
        let tag = format!("{}{n}", pid % 10_000);
        let net = format!("10.{}.{}", 200 + pid % 50, n % 250);
        let ns = Netns {
            name: format!("pgdr-{tag}"),
            host_if: format!("pdh{tag}"),
            host_addr: format!("{net}.1"),
            addr: format!("{net}.2"),
        };
        let inner_if = format!("pdn{tag}");
        ip(&["netns", "add", &ns.name]);
        ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &inner_if,
        ]);
        ip(&["link", "set", &inner_if, "netns", &ns.name]);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", ns.host_addr),
            "dev",
            &ns.host_if,
        ]);
        ip(&["link", "set", &ns.host_if, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns.name, "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["addr", "add", &format!("{}/24", ns.addr), "dev", &inner_if]);
        inside(&["link", "set", &inner_if, "up"]);
        inside(&["link", "set", "lo", "up"]);
        ns
    }

    /// `command` to run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Cuts the link: from now on nothing passes either way.
    pub fn cut(&self) {
        ip(&["link", "set", &self.host_if, "down"]);
    }

    pub fn heal(&self) {
        ip(&["link", "set", &self.host_if, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
