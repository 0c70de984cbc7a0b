//! The proof that the user confirmed a destructive job: a [`Confirmed`] can only be made by
//! `accept`, which requires the word the confirmation screen asks for, so no other state of the
//! UI can produce an effect that writes to a disk.

use crate::model::PlannedJob;
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
}

/// Confirms `plan` when `typed` is the confirmation word (surrounding blanks ignored).
pub(crate) fn accept(plan: &Arc<PlannedJob>, typed: &str) -> Option<Confirmed> {
    (typed.trim() == WORD).then(|| Confirmed {
        plan: Arc::clone(plan),
        _proof: Proof,
    })
}
