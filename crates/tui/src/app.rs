//! The thin app: [`update`] routes a message to the screen it concerns and [`view`] draws the
//! frame (title bar, status line, help line) around the current screen's drawing. Everything a
//! screen knows is in its module under [`crate::screens`].
//!
//! `update` is the only place the [`Model`] changes. It is pure: it reads the message and the
//! model and returns [`Effect`]s as data for the runtime to run. `view` only reads.
//!
//! Worker answers are routed by the id of their request (see [`crate::model`]): each screen
//! compares the id with the one it waits for and drops the answer when they differ.

use crate::model::{Effect, Model, Msg, Screen};
use crate::screens::{
    backup, disks, extract, files, log, menu, receive, restore, send, transfer, verify,
};
use crate::widgets::{bad_style, help_style, spinner, title_style, warn_style};
use disk::text::printable;
use ratatui::layout::{Constraint, Layout};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

/// The smallest screen the UI is laid out for.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 25;

/// Applies `msg` to `model` and returns what the runtime must do.
pub fn update(model: &mut Model, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Tick => {
            model.tick = model.tick.wrapping_add(1);
            Vec::new()
        }
        Msg::BlockListChanged => model.rescan(),
        Msg::Network(text) => {
            model.network = Some(text);
            Vec::new()
        }
        Msg::Scanned { id, result } => disks::on_scanned(model, id, result),
        Msg::Smart { id, path, health } => {
            disks::on_smart(model, id, path, health);
            Vec::new()
        }
        Msg::Planned { id, result } => {
            transfer::on_planned(model, id, result);
            Vec::new()
        }
        Msg::Progress { id, progress } => {
            model.screen.on_progress(id, progress);
            Vec::new()
        }
        Msg::JobDone { id, outcome } => transfer::on_job_done(model, id, outcome),
        Msg::Listed { id, result } => {
            if let Some(b) = model.screen.browser_mut() {
                b.on_listed(id, result);
            }
            Vec::new()
        }
        Msg::Unlocked { id, result } => {
            let relist = model.request();
            let Some(b) = model.screen.browser_mut() else {
                return Vec::new();
            };
            if b.on_unlocked(id, result, relist) {
                vec![Effect::ListImages {
                    id: relist,
                    dir: b.dir.clone(),
                }]
            } else {
                Vec::new()
            }
        }
        Msg::StoreOpened { id, result } => crate::widgets::network::on_opened(model, id, result),
        Msg::LocationsLoaded { id, saved, errors } => {
            crate::widgets::network::on_loaded(model, id, saved, errors);
            Vec::new()
        }
        Msg::LocationSaved { id, result } => {
            crate::widgets::network::on_saved(model, id, result);
            Vec::new()
        }
        Msg::BackupPlanned { id, result } => {
            backup::on_planned(model, id, result);
            Vec::new()
        }
        Msg::BackupDone { id, outcome } => backup::on_done(model, id, outcome),
        Msg::Verified { id, result } => {
            verify::on_verified(model, id, result);
            Vec::new()
        }
        Msg::FilesListed { id, fs, result } => {
            files::on_listed(model, id, fs, result);
            Vec::new()
        }
        Msg::LvsListed { id, result } => {
            files::on_lvs(model, id, result);
            Vec::new()
        }
        Msg::ReceivePlanned { id, result } => {
            receive::on_planned(model, id, result);
            Vec::new()
        }
        Msg::ReceiveStream { id, plan } => {
            receive::on_stream(model, id, plan);
            Vec::new()
        }
        Msg::Received { id, received } => {
            receive::on_received(model, id, received);
            Vec::new()
        }
        Msg::SendEvent { id, event } => {
            send::on_event(model, id, event);
            Vec::new()
        }
        Msg::Sent { id, result } => {
            send::on_sent(model, id, result);
            Vec::new()
        }
        Msg::ExtractChecked { id, existing } => extract::on_checked(model, id, existing),
        Msg::Extracted { id, result } => {
            extract::on_extracted(model, id, result);
            Vec::new()
        }
        // What happened to the machine is news whatever the screen.
        Msg::SystemDone { id, result } => {
            let mut effects = picker_mounted(model, id, result.is_ok());
            model.status = Some(match result {
                Ok(text) => text,
                Err(e) => format!("error: {e} (the Log screen, l, has the details)"),
            });
            effects.extend(model.rescan());
            effects
        }
        Msg::Key(key) => {
            let screen = std::mem::replace(&mut model.screen, Screen::Main);
            let (screen, effects) = match screen {
                Screen::Main => disks::key(model, key),
                Screen::Menu { cursor } => menu::key(model, cursor, key),
                Screen::Log { scroll } => log::key(model, scroll, key),
                Screen::Ask(ask) => menu::ask_key(ask, key),
                Screen::Wizard(w) => transfer::key(model, w, key),
                Screen::Verify(v) => verify::key(model, *v, key),
                Screen::Backup(b) => backup::key(model, *b, key),
                Screen::Restore(r) => restore::key(model, *r, key),
                Screen::Files(f) => files::key(model, *f, key),
                Screen::MountImage(m) => crate::screens::mount_image::key(model, *m, key),
                Screen::Receive(r) => receive::key(model, *r, key),
                Screen::Send(s) => send::key(model, *s, key),
            };
            model.screen = screen;
            let mut effects = effects;
            // Back on the disk list: the drives the pickers mounted are released.
            if matches!(model.screen, Screen::Main) {
                effects.extend(crate::widgets::drives::release(model));
                effects.extend(crate::widgets::network::release(model));
            }
            effects
        }
    }
}

