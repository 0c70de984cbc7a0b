//! Back up a disk or partition into a new image file: source → folder → (planning) → options →
//! plan → running → result. A backup writes no disk: it only creates a new image file (never
//! overwriting one), so Enter on the plan starts it. The destination check and plan is a worker
//! request ([`BackupScreen::Planning`] keeps its id); a late answer for a folder or name the user
//! left is dropped.

pub mod data;
mod draw;

pub use data::{
    backup_sources, checked_image_name, default_image_name, free_image_name, BackupJob,
    BackupOutcome, BackupRequest, BackupSettings, BackupSource, BACKUP_LEVELS, SPLIT_4G,
};
pub use draw::draw;

use crate::model::{Effect, Key, Model, RequestId, Screen};
use crate::screens::verify::VerifyScreen;
use crate::widgets::image_picker::{self, BrowseEntry, Browser, Folder};
use crate::widgets::password::PasswordField;
use crate::widgets::running::Run;
use crate::widgets::{nav, plan};
use engine::units::human;
use std::sync::Arc;

/// The steps of a backup.
#[derive(Debug)]
pub enum BackupScreen {
    PickSource {
        cursor: usize,
    },
    PickFolder {
        source: BackupSource,
        browser: Browser,
    },
    /// A worker checks the destination and plans; its answer carries `id`.
    Planning {
        id: RequestId,
        request: BackupRequest,
        /// The options chosen before the file was renamed, kept across the new plan.
        settings: Option<BackupSettings>,
    },
    Refused {
        request: BackupRequest,
        reason: String,
    },
    Options {
        job: Arc<BackupJob>,
        settings: BackupSettings,
        cursor: usize,
    },
    /// Typing the password of an encrypted image, twice (masked).
    Password {
        job: Arc<BackupJob>,
        settings: BackupSettings,
        first: PasswordField,
        /// The second typing, once the first was entered.
        second: Option<PasswordField>,
        /// Why the last entry was refused.
        refused: Option<String>,
    },
    /// Editing the image file's name.
    Name {
        job: Arc<BackupJob>,
        settings: BackupSettings,
        typed: String,
        /// Why the last name was refused.
        refused: Option<String>,
    },
    /// Typing the passphrase of the source's encrypted volumes (shown masked).
    Key {
        job: Arc<BackupJob>,
        settings: BackupSettings,
        typed: engine::unlock::Key,
        /// Tab: store the decrypted file system instead of the ciphertext (`--decrypted`).
        decrypted: bool,
    },
    Plan {
        job: Arc<BackupJob>,
        settings: BackupSettings,
        scroll: u16,
    },
    Running {
        job: Arc<BackupJob>,
        settings: BackupSettings,
        run: Run,
    },
    Done {
        job: Arc<BackupJob>,
        outcome: BackupOutcome,
    },
}

impl BackupScreen {
    /// The first step, the cursor on the disk or partition selected on the main screen.
    pub fn start(model: &Model) -> Screen {
        let want = model.selected().and_then(|r| model.row_key(r));
        let cursor = want
            .and_then(|(disk, number)| {
                backup_sources(model)
                    .iter()
                    .position(|(_, s)| s.disk == disk && s.part == number)
            })
            .unwrap_or(0);
        Screen::Backup(Box::new(BackupScreen::PickSource { cursor }))
    }

    pub fn run(&self) -> Option<&Run> {
        match self {
            BackupScreen::Running { run, .. } => Some(run),
            _ => None,
        }
    }

    pub fn run_mut(&mut self) -> Option<&mut Run> {
        match self {
            BackupScreen::Running { run, .. } => Some(run),
            _ => None,
        }
    }

    pub fn browser(&self) -> Option<&Browser> {
        match self {
            BackupScreen::PickFolder { browser, .. } => Some(browser),
            _ => None,
        }
    }

    pub fn browser_mut(&mut self) -> Option<&mut Browser> {
        match self {
            BackupScreen::PickFolder { browser, .. } => Some(browser),
            _ => None,
        }
    }

