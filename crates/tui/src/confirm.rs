//! The proof that the user confirmed a destructive job: a [`Confirmed`] can only be made by
//! `accept`, which requires the word the confirmation screen asks for, so no other state of the
//! UI can produce an effect that writes to a disk. It is also the only place the TUI makes the
//! `disk::WriteConsent` the engine needs to open the plan's target for writing.

use crate::model::PlannedJob;
use disk::WriteConsent;
use std::sync::Arc;

/// The word the user must type.
pub const WORD: &str = "yes";

/// A plan the user confirmed by typing [`WORD`].
#[derive(Debug)]
pub struct Confirmed {
    plan: Arc<PlannedJob>,
    // Private: outside this module a `Confirmed` cannot be built.
    _proof: Proof,
}

#[derive(Debug)]
struct Proof;

impl Confirmed {
    /// The confirmed plan.
    pub fn plan(&self) -> &Arc<PlannedJob> {
        &self.plan
    }

    /// The consent to open the plan's target for writing, for the target the confirmation
    /// screen named (its path and identity, as the engine planned them). `None` when the plan
    /// overwrites nothing.
    pub fn consent(&self) -> Option<WriteConsent> {
        self.plan
            .plan
            .target
            .as_ref()
            .map(|t| WriteConsent::confirmed_by_user(&t.path, &t.identity))
    }
}

/// Confirms `plan` when `typed` is the confirmation word (surrounding blanks ignored).
pub(crate) fn accept(plan: &Arc<PlannedJob>, typed: &str) -> Option<Confirmed> {
    (typed.trim() == WORD).then(|| Confirmed {
        plan: Arc::clone(plan),
        _proof: Proof,
    })
}