/// A drive a picker asked to mount answered (`id`): when mounted, it is remembered (to unmount
/// later) and the picker still on the drives opens its folder.
fn picker_mounted(model: &mut Model, id: crate::model::RequestId, ok: bool) -> Vec<Effect> {
    let Some((waiting, dir)) = model.auto_mounting.clone() else {
        return Vec::new();
    };
    if waiting != id {
        return Vec::new();
    }
    model.auto_mounting = None;
    if !ok {
        return Vec::new();
    }
    model.auto_mounted.push(dir.clone());
    let top = model.image_root.clone();
    let request = model.request();
    match model.screen.browser_mut() {
        Some(b) if b.dir == top => {
            let exclude = b.exclude.clone();
            *b = crate::widgets::image_picker::Browser::listing(dir.clone(), request, exclude);
            vec![Effect::ListImages { id: request, dir }]
        }
        _ => Vec::new(),
    }
}

/// True when the screen shows the spinner, so that a tick changes what is drawn. Everything
/// else changes only on keys and worker messages, and the runtime redraws only then.
pub fn animated(model: &Model) -> bool {
    model.scanning.is_some()
        || match &model.screen {
            Screen::Wizard(w) => w.animated(),
            Screen::Backup(b) => b.animated(),
            Screen::Files(f) => f.animated(),
            Screen::Receive(r) => r.animated(),
            Screen::Send(s) => s.animated(),
            screen => screen.browser().is_some_and(|b| b.waiting()),
        }
}

/// The title bar's text after "Lifeboat <version> - ".
fn screen_title(model: &Model) -> String {
    match &model.screen {
        Screen::Main | Screen::Menu { .. } | Screen::Ask(_) => "disks".to_string(),
        Screen::Log { .. } => "log".to_string(),
        Screen::Verify(v) => v.title().to_string(),
        Screen::Backup(b) => b.title(),
        Screen::Wizard(w) => w.title(),
        Screen::Restore(r) => r.title().to_string(),
        Screen::Files(f) => f.title(),
        Screen::MountImage(m) => m.title().to_string(),
        Screen::Receive(r) => r.title().to_string(),
        Screen::Send(s) => s.title().to_string(),
    }
}

