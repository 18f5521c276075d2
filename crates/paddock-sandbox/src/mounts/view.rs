//! [`MountView`]: what the mount view ended up with, filled in by the stages.

/// What the mount view ended up with.
#[derive(Debug, Default)]
pub(crate) struct MountView {
    /// A fresh /proc of the new pid namespace is mounted.
    pub proc_ok: bool,
    /// A private tmpfs is on /tmp.
    pub private_tmp: bool,
    /// Human-readable summary for the report.
    pub detail: String,
    /// Something requested could not be set up (beyond missing paths).
    pub partial: bool,
    /// The deny, protect, hidden or socket masks could not all be placed: the view must
    /// not be used under strict enforcement (the layer is unavailable).
    pub masks_failed: Option<String>,
}
