//! Who shipped a record: [`Resource`] (host, user, workspace).

use std::path::Path;

/// The OpenTelemetry resource of the records shipped: which machine, which user, which
/// workspace. The session comes from each record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resource {
    /// `host.name`.
    pub host: String,
    /// `user.name`.
    pub user: String,
    /// `paddock.workspace`, for records whose session did not say (a session's
    /// `session.start` names its workspace, and wins).
    pub workspace: Option<String>,
}

impl Resource {
    /// This machine's host name, this process's user, and `workspace`.
    pub fn detect(workspace: Option<&Path>) -> Resource {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown".to_owned());
        let uid = crate::state::effective_uid();
        let user = user_name(uid).unwrap_or_else(|| format!("uid:{uid}"));
        Resource { host, user, workspace: workspace.map(|w| w.to_string_lossy().into_owned()) }
    }
}

/// The name of `uid` in `/etc/passwd` (the environment's `USER` can say anything).
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
    })
}
