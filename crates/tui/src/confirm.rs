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

/// A receive target the user confirmed by typing [`WORD`] (issue 19): the disk is confirmed
/// before the stream starts, and the restore planned from the stream runs without a second
/// question (`engine::job::receive`).
#[derive(Debug)]
pub struct ConfirmedReceive {
    target: Arc<engine::job::ReceiveTarget>,
    _proof: Proof,
}

impl ConfirmedReceive {
    /// The confirmed disk.
    pub fn target(&self) -> &Arc<engine::job::ReceiveTarget> {
        &self.target
    }

    /// The consent to open the confirmed disk for writing (its path and identity, as the engine
    /// checked them).
    pub fn consent(&self) -> WriteConsent {
        let t = &self.target.target;
        WriteConsent::confirmed_by_user(&t.path, &t.identity)
    }
}

/// Confirms the receive onto `target` when `typed` is the confirmation word.
pub(crate) fn accept_receive(
    target: &Arc<engine::job::ReceiveTarget>,
    typed: &str,
) -> Option<ConfirmedReceive> {
    (typed.trim() == WORD).then(|| ConfirmedReceive {
        target: Arc::clone(target),
        _proof: Proof,
    })
}
