//! Local operating-system users, looked up through NSS (getpwuid_r and
//! getpwnam_r via `nix`), so users from LDAP or sssd are found as well as
//! those in /etc/passwd. The one place pgdr asks who a user is (and what
//! this machine is called).

use nix::unistd::{Uid, User};

/// A user's name, uid and primary gid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl From<User> for OsUser {
    fn from(user: User) -> Self {
        OsUser {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }
    }
}

/// The user with this uid, if NSS knows one.
pub fn by_uid(uid: u32) -> Option<OsUser> {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(OsUser::from)
}

/// The user with this name, if NSS knows one.
pub fn by_name(name: &str) -> Option<OsUser> {
    User::from_name(name).ok().flatten().map(OsUser::from)
}

/// The uid this process runs as.
pub fn current_uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

/// Whether pgdr runs as root (PostgreSQL refuses to: its files and servers
/// go to another user).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// This machine's name, as `hostname` prints it: where a lock's holder or
/// a running backup is.
pub fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_by_uid_and_by_name() {
        let root = by_uid(0).expect("every Linux host has uid 0");
        assert_eq!(root.name, "root");
        assert_eq!(by_name("root"), Some(root));
        assert_eq!(by_name("no-such-user-pgdr"), None);
    }
}
