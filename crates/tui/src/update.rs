//! `update`: the only place the [`Model`] changes. Pure: it reads the message and the model and
//! returns effects as data for the runtime to run.

use crate::confirm;
use crate::model::{
    backup_sources, BackupOutcome, BackupRequest, BackupScreen, BrowseEntry, Browser, VerifyScreen,
};
use crate::model::{
    image_endpoint, restore_choices, ChosenImage, ExtractRequest, FileSource, FileView,
    FilesScreen, Listing, RestoreChoice, RestoreScreen,
};
use crate::model::{
    part_rows, sources, targets, Action, Ask, Effect, Endpoint, Finished, JobOption, Key, MenuItem,
    Model, Msg, Outcome, PlanRequest, Row, Screen, SmartHealth, Step, Wizard,
};
use engine::units::human;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where Lifeboat mounts partitions; it unmounts only what is mounted below it.
pub const MOUNT_BASE: &str = "/run/lifeboat/mnt";

/// Rows moved by PageUp/PageDown.
const PAGE: usize = 10;

/// Applies `msg` to `model` and returns what the runtime must do.
pub fn update(model: &mut Model, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Tick => {
            model.tick = model.tick.wrapping_add(1);
            Vec::new()
        }
        Msg::BlockListChanged => rescan(model),
        Msg::Scanned(result) => on_scanned(model, result),
        Msg::Smart { path, health } => {
            model.smart.insert(path, health);
            Vec::new()
        }
        Msg::Planned(result) => {
            if let Screen::Wizard(w) = &mut model.screen {
                if matches!(w.step, Step::Planning) {
                    w.step = match result {
                        Ok(plan) => Step::Plan { plan, scroll: 0 },
                        Err(reason) => Step::Refused { reason },
                    };
                }
            }
            Vec::new()
        }
        Msg::Progress(p) => {
            match &mut model.screen {
                Screen::Wizard(w) => {
                    if let Step::Running { progress, .. } = &mut w.step {
                        *progress = Some(p);
                    }
                }
                Screen::Verify(v) => {
                    if let VerifyScreen::Running { progress, .. } = &mut **v {
                        *progress = Some(p);
                    }
                }
                Screen::Backup(b) => {
                    if let BackupScreen::Running { progress, .. } = &mut **b {
                        *progress = Some(p);
                    }
                }
                Screen::Files(f) => {
                    if let FilesScreen::Running { progress, .. } = &mut **f {
                        *progress = Some(p);
                    }
                }
                _ => {}
            }
            Vec::new()
        }
        Msg::Listed { dir, result } => {
            let browser = match &mut model.screen {
                Screen::Verify(v) => match &mut **v {
                    VerifyScreen::Pick(b) => Some(b),
                    _ => None,
                },
                Screen::Backup(s) => match &mut **s {
                    BackupScreen::PickFolder { browser, .. } => Some(browser),
                    _ => None,
                },
                Screen::Restore(r) => match &mut **r {
                    RestoreScreen::PickImage(b) => Some(b),
                    _ => None,
                },
                Screen::Files(f) => match &mut **f {
                    FilesScreen::PickImage(b) => Some(b),
                    FilesScreen::PickDest { browser, .. } => Some(browser),
                    _ => None,
                },
                _ => None,
            };
            if let Some(b) = browser {
                if b.dir == dir {
                    let len = result.as_ref().map(|e| e.len()).unwrap_or(0);
                    b.cursor = b.cursor.min(len.saturating_sub(1));
                    b.entries = Some(result);
                }
            }
            Vec::new()
        }
        Msg::BackupPlanned(result) => {
            if let Screen::Backup(s) = &mut model.screen {
                if let BackupScreen::Planning { request, settings } = &**s {
                    let request = request.clone();
                    let kept = *settings;
                    **s = match result {
                        Ok(job) if job.request == request => {
                            let mut settings = kept.unwrap_or_default();
                            // FAT32 cannot hold files of 4 GiB or more.
                            settings.split_4g |= job.fat;
                            BackupScreen::Options {
                                job,
                                settings,
                                cursor: 0,
                            }
                        }
                        Ok(_) => BackupScreen::Planning {
                            request,
                            settings: kept,
                        },
                        Err(reason) => BackupScreen::Refused { request, reason },
                    };
                }
            }
            Vec::new()
        }
        Msg::BackupDone(result) => on_backup_done(model, result),
        Msg::Verified(result) => {
            if let Screen::Verify(v) = &mut model.screen {
                if let VerifyScreen::Running { image, .. } = &**v {
                    **v = VerifyScreen::Done {
                        image: image.clone(),
                        result,
                        scroll: 0,
                    };
                }
            }
            Vec::new()
        }
        Msg::JobDone(finished) => on_job_done(model, finished),
        Msg::FilesListed {
            source,
            dir,
            listing,
            fs,
            result,
        } => {
            if let Screen::Files(f) = &mut model.screen {
                if let FilesScreen::Browse(v) = &mut **f {
                    if v.source == source && v.dir == dir && v.listing == listing {
                        let len = result.as_ref().map(|e| e.len()).unwrap_or(0);
                        v.cursor = v.cursor.min(len.saturating_sub(1));
                        v.items = Some(result);
                        if fs.is_some() {
                            v.fs = fs;
                        }
                    }
                }
            }
            Vec::new()
        }
        Msg::ExtractChecked { request, existing } => on_extract_checked(model, request, existing),
        Msg::Extracted(result) => {
            if let Screen::Files(f) = &mut model.screen {
                let screen = std::mem::replace(&mut **f, FilesScreen::PickImage(empty_browser()));
                **f = match screen {
                    FilesScreen::Running { view, request, .. } => FilesScreen::Done {
                        view,
                        request,
                        result,
                        scroll: 0,
                    },
                    other => other,
                };
            }
            Vec::new()
        }
        Msg::SystemDone(result) => {
            model.status = Some(match result {
                Ok(text) => text,
                Err(e) => format!("error: {e}"),
            });
            rescan(model)
        }
        Msg::Key(key) => on_key(model, key),
    }
}

fn rescan(model: &mut Model) -> Vec<Effect> {
    model.scanning = true;
    vec![Effect::Rescan {
        include_virtual: model.show_virtual,
    }]
}

/// A key for a row that survives a rescan: the disk path and partition number.
fn row_key(model: &Model, row: Row) -> Option<(PathBuf, Option<u32>)> {
    match row {
        Row::Disk(d) => model.disks.get(d).map(|e| (e.device.path.clone(), None)),
        Row::Part(d, p) => model.disks.get(d).and_then(|e| {
            part_rows(e)
                .get(p)
                .map(|r| (e.device.path.clone(), Some(r.number)))
        }),
    }
}