    pub fn title(&self) -> String {
        let (n, what) = match self {
            BackupScreen::PickSource { .. } => (1, "source"),
            BackupScreen::PickFolder { .. } => (2, "destination folder"),
            BackupScreen::Planning { .. } | BackupScreen::Refused { .. } => (3, "checking"),
            BackupScreen::Options { .. } => (3, "options"),
            BackupScreen::Password { .. } => (3, "password"),
            BackupScreen::Name { .. } => (3, "file name"),
            BackupScreen::Key { .. } => (3, "key of the encrypted volume"),
            BackupScreen::Plan { .. } => (4, "plan"),
            BackupScreen::Running { .. } => (5, "running"),
            BackupScreen::Done { .. } => (5, "result"),
        };
        format!("Back up - step {n} of 5: {what}")
    }

    pub fn help(&self) -> &'static str {
        match self {
            BackupScreen::PickSource { .. } => " ↑↓ move  Enter choose  Esc back",
            BackupScreen::PickFolder { .. } => {
                " ↑↓ move  Enter open  s save here  Backspace up  r reread  Esc back"
            }
            BackupScreen::Planning { .. } => " Esc back",
            BackupScreen::Refused { .. } => " Enter/Esc pick another folder",
            BackupScreen::Options { job, .. } if job.locked() => {
                " ↑↓ move  Space change  n rename  p passphrase  Enter show the plan  Esc back"
            }
            BackupScreen::Options { .. } => {
                " ↑↓ move  Space change  n rename  Enter show the plan  Esc back"
            }
            BackupScreen::Key { .. } => {
                " type the passphrase  Tab encrypted/decrypted copy  Enter unlock and plan  Esc back"
            }
            BackupScreen::Name { .. } => " type the file name  Enter use it  Esc back",
            BackupScreen::Password { .. } => " type the password  Enter next  Esc no encryption",
            BackupScreen::Plan { .. } => " ↑↓ PgUp PgDn scroll  Enter start the backup  Esc back",
            BackupScreen::Running { run, .. } if run.ask_cancel => {
                " y stop (the partial image is deleted)  n keep going"
            }
            BackupScreen::Running { .. } => " Esc stop",
            BackupScreen::Done { outcome, .. } if outcome.report().is_some() => {
                " v verify the image now  Enter back to the disks"
            }
            BackupScreen::Done { .. } => " Enter back to the disks",
        }
    }

    /// The spinner turns while planning and while a folder is read.
    pub fn animated(&self) -> bool {
        match self {
            BackupScreen::Planning { .. } => true,
            BackupScreen::PickFolder { browser, .. } => browser.waiting(),
            _ => false,
        }
    }
}

/// The plan asked with `id` arrived: the options, or why not; dropped when not awaited.
pub fn on_planned(model: &mut Model, id: RequestId, result: Result<Arc<BackupJob>, String>) {
    let Screen::Backup(s) = &mut model.screen else {
        return;
    };
    let BackupScreen::Planning {
        id: waiting,
        request,
        settings,
    } = &**s
    else {
        return;
    };
    if *waiting != id {
        log::debug!("backup plan {id} dropped: no longer awaited");
        return;
    }
    let request = request.clone();
    let kept = settings.clone();
    **s = match result {
        Ok(job) => {
            let mut settings = kept.unwrap_or_default();
            // FAT32 cannot hold files of 4 GiB or more.
            settings.split_4g |= job.fat();
            BackupScreen::Options {
                job,
                settings,
                cursor: 0,
            }
        }
        Err(reason) => BackupScreen::Refused { request, reason },
    };
}

/// The backup `id` finished: the result, or straight to verifying when that was asked.
pub fn on_done(model: &mut Model, id: RequestId, outcome: engine::job::Outcome) -> Vec<Effect> {
    let Screen::Backup(s) = &mut model.screen else {
        return Vec::new();
    };
    let BackupScreen::Running { job, settings, run } = &**s else {
        return Vec::new();
    };
    if run.id != id {
        return Vec::new();
    }
    let job = Arc::clone(job);
    let outcome = BackupOutcome { outcome };
    if let (Some(r), true) = (outcome.report(), settings.verify) {
        model.status = Some(format!(
            "backup done ({}): {} in {} volume(s), {} unreadable; now verifying",
            outcome.outcome.status.label(),
            human(r.bytes_written),
            r.volumes.len(),
            human(r.bad_sectors.bytes())
        ));
        let (screen, effects) = VerifyScreen::running(model, r.image.clone());
        model.screen = screen;
        return effects;
    }
    **s = BackupScreen::Done { job, outcome };
    Vec::new()
}

