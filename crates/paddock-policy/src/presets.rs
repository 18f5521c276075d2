//! The policies embedded in the binary: the default and the presets, by name.

/// The embedded default policy: workspace writable, system read-only, home secrets denied,
/// no network. The same text as `policies/default.toml`.
pub const DEFAULT_POLICY: &str = include_str!("../../../policies/default.toml");

/// The name the embedded default goes by in messages.
pub const DEFAULT_POLICY_NAME: &str = "<embedded default>";

/// The presets embedded in the binary, by name: `--policy NAME` loads one wherever the
/// command runs. Each is the same text as `policies/NAME.toml`; an `extends` entry of an
/// embedded preset names another embedded preset (`"default.toml"` is `default`).
pub const PRESETS: &[(&str, &str)] = &[
    ("default", DEFAULT_POLICY),
    ("coding-agent", include_str!("../../../policies/coding-agent.toml")),
    ("ci", include_str!("../../../policies/ci.toml")),
    ("read-only", include_str!("../../../policies/read-only.toml")),
    ("claude", include_str!("../../../policies/claude.toml")),
    ("codex", include_str!("../../../policies/codex.toml")),
    ("gemini", include_str!("../../../policies/gemini.toml")),
];

/// The text of the embedded preset `name` (see [`PRESETS`]).
pub fn preset_text(name: &str) -> Option<&'static str> {
    PRESETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// The names of the embedded presets, in order.
pub fn preset_names() -> impl Iterator<Item = &'static str> {
    PRESETS.iter().map(|(n, _)| *n)
}

/// The name an embedded preset goes by in messages and in `Policy::files`:
/// `<embedded NAME>` (`<embedded default>` for the default).
pub fn preset_display_name(name: &str) -> String {
    format!("<embedded {name}>")
}