fn on_scanned(
    model: &mut Model,
    result: Result<Vec<crate::model::DiskEntry>, String>,
) -> Vec<Effect> {
    model.scanning = false;
    let disks = match result {
        Ok(d) => d,
        Err(e) => {
            model.scan_error = Some(e);
            return Vec::new();
        }
    };
    model.scan_error = None;
    let selected = model.selected().and_then(|r| row_key(model, r));
    let before: Vec<(PathBuf, String)> = model
        .disks
        .iter()
        .map(|e| (e.device.path.clone(), e.device.identity()))
        .collect();
    model.disks = disks;
    let rows = model.rows();
    model.cursor = selected
        .and_then(|key| {
            rows.iter()
                .position(|r| row_key(model, *r).as_ref() == Some(&key))
        })
        .unwrap_or_else(|| model.cursor.min(rows.len().saturating_sub(1)));
    let mut effects = Vec::new();
    // SMART for disks that are new (or another disk behind the same name).
    model
        .smart
        .retain(|path, _| model.disks.iter().any(|e| &e.device.path == path));
    for e in &model.disks {
        let key = (e.device.path.clone(), e.device.identity());
        if !before.contains(&key) {
            model.smart.remove(&e.device.path);
            if model.smart_tool && !e.device.is_virtual() && e.device.size > 0 {
                effects.push(Effect::Smart(e.device.path.clone()));
            }
        }
    }
    effects
}

fn on_job_done(model: &mut Model, finished: Finished) -> Vec<Effect> {
    let Screen::Wizard(w) = &mut model.screen else {
        return Vec::new();
    };
    let Step::Running { plan, progress, .. } = &w.step else {
        return Vec::new();
    };
    let plan = Arc::clone(plan);
    let phase = progress.as_ref().map(|p| p.phase.as_str());
    let target_state = target_state(w.action, &finished, phase);
    match &finished.result {
        Ok(r) => log::info!(
            "{} of {} to {} finished: {} in {:.1} s",
            w.action.title(),
            plan.source.path.display(),
            plan.target.path.display(),
            human(r.bytes_copied),
            r.seconds
        ),
        Err(f) => log::error!(
            "{} of {} to {} failed: {}",
            w.action.title(),
            plan.source.path.display(),
            plan.target.path.display(),
            f.message
        ),
    }
    w.step = Step::Done {
        plan,
        outcome: Outcome {
            finished,
            target_state,
        },
    };
    rescan(model)
}

/// The state a failed job left its target in, in words, from the engine's statement or the
/// phase the job was in.
pub fn target_state(action: Action, finished: &Finished, phase: Option<&str>) -> Option<String> {
    let failure = finished.result.as_ref().err()?;
    if let Some(state) = &failure.state {
        return Some(state.clone());
    }
    let phase = phase.unwrap_or("");
    let text = match action {
        Action::CloneDisk => {
            if phase.starts_with("copying") {
                "the target has no partition table yet: it holds partial data and does not look \
                 like a complete disk; run the clone again"
            } else if phase.starts_with("writing the partition table") {
                "all data was copied but the partition table may be partly written: run the \
                 clone again before using the disk"
            } else if phase.starts_with("verifying") {
                "everything was written but it does not read back as the source: do not trust \
                 this copy"
            } else {
                "the target's partition table may have been invalidated: treat the disk as blank"
            }
        }
        Action::RestoreDisk => {
            if phase.starts_with("writing the partition table") {
                "all data was written but the partition table may be partly written: restore \
                 again before using the disk"
            } else if phase.starts_with("verif") {
                "everything was written but it does not read back as the image: do not trust \
                 this disk"
            } else if phase.is_empty() || phase.starts_with("invalidating") {
                "the target's partition table may have been invalidated: treat the disk as blank"
            } else {
                "partition table not written: the disk has no valid table and holds partial \
                 data; restore again"
            }
        }
        Action::RestorePartition => {
            if phase.starts_with("verif") {
                "everything was written but it does not read back as the image: do not trust \
                 this partition"
            } else {
                "the target partition holds no valid file system (its start is written last): \
                 restore again"
            }
        }
        Action::CopyPartition => {
            if phase.starts_with("verifying") {
                "everything was written but it does not read back as the source: do not trust \
                 this copy"
            } else {
                "the target partition holds no valid file system (its start is written last): \
                 run the copy again"
            }
        }
    };
    Some(text.to_string())
}

/// The new cursor for a navigation key in a list of `len` rows.
fn nav(cursor: usize, len: usize, key: Key) -> Option<usize> {
    let last = len.saturating_sub(1);
    let c = match key {
        Key::Up | Key::Char('k') | Key::BackTab => cursor.saturating_sub(1),
        Key::Down | Key::Char('j') | Key::Tab => cursor.saturating_add(1).min(last),
        Key::PageUp => cursor.saturating_sub(PAGE),
        Key::PageDown => cursor.saturating_add(PAGE).min(last),
        Key::Home => 0,
        Key::End => last,
        _ => return None,
    };
    Some(c.min(last))
}

fn on_key(model: &mut Model, key: Key) -> Vec<Effect> {
    let screen = std::mem::replace(&mut model.screen, Screen::Main);
    let (screen, effects) = match screen {
        Screen::Main => main_key(model, key),
        Screen::Menu { cursor } => menu_key(model, cursor, key),
        Screen::Log { scroll } => {
            let len = model.log.len();
            match key {
                Key::Esc | Key::Enter | Key::Char('q') => (Screen::Main, Vec::new()),
                // `scroll` counts lines up from the newest.
                Key::Up | Key::Char('k') => (
                    Screen::Log {
                        scroll: (scroll + 1).min(len.saturating_sub(1)),
                    },
                    Vec::new(),
                ),
                Key::PageUp => (
                    Screen::Log {
                        scroll: (scroll + PAGE).min(len.saturating_sub(1)),
                    },
                    Vec::new(),
                ),
                Key::Down | Key::Char('j') => (
                    Screen::Log {
                        scroll: scroll.saturating_sub(1),
                    },
                    Vec::new(),
                ),
                Key::PageDown => (
                    Screen::Log {
                        scroll: scroll.saturating_sub(PAGE),
                    },
                    Vec::new(),
                ),
                Key::End => (Screen::Log { scroll: 0 }, Vec::new()),
                _ => (Screen::Log { scroll }, Vec::new()),
            }
        }
        Screen::Ask(ask) => match key {
            Key::Char('y') | Key::Char('Y') => {
                let effect = match ask {
                    Ask::Reboot => Effect::Reboot,
                    Ask::PowerOff => Effect::PowerOff,
                };
                (Screen::Main, vec![effect])
            }
            Key::Char('n') | Key::Char('N') | Key::Esc => (Screen::Main, Vec::new()),
            _ => (Screen::Ask(ask), Vec::new()),
        },
        Screen::Wizard(w) => wizard_key(model, w, key),
        Screen::Verify(v) => verify_key(model, *v, key),
        Screen::Backup(b) => backup_key(model, *b, key),
        Screen::Restore(r) => restore_key(model, *r, key),
        Screen::Files(f) => files_key(model, *f, key),
    };
    model.screen = screen;
    effects
}