/// The keys of the current screen, on one line.
pub fn help_text(model: &Model) -> String {
    // The picker's "Network location" form has keys of its own.
    if model.screen.browser().is_some_and(|b| b.network.is_some()) {
        return crate::widgets::network::HELP.to_string();
    }
    let text = match &model.screen {
        Screen::Main => disks::HELP,
        Screen::Menu { .. } => menu::HELP,
        Screen::Ask(_) => menu::ASK_HELP,
        Screen::Log { .. } => log::HELP,
        Screen::Wizard(w) => w.help(),
        Screen::Verify(v) => v.help(),
        Screen::Backup(b) => b.help(),
        Screen::Restore(r) => r.help(),
        Screen::Files(f) => f.help(),
        Screen::MountImage(m) => m.help(),
        Screen::Receive(r) => r.help(),
        Screen::Send(s) => s.help(),
    };
    text.to_string()
}

/// Draws the whole screen.
pub fn view(model: &Model, frame: &mut Frame) {
    let area = frame.area();
    if area.width < 40 || area.height < 10 {
        frame.render_widget(
            Paragraph::new("Lifeboat needs a larger terminal (80x25)").wrap(Wrap { trim: true }),
            area,
        );
        return;
    }
    let [title, body, status, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let mut head = format!(
        " Lifeboat {} - {}",
        env!("CARGO_PKG_VERSION"),
        crate::widgets::shown(model, &screen_title(model))
    );
    let facts: Vec<&str> = [model.network.as_deref(), model.boot_mode.map(|m| m.text())]
        .into_iter()
        .flatten()
        .collect();
    if let (false, Screen::Main | Screen::Menu { .. } | Screen::Ask(_)) =
        (facts.is_empty(), &model.screen)
    {
        let right = format!("{} ", printable(&facts.join(" · ")));
        let pad =
            usize::from(title.width).saturating_sub(head.chars().count() + right.chars().count());
        if pad > 0 {
            head.push_str(&" ".repeat(pad));
            head.push_str(&right);
        }
    }
    frame.render_widget(Paragraph::new(head).style(title_style()), title);
    frame.render_widget(Paragraph::new(help_text(model)).style(help_style()), help);
    // Status messages quote names from disks and images.
    let status_line = match (&model.status, &model.scan_error) {
        (Some(s), _) => Line::styled(
            format!(" {}", crate::widgets::shown(model, &printable(s))),
            warn_style(),
        ),
        (None, Some(e)) => Line::styled(
            format!(" cannot list disks: {} (r tries again)", printable(e)),
            bad_style(),
        ),
        (None, None) if model.scanning.is_some() => {
            Line::raw(format!(" scanning disks {}", spinner(model.tick)))
        }
        _ => Line::raw(""),
    };
    frame.render_widget(Paragraph::new(status_line), status);

    match &model.screen {
        Screen::Main => disks::draw(model, frame, body),
        Screen::Menu { cursor } => {
            disks::draw(model, frame, body);
            menu::draw(model, *cursor, frame, body);
        }
        Screen::Ask(ask) => {
            disks::draw(model, frame, body);
            menu::draw_ask(*ask, frame, body);
        }
        Screen::Log { scroll } => log::draw(model, *scroll, frame, body),
        Screen::Wizard(w) => transfer::draw(model, w, frame, body),
        Screen::Verify(v) => verify::draw(model, v, frame, body),
        Screen::Backup(b) => backup::draw(model, b, frame, body),
        Screen::Restore(r) => restore::draw(model, r, frame, body),
        Screen::Files(f) => files::draw(model, f, frame, body),
        Screen::MountImage(m) => crate::screens::mount_image::draw(model, m, frame, body),
        Screen::Receive(r) => receive::draw(model, r, frame, body),
        Screen::Send(s) => send::draw(model, s, frame, body),
    }
}
