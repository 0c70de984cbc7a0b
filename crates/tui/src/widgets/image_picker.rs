//! The image picker: a folder below [`Model::image_root`] listed by a worker (folders and `.lbi`
//! images with their summaries), browsed with the keys, drawn with the selected image's summary.
//! Restore, Verify and Browse files pick an image with it ([`pick_image`]); Backup and Extract pick
//! a folder with it ([`pick_folder`]). Each listing is a request: its reply carries the id stored
//! in [`Browser::request`], and a listing of a folder the user already left is dropped.

use super::drives::{self, Drive};
use super::{bad_style, error_lines, file_name, fit, nav, selected_style, shown, shown_path};
use super::{spinner, warn_style};
use crate::model::{Effect, Key, Model, RequestId, Screen};
use disk::text::printable;
use engine::units::human;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph, Wrap};
use ratatui::Frame;
use std::path::{Path, PathBuf};

/// What an image file says about itself, for the image browser (`lifeboat info` in short).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// Model and serial of the disk that was read (`unknown` when empty).
    pub model: String,
    pub serial: String,
    /// Creation time, as the manifest has it (RFC 3339 UTC).
    pub created: String,
    /// Size of the source disk or partition.
    pub source_size: u64,
    /// The partition table kind, when the source had one.
    pub table: Option<String>,
    /// One line per partition: number, size, file system, label.
    pub partitions: Vec<String>,
    /// Bytes of data the image holds (uncompressed).
    pub stored: u64,
    /// Its volumes (`x.lbi`, `x.lbi.002`, ...).
    pub volumes: usize,
    /// Bytes of the image's own files, all volumes together (what it takes on the drive).
    pub file_size: u64,
    /// Bad-sector ranges recorded when the source was read.
    pub bad_ranges: usize,
    /// Bytes a target disk needs for the partitions (and the table) of a disk image.
    pub needs: u64,
    /// The image holds a whole disk (its table areas too), not only one partition of it: it can
    /// be restored onto a disk.
    pub whole_disk: bool,
    /// The partitions recorded in the image.
    pub parts: Vec<ImagePart>,
}

impl ImageSummary {
    /// The numbers of the partitions stored so they can be read back (browsed, mounted).
    pub fn restorable_parts(&self) -> Vec<u32> {
        self.parts
            .iter()
            .filter(|p| p.restorable)
            .map(|p| p.number)
            .collect()
    }

    /// The source disk as `disk::text::identity` names it (a model or serial the disk did not
    /// report is left out, not written `unknown`), its size in binary units first.
    pub fn source_identity(&self) -> String {
        // The summary says `unknown` for what the source disk did not report.
        let known = |v: &str| (v != "unknown").then(|| v.to_string());
        let (model, serial) = (known(&self.model), known(&self.serial));
        crate::inventory::binary_size(
            disk::text::identity(
                None,
                model.as_deref(),
                serial.as_deref(),
                Some(self.source_size),
            ),
            self.source_size,
        )
    }
}

/// The summary error of an encrypted image whose password is not known yet: Enter asks for it.
pub const ENCRYPTED: &str = "the image is encrypted: press Enter and type its password";

/// The password being typed for an encrypted image of the picker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unlock {
    pub path: PathBuf,
    pub field: super::password::PasswordField,
    /// The check running on a worker (the key derivation takes about a second).
    pub request: Option<RequestId>,
    /// Why the last password did not open the image.
    pub error: Option<String>,
}

/// One entry of the image browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrowseEntry {
    /// The folder above (not shown at the top folder).
    Up,
    Dir(PathBuf),
    /// A `.lbi` file: its summary, or why it cannot be used (incomplete, damaged, newer format).
    Image {
        path: PathBuf,
        summary: Result<ImageSummary, String>,
    },
}

/// An image chosen in the image browser, with what its manifest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenImage {
    pub path: PathBuf,
    pub summary: ImageSummary,
}

/// One partition recorded in an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePart {
    pub number: u32,
    pub size: u64,
    /// File system name (`ext4`), empty when unknown.
    pub fs: String,
    pub label: String,
    /// Its content is in the image (not skipped, not only a header).
    pub restorable: bool,
}

