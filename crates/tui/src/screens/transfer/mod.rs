//! The transfer wizard: Clone disk and Copy partition from the source on, and both restores from
//! the target on (their first steps are [`crate::screens::restore`]): source → target → options →
//! plan → confirm → running → result. Only the confirmation step can start the job: it makes the
//! [`crate::confirm::Confirmed`] that [`Effect::Start`] carries.
//!
//! The plan is asked of a worker with a request id kept in [`Step::Planning`]; a plan that
//! arrives after the user went back (Esc) and chose again answers an older id and is dropped.

pub mod candidates;
mod draw;
pub mod job;

pub use candidates::{image_home, size_explanation, sources, targets};
pub use draw::draw;
pub use job::{target_state, Action};

use crate::confirm;
use crate::inventory::Endpoint;
use crate::model::{Effect, Key, Model, RequestId, Screen};
use crate::screens::restore::{image_endpoint, restore_choices, RestoreScreen};
use crate::widgets::image_picker::ChosenImage;
use crate::widgets::running::Run;
use crate::widgets::{nav, plan};
use engine::job::Outcome;
use job::{JobOption, JobOptions, PlanRequest, PlannedJob};
use std::sync::Arc;

/// A step of the wizard.
#[derive(Debug)]
pub enum Step {
    PickSource {
        cursor: usize,
    },
    PickTarget {
        cursor: usize,
        /// The refusal shown after Enter on a refused target.
        refused: Option<String>,
    },
    Options {
        cursor: usize,
    },
    /// A worker is checking the target and building the plan; its answer carries `id`.
    Planning {
        id: RequestId,
    },
    Plan {
        plan: Arc<PlannedJob>,
        scroll: u16,
    },
    /// The safety check or the planner said no.
    Refused {
        reason: String,
    },
    Confirm {
        plan: Arc<PlannedJob>,
        typed: String,
        wrong: bool,
    },
    Running {
        plan: Arc<PlannedJob>,
        run: Run,
    },
    Done {
        plan: Arc<PlannedJob>,
        /// The engine's outcome.
        outcome: Outcome,
        /// The state a failed job left its target in, in words.
        target_state: Option<String>,
    },
}

/// A job being set up or run.
#[derive(Debug)]
pub struct Wizard {
    pub action: Action,
    pub step: Step,
    pub source: Option<Endpoint>,
    pub target: Option<Endpoint>,
    pub options: JobOptions,
    /// The image a restore reads (its first steps are on [`Screen::Restore`]).
    pub image: Option<ChosenImage>,
}

impl Wizard {
    /// The wizard of `action` at its first step, the cursor on the disk or partition selected on
    /// the main screen.
    pub fn start(model: &Model, action: Action) -> Screen {
        let cursor = candidates::preselect(model, action);
        Screen::Wizard(Box::new(Wizard {
            action,
            step: Step::PickSource { cursor },
            source: None,
            target: None,
            options: Default::default(),
            image: None,
        }))
    }

    /// A restore of `source` (read from `image`) at its target step.
    pub fn restore(model: &Model, action: Action, image: ChosenImage, source: Endpoint) -> Screen {
        let first_ok = targets(model, action, &source)
            .iter()
            .position(|c| c.refusal.is_none())
            .unwrap_or(0);
        Screen::Wizard(Box::new(Wizard {
            action,
            step: Step::PickTarget {
                cursor: first_ok,
                refused: None,
            },
            source: Some(source),
            target: None,
            options: Default::default(),
            image: Some(image),
        }))
    }

    pub fn run(&self) -> Option<&Run> {
        match &self.step {
            Step::Running { run, .. } => Some(run),
            _ => None,
        }
    }

    pub fn run_mut(&mut self) -> Option<&mut Run> {
        match &mut self.step {
            Step::Running { run, .. } => Some(run),
            _ => None,
        }
    }

    /// The title bar's text.
    pub fn title(&self) -> String {
        let (n, what) = match &self.step {
            Step::PickSource { .. } => (1, "source"),
            Step::PickTarget { .. } => (2, "target"),
            Step::Options { .. } => (3, "options"),
            Step::Planning { .. } | Step::Plan { .. } | Step::Refused { .. } => (4, "plan"),
            Step::Confirm { .. } => (5, "confirm"),
            Step::Running { .. } => (6, "running"),
            Step::Done { .. } => (6, "result"),
        };
        // A restore's first two steps are the image and what to restore from it.
        if self.action.is_restore() {
            format!("Restore - step {} of 7: {what}", n + 1)
        } else {
            format!("{} - step {n} of 6: {what}", self.action.title())
        }
    }

