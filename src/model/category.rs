//! Categories and risk levels: closed vocabularies, parsed once at the boundary.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What the most severe single call of a tool can do.
///
/// Declaration order is the order of severity for sorting and display; `destructive` and `financial` are
/// equally severe (see [`Category::severity`]), they are different kinds of harm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Read,
    Write,
    Execute,
    Destructive,
    Financial,
}

impl Category {
    pub const ALL: [Category; 5] =
        [Category::Read, Category::Write, Category::Execute, Category::Destructive, Category::Financial];

    /// Severity rank: read 0, write 1, execute 2, destructive and financial 3.
    pub fn severity(self) -> u8 {
        match self {
            Category::Read => 0,
            Category::Write => 1,
            Category::Execute => 2,
            Category::Destructive | Category::Financial => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Read => "read",
            Category::Write => "write",
            Category::Execute => "execute",
            Category::Destructive => "destructive",
            Category::Financial => "financial",
        }
    }

    /// The risk a tool of this category has before blast-radius factors are applied.
    pub fn base_risk(self) -> Risk {
        match self {
            Category::Read => Risk::Low,
            Category::Write => Risk::Medium,
            Category::Execute => Risk::High,
            Category::Destructive | Category::Financial => Risk::Critical,
        }
    }
}

/// How bad the worst outcome of a call is, after blast-radius factors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}

/// Findings use the same four levels as risk.
pub type Severity = Risk;

impl Risk {
    pub const ALL: [Risk; 4] = [Risk::Low, Risk::Medium, Risk::High, Risk::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Critical => "critical",
        }
    }

    /// One level up, saturating at critical.
    pub fn raise(self) -> Risk {
        match self {
            Risk::Low => Risk::Medium,
            Risk::Medium => Risk::High,
            Risk::High | Risk::Critical => Risk::Critical,
        }
    }

    pub fn rank(self) -> u8 {
        self as u8
    }
}

/// A value that is not one of an enum's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}; expected one of {expected}")]
pub struct ParseEnumError {
    pub kind: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl FromStr for Category {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL.into_iter().find(|c| c.as_str().eq_ignore_ascii_case(s.trim())).ok_or_else(|| ParseEnumError {
            kind: "category",
            value: s.to_string(),
            expected: "read, write, execute, destructive, financial",
        })
    }
}

impl FromStr for Risk {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Risk::ALL.into_iter().find(|r| r.as_str().eq_ignore_ascii_case(s.trim())).ok_or_else(|| ParseEnumError {
            kind: "risk level",
            value: s.to_string(),
            expected: "low, medium, high, critical",
        })
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_orders_destructive_and_financial_equally() {
        assert!(Category::Read.severity() < Category::Write.severity());
        assert!(Category::Write.severity() < Category::Execute.severity());
        assert_eq!(Category::Destructive.severity(), Category::Financial.severity());
    }

    #[test]
    fn parse_round_trips_and_rejects_unknown() {
        for c in Category::ALL {
            assert_eq!(c.as_str().parse::<Category>().unwrap(), c);
        }
        for r in Risk::ALL {
            assert_eq!(r.as_str().parse::<Risk>().unwrap(), r);
        }
        let err = "danger".parse::<Risk>().unwrap_err();
        assert!(err.to_string().contains("expected one of low"));
    }

    #[test]
    fn raise_saturates() {
        assert_eq!(Risk::Low.raise(), Risk::Medium);
        assert_eq!(Risk::Critical.raise(), Risk::Critical);
    }
}