impl ImagePart {
    /// `#1  16 MiB ext4 "ROOT"`.
    pub fn line(&self) -> String {
        let mut line = format!(
            "#{} {:>10} {}",
            self.number,
            human(self.size),
            if self.fs.is_empty() {
                "unknown".into()
            } else {
                printable(&self.fs)
            }
        );
        if !self.label.is_empty() {
            line.push_str(&format!(" \"{}\"", printable(&self.label)));
        }
        line
    }
}

/// A folder of the image picker, below [`Model::image_root`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Browser {
    pub dir: PathBuf,
    /// The listing request whose reply fills `entries`.
    pub request: RequestId,
    /// `None` while the listing is being read.
    pub entries: Option<Result<Vec<BrowseEntry>, String>>,
    pub cursor: usize,
    /// Why Enter was refused on the selected entry.
    pub refused: Option<String>,
    /// Disks whose drives are not offered (the job's source).
    pub exclude: Vec<PathBuf>,
    /// The password prompt of an encrypted image, while it is shown.
    pub unlock: Option<Box<Unlock>>,
    /// The "Network location" form, while it is shown (issue 17).
    pub network: Option<Box<super::network::NetForm>>,
}

impl Browser {
    /// A picker on `dir`, and the effect that lists it.
    pub fn open(model: &mut Model, dir: PathBuf) -> (Browser, Effect) {
        let request = model.request();
        let effect = Effect::ListImages {
            id: request,
            dir: dir.clone(),
        };
        (
            Browser {
                dir,
                request,
                entries: None,
                cursor: 0,
                refused: None,
                exclude: Vec::new(),
                unlock: None,
                network: None,
            },
            effect,
        )
    }

    /// A picker on `dir` waiting for the listing `request` (which the caller asks for).
    pub fn listing(dir: PathBuf, request: RequestId, exclude: Vec<PathBuf>) -> Browser {
        Browser {
            dir,
            request,
            entries: None,
            cursor: 0,
            refused: None,
            exclude,
            unlock: None,
            network: None,
        }
    }

    /// The picker on another folder, offering the same drives.
    pub fn reopen(&self, model: &mut Model, dir: PathBuf) -> (Browser, Effect) {
        let (mut b, effect) = Browser::open(model, dir);
        b.exclude = self.exclude.clone();
        (b, effect)
    }

    /// The drives offered after the folders, at the top folder only.
    pub fn drives(&self, model: &Model) -> Vec<Drive> {
        match &self.entries {
            Some(Ok(_)) if self.dir == model.image_root => drives::drives(model, &self.exclude),
            _ => Vec::new(),
        }
    }

    /// True when the "Network location" row is offered (after the drives, at the top folder).
    pub fn offers_network(&self, model: &Model) -> bool {
        matches!(&self.entries, Some(Ok(_))) && self.dir == model.image_root
    }

    /// True when the cursor is on the "Network location" row.
    fn on_network(&self, model: &Model) -> bool {
        let Some(Ok(e)) = &self.entries else {
            return false;
        };
        self.offers_network(model) && self.cursor == e.len() + self.drives(model).len()
    }

    /// The drive under the cursor, when it is on one.
    fn drive_at_cursor(&self, model: &Model) -> Option<Drive> {
        let folders = match &self.entries {
            Some(Ok(e)) => e.len(),
            _ => return None,
        };
        let i = self.cursor.checked_sub(folders)?;
        self.drives(model).get(i).cloned()
    }

    /// The picker on the folder that holds `image` (the top folder when it is not below it).
    pub fn at_image(model: &mut Model, image: &Path) -> (Browser, Effect) {
        let dir = image
            .parent()
            .filter(|d| d.starts_with(&model.image_root))
            .map(Path::to_path_buf)
            .unwrap_or_else(|| model.image_root.clone());
        Browser::open(model, dir)
    }

    /// Takes the listing answering request `id`; a listing for another request is dropped.
    pub fn on_listed(&mut self, id: RequestId, result: Result<Vec<BrowseEntry>, String>) {
        if id != self.request {
            return;
        }
        let len = result.as_ref().map(|e| e.len()).unwrap_or(0);
        self.cursor = self.cursor.min(len.saturating_sub(1));
        self.entries = Some(result);
    }