    /// The help line.
    pub fn help(&self) -> &'static str {
        match &self.step {
            Step::PickSource { .. } | Step::PickTarget { .. } => " ↑↓ move  Enter choose  Esc back",
            Step::Options { .. } => " ↑↓ move  Space toggle  Enter make the plan  Esc back",
            Step::Planning { .. } => " Esc back",
            Step::Plan { .. } => " ↑↓ PgUp PgDn scroll  Enter continue  Esc back",
            Step::Refused { .. } => " Enter/Esc pick another target",
            Step::Confirm { .. } => " type yes, then Enter to start  Backspace erase  Esc back",
            Step::Running { run, .. } if run.ask_cancel => " y cancel the job  n keep going",
            Step::Running { .. } => " Esc cancel",
            Step::Done { .. } => " Enter back to the disks",
        }
    }

    /// The spinner turns while the plan is made.
    pub fn animated(&self) -> bool {
        matches!(self.step, Step::Planning { .. })
    }
}

/// The plan asked with `id` arrived: shown when the wizard still waits for it, else dropped.
pub fn on_planned(model: &mut Model, id: RequestId, result: Result<Arc<PlannedJob>, String>) {
    let Screen::Wizard(w) = &mut model.screen else {
        return;
    };
    if !matches!(w.step, Step::Planning { id: waiting } if waiting == id) {
        log::debug!("plan {id} dropped: the wizard no longer waits for it");
        return;
    }
    w.step = match result {
        Ok(plan) => Step::Plan { plan, scroll: 0 },
        Err(reason) => Step::Refused { reason },
    };
}

/// The job `id` finished: the result screen, and a rescan (the target changed).
pub fn on_job_done(model: &mut Model, id: RequestId, outcome: Outcome) -> Vec<Effect> {
    let Screen::Wizard(w) = &mut model.screen else {
        return Vec::new();
    };
    let Step::Running { plan, run } = &w.step else {
        return Vec::new();
    };
    if run.id != id {
        return Vec::new();
    }
    let plan = Arc::clone(plan);
    let phase = run.progress.as_ref().map(|p| p.phase.as_str());
    let target_state = target_state(w.action, &outcome, phase);
    w.step = Step::Done {
        plan,
        outcome,
        target_state,
    };
    model.rescan()
}