fn main_key(model: &mut Model, key: Key) -> (Screen, Vec<Effect>) {
    let rows = model.rows().len();
    if let Some(c) = nav(model.cursor, rows, key) {
        model.cursor = c;
        return (Screen::Main, Vec::new());
    }
    match key {
        Key::Enter => (Screen::Menu { cursor: 0 }, Vec::new()),
        Key::Esc => {
            model.status = None;
            (Screen::Main, Vec::new())
        }
        Key::Char(c) => match MenuItem::all().into_iter().find(|i| i.hotkey() == c) {
            Some(item) => activate(model, item),
            None => (Screen::Main, Vec::new()),
        },
        _ => (Screen::Main, Vec::new()),
    }
}

fn menu_key(model: &mut Model, cursor: usize, key: Key) -> (Screen, Vec<Effect>) {
    let items = MenuItem::all();
    if let Some(c) = nav(cursor, items.len(), key) {
        return (Screen::Menu { cursor: c }, Vec::new());
    }
    match key {
        Key::Esc => (Screen::Main, Vec::new()),
        Key::Enter => match items.get(cursor) {
            Some(item) => activate(model, *item),
            None => (Screen::Main, Vec::new()),
        },
        Key::Char(c) => match items.iter().find(|i| i.hotkey() == c) {
            Some(item) => activate(model, *item),
            None => (Screen::Menu { cursor }, Vec::new()),
        },
        _ => (Screen::Menu { cursor }, Vec::new()),
    }
}

/// Runs a menu entry from the main screen.
fn activate(model: &mut Model, item: MenuItem) -> (Screen, Vec<Effect>) {
    model.status = None;
    match item {
        MenuItem::Job(action) => {
            let cursor = preselect(model, action);
            let wizard = Wizard {
                action,
                step: Step::PickSource { cursor },
                source: None,
                target: None,
                options: Default::default(),
                image: None,
            };
            (Screen::Wizard(Box::new(wizard)), Vec::new())
        }
        MenuItem::Backup => {
            let want = model.selected().and_then(|r| row_key(model, r));
            let cursor = want
                .and_then(|(disk, number)| {
                    backup_sources(model)
                        .iter()
                        .position(|(_, s)| s.disk == disk && s.part == number)
                })
                .unwrap_or(0);
            (
                Screen::Backup(Box::new(BackupScreen::PickSource { cursor })),
                Vec::new(),
            )
        }
        MenuItem::Restore => {
            let (browser, effect) = open_folder(model.image_root.clone());
            (
                Screen::Restore(Box::new(RestoreScreen::PickImage(browser))),
                vec![effect],
            )
        }
        MenuItem::BrowseImage => {
            let (browser, effect) = open_folder(model.image_root.clone());
            (
                Screen::Files(Box::new(FilesScreen::PickImage(browser))),
                vec![effect],
            )
        }
        MenuItem::BrowsePartition => browse_partition(model),
        MenuItem::VerifyImage => {
            let (browser, effect) = open_folder(model.image_root.clone());
            (
                Screen::Verify(Box::new(VerifyScreen::Pick(browser))),
                vec![effect],
            )
        }
        MenuItem::Mount => (Screen::Main, mount(model)),
        MenuItem::Unmount => (Screen::Main, unmount(model)),
        MenuItem::Rescan => (Screen::Main, rescan(model)),
        MenuItem::ToggleVirtual => {
            model.show_virtual = !model.show_virtual;
            (Screen::Main, rescan(model))
        }
        MenuItem::Log => (Screen::Log { scroll: 0 }, Vec::new()),
        MenuItem::Shell => (Screen::Main, vec![Effect::Shell]),
        MenuItem::Reboot => (Screen::Ask(Ask::Reboot), Vec::new()),
        MenuItem::PowerOff => (Screen::Ask(Ask::PowerOff), Vec::new()),
        MenuItem::Quit => (Screen::Main, vec![Effect::Quit]),
    }
}

/// The source list's cursor: on the disk or partition selected on the main screen.
fn preselect(model: &Model, action: Action) -> usize {
    let list = sources(model, action);
    let want: Option<(PathBuf, Option<u32>)> = model.selected().and_then(|r| row_key(model, r));
    let Some((disk, number)) = want else { return 0 };
    list.iter()
        .position(|c| {
            c.endpoint.disk == disk && (!action.picks_partitions() || c.endpoint.number == number)
        })
        .unwrap_or(0)
}

/// The selected partition row (or a disk that holds a bare file system), with its disk.
fn selected_part(model: &Model) -> Option<(usize, crate::model::PartRow)> {
    match model.selected()? {
        Row::Part(d, p) => {
            let entry = model.disks.get(d)?;
            part_rows(entry).get(p).cloned().map(|r| (d, r))
        }
        Row::Disk(d) => crate::model::whole_fs_row(model.disks.get(d)?).map(|r| (d, r)),
    }
}

fn mount(model: &mut Model) -> Vec<Effect> {
    let Some((_, part)) = selected_part(model) else {
        model.status = Some("select a partition to mount".to_string());
        return Vec::new();
    };
    let refusal = if let Some(reason) = part.in_use() {
        Some(format!("cannot mount: {reason}"))
    } else if part.node.is_none() {
        Some(format!(
            "cannot mount {}: the kernel has no device node for it (rescan, or re-read the table)",
            part.name
        ))
    } else {
        match &part.fs {
            None => Some(format!("cannot mount {}: no known file system", part.name)),
            Some(f) if !crate::system::mountable(f.kind) => Some(format!(
                "cannot mount {}: {} is not a mountable file system",
                part.name,
                f.kind.name()
            )),
            Some(_) => None,
        }
    };
    if let Some(r) = refusal {
        model.status = Some(r);
        return Vec::new();
    }
    match (part.node, part.fs) {
        (Some(node), Some(fs)) => {
            model.status = Some(format!("mounting {}…", part.name));
            vec![Effect::Mount {
                node,
                name: part.name,
                fs: fs.kind,
            }]
        }
        _ => Vec::new(),
    }
}

fn unmount(model: &mut Model) -> Vec<Effect> {
    let Some((_, part)) = selected_part(model) else {
        model.status = Some("select a partition to unmount".to_string());
        return Vec::new();
    };
    let ours = part
        .mount_points
        .iter()
        .find(|m| m.starts_with(Path::new(MOUNT_BASE)));
    match (ours, part.mount_points.first()) {
        (Some(m), _) => {
            model.status = Some(format!("unmounting {}…", m.display()));
            vec![Effect::Unmount {
                mount_point: m.clone(),
            }]
        }
        (None, Some(m)) => {
            model.status = Some(format!(
                "{} is mounted at {} by the system: Lifeboat only unmounts what it mounted under \
                 {MOUNT_BASE}",
                part.name,
                m.display()
            ));
            Vec::new()
        }
        (None, None) => {
            model.status = Some(format!("{} is not mounted", part.name));
            Vec::new()
        }
    }
}