/// Asks a worker to check `request` and plan it.
fn planning(
    model: &mut Model,
    request: BackupRequest,
    settings: Option<BackupSettings>,
) -> (Screen, Vec<Effect>) {
    let id = model.request();
    (
        Screen::Backup(Box::new(BackupScreen::Planning {
            id,
            request: request.clone(),
            settings,
        })),
        vec![Effect::PlanBackup {
            id,
            request: Box::new(request),
        }],
    )
}

/// The folder picker again, on the folder of `request`.
fn folder_again(model: &mut Model, request: BackupRequest) -> (Screen, Vec<Effect>) {
    let (mut browser, effect) = Browser::open(model, request.dir);
    // The source's drives cannot hold its image.
    browser.exclude = vec![request.source.disk.clone()];
    (
        Screen::Backup(Box::new(BackupScreen::PickFolder {
            source: request.source,
            browser,
        })),
        vec![effect],
    )
}

/// Keys of the backup screens: source → folder → (planning) → options → plan → running → result.
pub fn key(model: &mut Model, s: BackupScreen, key: Key) -> (Screen, Vec<Effect>) {
    let wrap = |s: BackupScreen| Screen::Backup(Box::new(s));
    match s {
        BackupScreen::PickSource { cursor } => {
            let list = backup_sources(model);
            if let Some(c) = nav(cursor, list.len(), key) {
                return (wrap(BackupScreen::PickSource { cursor: c }), Vec::new());
            }
            match key {
                Key::Esc => (Screen::Main, Vec::new()),
                Key::Enter => match list.get(cursor) {
                    Some((c, source)) if c.refusal.is_none() => {
                        model.status = None;
                        let (mut browser, effect) = Browser::open(model, model.image_root.clone());
                        browser.exclude = vec![source.disk.clone()];
                        (
                            wrap(BackupScreen::PickFolder {
                                source: source.clone(),
                                browser,
                            }),
                            vec![effect],
                        )
                    }
                    Some((c, _)) => {
                        model.status = c.refusal.clone();
                        (wrap(BackupScreen::PickSource { cursor }), Vec::new())
                    }
                    None => (wrap(BackupScreen::PickSource { cursor }), Vec::new()),
                },
                _ => (wrap(BackupScreen::PickSource { cursor }), Vec::new()),
            }
        }
        BackupScreen::PickFolder { source, browser } => {
            const ON_IMAGE: &str =
                "images are never overwritten: s saves a new image in this folder";
            // The names the listed folder already holds: a second backup of the same disk on
            // the same day gets the next free default name instead of a refusal.
            let listed = browser.dir.clone();
            let taken: Vec<String> = match &browser.entries {
                Some(Ok(entries)) => entries
                    .iter()
                    .filter_map(|e| match e {
                        BrowseEntry::Image { path, .. } | BrowseEntry::Dir(path) => {
                            path.file_name().map(|n| n.to_string_lossy().into_owned())
                        }
                        BrowseEntry::Up => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            match image_picker::pick_folder(model, browser, key, ON_IMAGE) {
                Folder::Stay(browser, effects) => {
                    (wrap(BackupScreen::PickFolder { source, browser }), effects)
                }
                Folder::Leave => {
                    let cursor = backup_sources(model)
                        .iter()
                        .position(|(_, s)| *s == source)
                        .unwrap_or(0);
                    (wrap(BackupScreen::PickSource { cursor }), Vec::new())
                }
                Folder::Chosen(dir) => {
                    let name = default_image_name(&source, &crate::jobs::today());
                    let name = if dir == listed {
                        free_image_name(&name, &taken)
                    } else {
                        name
                    };
                    let request = BackupRequest {
                        source,
                        dir,
                        name,
                        key: None,
                        decrypted: false,
                    };
                    planning(model, request, None)
                }
            }
        }
        BackupScreen::Planning {
            id,
            request,
            settings,
        } => match key {
            // The worker's answer is dropped when it arrives (its id is no longer awaited).
            Key::Esc => folder_again(model, request),
            _ => (
                wrap(BackupScreen::Planning {
                    id,
                    request,
                    settings,
                }),
                Vec::new(),
            ),
        },
        BackupScreen::Name {
            job,
            settings,
            mut typed,
            refused,
        } => match key {
            Key::Esc => (
                wrap(BackupScreen::Options {
                    job,
                    settings,
                    cursor: 0,
                }),
                Vec::new(),
            ),
            Key::Backspace => {
                typed.pop();
                (
                    wrap(BackupScreen::Name {
                        job,
                        settings,
                        typed,
                        refused: None,
                    }),
                    Vec::new(),
                )
            }
            Key::Char(c) if !c.is_control() && typed.chars().count() < 120 => {
                typed.push(c);
                (
                    wrap(BackupScreen::Name {
                        job,
                        settings,
                        typed,
                        refused: None,
                    }),
                    Vec::new(),
                )
            }
            Key::Enter => match checked_image_name(&typed) {
                Ok(name) => {
                    let request = BackupRequest {
                        name,
                        ..job.request.clone()
                    };
                    planning(model, request, Some(settings))
                }
                Err(reason) => (
                    wrap(BackupScreen::Name {
                        job,
                        settings,
                        typed,
                        refused: Some(reason),
                    }),
                    Vec::new(),
                ),
            },
            _ => (
                wrap(BackupScreen::Name {
                    job,
                    settings,
                    typed,
                    refused,
                }),
                Vec::new(),
            ),
        },
        BackupScreen::Refused { request, reason } => match key {
            Key::Esc | Key::Enter => folder_again(model, request),
            _ => (wrap(BackupScreen::Refused { request, reason }), Vec::new()),
        },
        BackupScreen::Options {
            job,
            mut settings,
            cursor,
        } => {
            if let Some(c) = nav(cursor, settings.lines().len(), key) {
                return (
                    wrap(BackupScreen::Options {
                        job,
                        settings,
                        cursor: c,
                    }),
                    Vec::new(),
                );
            }
            match key {
                Key::Esc => folder_again(model, job.request.clone()),
                Key::Char('p') if job.locked() => {
                    model.status = None;
                    (
                        wrap(BackupScreen::Key {
                            decrypted: job.request.decrypted,
                            job,
                            settings,
                            typed: engine::unlock::Key::default(),
                        }),
                        Vec::new(),
                    )
                }
                Key::Char('n') => {
                    model.status = None;
                    let typed = job.request.name.clone();
                    (
                        wrap(BackupScreen::Name {
                            job,
                            settings,
                            typed,
                            refused: None,
                        }),
                        Vec::new(),
                    )
                }
                Key::Char(' ') | Key::Char('x') => {
                    model.status = None;
                    match cursor {
                        0 => settings.next_level(),
                        1 if job.fat() => {
                            model.status = Some(format!(
                                "{} is on a FAT file system, which cannot hold files of 4 GiB or \
                                 more: the image must be split",
                                job.request.dir.display()
                            ));
                        }
                        1 => settings.split_4g = !settings.split_4g,
                        2 => settings.verify = !settings.verify,
                        _ if settings.password.is_some() => settings.password = None,
                        _ => {
                            return (
                                wrap(BackupScreen::Password {
                                    job,
                                    settings,
                                    first: PasswordField::default(),
                                    second: None,
                                    refused: None,
                                }),
                                Vec::new(),
                            )
                        }
                    }
                    (
                        wrap(BackupScreen::Options {
                            job,
                            settings,
                            cursor,
                        }),
                        Vec::new(),
                    )
                }
                Key::Enter => {
                    model.status = None;
                    (
                        wrap(BackupScreen::Plan {
                            job,
                            settings,
                            scroll: 0,
                        }),
                        Vec::new(),
                    )
                }
                _ => (
                    wrap(BackupScreen::Options {
                        job,
                        settings,
                        cursor,
                    }),
                    Vec::new(),
                ),
            }
        }
        BackupScreen::Key {
            job,
            settings,
            mut typed,
            mut decrypted,
        } => match key {
            Key::Esc => (
                wrap(BackupScreen::Options {
                    job,
                    settings,
                    cursor: 0,
                }),
                Vec::new(),
            ),
            // Planned again with the key: the engine unlocks the volumes read-only.
            Key::Enter if !typed.is_empty() => {
                let request = BackupRequest {
                    key: Some(typed),
                    decrypted,
                    ..job.request.clone()
                };
                planning(model, request, Some(settings))
            }
            k => {
                match k {
                    Key::Tab => decrypted = !decrypted,
                    Key::Backspace => typed.pop(),
                    Key::Char(c) if !c.is_control() && typed.chars() < 256 => typed.push(c),
                    _ => {}
                }
                (
                    wrap(BackupScreen::Key {
                        job,
                        settings,
                        typed,
                        decrypted,
                    }),
                    Vec::new(),
                )
            }
        },
        BackupScreen::Plan {
            job,
            settings,
            scroll,
        } => match key {
            Key::Esc => (
                wrap(BackupScreen::Options {
                    job,
                    settings,
                    cursor: 0,
                }),
                Vec::new(),
            ),
            // A backup only creates a new file: Enter is the confirmation.
            Key::Enter => {
                log::info!("{} started", job.plan.title);
                let id = model.request();
                (
                    wrap(BackupScreen::Running {
                        job: Arc::clone(&job),
                        settings: settings.clone(),
                        run: Run::new(id),
                    }),
                    vec![Effect::StartBackup { id, job, settings }],
                )
            }
            k => {
                let scroll = plan::scroll(&job.text(), scroll, k).unwrap_or(scroll);
                (
                    wrap(BackupScreen::Plan {
                        job,
                        settings,
                        scroll,
                    }),
                    Vec::new(),
                )
            }
        },
        BackupScreen::Password {
            job,
            mut settings,
            mut first,
            mut second,
            refused,
        } => {
            let typing = second.as_mut().unwrap_or(&mut first);
            if typing.key(key) {
                return (
                    wrap(BackupScreen::Password {
                        job,
                        settings,
                        first,
                        second,
                        refused: None,
                    }),
                    Vec::new(),
                );
            }
            match (key, second) {
                (Key::Esc, _) => (
                    wrap(BackupScreen::Options {
                        job,
                        settings,
                        cursor: 3,
                    }),
                    Vec::new(),
                ),
                (Key::Enter, None) if first.is_empty() => (
                    wrap(BackupScreen::Password {
                        job,
                        settings,
                        first,
                        second: None,
                        refused: Some("Type a password first.".into()),
                    }),
                    Vec::new(),
                ),
                (Key::Enter, None) => (
                    wrap(BackupScreen::Password {
                        job,
                        settings,
                        first,
                        second: Some(PasswordField::default()),
                        refused: None,
                    }),
                    Vec::new(),
                ),
                (Key::Enter, Some(again)) if again == first => {
                    settings.password = Some(first);
                    (
                        wrap(BackupScreen::Options {
                            job,
                            settings,
                            cursor: 3,
                        }),
                        Vec::new(),
                    )
                }
                (Key::Enter, Some(_)) => (
                    wrap(BackupScreen::Password {
                        job,
                        settings,
                        first: PasswordField::default(),
                        second: None,
                        refused: Some(
                            "The two passwords differ. Type the password again, twice.".into(),
                        ),
                    }),
                    Vec::new(),
                ),
                (_, second) => (
                    wrap(BackupScreen::Password {
                        job,
                        settings,
                        first,
                        second,
                        refused,
                    }),
                    Vec::new(),
                ),
            }
        }
        BackupScreen::Running {
            job,
            settings,
            mut run,
        } => {
            let effects = run.key(key);
            (wrap(BackupScreen::Running { job, settings, run }), effects)
        }
        BackupScreen::Done { job, outcome } => match (key, outcome.report()) {
            (Key::Char('v'), Some(r)) => VerifyScreen::running(model, r.image.clone()),
            (Key::Enter | Key::Esc, _) => (Screen::Main, Vec::new()),
            _ => (wrap(BackupScreen::Done { job, outcome }), Vec::new()),
        },
    }
}
