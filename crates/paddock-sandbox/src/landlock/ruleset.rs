//! The ruleset: each right handled at its level, and the layer's state and detail from
//! the status the kernel returned.

use ::landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetStatus, Scope, ABI,
};

use super::rights::{cover, lacking, Facts, Right};
use crate::layer::LayerState;

/// The access rights of `right` among those this crate asks for.
pub(super) enum Asked {
    Fs(BitFlags<AccessFs>),
    Net(BitFlags<AccessNet>),
    Scope(BitFlags<Scope>),
}

pub(super) fn asked(right: Right) -> Asked {
    match right {
        Right::Filesystem => Asked::Fs(AccessFs::from_all(ABI::V1)),
        Right::Refer => Asked::Fs(AccessFs::Refer.into()),
        Right::Truncate => Asked::Fs(AccessFs::Truncate.into()),
        Right::IoctlDev => Asked::Fs(AccessFs::IoctlDev.into()),
        Right::Tcp => Asked::Net(AccessNet::BindTcp | AccessNet::ConnectTcp),
        Right::AbstractUnixSocket => Asked::Scope(Scope::AbstractUnixSocket.into()),
        Right::Signal => Asked::Scope(Scope::Signal.into()),
    }
}

/// The ruleset's handled rights and scopes, each asked at its level in `needs`; the level is
/// best effort again afterwards, for the rules (a rule only grants: a right the kernel drops
/// from one grants less).
pub(super) fn handle(
    mut ruleset: Ruleset,
    needs: &[(Right, CompatLevel)],
) -> Result<Ruleset, ::landlock::RulesetError> {
    for (right, level) in needs {
        ruleset = ruleset.set_compatibility(*level);
        ruleset = match asked(*right) {
            Asked::Fs(a) => ruleset.handle_access(a)?,
            Asked::Net(a) => ruleset.handle_access(a)?,
            Asked::Scope(s) => ruleset.scope(s)?,
        };
    }
    Ok(ruleset.set_compatibility(CompatLevel::BestEffort))
}

/// The layer's state from the status the kernel returned for the ruleset.
pub(super) fn state_of(status: &RulesetStatus) -> LayerState {
    match status {
        RulesetStatus::FullyEnforced => LayerState::Enforced,
        RulesetStatus::PartiallyEnforced => LayerState::Partial,
        RulesetStatus::NotEnforced => LayerState::Unavailable,
    }
}

/// The names of `rights`, joined.
pub(super) fn names(rights: &[Right]) -> String {
    rights.iter().map(|r| r.name()).collect::<Vec<_>>().join(", ")
}

/// The detail's tail for a ruleset the kernel (of Landlock ABI `abi`) returned `status` for.
pub(super) fn status_detail(status: &RulesetStatus, needs: &[(Right, CompatLevel)], facts: &Facts, abi: i64) -> String {
    let hard: Vec<Right> = needs.iter().filter(|(_, l)| *l == CompatLevel::HardRequirement).map(|(r, _)| *r).collect();
    let required = if hard.is_empty() {
        "best-effort: nothing required".to_string()
    } else {
        format!("required: {}", names(&hard))
    };
    match status {
        RulesetStatus::FullyEnforced => format!("fully enforced; {required}"),
        RulesetStatus::NotEnforced => format!("not enforced; {required}"),
        RulesetStatus::PartiallyEnforced => {
            let missing: Vec<String> = lacking(needs, CompatLevel::BestEffort, abi)
                .into_iter()
                .map(|r| match cover(r, facts) {
                    Some(c) => format!("{} (covered: {c})", r.name()),
                    None => format!("{} (not covered)", r.name()),
                })
                .collect();
            let missing = if missing.is_empty() { "rights the kernel dropped".to_string() } else { missing.join("; ") };
            format!("partially enforced; {required}; this kernel lacks {missing}")
        }
    }
}

/// The detail when the ruleset failed: names the required rights the kernel lacks.
pub(super) fn error_detail(e: &::landlock::RulesetError, needs: &[(Right, CompatLevel)], abi: i64) -> String {
    let missing = lacking(needs, CompatLevel::HardRequirement, abi);
    if missing.is_empty() {
        format!("landlock ABI {abi}: {e}")
    } else {
        format!("landlock ABI {abi}: strict requires {}, which this kernel lacks ({e})", names(&missing))
    }
}
