//! Browse files: pick an image (and a partition of it) or start from a live partition (read-only),
//! then walk its folders, search by name and select files. Extracting the selection is the
//! [`crate::screens::extract`] steps, which keep the [`FileView`] to come back to. Every folder
//! listing is a worker request; its reply carries the id kept in [`FileView::request`], and a
//! listing of a folder the user already left is dropped.

mod draw;

pub use draw::{date_text, draw};

use crate::model::{Effect, Key, Model, RequestId, Screen};
use crate::screens::extract;
use crate::widgets::image_picker::{self, Browser, ChosenImage};
use crate::widgets::nav;
use crate::widgets::running::Run;
use std::path::PathBuf;

/// What the file browser reads: a partition (or the only file system) inside an image, or a
/// live partition of a disk, read-only. The extraction engine's source.
pub use engine::extract::Source as FileSource;

/// One object of the file browser's listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileItem {
    /// Absolute path in the file system.
    pub path: String,
    pub entry: fs::browse::Entry,
}

impl FileItem {
    pub fn is_dir(&self) -> bool {
        self.entry.kind == fs::browse::EntryKind::Dir
    }
}

/// What the file list shows: a folder, or the results of a search by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    Dir,
    Search(String),
}

/// The state of the file browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileView {
    pub source: FileSource,
    /// The current folder (absolute).
    pub dir: String,
    pub listing: Listing,
    /// `None` while the worker reads.
    pub items: Option<Result<Vec<FileItem>, String>>,
    pub cursor: usize,
    /// Paths chosen with Space, across folders.
    pub selected: std::collections::BTreeSet<String>,
    /// The search being typed after `/`.
    pub typing: Option<String>,
    /// The file system's name and label, once known.
    pub fs: Option<String>,
    /// The listing this view waits for, while it waits.
    pub request: Option<RequestId>,
}

impl FileView {
    pub fn new(source: FileSource) -> Self {
        FileView {
            source,
            dir: "/".to_string(),
            listing: Listing::Dir,
            items: None,
            cursor: 0,
            selected: Default::default(),
            typing: None,
            fs: None,
            request: None,
        }
    }

    /// A view on nothing (a placeholder while a screen is rebuilt).
    pub(crate) fn placeholder() -> Self {
        FileView::new(FileSource::Image {
            path: PathBuf::new(),
            partition: 0,
        })
    }

