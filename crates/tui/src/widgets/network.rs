//! "Network location" of the image picker (issue 17): a form at the picker's top folder, next
//! to the local drives — kind (SMB, NFS, SFTP, HTTP), host, share/path, user, password (masked),
//! for HTTPS a CA file, for shares how long a restore waits for a vanished server — with Test
//! (open the store and close it again) and Connect (open it and browse it like a drive).
//! Opening a store is blocking work ([`Effect::OpenStore`], run by a worker through
//! `store::open`); an SFTP server's host key, or an HTTPS certificate no trusted CA signed, is
//! shown and must be accepted before it is used. The stores a picker opened are closed when the
//! user is back on the disk list.
//!
//! While a store is open, the screens name its files by URL ([`name_urls`]), never by the
//! folder it is mounted on, and the jobs that read it wait for it as its form said
//! ([`read_policy`]).

use super::password::PasswordField;
use super::{bad_style, selected_style};
use crate::model::{Effect, Key, Model, RequestId};
use disk::text::printable;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Frame;
use std::path::{Path, PathBuf};
use std::time::Duration;
use store::{Access, Location, Scheme};

/// The kinds the form offers, in the order ←→ cycles them.
pub const KINDS: [Scheme; 5] = [
    Scheme::Smb,
    Scheme::Nfs,
    Scheme::Sftp,
    Scheme::Https,
    Scheme::Http,
];

/// Longest host, path or user name the form takes (characters).
pub const MAX_TEXT: usize = 255;
/// Longest CA file path the form takes (characters).
pub const MAX_PATH: usize = 1024;

/// A row of the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Kind,
    Host,
    Path,
    User,
    Password,
    /// HTTPS: a PEM file of CA certificates to trust (a private CA, a NAS's own certificate).
    CaFile,
    /// SMB, NFS, SFTP: how long a restore waits for the server when it vanishes (seconds).
    Retry,
    Test,
    Connect,
    /// A saved location (`lifeboat-locations.toml` on a drive), chosen with ←→.
    Saved,
    /// Save the location (without the password) in `lifeboat-locations.toml`.
    Save,
}

/// A store that was opened (Connect) or tested (Test).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOpen {
    /// The folder to browse: the location's folder, or the folder that holds its image file.
    pub folder: PathBuf,
    /// The URL (no password), for messages.
    pub url: String,
    /// The URL of `folder` (the location's, or its folder's when it names a file).
    pub folder_url: String,
    /// HTTP: images can be read there, not written.
    pub read_only: bool,
    /// Kept open (Connect); a test is closed again before it answers.
    pub kept: bool,
    /// How long a job reading it waits for the server when it vanishes (`None`: the default).
    pub store_retry: Option<Duration>,
}

/// A store the pickers opened and keep open until the user is back on the disk list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenStore {
    /// The folder browsed (where the store's files are on this machine).
    pub folder: PathBuf,
    /// HTTP: read-only.
    pub read_only: bool,
    /// The URL the user opened (no password).
    pub url: String,
    /// The URL of `folder`: what the screens show in its place.
    pub folder_url: String,
    /// How long a job reading it waits for a vanished server (`None`: the default).
    pub store_retry: Option<Duration>,
}

impl From<&StoreOpen> for OpenStore {
    fn from(o: &StoreOpen) -> Self {
        OpenStore {
            folder: o.folder.clone(),
            read_only: o.read_only,
            url: o.url.clone(),
            folder_url: o.folder_url.clone(),
            store_retry: o.store_retry,
        }
    }
}

/// Why a store was not opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreRefusal {
    /// The SFTP server's host key, or the HTTPS server's certificate (no trusted CA signed
    /// it), is not accepted yet: its fingerprints.
    HostKey(Vec<String>),
    Failed(String),
}