fn wizard_key(model: &mut Model, mut w: Box<Wizard>, key: Key) -> (Screen, Vec<Effect>) {
    let mut effects = Vec::new();
    let step = std::mem::replace(&mut w.step, Step::Planning);
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
                                (
                                    Screen::Restore(Box::new(RestoreScreen::PickWhat {
                                        image,
                                        cursor,
                                    })),
                                    Vec::new(),
                                )
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
                            effects.push(Effect::Plan(Box::new(PlanRequest {
                                action,
                                source: s.clone(),
                                target: t.clone(),
                                options: w.options,
                                include_virtual: model.show_virtual,
                            })));
                            Step::Planning
                        }
                        _ => Step::Options { cursor },
                    },
                    _ => Step::Options { cursor },
                }
            }
        }
        Step::Planning => match key {
            // The worker's answer is dropped when it arrives.
            Key::Esc => Step::Options { cursor: 0 },
            _ => Step::Planning,
        },
        Step::Plan { plan, scroll } => {
            // Rows the plan takes when wrapped at the narrowest screen (78 columns inside the
            // frame), so the end can always be scrolled to.
            let lines: usize = plan
                .text
                .lines()
                .map(|l| l.chars().count().div_ceil(78).max(1))
                .sum();
            match key {
                Key::Esc => Step::Options { cursor: 0 },
                Key::Enter => Step::Confirm {
                    plan,
                    typed: String::new(),
                    wrong: false,
                },
                k => {
                    let s = nav(usize::from(scroll), lines, k).unwrap_or(usize::from(scroll));
                    Step::Plan {
                        plan,
                        scroll: u16::try_from(s).unwrap_or(u16::MAX),
                    }
                }
            }
        }
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
                        plan.identity
                    );
                    effects.push(Effect::Start(confirmed));
                    Step::Running {
                        plan,
                        progress: None,
                        ask_cancel: false,
                        cancelling: false,
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
        Step::Running {
            plan,
            progress,
            ask_cancel,
            cancelling,
        } => {
            let (ask_cancel, cancelling) = cancel_key(ask_cancel, cancelling, key, &mut effects);
            Step::Running {
                plan,
                progress,
                ask_cancel,
                cancelling,
            }
        }
        Step::Done { plan, outcome } => match key {
            Key::Enter | Key::Esc => return (Screen::Main, effects),
            _ => Step::Done { plan, outcome },
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

/// The explanation of how source and target sizes compare, for the options screen.
pub fn size_explanation(action: Action, source: &Endpoint, target: &Endpoint) -> String {
    use std::cmp::Ordering;
    match (action, target.len.cmp(&source.len)) {
        (_, Ordering::Equal) => "The target is exactly as large as the source.".to_string(),
        (Action::CloneDisk, Ordering::Greater) => format!(
            "The target is {} larger than the source. Without \"grow\" the extra space stays \
             unallocated at the end of the disk; with it the last partition (and its ext2/3/4 or \
             NTFS file system) grows to fill the disk.",
            human(target.len - source.len)
        ),
        (Action::CloneDisk, Ordering::Less) => format!(
            "The target is {} smaller than the source. The partitions end at {} and still \
             fit; nothing is shrunk.",
            human(source.len - target.len),
            human(source.needs)
        ),
        (Action::CopyPartition, Ordering::Greater) => format!(
            "The target partition is {} larger than the source: the file system keeps its size \
             (grow it later with its own tool).",
            human(target.len - source.len)
        ),
        (Action::CopyPartition | Action::RestorePartition, Ordering::Less) => format!(
            "The target partition is {} smaller than the source.",
            human(source.len - target.len)
        ),
        (Action::RestoreDisk, Ordering::Greater) => format!(
            "The target is {} larger than the disk the image was made from. Without \"grow\" \
             the extra space stays unallocated at the end of the disk; with it the last \
             partition (and its ext2/3/4 or NTFS file system) grows to fill the disk.",
            human(target.len - source.len)
        ),
        (Action::RestoreDisk, Ordering::Less) => format!(
            "The target is {} smaller than the disk the image was made from. The partitions end \
             at {} and still fit; nothing is shrunk.",
            human(source.len - target.len),
            human(source.needs)
        ),
        (Action::RestorePartition, Ordering::Greater) => format!(
            "The target partition is {} larger than the imaged one: the file system keeps its \
             size (grow it later with its own tool).",
            human(target.len - source.len)
        ),
    }
}

/// The text of a SMART state for the disk tree.
pub fn smart_text(h: Option<&SmartHealth>) -> &'static str {
    match h {
        Some(SmartHealth::Passed) => "PASSED",
        Some(SmartHealth::Failed) => "FAILED",
        Some(SmartHealth::Unavailable(_)) => "n/a",
        None => "…",
    }
}

/// A browser on `dir`, and the effect that reads it.
fn open_folder(dir: PathBuf) -> (Browser, Effect) {
    let effect = Effect::ListImages(dir.clone());
    (
        Browser {
            dir,
            entries: None,
            cursor: 0,
            refused: None,
        },
        effect,
    )
}

/// What a key does in the image browser.
enum BrowseOutcome {
    /// Still browsing, maybe with a folder to read.
    Stay(Browser, Option<Effect>),
    /// Left the browser (Esc at any folder).
    Leave,
    /// An image that can be used was chosen.
    Chosen(PathBuf),
}

/// Keys of the image browser: ↑↓ move, Enter opens a folder or chooses an image (refused with the
/// reason for one that cannot be used), Backspace goes up (never above `top`), Esc leaves.
fn browse_key(top: &Path, mut b: Browser, key: Key) -> BrowseOutcome {
    let len = match &b.entries {
        Some(Ok(e)) => e.len(),
        _ => 0,
    };
    if let Some(c) = nav(b.cursor, len, key) {
        b.cursor = c;
        b.refused = None;
        return BrowseOutcome::Stay(b, None);
    }
    let up = |b: Browser| match b.dir.parent() {
        Some(parent) if b.dir != top && b.dir.starts_with(top) => {
            let (nb, effect) = open_folder(parent.to_path_buf());
            BrowseOutcome::Stay(nb, Some(effect))
        }
        _ => BrowseOutcome::Stay(b, None),
    };
    match key {
        Key::Esc => BrowseOutcome::Leave,
        Key::Backspace | Key::Left => up(b),
        Key::Char('r') => {
            let (nb, effect) = open_folder(b.dir);
            BrowseOutcome::Stay(nb, Some(effect))
        }
        Key::Enter | Key::Right => {
            let entry = match &b.entries {
                Some(Ok(e)) => e.get(b.cursor).cloned(),
                _ => None,
            };
            match entry {
                Some(BrowseEntry::Up) => up(b),
                Some(BrowseEntry::Dir(d)) => {
                    let (nb, effect) = open_folder(d);
                    BrowseOutcome::Stay(nb, Some(effect))
                }
                Some(BrowseEntry::Image { path, summary }) => match summary {
                    Ok(_) if key == Key::Enter => BrowseOutcome::Chosen(path),
                    Ok(_) => BrowseOutcome::Stay(b, None),
                    Err(e) => {
                        b.refused = Some(format!("this image cannot be used: {e}"));
                        BrowseOutcome::Stay(b, None)
                    }
                },
                None => BrowseOutcome::Stay(b, None),
            }
        }
        _ => BrowseOutcome::Stay(b, None),
    }
}

fn verify_key(model: &mut Model, v: VerifyScreen, key: Key) -> (Screen, Vec<Effect>) {
    let wrap = |v: VerifyScreen| Screen::Verify(Box::new(v));
    match v {
        VerifyScreen::Pick(b) => match browse_key(&model.image_root, b, key) {
            BrowseOutcome::Stay(b, effect) => {
                (wrap(VerifyScreen::Pick(b)), effect.into_iter().collect())
            }
            BrowseOutcome::Leave => (Screen::Main, Vec::new()),
            BrowseOutcome::Chosen(image) => {
                log::info!("verify of {} started", image.display());
                (
                    wrap(VerifyScreen::Running {
                        image: image.clone(),
                        progress: None,
                        ask_cancel: false,
                        cancelling: false,
                    }),
                    vec![Effect::VerifyImage(image)],
                )
            }
        },
        VerifyScreen::Running {
            image,
            progress,
            ask_cancel,
            cancelling,
        } => {
            let mut effects = Vec::new();
            let (ask_cancel, cancelling) = cancel_key(ask_cancel, cancelling, key, &mut effects);
            (
                wrap(VerifyScreen::Running {
                    image,
                    progress,
                    ask_cancel,
                    cancelling,
                }),
                effects,
            )
        }
        VerifyScreen::Done {
            image,
            result,
            scroll,
        } => {
            let len = match &result {
                Ok(r) => r.bad.len() + r.structure.len(),
                Err(_) => 0,
            };
            if let Some(s) = nav(scroll, len, key) {
                return (
                    wrap(VerifyScreen::Done {
                        image,
                        result,
                        scroll: s,
                    }),
                    Vec::new(),
                );
            }
            match key {
                Key::Enter | Key::Esc => (Screen::Main, Vec::new()),
                _ => (
                    wrap(VerifyScreen::Done {
                        image,
                        result,
                        scroll,
                    }),
                    Vec::new(),
                ),
            }
        }
    }
}

fn on_backup_done(
    model: &mut Model,
    result: Result<engine::backup::BackupReport, crate::model::JobFailure>,
) -> Vec<Effect> {
    let Screen::Backup(s) = &mut model.screen else {
        return Vec::new();
    };
    let BackupScreen::Running { job, settings, .. } = &**s else {
        return Vec::new();
    };
    let job = Arc::clone(job);
    let verify = settings.verify;
    match &result {
        Ok(r) if verify => {
            model.status = Some(format!(
                "backup done: {} in {} volume(s), {} unreadable; now verifying",
                human(r.bytes_written),
                r.volumes.len(),
                human(r.bad_sectors.bytes())
            ));
            let image = r.image.clone();
            log::info!("verify of {} started after the backup", image.display());
            model.screen = Screen::Verify(Box::new(VerifyScreen::Running {
                image: image.clone(),
                progress: None,
                ask_cancel: false,
                cancelling: false,
            }));
            return vec![Effect::VerifyImage(image)];
        }
        Ok(_) => {}
        Err(f) => log::error!(
            "backup of {} to {} failed: {}",
            job.plan.source,
            job.image().display(),
            f.message
        ),
    }
    **s = BackupScreen::Done {
        job,
        outcome: BackupOutcome { result },
    };
    Vec::new()
}

/// Keys of the backup screens: source → folder → (planning) → options → plan → running → result.
fn backup_key(model: &mut Model, s: BackupScreen, key: Key) -> (Screen, Vec<Effect>) {
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
                        let (browser, effect) = open_folder(model.image_root.clone());
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
        BackupScreen::PickFolder {
            source,
            mut browser,
        } => {
            let back = |model: &Model, source: &crate::model::BackupSource| {
                let cursor = backup_sources(model)
                    .iter()
                    .position(|(_, s)| s == source)
                    .unwrap_or(0);
                wrap(BackupScreen::PickSource { cursor })
            };
            if key == Key::Char('s') {
                if browser.dir == model.image_root || !browser.dir.starts_with(&model.image_root) {
                    browser.refused = Some(format!(
                        "choose a folder on a mounted drive, below {}: this one is in memory",
                        model.image_root.display()
                    ));
                    return (
                        wrap(BackupScreen::PickFolder { source, browser }),
                        Vec::new(),
                    );
                }
                let name = crate::model::default_image_name(&source, &crate::jobs::today());
                let request = BackupRequest {
                    source,
                    dir: browser.dir,
                    name,
                    include_virtual: model.show_virtual,
                };
                return (
                    wrap(BackupScreen::Planning {
                        request: request.clone(),
                        settings: None,
                    }),
                    vec![Effect::PlanBackup(Box::new(request))],
                );
            }
            // Images are listed (to see what the folder holds) but not chosen here.
            let on_image = matches!(
                &browser.entries,
                Some(Ok(e)) if matches!(e.get(browser.cursor), Some(BrowseEntry::Image { .. }))
            );
            if on_image && matches!(key, Key::Enter | Key::Right) {
                browser.refused = Some(
                    "images are never overwritten: s saves a new image in this folder".to_string(),
                );
                return (
                    wrap(BackupScreen::PickFolder { source, browser }),
                    Vec::new(),
                );
            }
            match browse_key(&model.image_root, browser, key) {
                BrowseOutcome::Stay(browser, effect) => (
                    wrap(BackupScreen::PickFolder { source, browser }),
                    effect.into_iter().collect(),
                ),
                BrowseOutcome::Leave => (back(model, &source), Vec::new()),
                BrowseOutcome::Chosen(_) => (back(model, &source), Vec::new()),
            }
        }
        BackupScreen::Planning { request, settings } => match key {
            // The worker's answer is dropped when it arrives.
            Key::Esc => folder_again(request),
            _ => (
                wrap(BackupScreen::Planning { request, settings }),
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
            Key::Enter => match crate::model::checked_image_name(&typed) {
                Ok(name) => {
                    let request = BackupRequest {
                        name,
                        ..job.request.clone()
                    };
                    (
                        wrap(BackupScreen::Planning {
                            request: request.clone(),
                            settings: Some(settings),
                        }),
                        vec![Effect::PlanBackup(Box::new(request))],
                    )
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
            Key::Esc | Key::Enter => folder_again(request),
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
                Key::Esc => folder_again(job.request.clone()),
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
                        1 if job.fat => {
                            model.status = Some(format!(
                                "{} is on a FAT file system, which cannot hold files of 4 GiB or \
                                 more: the image must be split",
                                job.request.dir.display()
                            ));
                        }
                        1 => settings.split_4g = !settings.split_4g,
                        _ => settings.verify = !settings.verify,
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
                log::info!(
                    "backup of {} to {} started",
                    job.plan.source,
                    job.image().display()
                );
                (
                    wrap(BackupScreen::Running {
                        job: Arc::clone(&job),
                        settings,
                        progress: None,
                        ask_cancel: false,
                        cancelling: false,
                    }),
                    vec![Effect::StartBackup { job, settings }],
                )
            }
            k => {
                let lines: usize = job
                    .plan
                    .to_string()
                    .lines()
                    .map(|l| l.chars().count().div_ceil(78).max(1))
                    .sum();
                let s = nav(usize::from(scroll), lines, k).unwrap_or(usize::from(scroll));
                (
                    wrap(BackupScreen::Plan {
                        job,
                        settings,
                        scroll: u16::try_from(s).unwrap_or(u16::MAX),
                    }),
                    Vec::new(),
                )
            }
        },
        BackupScreen::Running {
            job,
            settings,
            progress,
            ask_cancel,
            cancelling,
        } => {
            let mut effects = Vec::new();
            let (ask_cancel, cancelling) = cancel_key(ask_cancel, cancelling, key, &mut effects);
            (
                wrap(BackupScreen::Running {
                    job,
                    settings,
                    progress,
                    ask_cancel,
                    cancelling,
                }),
                effects,
            )
        }
        BackupScreen::Done { job, outcome } => match (key, &outcome.result) {
            (Key::Char('v'), Ok(r)) => {
                let image = r.image.clone();
                log::info!("verify of {} started", image.display());
                (
                    Screen::Verify(Box::new(VerifyScreen::Running {
                        image: image.clone(),
                        progress: None,
                        ask_cancel: false,
                        cancelling: false,
                    })),
                    vec![Effect::VerifyImage(image)],
                )
            }
            (Key::Enter | Key::Esc, _) => (Screen::Main, Vec::new()),
            _ => (wrap(BackupScreen::Done { job, outcome }), Vec::new()),
        },
    }
}

/// The folder browser again, on the folder of `request`.
fn folder_again(request: BackupRequest) -> (Screen, Vec<Effect>) {
    let (browser, effect) = open_folder(request.dir);
    (
        Screen::Backup(Box::new(BackupScreen::PickFolder {
            source: request.source,
            browser,
        })),
        vec![effect],
    )
}

/// A browser with nothing in it (a placeholder while a screen is rebuilt).
fn empty_browser() -> Browser {
    Browser {
        dir: PathBuf::new(),
        entries: None,
        cursor: 0,
        refused: None,
    }
}

/// The keys of a running job's screen: Esc asks, y cancels, n (or Esc) keeps going. Returns the
/// new `(ask_cancel, cancelling)`.
fn cancel_key(
    ask_cancel: bool,
    cancelling: bool,
    key: Key,
    effects: &mut Vec<Effect>,
) -> (bool, bool) {
    match (ask_cancel, key) {
        (false, Key::Esc) if !cancelling => (true, cancelling),
        (true, Key::Char('y') | Key::Char('Y')) => {
            effects.push(Effect::CancelJob);
            (false, true)
        }
        (true, Key::Char('n') | Key::Char('N') | Key::Esc) => (false, cancelling),
        (ask, _) => (ask, cancelling),
    }
}

/// The image the browser's cursor is on, with its summary, when it can be used.
fn chosen_image(b: &Browser, path: &Path) -> Option<ChosenImage> {
    let Some(Ok(entries)) = &b.entries else {
        return None;
    };
    entries.iter().find_map(|e| match e {
        BrowseEntry::Image {
            path: p,
            summary: Ok(s),
        } if p == path => Some(ChosenImage {
            path: p.clone(),
            summary: s.clone(),
        }),
        _ => None,
    })
}

/// The image browser on the folder that holds `image`.
fn image_folder(model: &Model, image: &Path) -> (Browser, Effect) {
    let dir = image
        .parent()
        .filter(|d| d.starts_with(&model.image_root))
        .map(Path::to_path_buf)
        .unwrap_or_else(|| model.image_root.clone());
    open_folder(dir)
}

/// Keys of the first restore steps: the image, then what to restore from it.
fn restore_key(model: &mut Model, r: RestoreScreen, key: Key) -> (Screen, Vec<Effect>) {
    let wrap = |r: RestoreScreen| Screen::Restore(Box::new(r));
    match r {
        RestoreScreen::PickImage(b) => {
            let before = b.clone();
            match browse_key(&model.image_root, b, key) {
                BrowseOutcome::Stay(b, effect) => (
                    wrap(RestoreScreen::PickImage(b)),
                    effect.into_iter().collect(),
                ),
                BrowseOutcome::Leave => (Screen::Main, Vec::new()),
                BrowseOutcome::Chosen(path) => match chosen_image(&before, &path) {
                    Some(image) => {
                        let cursor = restore_choices(&image.summary)
                            .iter()
                            .position(|(_, refusal)| refusal.is_none())
                            .unwrap_or(0);
                        (wrap(RestoreScreen::PickWhat { image, cursor }), Vec::new())
                    }
                    None => (wrap(RestoreScreen::PickImage(before)), Vec::new()),
                },
            }
        }
        RestoreScreen::PickWhat { image, cursor } => {
            let choices = restore_choices(&image.summary);
            if let Some(c) = nav(cursor, choices.len(), key) {
                model.status = None;
                return (
                    wrap(RestoreScreen::PickWhat { image, cursor: c }),
                    Vec::new(),
                );
            }
            match key {
                Key::Esc | Key::Backspace => {
                    model.status = None;
                    let (browser, effect) = image_folder(model, &image.path);
                    (wrap(RestoreScreen::PickImage(browser)), vec![effect])
                }
                Key::Enter => match choices.get(cursor) {
                    Some((_, Some(refusal))) => {
                        model.status = Some(refusal.clone());
                        (wrap(RestoreScreen::PickWhat { image, cursor }), Vec::new())
                    }
                    Some((choice, None)) => {
                        model.status = None;
                        let action = match choice {
                            RestoreChoice::Disk => Action::RestoreDisk,
                            RestoreChoice::Partition(_) => Action::RestorePartition,
                        };
                        let source = image_endpoint(&image, choice);
                        let first_ok = targets(model, action, &source)
                            .iter()
                            .position(|c| c.refusal.is_none())
                            .unwrap_or(0);
                        log::info!("restore of {} chosen", source.identity);
                        let w = Wizard {
                            action,
                            step: Step::PickTarget {
                                cursor: first_ok,
                                refused: None,
                            },
                            source: Some(source),
                            target: None,
                            options: Default::default(),
                            image: Some(image),
                        };
                        (Screen::Wizard(Box::new(w)), Vec::new())
                    }
                    None => (wrap(RestoreScreen::PickWhat { image, cursor }), Vec::new()),
                },
                _ => (wrap(RestoreScreen::PickWhat { image, cursor }), Vec::new()),
            }
        }
    }
}

/// Opens the file browser on `source` at its root.
fn open_files(source: FileSource) -> (Screen, Vec<Effect>) {
    let view = FileView::new(source);
    let effect = list_effect(&view);
    (
        Screen::Files(Box::new(FilesScreen::Browse(view))),
        vec![effect],
    )
}

/// The effect that (re)reads what `view` shows.
fn list_effect(view: &FileView) -> Effect {
    Effect::ListFiles {
        source: view.source.clone(),
        dir: view.dir.clone(),
        listing: view.listing.clone(),
    }
}

/// The file browser on the partition selected on the main screen, read-only.
fn browse_partition(model: &mut Model) -> (Screen, Vec<Effect>) {
    let Some((d, part)) = selected_part(model) else {
        model.status = Some("select a partition to browse its files".to_string());
        return (Screen::Main, Vec::new());
    };
    if part.fs.is_none() {
        model.status = Some(format!(
            "{} holds no file system Lifeboat recognises",
            part.name
        ));
        return (Screen::Main, Vec::new());
    }
    let Some(entry) = model.disks.get(d) else {
        return (Screen::Main, Vec::new());
    };
    let (node, offset) = match &part.node {
        Some(n) => (n.clone(), 0),
        None => (entry.device.path.clone(), part.start),
    };
    if !part.mount_points.is_empty() {
        model.status = Some(format!(
            "{} is mounted: what is read may be a moment old",
            part.name
        ));
    }
    log::info!("browsing the files of {} (read-only)", part.name);
    open_files(FileSource::Live {
        node,
        offset,
        len: part.size,
        name: part.name,
    })
}

fn on_extract_checked(
    model: &mut Model,
    request: ExtractRequest,
    existing: Vec<PathBuf>,
) -> Vec<Effect> {
    let Screen::Files(f) = &mut model.screen else {
        return Vec::new();
    };
    let screen = std::mem::replace(&mut **f, FilesScreen::PickImage(empty_browser()));
    let (screen, effects) = match screen {
        FilesScreen::Checking { view, request: r } if r == request => {
            if existing.is_empty() {
                start_extract(view, request)
            } else {
                (
                    FilesScreen::AskOverwrite {
                        view,
                        request,
                        existing,
                    },
                    Vec::new(),
                )
            }
        }
        other => (other, Vec::new()),
    };
    **f = screen;
    effects
}

fn start_extract(view: FileView, request: ExtractRequest) -> (FilesScreen, Vec<Effect>) {
    log::info!(
        "extract of {} objects to {} started{}",
        request.paths.len(),
        request.dest.display(),
        if request.overwrite {
            " (overwriting)"
        } else {
            ""
        }
    );
    (
        FilesScreen::Running {
            view,
            request: request.clone(),
            progress: None,
            ask_cancel: false,
            cancelling: false,
        },
        vec![Effect::Extract(request)],
    )
}

/// Keys of the file browser: image → partition → folders (search, select) → destination →
/// (overwrite?) → running → result.
fn files_key(model: &mut Model, f: FilesScreen, key: Key) -> (Screen, Vec<Effect>) {
    let wrap = |f: FilesScreen| Screen::Files(Box::new(f));
    match f {
        FilesScreen::PickImage(b) => {
            let before = b.clone();
            match browse_key(&model.image_root, b, key) {
                BrowseOutcome::Stay(b, effect) => (
                    wrap(FilesScreen::PickImage(b)),
                    effect.into_iter().collect(),
                ),
                BrowseOutcome::Leave => (Screen::Main, Vec::new()),
                BrowseOutcome::Chosen(path) => match chosen_image(&before, &path) {
                    Some(image) => {
                        let parts: Vec<u32> = image
                            .summary
                            .parts
                            .iter()
                            .filter(|p| p.restorable)
                            .map(|p| p.number)
                            .collect();
                        match (image.summary.whole_disk, parts.as_slice()) {
                            (false, _) => open_files(FileSource::Image {
                                path: image.path,
                                partition: parts.first().copied().unwrap_or(0),
                            }),
                            (true, [one]) => open_files(FileSource::Image {
                                path: image.path,
                                partition: *one,
                            }),
                            _ => {
                                let cursor = image
                                    .summary
                                    .parts
                                    .iter()
                                    .position(|p| {
                                        p.restorable && p.fs != "swap" && !p.fs.is_empty()
                                    })
                                    .unwrap_or(0);
                                (wrap(FilesScreen::PickPart { image, cursor }), Vec::new())
                            }
                        }
                    }
                    None => (wrap(FilesScreen::PickImage(before)), Vec::new()),
                },
            }
        }
        FilesScreen::PickPart { image, cursor } => {
            let parts = &image.summary.parts;
            if let Some(c) = nav(cursor, parts.len(), key) {
                model.status = None;
                return (wrap(FilesScreen::PickPart { image, cursor: c }), Vec::new());
            }
            match key {
                Key::Esc | Key::Backspace => {
                    model.status = None;
                    let (browser, effect) = image_folder(model, &image.path);
                    (wrap(FilesScreen::PickImage(browser)), vec![effect])
                }
                Key::Enter => match parts.get(cursor) {
                    Some(p) if p.restorable => {
                        model.status = None;
                        open_files(FileSource::Image {
                            path: image.path.clone(),
                            partition: p.number,
                        })
                    }
                    Some(p) => {
                        model.status = Some(format!(
                            "partition {} was not imaged: it has no files to browse",
                            p.number
                        ));
                        (wrap(FilesScreen::PickPart { image, cursor }), Vec::new())
                    }
                    None => (wrap(FilesScreen::PickPart { image, cursor }), Vec::new()),
                },
                _ => (wrap(FilesScreen::PickPart { image, cursor }), Vec::new()),
            }
        }
        FilesScreen::Browse(view) => {
            let (screen, effects) = browse_files_key(model, view, key);
            (screen.map_or(Screen::Main, wrap), effects)
        }
        FilesScreen::PickDest { view, mut browser } => {
            if key == Key::Char('s') {
                if browser.dir == model.image_root || !browser.dir.starts_with(&model.image_root) {
                    browser.refused = Some(format!(
                        "choose a folder on a mounted drive, below {}: this one is in memory",
                        model.image_root.display()
                    ));
                    return (wrap(FilesScreen::PickDest { view, browser }), Vec::new());
                }
                let request = ExtractRequest {
                    source: view.source.clone(),
                    paths: view.chosen(),
                    dest: browser.dir,
                    overwrite: false,
                };
                return (
                    wrap(FilesScreen::Checking {
                        view,
                        request: request.clone(),
                    }),
                    vec![Effect::CheckExtract(request)],
                );
            }
            let on_image = matches!(
                &browser.entries,
                Some(Ok(e)) if matches!(e.get(browser.cursor), Some(BrowseEntry::Image { .. }))
            );
            if on_image && matches!(key, Key::Enter | Key::Right) {
                browser.refused = Some("that is an image: s extracts into this folder".to_string());
                return (wrap(FilesScreen::PickDest { view, browser }), Vec::new());
            }
            match browse_key(&model.image_root, browser, key) {
                BrowseOutcome::Stay(browser, effect) => (
                    wrap(FilesScreen::PickDest { view, browser }),
                    effect.into_iter().collect(),
                ),
                BrowseOutcome::Leave | BrowseOutcome::Chosen(_) => {
                    (wrap(FilesScreen::Browse(view)), Vec::new())
                }
            }
        }
        FilesScreen::Checking { view, request } => match key {
            // The worker's answer is dropped when it arrives.
            Key::Esc => {
                let (browser, effect) = open_folder(request.dest);
                (wrap(FilesScreen::PickDest { view, browser }), vec![effect])
            }
            _ => (wrap(FilesScreen::Checking { view, request }), Vec::new()),
        },
        FilesScreen::AskOverwrite {
            view,
            mut request,
            existing,
        } => match key {
            Key::Char('y') | Key::Char('Y') => {
                request.overwrite = true;
                let (s, e) = start_extract(view, request);
                (wrap(s), e)
            }
            Key::Char('n') | Key::Char('N') => {
                let (s, e) = start_extract(view, request);
                (wrap(s), e)
            }
            Key::Esc => {
                let (browser, effect) = open_folder(request.dest);
                (wrap(FilesScreen::PickDest { view, browser }), vec![effect])
            }
            _ => (
                wrap(FilesScreen::AskOverwrite {
                    view,
                    request,
                    existing,
                }),
                Vec::new(),
            ),
        },
        FilesScreen::Running {
            view,
            request,
            progress,
            ask_cancel,
            cancelling,
        } => {
            let mut effects = Vec::new();
            let (ask_cancel, cancelling) = cancel_key(ask_cancel, cancelling, key, &mut effects);
            (
                wrap(FilesScreen::Running {
                    view,
                    request,
                    progress,
                    ask_cancel,
                    cancelling,
                }),
                effects,
            )
        }
        FilesScreen::Done {
            mut view,
            request,
            result,
            scroll,
        } => {
            let len = match &result {
                Ok(r) => r.failed.len() + r.notes.len(),
                Err(_) => 0,
            };
            if let Some(s) = nav(scroll, len, key) {
                return (
                    wrap(FilesScreen::Done {
                        view,
                        request,
                        result,
                        scroll: s,
                    }),
                    Vec::new(),
                );
            }
            match key {
                Key::Enter | Key::Esc => {
                    if result.as_ref().is_ok_and(|r| r.failed.is_empty()) {
                        view.selected.clear();
                    }
                    (wrap(FilesScreen::Browse(view)), Vec::new())
                }
                _ => (
                    wrap(FilesScreen::Done {
                        view,
                        request,
                        result,
                        scroll,
                    }),
                    Vec::new(),
                ),
            }
        }
    }
}

/// Keys of the folder list. `None` leaves the browser.
fn browse_files_key(
    model: &mut Model,
    mut v: FileView,
    key: Key,
) -> (Option<FilesScreen>, Vec<Effect>) {
    let stay = |v: FileView| (Some(FilesScreen::Browse(v)), Vec::new());
    let reread = |mut v: FileView| {
        v.items = None;
        v.cursor = 0;
        let effect = list_effect(&v);
        (Some(FilesScreen::Browse(v)), vec![effect])
    };
    if let Some(mut typed) = v.typing.take() {
        match key {
            Key::Esc => {}
            Key::Backspace => {
                typed.pop();
                v.typing = Some(typed);
            }
            Key::Char(c) if !c.is_control() && typed.chars().count() < 64 => {
                typed.push(c);
                v.typing = Some(typed);
            }
            Key::Enter if !typed.trim().is_empty() => {
                v.listing = Listing::Search(typed.trim().to_string());
                return reread(v);
            }
            _ => v.typing = Some(typed),
        }
        return stay(v);
    }
    let len = match &v.items {
        Some(Ok(items)) => items.len(),
        _ => 0,
    };
    if let Some(c) = nav(v.cursor, len, key) {
        v.cursor = c;
        return stay(v);
    }
    let current = match &v.items {
        Some(Ok(items)) => items.get(v.cursor).cloned(),
        _ => None,
    };
    match key {
        Key::Esc => {
            model.status = None;
            (None, Vec::new())
        }
        Key::Char('/') => {
            v.typing = Some(String::new());
            stay(v)
        }
        Key::Backspace | Key::Left => {
            if matches!(v.listing, Listing::Search(_)) {
                v.listing = Listing::Dir;
                return reread(v);
            }
            if v.dir == "/" {
                return stay(v);
            }
            let parent = match v.dir.trim_end_matches('/').rsplit_once('/') {
                Some(("", _)) | None => "/".to_string(),
                Some((p, _)) => p.to_string(),
            };
            v.dir = parent;
            reread(v)
        }
        Key::Enter | Key::Right => match current {
            Some(item) if item.is_dir() => {
                v.dir = item.path;
                v.listing = Listing::Dir;
                reread(v)
            }
            Some(_) => {
                model.status = Some("Space selects files and folders, x extracts them".to_string());
                stay(v)
            }
            None => stay(v),
        },
        Key::Char(' ') => {
            if let Some(item) = current {
                if !v.selected.remove(&item.path) {
                    v.selected.insert(item.path);
                }
                v.cursor = (v.cursor + 1).min(len.saturating_sub(1));
            }
            stay(v)
        }
        Key::Char('r') => reread(v),
        Key::Char('x') => {
            if v.chosen().is_empty() {
                model.status = Some("nothing to extract: select files with Space".to_string());
                return stay(v);
            }
            model.status = None;
            let (browser, effect) = open_folder(model.image_root.clone());
            (
                Some(FilesScreen::PickDest { view: v, browser }),
                vec![effect],
            )
        }
        _ => stay(v),
    }
}
