//! The actions menu (over the disk tree) and the yes/no question before a reboot or power-off.
//! [`activate`] starts every screen: it is where the menu entries and the main screen's hotkeys
//! lead.

use crate::model::{Effect, Key, Model, Screen};
use crate::screens::backup::BackupScreen;
use crate::screens::disks;
use crate::screens::files::{self, FilesScreen};
use crate::screens::restore::RestoreScreen;
use crate::screens::transfer::{Action, Wizard};
use crate::screens::verify::VerifyScreen;
use crate::widgets::{centered, nav, popup, selected_style, warn_style};
use ratatui::layout::Rect;
use ratatui::widgets::{Block, Borders, Clear, List, ListItem, ListState};
use ratatui::Frame;

/// A question answered with y or n.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    Reboot,
    PowerOff,
}

/// An entry of the actions menu.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuItem {
    Job(Action),
    Backup,
    Restore,
    BrowseImage,
    MountImage,
    BrowsePartition,
    VerifyImage,
    /// Receive an image a sender streams by multicast (issue 19).
    Receive,
    /// Send an image to several PCs by multicast (issue 19).
    Send,
    Mount,
    Unmount,
    Rescan,
    ToggleVirtual,
    Log,
    Shell,
    Reboot,
    PowerOff,
    Quit,
}

impl MenuItem {
    /// The menu, in order.
    pub fn all() -> Vec<MenuItem> {
        let mut items: Vec<MenuItem> = Action::WIRED.iter().map(|a| MenuItem::Job(*a)).collect();
        items.extend([
            MenuItem::Backup,
            MenuItem::Restore,
            MenuItem::BrowseImage,
            MenuItem::MountImage,
            MenuItem::BrowsePartition,
            MenuItem::VerifyImage,
            MenuItem::Send,
            MenuItem::Receive,
            MenuItem::Mount,
            MenuItem::Unmount,
            MenuItem::Rescan,
            MenuItem::ToggleVirtual,
            MenuItem::Log,
            MenuItem::Shell,
            MenuItem::Reboot,
            MenuItem::PowerOff,
            MenuItem::Quit,
        ]);
        items
    }

    /// The key that picks it on the main screen and in the menu.
    pub fn hotkey(self) -> char {
        match self {
            MenuItem::Job(Action::CloneDisk) => 'c',
            MenuItem::Job(Action::CopyPartition) => 'p',
            MenuItem::Job(Action::RestoreDisk | Action::RestorePartition) => 'e',
            MenuItem::Backup => 'a',
            MenuItem::Restore => 'e',
            MenuItem::BrowseImage => 'f',
            MenuItem::MountImage => 'n',
            MenuItem::BrowsePartition => 'x',
            MenuItem::VerifyImage => 'i',
            MenuItem::Receive => 'g',
            MenuItem::Send => 'd',
            MenuItem::Mount => 'm',
            MenuItem::Unmount => 'u',
            MenuItem::Rescan => 'r',
            MenuItem::ToggleVirtual => 'v',
            MenuItem::Log => 'l',
            MenuItem::Shell => 's',
            MenuItem::Reboot => 'b',
            MenuItem::PowerOff => 'o',
            MenuItem::Quit => 'q',
        }
    }

    pub fn title(self, show_virtual: bool) -> &'static str {
        match self {
            MenuItem::Job(a) => a.title(),
            MenuItem::Backup => "Back up a disk or partition to an image",
            MenuItem::Restore => "Restore an image to a disk or partition",
            MenuItem::BrowseImage => "Browse files in an image (extract)",
            MenuItem::MountImage => "Mount image read-only",
            MenuItem::BrowsePartition => "Browse files of the selected partition",
            MenuItem::VerifyImage => "Verify an image",
            MenuItem::Receive => "Receive an image (from a sender on the network)",
            MenuItem::Send => "Send an image to several PCs (multicast)",
            MenuItem::Mount => "Mount the selected partition (to hold images)",
            MenuItem::Unmount => "Unmount the selected partition",
            MenuItem::Rescan => "Rescan disks",
            MenuItem::ToggleVirtual if show_virtual => "Hide loop and RAM devices",
            MenuItem::ToggleVirtual => "Show loop and RAM devices",
            MenuItem::Log => "Log",
            MenuItem::Shell => "Shell (exit it to come back)",
            MenuItem::Reboot => "Reboot",
            MenuItem::PowerOff => "Power off",
            MenuItem::Quit => "Quit Lifeboat",
        }
    }
}

