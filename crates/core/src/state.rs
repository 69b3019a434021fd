//! The state a service is in (PRODUCT.md `status`), as one type: what the
//! controller sets, what `_dropship.service_state` stores (as its name), what
//! `/status` and `dropship_service_state` report.
//!
//! Invariant: every state has exactly one name, and every name read back
//! parses to its state; an unknown name in the metadata is an error naming it,
//! never a default.

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceState {
    /// Its tables are being copied (stream held back until the copy ends).
    Copying,
    /// Applying the stream.
    Replicating,
    /// Stopped on an error that needs a human (or `POST .../resume`).
    Paused,
    /// Source frozen for a cutover: writes to its tables wait.
    Frozen,
    /// The target is the primary; reverse replication runs target -> source.
    CutOver,
    /// A rollback is under way: reverse replication drains, then stops.
    RollingBack,
    /// Gave up after retrying transient errors (`give_up_after`).
    Error,
}

impl ServiceState {
    pub const ALL: [ServiceState; 7] = [
        ServiceState::Copying,
        ServiceState::Replicating,
        ServiceState::Paused,
        ServiceState::Frozen,
        ServiceState::CutOver,
        ServiceState::RollingBack,
        ServiceState::Error,
    ];

    /// The name stored and reported: `copying`, `cut-over`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Copying => "copying",
            ServiceState::Replicating => "replicating",
            ServiceState::Paused => "paused",
            ServiceState::Frozen => "frozen",
            ServiceState::CutOver => "cut-over",
            ServiceState::RollingBack => "rolling-back",
            ServiceState::Error => "error",
        }
    }

    /// The state named `name` (as [`ServiceState::as_str`] spells it).
    pub fn parse(name: &str) -> Option<ServiceState> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the target is the side being written, so that reverse
    /// replication (target -> source) runs: cut over, or rolling back.
    pub fn reverse_runs(self) -> bool {
        matches!(self, ServiceState::CutOver | ServiceState::RollingBack)
    }
}

impl std::fmt::Display for ServiceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ServiceState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_has_one_name_that_parses_back() {
        let mut names = std::collections::HashSet::new();
        for s in ServiceState::ALL {
            assert!(names.insert(s.as_str()), "{s:?} shares its name");
            assert_eq!(ServiceState::parse(s.as_str()), Some(s));
        }
        assert_eq!(ServiceState::parse("rolling_back"), None);
        assert_eq!(ServiceState::parse(""), None);
    }
}