/// The form being filled in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetForm {
    /// Index in [`KINDS`].
    pub kind: usize,
    pub host: String,
    pub path: String,
    pub user: String,
    pub password: PasswordField,
    /// HTTPS: the CA file as typed (relative: from the picker's top folder, `sdb1/ca.pem`).
    pub ca_file: String,
    /// Seconds a restore waits for a vanished server, as typed (empty: the default).
    pub retry: String,
    /// The picker's top folder, where the drives are mounted (relative CA files start there).
    pub top: PathBuf,
    /// Index in [`NetForm::fields`].
    pub cursor: usize,
    /// The SFTP host key fingerprint, or the HTTPS certificate fingerprint, the user accepted.
    pub host_key: Option<String>,
    /// The fingerprints shown for the user to accept (Enter) or refuse (Esc).
    pub ask_key: Option<Vec<String>>,
    /// The open or test under way, and whether it keeps the store open.
    pub request: Option<(RequestId, bool)>,
    /// What the last test or connect said: `Ok` for a test that worked.
    pub message: Option<Result<String, String>>,
    /// The saved locations read from the drives, with the file each came from.
    pub saved: Vec<(PathBuf, store::saved::Saved)>,
    /// The saved location shown (index in `saved`).
    pub saved_cursor: Option<usize>,
    /// The folders of the mounted drives at the picker's top folder: where saved locations are
    /// read, and the first one is where a new file is written.
    pub drives: Vec<PathBuf>,
    /// The read of the saved locations, or a save, under way.
    pub files_request: Option<RequestId>,
}