    /// What an extract takes: the selection, or the item under the cursor.
    pub fn chosen(&self) -> Vec<String> {
        if !self.selected.is_empty() {
            return self.selected.iter().cloned().collect();
        }
        match &self.items {
            Some(Ok(items)) => items
                .get(self.cursor)
                .map(|i| vec![i.path.clone()])
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// A request to copy files out of a file system into a folder, and what it did: the
/// extraction engine's own types.
pub use engine::extract::{ExtractReport, ExtractRequest, LvChoice};

/// The steps of browsing files and extracting some.
#[derive(Debug)]
pub enum FilesScreen {
    PickImage(Browser),
    /// A disk image: which partition to browse.
    PickPart {
        image: ChosenImage,
        cursor: usize,
    },
    /// An LVM2 PV: which logical volume to browse (issue 16). `lvs` is `None` while the worker
    /// reads the PV's metadata; its answer carries `request`.
    PickLv {
        pv: FileSource,
        request: Option<RequestId>,
        lvs: Option<Result<Vec<LvChoice>, String>>,
        cursor: usize,
    },
    Browse(FileView),
    /// Choosing the folder the files go to.
    PickDest {
        view: FileView,
        browser: Browser,
    },
    /// A worker looks for files of the same names in the destination; its answer carries `id`.
    Checking {
        id: RequestId,
        view: FileView,
        request: ExtractRequest,
    },
    /// Some names exist in the destination: overwrite them or keep them?
    AskOverwrite {
        view: FileView,
        request: ExtractRequest,
        existing: Vec<PathBuf>,
    },
    Running {
        view: FileView,
        request: ExtractRequest,
        run: Run,
    },
    Done {
        view: FileView,
        request: ExtractRequest,
        result: Result<ExtractReport, String>,
        scroll: usize,
    },
}

impl FilesScreen {
    /// The first step of browsing an image: the picker on the top folder.
    pub fn start(model: &mut Model) -> (Screen, Vec<Effect>) {
        let (browser, effect) = Browser::open(model, model.image_root.clone());
        (
            Screen::Files(Box::new(FilesScreen::PickImage(browser))),
            vec![effect],
        )
    }

    pub fn run(&self) -> Option<&Run> {
        match self {
            FilesScreen::Running { run, .. } => Some(run),
            _ => None,
        }
    }

    pub fn run_mut(&mut self) -> Option<&mut Run> {
        match self {
            FilesScreen::Running { run, .. } => Some(run),
            _ => None,
        }
    }

    pub fn browser(&self) -> Option<&Browser> {
        match self {
            FilesScreen::PickImage(b) | FilesScreen::PickDest { browser: b, .. } => Some(b),
            _ => None,
        }
    }

    pub fn browser_mut(&mut self) -> Option<&mut Browser> {
        match self {
            FilesScreen::PickImage(b) | FilesScreen::PickDest { browser: b, .. } => Some(b),
            _ => None,
        }
    }

    pub fn title(&self) -> String {
        match self {
            FilesScreen::PickImage(_) => "Browse files - image".to_string(),
            FilesScreen::PickPart { .. } => "Browse files - partition".to_string(),
            FilesScreen::PickLv { .. } => "Browse files - logical volume".to_string(),
            FilesScreen::Browse(v) => {
                format!(
                    "Browse files - {}",
                    disk::text::printable(&v.source.short())
                )
            }
            other => extract::title(other).to_string(),
        }
    }

    pub fn help(&self) -> &'static str {
        match self {
            FilesScreen::PickImage(_) => image_picker::HELP,
            FilesScreen::PickPart { .. } => " ↑↓ move  Enter browse  Esc back",
            FilesScreen::PickLv { .. } => " ↑↓ move  Enter browse this volume  Esc leave",
            FilesScreen::Browse(v) if v.typing.is_some() => {
                " type part of a name  Enter search  Esc cancel"
            }
            FilesScreen::Browse(_) => {
                " Enter open  Bksp up  Space select  / search  x extract  Esc leave"
            }
            other => extract::help(other),
        }
    }

    /// The spinner turns while a folder is read or the destination checked.
    pub fn animated(&self) -> bool {
        match self {
            FilesScreen::PickImage(b) | FilesScreen::PickDest { browser: b, .. } => b.waiting(),
            FilesScreen::Browse(v) => v.items.is_none(),
            FilesScreen::PickLv { lvs, .. } => lvs.is_none(),
            FilesScreen::Checking { .. } => true,
            _ => false,
        }
    }
}

/// Opens the file browser on `source` at its root.
pub fn open(model: &mut Model, source: FileSource) -> (Screen, Vec<Effect>) {
    let mut view = FileView::new(source);
    let effect = list(model, &mut view);
    (
        Screen::Files(Box::new(FilesScreen::Browse(view))),
        vec![effect],
    )
}

/// Opens the file browser on `source`, whose file system `probe` named `fs`: an LVM2 PV first
/// asks which of its logical volumes to browse.
fn open_fs(model: &mut Model, source: FileSource, fs: &str) -> (Screen, Vec<Effect>) {
    if fs != fs::FsKind::Lvm2Member.name() {
        return open(model, source);
    }
    let id = model.request();
    let effect = Effect::ListLvs {
        id,
        source: source.clone(),
    };
    let step = FilesScreen::PickLv {
        pv: source,
        request: Some(id),
        lvs: None,
        cursor: 0,
    };
    (Screen::Files(Box::new(step)), vec![effect])
}

/// The logical volumes `id` asked for arrived: shown when the picker still waits for them, the
/// cursor on the first one that can be browsed.
pub fn on_lvs(model: &mut Model, id: RequestId, result: Result<Vec<LvChoice>, String>) {
    if let Screen::Files(f) = &mut model.screen {
        if let FilesScreen::PickLv {
            request,
            lvs,
            cursor,
            ..
        } = &mut **f
        {
            if *request == Some(id) {
                *request = None;
                if let Ok(list) = &result {
                    *cursor = list.iter().position(|l| l.refused.is_none()).unwrap_or(0);
                }
                *lvs = Some(result);
            }
        }
    }
}

/// Keys of the logical-volume picker.
fn pick_lv_key(model: &mut Model, f: FilesScreen, key: Key) -> (Screen, Vec<Effect>) {
    let FilesScreen::PickLv {
        pv,
        request,
        lvs,
        cursor,
    } = f
    else {
        return (Screen::Files(Box::new(f)), Vec::new());
    };
    let len = match &lvs {
        Some(Ok(l)) => l.len(),
        _ => 0,
    };
    let mut cursor = cursor;
    let chosen = match &lvs {
        Some(Ok(l)) => l.get(cursor).cloned(),
        _ => None,
    };
    if let Some(c) = nav(cursor, len, key) {
        model.status = None;
        cursor = c;
    } else {
        match key {
            Key::Esc | Key::Backspace => {
                model.status = None;
                return (Screen::Main, Vec::new());
            }
            Key::Enter => match chosen {
                Some(lv) if lv.refused.is_none() => {
                    model.status = None;
                    log::info!("browsing logical volume {} (read-only)", lv.name);
                    return open(model, lv.source);
                }
                Some(lv) => {
                    let why = lv.refused.unwrap_or_default();
                    model.status = Some(format!("{}: {why}", lv.name));
                }
                None => {}
            },
            _ => {}
        }
    }
    let step = FilesScreen::PickLv {
        pv,
        request,
        lvs,
        cursor,
    };
    (Screen::Files(Box::new(step)), Vec::new())
}

/// The effect that (re)reads what `view` shows; `view` now waits for its answer.
fn list(model: &mut Model, view: &mut FileView) -> Effect {
    let id = model.request();
    view.request = Some(id);
    Effect::ListFiles {
        id,
        source: view.source.clone(),
        dir: view.dir.clone(),
        listing: view.listing.clone(),
    }
}

/// The listing `id` arrived: shown when the browser still waits for it.
pub fn on_listed(
    model: &mut Model,
    id: RequestId,
    fs: Option<String>,
    result: Result<Vec<FileItem>, String>,
) {
    if let Screen::Files(f) = &mut model.screen {
        if let FilesScreen::Browse(v) = &mut **f {
            if v.request == Some(id) {
                v.request = None;
                let len = result.as_ref().map(|e| e.len()).unwrap_or(0);
                v.cursor = v.cursor.min(len.saturating_sub(1));
                v.items = Some(result);
                if fs.is_some() {
                    v.fs = fs;
                }
            }
        }
    }
}

/// The file browser on the partition selected on the main screen, read-only.
pub fn browse_partition(model: &mut Model) -> (Screen, Vec<Effect>) {
    let Some((d, part)) = crate::screens::disks::selected_part(model) else {
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
    let fs = part.fs.as_ref().map_or("", |f| f.kind.name());
    open_fs(
        model,
        FileSource::Live {
            node,
            offset,
            len: part.size,
            name: part.name.clone(),
        },
        fs,
    )
}

/// Keys of the file browser: image → partition → folders (search, select); the extract steps
/// are [`extract::key`]'s.
pub fn key(model: &mut Model, f: FilesScreen, key: Key) -> (Screen, Vec<Effect>) {
    let wrap = |f: FilesScreen| Screen::Files(Box::new(f));
    match f {
        FilesScreen::PickImage(b) => image_picker::pick_image(
            model,
            b,
            key,
            |b| wrap(FilesScreen::PickImage(b)),
            |model, image| {
                let parts = image.summary.restorable_parts();
                let fs_of = |n: u32| {
                    image
                        .summary
                        .parts
                        .iter()
                        .find(|p| p.number == n)
                        .map_or(String::new(), |p| p.fs.clone())
                };
                match (image.summary.whole_disk, parts.as_slice()) {
                    (false, _) => {
                        let partition = parts.first().copied().unwrap_or(0);
                        let fs = fs_of(partition);
                        let source = FileSource::Image {
                            path: image.path,
                            partition,
                        };
                        open_fs(model, source, &fs)
                    }
                    (true, [one]) => {
                        let fs = fs_of(*one);
                        let source = FileSource::Image {
                            path: image.path,
                            partition: *one,
                        };
                        open_fs(model, source, &fs)
                    }
                    _ => {
                        let cursor = image
                            .summary
                            .parts
                            .iter()
                            .position(|p| p.restorable && p.fs != "swap" && !p.fs.is_empty())
                            .unwrap_or(0);
                        (wrap(FilesScreen::PickPart { image, cursor }), Vec::new())
                    }
                }
            },
        ),
        FilesScreen::PickPart { image, cursor } => {
            let parts = &image.summary.parts;
            if let Some(c) = nav(cursor, parts.len(), key) {
                model.status = None;
                return (wrap(FilesScreen::PickPart { image, cursor: c }), Vec::new());
            }
            match key {
                Key::Esc | Key::Backspace => {
                    model.status = None;
                    let (browser, effect) = Browser::at_image(model, &image.path);
                    (wrap(FilesScreen::PickImage(browser)), vec![effect])
                }
                Key::Enter => match parts.get(cursor) {
                    Some(p) if p.restorable => {
                        model.status = None;
                        let source = FileSource::Image {
                            path: image.path.clone(),
                            partition: p.number,
                        };
                        let fs = p.fs.clone();
                        open_fs(model, source, &fs)
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
            let (screen, effects) = browse_key(model, view, key);
            (screen.map_or(Screen::Main, wrap), effects)
        }
        f @ FilesScreen::PickLv { .. } => pick_lv_key(model, f, key),
        other => extract::key(model, other, key),
    }
}

/// Keys of the folder list. `None` leaves the browser.
fn browse_key(model: &mut Model, mut v: FileView, key: Key) -> (Option<FilesScreen>, Vec<Effect>) {
    let stay = |v: FileView| (Some(FilesScreen::Browse(v)), Vec::new());
    let reread = |model: &mut Model, mut v: FileView| {
        v.items = None;
        v.cursor = 0;
        let effect = list(model, &mut v);
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
                return reread(model, v);
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
                return reread(model, v);
            }
            if v.dir == "/" {
                return stay(v);
            }
            let parent = match v.dir.trim_end_matches('/').rsplit_once('/') {
                Some(("", _)) | None => "/".to_string(),
                Some((p, _)) => p.to_string(),
            };
            v.dir = parent;
            reread(model, v)
        }
        Key::Enter | Key::Right => match current {
            Some(item) if item.is_dir() => {
                v.dir = item.path;
                v.listing = Listing::Dir;
                reread(model, v)
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
        Key::Char('r') => reread(model, v),
        Key::Char('x') => {
            if v.chosen().is_empty() {
                model.status = Some("nothing to extract: select files with Space".to_string());
                return stay(v);
            }
            model.status = None;
            let top = model.image_root.clone();
            let (browser, effect) = crate::screens::extract::dest_picker(model, &v.source, top);
            (
                Some(FilesScreen::PickDest { view: v, browser }),
                vec![effect],
            )
        }
        _ => stay(v),
    }
}