/// The help line of the menu.
pub const HELP: &str = " ↑↓ move  Enter choose  letter: shortcut  Esc back";
/// The help line of the question.
pub const ASK_HELP: &str = " y yes  n no";

/// Keys of the menu.
pub fn key(model: &mut Model, cursor: usize, key: Key) -> (Screen, Vec<Effect>) {
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

/// Keys of the yes/no question.
pub fn ask_key(ask: Ask, key: Key) -> (Screen, Vec<Effect>) {
    match key {
        Key::Char('y') | Key::Char('Y') => {
            let effect = match ask {
                Ask::Reboot => Effect::Reboot,
                Ask::PowerOff => Effect::PowerOff,
            };
            (Screen::Main, vec![effect])
        }
        Key::Char('n') | Key::Char('N') | Key::Esc => (Screen::Main, Vec::new()),
        _ => (Screen::Ask(ask), Vec::new()),
    }
}

/// Runs a menu entry from the main screen.
pub fn activate(model: &mut Model, item: MenuItem) -> (Screen, Vec<Effect>) {
    model.status = None;
    match item {
        MenuItem::Job(action) => (Wizard::start(model, action), Vec::new()),
        MenuItem::Backup => (BackupScreen::start(model), Vec::new()),
        MenuItem::Restore => RestoreScreen::start(model),
        MenuItem::BrowseImage => FilesScreen::start(model),
        MenuItem::MountImage => crate::screens::mount_image::MountImageScreen::start(model),
        MenuItem::BrowsePartition => files::browse_partition(model),
        MenuItem::VerifyImage => VerifyScreen::start(model),
        MenuItem::Receive => crate::screens::receive::ReceiveScreen::start(model),
        MenuItem::Send => crate::screens::send::SendScreen::start(model),
        MenuItem::Mount => (Screen::Main, disks::mount(model)),
        MenuItem::Unmount => (Screen::Main, disks::unmount(model)),
        MenuItem::Rescan => (Screen::Main, model.rescan()),
        MenuItem::ToggleVirtual => {
            model.show_virtual = !model.show_virtual;
            (Screen::Main, model.rescan())
        }
        MenuItem::Log => (Screen::Log { scroll: 0 }, Vec::new()),
        MenuItem::Shell => {
            let id = model.request();
            (Screen::Main, vec![Effect::Shell { id }])
        }
        MenuItem::Reboot => (Screen::Ask(Ask::Reboot), Vec::new()),
        MenuItem::PowerOff => (Screen::Ask(Ask::PowerOff), Vec::new()),
        MenuItem::Quit => (Screen::Main, vec![Effect::Quit]),
    }
}

/// Draws the menu over `area`.
pub fn draw(model: &Model, cursor: usize, frame: &mut Frame, area: Rect) {
    let items = MenuItem::all();
    let r = centered(area, 54, items.len() as u16 + 2);
    frame.render_widget(Clear, r);
    let list: Vec<ListItem> = items
        .iter()
        .map(|i| ListItem::new(format!(" {}  {}", i.hotkey(), i.title(model.show_virtual))))
        .collect();
    let mut state = ListState::default().with_selected(Some(cursor.min(items.len() - 1)));
    frame.render_stateful_widget(
        List::new(list)
            .block(Block::default().borders(Borders::ALL).title(" Actions "))
            .highlight_style(selected_style()),
        r,
        &mut state,
    );
}

/// Draws the question over `area`.
pub fn draw_ask(ask: Ask, frame: &mut Frame, area: Rect) {
    let text = match ask {
        Ask::Reboot => "Reboot the computer now? (y/n)",
        Ask::PowerOff => "Power off the computer now? (y/n)",
    };
    popup(frame, area, " Confirm ", text, warn_style());
}