/// The form on the picker `b` (at its top folder), and the effect that reads the saved
/// locations of the drives mounted there.
pub fn open_form(model: &mut Model, b: &super::image_picker::Browser) -> (NetForm, Effect) {
    let drives: Vec<PathBuf> = match &b.entries {
        Some(Ok(entries)) => entries
            .iter()
            .filter_map(|e| match e {
                crate::model::BrowseEntry::Dir(d)
                    if !model.stores.iter().any(|s| s.folder.starts_with(d)) =>
                {
                    Some(d.clone())
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let id = model.request();
    let form = NetForm {
        drives: drives.clone(),
        files_request: Some(id),
        top: model.image_root.clone(),
        ..NetForm::default()
    };
    (
        form,
        Effect::LoadLocations {
            id,
            files: drives
                .iter()
                .map(|d| d.join(store::saved::FILE_NAME))
                .collect(),
        },
    )
}

/// The saved locations were read (`id`): the form offers them; files that could not be read
/// are said.
pub fn on_loaded(
    model: &mut Model,
    id: RequestId,
    saved: Vec<(PathBuf, store::saved::Saved)>,
    errors: Vec<String>,
) {
    let Some(f) = model
        .screen
        .browser_mut()
        .and_then(|b| b.network.as_deref_mut())
    else {
        return;
    };
    if f.files_request != Some(id) {
        return;
    }
    f.files_request = None;
    f.saved = saved;
    if !errors.is_empty() {
        f.message = Some(Err(errors.join("; ")));
    }
}

/// A save finished (`id`): what to tell the user.
pub fn on_saved(
    model: &mut Model,
    id: RequestId,
    result: Result<(PathBuf, store::saved::Saved), String>,
) {
    let Some(f) = model
        .screen
        .browser_mut()
        .and_then(|b| b.network.as_deref_mut())
    else {
        return;
    };
    if f.files_request != Some(id) {
        return;
    }
    f.files_request = None;
    f.message = Some(match result {
        Ok((file, entry)) => {
            let text = format!(
                "{} is saved in {} (without the password)",
                entry.location,
                file.display()
            );
            f.saved.retain(|(_, s)| s.location != entry.location);
            if f.saved.is_empty() {
                // The "Saved" row appears above the others: the cursor stays on its row.
                f.cursor += 1;
            }
            f.saved.push((file, entry));
            f.saved_cursor = Some(f.saved.len() - 1);
            Ok(text)
        }
        Err(e) => Err(e),
    });
}

impl NetForm {
    pub fn scheme(&self) -> Scheme {
        KINDS.get(self.kind).copied().unwrap_or(Scheme::Smb)
    }

    /// The rows for the kind chosen: NFS and HTTP take no user or password, only HTTPS a CA
    /// file, and HTTP(S) no wait (its reads retry on their own).
    pub fn fields(&self) -> Vec<Field> {
        let mut f = Vec::new();
        if !self.saved.is_empty() {
            f.push(Field::Saved);
        }
        f.extend([Field::Kind, Field::Host, Field::Path]);
        let scheme = self.scheme();
        if matches!(scheme, Scheme::Smb | Scheme::Sftp) {
            f.extend([Field::User, Field::Password]);
        }
        match scheme {
            Scheme::Https => f.push(Field::CaFile),
            Scheme::Http => {}
            _ => f.push(Field::Retry),
        }
        f.extend([Field::Test, Field::Connect, Field::Save]);
        f
    }

    /// The CA file to trust (HTTPS only): a relative path is taken from the picker's top folder.
    pub fn ca_path(&self) -> Option<PathBuf> {
        let typed = self.ca_file.trim();
        if typed.is_empty() || self.scheme() != Scheme::Https {
            return None;
        }
        let p = Path::new(typed);
        Some(if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.top.join(p)
        })
    }

    /// How long a job reading the store waits for it when it vanishes: `None` is the default
    /// ([`disk::netfs::Policy`]), and HTTP(S) retries its reads on its own.
    pub fn store_retry(&self) -> Result<Option<Duration>, String> {
        let typed = self.retry.trim();
        if typed.is_empty() || matches!(self.scheme(), Scheme::Http | Scheme::Https) {
            return Ok(None);
        }
        use store::saved::{MAX_RETRY, MIN_RETRY};
        match typed.parse::<u64>() {
            Ok(s) if (MIN_RETRY..=MAX_RETRY).contains(&s) => Ok(Some(Duration::from_secs(s))),
            _ => Err(format!(
                "wait for the server: {MIN_RETRY} to {MAX_RETRY} seconds (empty: {} s)",
                disk::netfs::Policy::default().retry_for.as_secs()
            )),
        }
    }

    /// Fills the form from saved location `i` (the password is typed again).
    fn choose_saved(&mut self, i: usize) {
        let Some((_, s)) = self.saved.get(i) else {
            return;
        };
        let l = &s.location;
        self.kind = KINDS.iter().position(|k| *k == l.scheme).unwrap_or(0);
        self.host = l.authority();
        self.path = l.path.trim_start_matches('/').to_string();
        self.user = match (&l.domain, &l.user) {
            (Some(d), Some(u)) => format!("{d};{u}"),
            (None, Some(u)) => u.clone(),
            _ => String::new(),
        };
        self.host_key = s.host_key.clone();
        self.ca_file = s
            .ca_file
            .as_ref()
            .map(|c| {
                c.strip_prefix(&self.top)
                    .unwrap_or(c)
                    .to_string_lossy()
                    .into_owned()
            })
            .unwrap_or_default();
        self.retry = s
            .store_retry
            .map(|d| d.as_secs().to_string())
            .unwrap_or_default();
        self.password = PasswordField::default();
        self.saved_cursor = Some(i);
        self.message = None;
    }

    /// The effect that saves the form's location (and accepted host key, never the password):
    /// in the file its saved location came from, else the first file read, else on the first
    /// drive.
    fn save(&mut self, model: &mut Model) -> Vec<Effect> {
        let (location, store_retry) =
            match self.location().and_then(|l| Ok((l, self.store_retry()?))) {
                Ok(l) => l,
                Err(e) => {
                    self.message = Some(Err(e));
                    return Vec::new();
                }
            };
        let file = self
            .saved_cursor
            .and_then(|i| self.saved.get(i))
            .or(self.saved.first())
            .map(|(f, _)| f.clone())
            .or_else(|| self.drives.first().map(|d| d.join(store::saved::FILE_NAME)));
        let Some(file) = file else {
            self.message = Some(Err(
                "no drive is mounted to save it on: go back (Esc), open a drive, then come back"
                    .into(),
            ));
            return Vec::new();
        };
        let id = model.request();
        self.files_request = Some(id);
        vec![Effect::SaveLocation {
            id,
            file,
            saved: store::saved::Saved {
                host_key: self
                    .host_key
                    .clone()
                    .filter(|_| matches!(location.scheme, Scheme::Sftp | Scheme::Https)),
                ca_file: self.ca_path(),
                store_retry,
                location,
            },
        }]
    }

    pub fn field(&self) -> Field {
        let f = self.fields();
        f.get(self.cursor.min(f.len().saturating_sub(1)))
            .copied()
            .unwrap_or(Field::Kind)
    }

    /// The location the form describes, or why it is not one.
    pub fn location(&self) -> Result<Location, String> {
        let user = match self.scheme() {
            Scheme::Smb | Scheme::Sftp => Some(self.user.as_str()),
            _ => None,
        };
        Location::from_parts(self.scheme(), &self.host, &self.path, user).map_err(|e| e.to_string())
    }

    /// What the worker needs besides the URL.
    fn access(&self) -> Access {
        Access {
            password: (!self.password.is_empty()
                && matches!(self.scheme(), Scheme::Smb | Scheme::Sftp))
            .then(|| self.password.secret()),
            host_key: self.host_key.clone(),
            ca_file: self.ca_path(),
            ..Access::default()
        }
    }

    /// The effect that opens the store (`keep`: Connect) or tests it, when the form is complete.
    fn open(&mut self, model: &mut Model, keep: bool) -> Vec<Effect> {
        match self.location().and_then(|l| Ok((l, self.store_retry()?))) {
            Ok((location, store_retry)) => {
                let id = model.request();
                self.request = Some((id, keep));
                self.message = None;
                vec![Effect::OpenStore {
                    id,
                    location,
                    access: self.access(),
                    keep,
                    store_retry,
                }]
            }
            Err(e) => {
                self.message = Some(Err(e));
                Vec::new()
            }
        }
    }

    /// The host or kind changed: an accepted host key no longer applies.
    fn changed_server(&mut self) {
        self.host_key = None;
        self.message = None;
    }
}

fn edit(text: &mut String, key: Key) -> bool {
    edit_within(text, key, MAX_TEXT, |c| !c.is_control())
}

/// Types `key` into `text` when `allowed` takes it, up to `max` characters; Backspace erases.
/// True when the key was a typing key.
fn edit_within(text: &mut String, key: Key, max: usize, allowed: impl Fn(char) -> bool) -> bool {
    match key {
        Key::Char(c) if allowed(c) => {
            if text.chars().count() < max {
                text.push(c);
            }
            true
        }
        Key::Backspace => {
            text.pop();
            true
        }
        _ => false,
    }
}

/// Keys of the form: ↑↓/Tab/Home/End move between the rows, ←→ (or space) change the kind
/// or the saved location, letters
/// type, Enter on Test or Connect runs it (elsewhere it moves down), Esc closes the form
/// (returns `None`). While the host key is asked, Enter accepts it and Esc refuses it.
pub fn key(model: &mut Model, mut f: NetForm, key: Key) -> (Option<NetForm>, Vec<Effect>) {
    if f.request.is_some() || f.files_request.is_some() {
        // A connection is being tried: it answers within the store's timeouts.
        return (Some(f), Vec::new());
    }
    if let Some(fps) = f.ask_key.take() {
        return match key {
            Key::Enter => {
                f.host_key = fps
                    .iter()
                    .find(|k| k.starts_with("SHA256:"))
                    .or(fps.first())
                    .cloned();
                let keep = f.field() == Field::Connect;
                let effects = f.open(model, keep);
                (Some(f), effects)
            }
            Key::Esc => {
                f.message = Some(Err(
                    "the host key was not accepted: nothing was sent to that server".into(),
                ));
                (Some(f), Vec::new())
            }
            _ => {
                f.ask_key = Some(fps);
                (Some(f), Vec::new())
            }
        };
    }
    let last = f.fields().len() - 1;
    match key {
        Key::Esc => return (None, Vec::new()),
        Key::Up | Key::BackTab => {
            f.cursor = f.cursor.min(last).saturating_sub(1);
            return (Some(f), Vec::new());
        }
        Key::Down | Key::Tab => {
            f.cursor = (f.cursor + 1).min(last);
            return (Some(f), Vec::new());
        }
        Key::Home => {
            f.cursor = 0;
            return (Some(f), Vec::new());
        }
        Key::End => {
            f.cursor = last;
            return (Some(f), Vec::new());
        }
        _ => {}
    }
    let effects = match (f.field(), key) {
        (Field::Kind, Key::Right | Key::Char(' ')) => {
            f.kind = (f.kind + 1) % KINDS.len();
            f.changed_server();
            Vec::new()
        }
        (Field::Kind, Key::Left) => {
            f.kind = (f.kind + KINDS.len() - 1) % KINDS.len();
            f.changed_server();
            Vec::new()
        }
        (Field::Saved, Key::Right | Key::Char(' ')) if !f.saved.is_empty() => {
            let i = f.saved_cursor.map_or(0, |i| (i + 1) % f.saved.len());
            f.choose_saved(i);
            Vec::new()
        }
        (Field::Saved, Key::Left) if !f.saved.is_empty() => {
            let n = f.saved.len();
            let i = f.saved_cursor.map_or(n - 1, |i| (i + n - 1) % n);
            f.choose_saved(i);
            Vec::new()
        }
        (Field::Save, Key::Enter) => f.save(model),
        (Field::Test, Key::Enter) => f.open(model, false),
        (Field::Connect, Key::Enter) => f.open(model, true),
        (_, Key::Enter) => {
            f.cursor = (f.cursor + 1).min(last);
            Vec::new()
        }
        (Field::Host, k) => {
            if edit(&mut f.host, k) {
                f.changed_server();
            }
            Vec::new()
        }
        (Field::Path, k) => {
            edit(&mut f.path, k);
            Vec::new()
        }
        (Field::User, k) => {
            edit(&mut f.user, k);
            Vec::new()
        }
        (Field::Password, k) => {
            f.password.key(k);
            Vec::new()
        }
        (Field::CaFile, k) => {
            if edit_within(&mut f.ca_file, k, MAX_PATH, |c| !c.is_control()) {
                f.message = None;
            }
            Vec::new()
        }
        (Field::Retry, k) => {
            if edit_within(&mut f.retry, k, 4, |c| c.is_ascii_digit()) {
                f.message = None;
            }
            Vec::new()
        }
        _ => Vec::new(),
    };
    (Some(f), effects)
}

/// The store `id` answered. A kept store is remembered (closed when the user is back on the
/// disk list) even when its form is gone; the picker still on the form opens its folder.
pub fn on_opened(
    model: &mut Model,
    id: RequestId,
    result: Result<StoreOpen, StoreRefusal>,
) -> Vec<Effect> {
    if let Ok(open) = &result {
        if open.kept {
            model.stores.push(OpenStore::from(open));
        }
    }
    let relist = model.request();
    let Some(b) = model.screen.browser_mut() else {
        return Vec::new();
    };
    let Some(f) = b.network.as_mut() else {
        return Vec::new();
    };
    if f.request.map(|(r, _)| r) != Some(id) {
        return Vec::new();
    }
    f.request = None;
    match result {
        Ok(open) if open.kept => {
            let exclude = b.exclude.clone();
            *b = super::image_picker::Browser::listing(open.folder.clone(), relist, exclude);
            model.status = Some(format!("{} is connected", open.url));
            vec![Effect::ListImages {
                id: relist,
                dir: open.folder,
            }]
        }
        Ok(open) => {
            f.message = Some(Ok(format!(
                "{} answers and opens{}",
                open.url,
                if open.read_only {
                    " (read-only: images can be restored, verified and browsed from it)"
                } else {
                    ""
                }
            )));
            Vec::new()
        }
        Err(StoreRefusal::HostKey(fps)) => {
            f.ask_key = Some(fps);
            Vec::new()
        }
        Err(StoreRefusal::Failed(e)) => {
            f.message = Some(Err(e));
            Vec::new()
        }
    }
}

/// The stores the pickers opened, closed once the user is back on the disk list.
pub fn release(model: &mut Model) -> Vec<Effect> {
    std::mem::take(&mut model.stores)
        .into_iter()
        .map(|s| {
            log::info!("closing {}: the job ended or was left", s.url);
            Effect::CloseStore { folder: s.folder }
        })
        .collect()
}

/// Why `dir` cannot receive a new image: it is on a read-only (HTTP) store.
pub fn read_only_refusal(model: &Model, dir: &Path) -> Option<String> {
    model
        .stores
        .iter()
        .find(|s| s.read_only && dir.starts_with(&s.folder))
        .map(|s| {
            format!(
                "{} is read-only (http): save images to an SMB, NFS or SFTP location or a drive",
                s.url
            )
        })
}

/// The open store `path` is on, if any (the deepest folder holding it).
fn store_of<'a>(stores: &'a [OpenStore], path: &Path) -> Option<&'a OpenStore> {
    stores
        .iter()
        .filter(|s| path.starts_with(&s.folder))
        .max_by_key(|s| s.folder.components().count())
}

/// How a job reading `path` treats a server that vanishes: the wait the form of the store
/// holding it asked for, else the default ([`disk::netfs::Policy`]).
pub fn read_policy(model: &Model, path: &Path) -> disk::netfs::Policy {
    let default = disk::netfs::Policy::default();
    match store_of(&model.stores, path).and_then(|s| s.store_retry) {
        Some(retry_for) => disk::netfs::Policy {
            retry_for,
            ..default
        },
        None => default,
    }
}

/// `text` with every open store's folder (and what is below it) named by its URL: the screens
/// show `smb://nas/images/pc.lbi`, never the folder the share is mounted on. A folder is
/// replaced only where its name ends (`…/smb-1-1` is not the start of `…/smb-1-10`).
pub fn name_urls(stores: &[OpenStore], text: &str) -> String {
    let mut sorted: Vec<&OpenStore> = stores.iter().collect();
    // The deepest folder first, so a store inside another's folder keeps its own URL.
    sorted.sort_by_key(|s| std::cmp::Reverse(s.folder.as_os_str().len()));
    let mut out = text.to_string();
    for s in sorted {
        let local = s.folder.to_string_lossy();
        if local.len() > 1 && out.contains(local.as_ref()) {
            out = replace_at_ends(&out, &local, s.folder_url.trim_end_matches('/'));
        }
    }
    out
}

/// `text` with `local` replaced by `url` where the path ends there or goes on with `/`.
fn replace_at_ends(text: &str, local: &str, url: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(local) {
        let (before, after) = rest.split_at(i);
        let after = &after[local.len()..];
        let mut next = after.chars();
        let ends = match next.next() {
            None => true,
            Some(c) if c.is_alphanumeric() || c == '-' || c == '_' => false,
            // `.` ends a sentence, or goes on in a longer name.
            Some('.') => !next.next().is_some_and(|c| c.is_alphanumeric()),
            Some(_) => true,
        };
        out.push_str(before);
        out.push_str(if ends { url } else { local });
        rest = after;
    }
    out.push_str(rest);
    out
}

fn path_label(s: Scheme) -> &'static str {
    match s {
        Scheme::Smb => "Share/path",
        Scheme::Nfs => "Export/path",
        Scheme::Sftp => "Path",
        _ => "Image path",
    }
}

