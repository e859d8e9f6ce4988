//! Matter roles and task types: names both sides agree on (the server's
//! policy decides with them; the signed roster names them).

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A name (role, task type, organization kind) that is not one of the known
/// ones.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown {what} {value:?} (expected one of: {expected})")]
pub struct ParseNameError {
    what: &'static str,
    value: String,
    expected: String,
}

/// Parses `value` as the item of `all` whose `name` it is, or says which
/// names exist.
pub fn parse_name<T: Copy>(
    what: &'static str,
    all: &[T],
    name: fn(T) -> &'static str,
    value: &str,
) -> Result<T, ParseNameError> {
    all.iter()
        .copied()
        .find(|&item| name(item) == value)
        .ok_or_else(|| ParseNameError {
            what,
            value: value.to_owned(),
            expected: all
                .iter()
                .map(|&item| name(item))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// A member's role on one matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Firm attorney: manages the matter, pushes packets, reviews deliverables.
    Attorney,
    /// Firm paralegal: pushes packets, reads deliverables.
    Paralegal,
    /// Provider member: acknowledges, pulls packets, delivers work product.
    Provider,
    /// Auditor: exports the matter's audit log and reads turnaround reports.
    Auditor,
}

impl Role {
    /// Every role.
    pub const ALL: [Self; 4] = [
        Self::Attorney,
        Self::Paralegal,
        Self::Provider,
        Self::Auditor,
    ];

    /// Lowercase name: `attorney`, `paralegal`, `provider`, `auditor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Attorney => "attorney",
            Self::Paralegal => "paralegal",
            Self::Provider => "provider",
            Self::Auditor => "auditor",
        }
    }

    /// The name with its indefinite article, for messages: `an attorney`.
    pub fn with_article(self) -> &'static str {
        match self {
            Self::Attorney => "an attorney",
            Self::Paralegal => "a paralegal",
            Self::Provider => "a provider",
            Self::Auditor => "an auditor",
        }
    }

    /// Plural, for messages: `attorneys`.
    pub fn plural(self) -> &'static str {
        match self {
            Self::Attorney => "attorneys",
            Self::Paralegal => "paralegals",
            Self::Provider => "providers",
            Self::Auditor => "auditors",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ParseNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_name("role", &Self::ALL, Self::as_str, s)
    }
}

/// A task type: what a packet asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// `document-review` (providers may do it).
    DocumentReview,
    /// `legal-research` (providers may do it).
    LegalResearch,
    /// `drafting` (providers may do it).
    Drafting,
    /// `medical-chronology` (providers may do it).
    MedicalChronology,
    /// `client-intake` (providers may do it).
    ClientIntake,
    /// `legal-advice` (in-house only).
    LegalAdvice,
    /// `pleading-signature` (in-house only).
    PleadingSignature,
    /// `court-appearance` (in-house only).
    CourtAppearance,
    /// `privilege-decision` (in-house only).
    PrivilegeDecision,
}

impl Task {
    /// Every task type, provider tasks first.
    pub const ALL: [Self; 9] = [
        Self::DocumentReview,
        Self::LegalResearch,
        Self::Drafting,
        Self::MedicalChronology,
        Self::ClientIntake,
        Self::LegalAdvice,
        Self::PleadingSignature,
        Self::CourtAppearance,
        Self::PrivilegeDecision,
    ];

    /// Kebab-case name, as on the command line and in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DocumentReview => "document-review",
            Self::LegalResearch => "legal-research",
            Self::Drafting => "drafting",
            Self::MedicalChronology => "medical-chronology",
            Self::ClientIntake => "client-intake",
            Self::LegalAdvice => "legal-advice",
            Self::PleadingSignature => "pleading-signature",
            Self::CourtAppearance => "court-appearance",
            Self::PrivilegeDecision => "privilege-decision",
        }
    }

    /// Whether outside providers may do this task (it may be in a matter's
    /// scope and on a packet). The others stay in-house.
    pub fn allowed_for_providers(self) -> bool {
        match self {
            Self::DocumentReview
            | Self::LegalResearch
            | Self::Drafting
            | Self::MedicalChronology
            | Self::ClientIntake => true,
            Self::LegalAdvice
            | Self::PleadingSignature
            | Self::CourtAppearance
            | Self::PrivilegeDecision => false,
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Task {
    type Err = ParseNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_name("task type", &Self::ALL, Self::as_str, s)
    }
}
