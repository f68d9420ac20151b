//! The two iTops of a bridge.

use serde::{Deserialize, Serialize};

/// Which iTop: the external (customer) one where tickets originate, or the
/// internal (provider) one where they are mirrored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    External,
    Internal,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::External => "external",
            Side::Internal => "internal",
        }
    }

    pub fn other(self) -> Side {
        match self {
            Side::External => Side::Internal,
            Side::Internal => Side::External,
        }
    }

    pub fn parse(text: &str) -> Option<Side> {
        match text {
            "external" => Some(Side::External),
            "internal" => Some(Side::Internal),
            _ => None,
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