    /// True while the listing is read (the spinner turns).
    /// The password check `id` finished: on success the prompt closes and the caller lists the
    /// folder again with `relist` (the image now opens); else the prompt says why and is
    /// cleared. Returns whether the folder is to be listed again.
    pub fn on_unlocked(
        &mut self,
        id: RequestId,
        result: Result<(), String>,
        relist: RequestId,
    ) -> bool {
        let Some(u) = &mut self.unlock else {
            return false;
        };
        if u.request != Some(id) {
            return false;
        }
        match result {
            Ok(()) => {
                self.unlock = None;
                self.request = relist;
                self.entries = None;
                true
            }
            Err(e) => {
                u.request = None;
                u.error = Some(e);
                u.field = Default::default();
                false
            }
        }
    }

    pub fn waiting(&self) -> bool {
        self.entries.is_none()
    }

    /// The image at `path` in the listing, with its summary, when it can be used.
    fn chosen(&self, path: &Path) -> Option<ChosenImage> {
        let Some(Ok(entries)) = &self.entries else {
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

    /// True when the cursor is on an image.
    fn on_image(&self) -> bool {
        matches!(
            &self.entries,
            Some(Ok(e)) if matches!(e.get(self.cursor), Some(BrowseEntry::Image { .. }))
        )
    }
}

/// What a key does in the picker.
enum Outcome {
    /// Still browsing, maybe with a folder to read.
    Stay(Browser, Vec<Effect>),
    /// Left the picker (Esc at any folder).
    Leave,
    /// An image that can be used was chosen.
    Chosen(PathBuf),
}

/// Keys of the picker: ↑↓ move, Enter opens a folder or chooses an image (refused with the
/// reason for one that cannot be used), Backspace goes up (never above the top folder), r reads
/// the folder again, Esc leaves.
fn browse_key(model: &mut Model, mut b: Browser, key: Key) -> Outcome {
    if let Some(form) = b.network.take() {
        let (form, effects) = super::network::key(model, *form, key);
        b.network = form.map(Box::new);
        return Outcome::Stay(b, effects);
    }
    if let Some(mut u) = b.unlock.take() {
        // The password prompt has the keys: Enter checks, Esc closes it.
        if u.request.is_some() {
            b.unlock = Some(u);
            return Outcome::Stay(b, Vec::new());
        }
        if u.field.key(key) {
            b.unlock = Some(u);
            return Outcome::Stay(b, Vec::new());
        }
        return match key {
            Key::Esc => Outcome::Stay(b, Vec::new()),
            Key::Enter if !u.field.is_empty() => {
                let id = model.request();
                let effect = Effect::UnlockImage {
                    id,
                    path: u.path.clone(),
                    password: u.field.passphrase(),
                };
                u.request = Some(id);
                u.error = None;
                b.unlock = Some(u);
                Outcome::Stay(b, vec![effect])
            }
            _ => {
                b.unlock = Some(u);
                Outcome::Stay(b, Vec::new())
            }
        };
    }
    let len = match &b.entries {
        Some(Ok(e)) => e.len() + b.drives(model).len() + usize::from(b.offers_network(model)),
        _ => 0,
    };
    if let Some(c) = nav(b.cursor, len, key) {
        b.cursor = c;
        b.refused = None;
        return Outcome::Stay(b, Vec::new());
    }
    let top = model.image_root.clone();
    let up = |model: &mut Model, b: Browser| match b.dir.parent() {
        Some(parent) if b.dir != top && b.dir.starts_with(&top) => {
            let (nb, effect) = b.reopen(model, parent.to_path_buf());
            Outcome::Stay(nb, vec![effect])
        }
        _ => Outcome::Stay(b, Vec::new()),
    };
    match key {
        Key::Esc => Outcome::Leave,
        Key::Backspace | Key::Left => up(model, b),
        Key::Char('r') => {
            let dir = b.dir.clone();
            let (nb, effect) = b.reopen(model, dir);
            Outcome::Stay(nb, vec![effect])
        }
        Key::Enter | Key::Right => {
            let entry = match &b.entries {
                Some(Ok(e)) => e.get(b.cursor).cloned(),
                _ => None,
            };
            match entry {
                Some(BrowseEntry::Up) => up(model, b),
                Some(BrowseEntry::Dir(d)) => {
                    let (nb, effect) = b.reopen(model, d);
                    Outcome::Stay(nb, vec![effect])
                }
                Some(BrowseEntry::Image { path, summary }) => match summary {
                    Ok(_) if key == Key::Enter => Outcome::Chosen(path),
                    Ok(_) => Outcome::Stay(b, Vec::new()),
                    Err(e) if e == ENCRYPTED && key == Key::Enter => {
                        b.unlock = Some(Box::new(Unlock {
                            path,
                            field: Default::default(),
                            request: None,
                            error: None,
                        }));
                        Outcome::Stay(b, Vec::new())
                    }
                    Err(e) => {
                        b.refused = Some(format!("this image cannot be used: {e}"));
                        Outcome::Stay(b, Vec::new())
                    }
                },
                None if b.on_network(model) => {
                    if key != Key::Enter {
                        return Outcome::Stay(b, Vec::new());
                    }
                    let (form, effect) = super::network::open_form(model, &b);
                    b.network = Some(Box::new(form));
                    Outcome::Stay(b, vec![effect])
                }
                None => match b.drive_at_cursor(model) {
                    Some(_) if model.auto_mounting.is_some() => Outcome::Stay(b, Vec::new()),
                    Some(drive) if key == Key::Enter => {
                        let effect = drives::mount(model, &drive);
                        Outcome::Stay(b, vec![effect])
                    }
                    _ => Outcome::Stay(b, Vec::new()),
                },
            }
        }
        _ => Outcome::Stay(b, Vec::new()),
    }
}

/// Keys of a step that picks an image: browsing stays on the step (`wrap` rebuilds it), Esc
/// goes back to the disks, and a usable image continues with `chosen`.
pub fn pick_image(
    model: &mut Model,
    b: Browser,
    key: Key,
    wrap: impl Fn(Browser) -> Screen,
    chosen: impl FnOnce(&mut Model, ChosenImage) -> (Screen, Vec<Effect>),
) -> (Screen, Vec<Effect>) {
    let before = b.clone();
    match browse_key(model, b, key) {
        Outcome::Stay(b, effects) => (wrap(b), effects),
        Outcome::Leave => (Screen::Main, Vec::new()),
        Outcome::Chosen(path) => match before.chosen(&path) {
            Some(image) => chosen(model, image),
            None => (wrap(before), Vec::new()),
        },
    }
}

/// What a key does in a folder picker.
#[derive(Debug)]
pub enum Folder {
    /// Still browsing, with the effects to run.
    Stay(Browser, Vec<Effect>),
    /// Esc: back to the step before.
    Leave,
    /// `s` in a folder on a mounted drive: this folder.
    Chosen(PathBuf),
}

/// Keys of a step that picks a folder on a mounted drive: `s` chooses the folder shown (refused
/// at the top folder, which is in memory), Enter on an image is refused with `on_image`.
pub fn pick_folder(model: &mut Model, mut b: Browser, key: Key, on_image: &str) -> Folder {
    if key == Key::Char('s') && b.network.is_none() {
        if b.dir == model.image_root || !b.dir.starts_with(&model.image_root) {
            b.refused = Some(format!(
                "choose a folder on a mounted drive, below {}: this one is in memory",
                model.image_root.display()
            ));
            return Folder::Stay(b, Vec::new());
        }
        if let Some(refusal) = super::network::read_only_refusal(model, &b.dir) {
            b.refused = Some(refusal);
            return Folder::Stay(b, Vec::new());
        }
        return Folder::Chosen(b.dir);
    }
    if b.on_image() && b.network.is_none() && matches!(key, Key::Enter | Key::Right) {
        b.refused = Some(on_image.to_string());
        return Folder::Stay(b, Vec::new());
    }
    match browse_key(model, b, key) {
        Outcome::Stay(b, effects) => Folder::Stay(b, effects),
        Outcome::Leave | Outcome::Chosen(_) => Folder::Leave,
    }
}

/// The picker's help line.
pub const HELP: &str = " ↑↓ move  Enter open/choose  Backspace up  r reread  Esc back";

/// The image browser: the folder's entries on the left half, the selected image's summary (or
/// why it cannot be used) below.
/// `purpose` is what `s` does in a folder picker (`saves the new image`), `None` when images are
/// picked.
pub fn draw(model: &Model, b: &Browser, purpose: Option<&str>, frame: &mut Frame, area: Rect) {
    if let Some(form) = &b.network {
        super::network::draw(model, form, frame, area);
        return;
    }
    let [list_area, info_area] =
        Layout::vertical([Constraint::Min(5), Constraint::Length(9)]).areas(area);
    let title = format!(" {} ", shown_path(model, &b.dir));
    let block = Block::default().borders(Borders::ALL).title(title);
    let entries = match &b.entries {
        None => {
            frame.render_widget(
                Paragraph::new(format!("Reading the folder {}", spinner(model.tick))).block(block),
                list_area,
            );
            return;
        }
        Some(Err(e)) => {
            let lines = error_lines(
                model,
                "This folder cannot be read.",
                e,
                "r reads it again, Backspace goes up to the folder above, Esc goes back.",
            );
            frame.render_widget(
                Paragraph::new(lines).wrap(Wrap { trim: true }).block(block),
                list_area,
            );
            return;
        }
        Some(Ok(e)) => e,
    };
    let drives = b.drives(model);
    if entries.is_empty() && drives.is_empty() {
        let text = if b.dir == model.image_root {
            format!(
                "No drive is mounted under {} and no drive Lifeboat can mount is attached. Plug \
                 one in (it appears by itself), or go back (Esc), select the partition that \
                 holds the images and mount it (m). Enter: a network location (SMB, NFS, SFTP, \
                 HTTP).",
                model.image_root.display()
            )
        } else {
            "No folders and no .lbi images here (Backspace goes up).".to_string()
        };
        frame.render_widget(
            Paragraph::new(text).wrap(Wrap { trim: true }).block(block),
            list_area,
        );
        return;
    }
    let at_top = b.dir == model.image_root;
    let items: Vec<ListItem> = entries
        .iter()
        .map(|e| match e {
            BrowseEntry::Up => ListItem::new("  ../"),
            BrowseEntry::Dir(d) => match at_top.then(|| drives::mounted_on(model, d)).flatten() {
                Some(drive) => ListItem::new(format!("{}  mounted", drive.line())),
                None => ListItem::new(format!("  {}/", file_name(d))),
            },
            BrowseEntry::Image {
                path,
                summary: Ok(s),
            } => ListItem::new(format!(
                "  {:<40} {:>10}  {}{}",
                fit(&file_name(path), 40),
                human(s.file_size),
                printable(s.created.get(..10).unwrap_or(&s.created)),
                if s.bad_ranges > 0 {
                    "  bad sectors"
                } else {
                    ""
                }
            )),
            BrowseEntry::Image {
                path,
                summary: Err(e),
            } => ListItem::new(Line::from(vec![
                Span::styled("x ", bad_style()),
                Span::styled(
                    format!("{:<40} {}", fit(&file_name(path), 40), unusable_flag(e)),
                    Style::default().fg(Color::Red),
                ),
            ])),
        })
        .chain(drives.iter().map(|d| ListItem::new(d.line())))
        .chain(
            b.offers_network(model)
                .then(|| ListItem::new("  Network location...  SMB, NFS, SFTP, HTTP")),
        )
        .collect();
    let mut state = ListState::default().with_selected(Some(b.cursor.min(items.len() - 1)));
    frame.render_stateful_widget(
        List::new(items)
            .block(block)
            .highlight_style(selected_style()),
        list_area,
        &mut state,
    );
    if let Some(u) = &b.unlock {
        let mut lines = vec![
            Line::raw(format!("Password for {}:", file_name(&u.path))),
            Line::raw(format!("> {}", u.field.masked())),
        ];
        match (&u.request, &u.error) {
            (Some(_), _) => lines.push(Line::raw(format!(
                "Checking the password {}",
                spinner(model.tick)
            ))),
            (None, Some(e)) => lines.push(Line::styled(shown(model, &printable(e)), bad_style())),
            (None, None) => {}
        }
        lines.push(Line::raw("Enter opens the image, Esc closes the prompt."));
        frame.render_widget(
            Paragraph::new(lines).wrap(Wrap { trim: true }).block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(" Encrypted image "),
            ),
            info_area,
        );
        return;
    }
    let mut lines = Vec::new();
    if let Some(r) = &b.refused {
        lines.push(Line::styled(shown(model, &printable(r)), bad_style()));
    }
    match entries.get(b.cursor) {
        Some(BrowseEntry::Image { summary: Ok(s), .. }) => lines.extend(summary_lines(s)),
        Some(BrowseEntry::Image {
            summary: Err(e), ..
        }) if b.refused.is_none() => {
            lines.extend(error_lines(
                model,
                "This image cannot be used:",
                e,
                "Choose another image (↑↓ Enter), or Esc to go back.",
            ));
        }
        Some(BrowseEntry::Dir(d)) if at_top => match drives::mounted_on(model, d) {
            Some(drive) => {
                lines.push(Line::raw(format!(
                    "Drive {}: {}, {}, mounted on {}.",
                    drive.name,
                    drive.fs_text,
                    human(drive.size),
                    shown_path(model, d)
                )));
                lines.push(Line::raw("Enter opens it."));
            }
            None => lines.push(Line::raw("Enter opens the folder.")),
        },
        Some(BrowseEntry::Dir(_)) | Some(BrowseEntry::Up) => {
            lines.push(Line::raw("Enter opens the folder."));
        }
        Some(_) => {}
        None => match (b.drive_at_cursor(model), &model.auto_mounting) {
            (Some(_), Some((_, dir))) => lines.push(Line::raw(format!(
                "Mounting {} {}",
                shown_path(model, dir),
                spinner(model.tick)
            ))),
            (Some(d), None) => {
                lines.push(Line::raw(format!(
                    "Drive {}: {}, {}.",
                    d.name,
                    d.fs_text,
                    human(d.size)
                )));
                lines.push(Line::raw(format!(
                    "Enter mounts it on {} and opens it.",
                    shown_path(
                        model,
                        &model
                            .image_root
                            .join(crate::system::mount_dir_name(&d.name))
                    )
                )));
                lines.push(Line::raw(
                    "It is unmounted when you are back on the disk list.",
                ));
            }
            (None, _) if b.on_network(model) => {
                lines.push(Line::raw(
                    "Enter opens a share, export or server: SMB (Windows, NAS), NFS, SFTP (SSH) \
                     or HTTP (read-only).",
                ));
                lines.push(Line::raw(
                    "It is closed when you are back on the disk list.",
                ));
            }
            (None, _) => {}
        },
    }
    if let Some(purpose) = purpose {
        let hint = if b.dir == model.image_root {
            format!("Open the folder of a mounted drive (Enter on a drive mounts it), then s {purpose} there.")
        } else {
            format!("s {purpose} in {}", shown_path(model, &b.dir))
        };
        lines.insert(0, Line::raw(hint));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(" Image ")),
        info_area,
    );
}