/// Draws the form over the picker's area.
pub fn draw(model: &Model, f: &NetForm, frame: &mut Frame, area: Rect) {
    let row = |field: Field, label: &str, value: String| {
        let text = format!(" {label:<12} {value}");
        if f.field() == field {
            Line::styled(text, selected_style())
        } else {
            Line::raw(text)
        }
    };
    let scheme = f.scheme();
    let kinds: Vec<String> = KINDS
        .iter()
        .map(|k| {
            let n = k.name().to_ascii_uppercase();
            if *k == scheme {
                format!("[{n}]")
            } else {
                format!(" {n} ")
            }
        })
        .collect();
    let mut lines = Vec::new();
    if !f.saved.is_empty() {
        let shown = match f.saved_cursor.and_then(|i| f.saved.get(i).map(|s| (i, s))) {
            Some((i, (_, s))) => format!("< {} >  {} of {}", s.location, i + 1, f.saved.len()),
            None => format!("<  >  {} saved (←→ chooses)", f.saved.len()),
        };
        lines.push(row(Field::Saved, "Saved", printable(&shown).into_owned()));
    }
    lines.push(row(Field::Kind, "Kind", kinds.join("")));
    lines.push(row(Field::Host, "Host", printable(&f.host).into_owned()));
    lines.push(row(
        Field::Path,
        path_label(scheme),
        printable(&f.path).into_owned(),
    ));
    if f.fields().contains(&Field::User) {
        let user = if f.user.is_empty() {
            match scheme {
                Scheme::Smb => "(empty: guest)".to_string(),
                _ => "(empty: root)".to_string(),
            }
        } else {
            printable(&f.user).into_owned()
        };
        lines.push(row(Field::User, "User", user));
        lines.push(row(Field::Password, "Password", f.password.masked()));
    }
    if f.fields().contains(&Field::CaFile) {
        let ca = if f.ca_file.is_empty() {
            "(empty: public CAs only; a PEM file on a drive, e.g. sdb1/ca.pem)".to_string()
        } else {
            printable(&f.ca_file).into_owned()
        };
        lines.push(row(Field::CaFile, "CA file", ca));
    }
    if f.fields().contains(&Field::Retry) {
        let default = disk::netfs::Policy::default().retry_for.as_secs();
        let wait = if f.retry.is_empty() {
            format!("{default} s (default) if the server vanishes during a restore")
        } else {
            format!("{} s if the server vanishes during a restore", f.retry)
        };
        lines.push(row(Field::Retry, "Wait", wait));
    }
    lines.push(row(Field::Test, "[ Test ]", String::new()));
    lines.push(row(Field::Connect, "[ Connect ]", String::new()));
    lines.push(row(
        Field::Save,
        "[ Save ]",
        "in lifeboat-locations.toml, without the password".into(),
    ));
    lines.push(Line::raw(""));
    match f.location() {
        Ok(l) => lines.push(Line::raw(format!(" URL: {}", printable(&l.to_string())))),
        Err(_) if f.host.is_empty() => {}
        Err(e) => lines.push(Line::styled(format!(" {}", printable(&e)), bad_style())),
    }
    let tls = scheme == Scheme::Https;
    if let Some(k) = &f.host_key {
        let what = if tls { "Certificate" } else { "Host key" };
        lines.push(Line::raw(format!(" {what} accepted: {}", printable(k))));
    }
    if f.request.is_some() {
        lines.push(Line::raw(format!(
            " Connecting {}",
            super::spinner(model.tick)
        )));
    }
    if let Some(fps) = &f.ask_key {
        let (said, compare) = match (tls, f.ca_path()) {
            (true, Some(_)) => (
                format!(
                    "'s certificate is signed neither by the CA file {} nor by a public CA. \
                     Its fingerprint:",
                    printable(f.ca_file.trim())
                ),
                " Check the CA file, or compare (openssl x509 -noout -fingerprint -sha256).",
            ),
            (true, None) => (
                "'s certificate is signed by no trusted CA. Its fingerprint:".to_string(),
                " Compare (openssl x509 -noout -fingerprint -sha256 on the server).",
            ),
            (false, _) => (
                " is not known yet. Its host key:".to_string(),
                " Compare it with the server's own (ssh-keygen -lf on its host key).",
            ),
        };
        lines.push(Line::styled(
            format!(" The server {}{said}", printable(&f.host)),
            super::warn_style(),
        ));
        for k in fps {
            lines.push(Line::raw(format!("   {}", printable(k))));
        }
        lines.push(Line::raw(compare));
        lines.push(Line::raw(" Enter accepts it, Esc refuses."));
    }
    match &f.message {
        Some(Ok(m)) => lines.push(Line::raw(format!(" {}", printable(m)))),
        Some(Err(e)) => lines.push(Line::styled(format!(" {}", printable(e)), bad_style())),
        None => {}
    }
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" Network location "),
        ),
        area,
    );
}

/// The help line while the form is shown.
pub const HELP: &str = " ↑↓ field  ←→ kind  Enter test/connect  Esc back";