/// Keys of the wizard.
pub fn key(model: &mut Model, mut w: Box<Wizard>, key: Key) -> (Screen, Vec<Effect>) {
    let mut effects = Vec::new();
    let step = std::mem::replace(&mut w.step, Step::Options { cursor: 0 });
    let action = w.action;
    w.step = match step {
        Step::PickSource { cursor } => {
            let list = sources(model, action);
            if let Some(c) = nav(cursor, list.len(), key) {
                Step::PickSource { cursor: c }
            } else {
                match key {
                    Key::Esc => return (Screen::Main, Vec::new()),
                    Key::Enter => match list.get(cursor) {
                        Some(c) if c.refusal.is_none() => {
                            model.status = None;
                            let t = targets(model, action, &c.endpoint);
                            let first_ok = t.iter().position(|c| c.refusal.is_none()).unwrap_or(0);
                            w.source = Some(c.endpoint.clone());
                            Step::PickTarget {
                                cursor: first_ok,
                                refused: None,
                            }
                        }
                        Some(c) => {
                            model.status = c.refusal.clone();
                            Step::PickSource { cursor }
                        }
                        None => Step::PickSource { cursor },
                    },
                    _ => Step::PickSource { cursor },
                }
            }
        }
        Step::PickTarget { cursor, refused } => {
            let Some(source) = w.source.clone() else {
                return (Screen::Main, Vec::new());
            };
            let list = targets(model, action, &source);
            if let Some(c) = nav(cursor, list.len(), key) {
                Step::PickTarget {
                    cursor: c,
                    refused: None,
                }
            } else {
                match key {
                    Key::Esc if action.is_restore() => {
                        return match w.image.take() {
                            Some(image) => {
                                let cursor = restore_choices(&image.summary)
                                    .iter()
                                    .position(|(c, _)| image_endpoint(&image, c) == source)
                                    .unwrap_or(0);
                                let screen = RestoreScreen::PickWhat { image, cursor };
                                (Screen::Restore(Box::new(screen)), Vec::new())
                            }
                            None => (Screen::Main, Vec::new()),
                        };
                    }
                    Key::Esc => {
                        let back = sources(model, action)
                            .iter()
                            .position(|c| c.endpoint == source)
                            .unwrap_or(0);
                        w.source = None;
                        Step::PickSource { cursor: back }
                    }
                    Key::Enter => match list.get(cursor) {
                        Some(c) if c.refusal.is_none() => {
                            w.target = Some(c.endpoint.clone());
                            // Growing only makes sense onto a larger disk.
                            if c.endpoint.len <= source.len {
                                w.options.grow_last = false;
                            }
                            Step::Options { cursor: 0 }
                        }
                        Some(c) => Step::PickTarget {
                            cursor,
                            refused: c.refusal.clone(),
                        },
                        None => Step::PickTarget { cursor, refused },
                    },
                    _ => Step::PickTarget { cursor, refused },
                }
            }
        }
        Step::Options { cursor } => {
            let opts = action.options();
            if let Some(c) = nav(cursor, opts.len(), key) {
                Step::Options { cursor: c }
            } else {
                match key {
                    Key::Esc => {
                        let back = back_to_target(model, &w);
                        w.target = None;
                        back
                    }
                    Key::Char(' ') | Key::Char('x') => {
                        if let Some(o) = opts.get(cursor) {
                            toggle(model, &mut w, *o);
                        }
                        Step::Options { cursor }
                    }
                    Key::Enter => match (&w.source, &w.target) {
                        (Some(s), Some(t)) => {
                            let id = model.request();
                            effects.push(Effect::Plan {
                                id,
                                request: Box::new(PlanRequest {
                                    action,
                                    source: s.clone(),
                                    target: t.clone(),
                                    options: w.options,
                                }),
                            });
                            Step::Planning { id }
                        }
                        _ => Step::Options { cursor },
                    },
                    _ => Step::Options { cursor },
                }
            }
        }
        Step::Planning { id } => match key {
            // The worker's answer is dropped when it arrives (its id is no longer awaited).
            Key::Esc => Step::Options { cursor: 0 },
            _ => Step::Planning { id },
        },
        Step::Plan { plan, scroll } => match key {
            Key::Esc => Step::Options { cursor: 0 },
            Key::Enter => Step::Confirm {
                plan,
                typed: String::new(),
                wrong: false,
            },
            k => Step::Plan {
                scroll: plan::scroll(&plan.text(), scroll, k).unwrap_or(scroll),
                plan,
            },
        },
        Step::Refused { reason } => match key {
            Key::Esc | Key::Enter => {
                let back = back_to_target(model, &w);
                w.target = None;
                back
            }
            _ => Step::Refused { reason },
        },
        Step::Confirm {
            plan,
            mut typed,
            wrong,
        } => match key {
            Key::Esc => Step::Plan { plan, scroll: 0 },
            Key::Backspace => {
                typed.pop();
                Step::Confirm { plan, typed, wrong }
            }
            Key::Char(c) if !c.is_control() && typed.chars().count() < 16 => {
                typed.push(c);
                Step::Confirm {
                    plan,
                    typed,
                    wrong: false,
                }
            }
            Key::Enter => match confirm::accept(&plan, &typed) {
                Some(confirmed) => {
                    log::info!(
                        "{} confirmed: {} → {} ({})",
                        action.title(),
                        plan.source.path.display(),
                        plan.target.path.display(),
                        plan.identity()
                    );
                    let id = model.request();
                    let policy = crate::widgets::network::read_policy(model, &plan.source.path);
                    effects.push(Effect::Start {
                        id,
                        confirmed,
                        policy,
                    });
                    Step::Running {
                        plan,
                        run: Run::new(id),
                    }
                }
                None => Step::Confirm {
                    plan,
                    typed: String::new(),
                    wrong: true,
                },
            },
            _ => Step::Confirm { plan, typed, wrong },
        },
        Step::Running { plan, mut run } => {
            effects.extend(run.key(key));
            Step::Running { plan, run }
        }
        Step::Done {
            plan,
            outcome,
            target_state,
        } => match key {
            Key::Enter | Key::Esc => return (Screen::Main, effects),
            _ => Step::Done {
                plan,
                outcome,
                target_state,
            },
        },
    };
    (Screen::Wizard(w), effects)
}

/// The target list again, with the cursor on the target picked before.
fn back_to_target(model: &Model, w: &Wizard) -> Step {
    let cursor = match (&w.source, &w.target) {
        (Some(s), Some(t)) => targets(model, w.action, s)
            .iter()
            .position(|c| &c.endpoint == t)
            .unwrap_or(0),
        _ => 0,
    };
    Step::PickTarget {
        cursor,
        refused: None,
    }
}

fn toggle(model: &mut Model, w: &mut Wizard, o: JobOption) {
    if o == JobOption::GrowLast {
        let larger = matches!((&w.source, &w.target), (Some(s), Some(t)) if t.len > s.len);
        if !larger {
            model.status =
                Some("the target is not larger than the source: there is nothing to grow".into());
            return;
        }
    }
    model.status = None;
    w.options.toggle(o);
}