/// The word the image list shows for an image that cannot be used, from the image reader's
/// words for why (`incomplete image`, `truncated volume`, `missing volume`, `not a Lifeboat
/// image`, a newer format; anything else is damage).
pub fn unusable_flag(reason: &str) -> &'static str {
    let r = reason.to_ascii_lowercase();
    if r.contains("incomplete") || r.contains("truncated") || r.contains("missing volume") {
        "incomplete"
    } else if r.contains("not a lifeboat image") {
        "not an image"
    } else if r.contains("newer") {
        "newer format"
    } else if reason == ENCRYPTED {
        "encrypted"
    } else {
        "damaged"
    }
}

/// What the image says about itself and its source, in a few lines: the image file's own size
/// (all volumes), the source disk named by `disk::text::identity`, the date.
pub fn summary_lines(s: &ImageSummary) -> Vec<Line<'static>> {
    let mut lines = vec![
        Line::raw(format!(
            "File    {} in {} volume{}, holding {} of data",
            human(s.file_size),
            s.volumes,
            if s.volumes == 1 { "" } else { "s" },
            human(s.stored),
        )),
        Line::raw(format!(
            "Source  {}{}",
            s.source_identity(),
            s.table
                .as_ref()
                .map(|t| format!(", {} table", printable(t)))
                .unwrap_or_default()
        )),
        Line::raw(format!(
            "Made    {}",
            printable(&s.created.replacen('T', " ", 1))
        )),
    ];
    if s.bad_ranges > 0 {
        lines.push(Line::styled(
            format!(
                "{} ranges of the source could not be read (they restore as zeros)",
                s.bad_ranges
            ),
            warn_style(),
        ));
    }
    let shown = 4;
    for p in s.partitions.iter().take(shown) {
        lines.push(Line::raw(format!("  {}", printable(p))));
    }
    if s.partitions.len() > shown {
        lines.push(Line::raw(format!(
            "  ... and {} more partitions",
            s.partitions.len() - shown
        )));
    }
    lines
}
