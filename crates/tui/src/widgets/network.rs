//! "Network location" of the image picker (issue 17): a form at the picker's top folder, next
//! to the local drives — kind (SMB, NFS, SFTP, HTTP), host, share/path, user, password (masked)
//! — with Test (open the store and close it again) and Connect (open it and browse it like a
//! drive). Opening a store is blocking work ([`Effect::OpenStore`], run by a worker through
//! `store::open`); an SFTP server's host key is shown and must be accepted before it is used.
//! The stores a picker opened are closed when the user is back on the disk list.

use super::password::PasswordField;
use super::{bad_style, selected_style};
use crate::model::{Effect, Key, Model, RequestId};
use disk::text::printable;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Frame;
use std::path::PathBuf;
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

/// A row of the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Kind,
    Host,
    Path,
    User,
    Password,
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
    /// HTTP: images can be read there, not written.
    pub read_only: bool,
    /// Kept open (Connect); a test is closed again before it answers.
    pub kept: bool,
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
                    if !model.stores.iter().any(|(f, _, _)| f.starts_with(d)) =>
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
            f.saved.push((file, entry));
            Ok(text)
        }
        Err(e) => Err(e),
    });
}

impl NetForm {
    pub fn scheme(&self) -> Scheme {
        KINDS.get(self.kind).copied().unwrap_or(Scheme::Smb)
    }

    /// The rows for the kind chosen: NFS and HTTP take no user or password.
    pub fn fields(&self) -> Vec<Field> {
        let mut f = Vec::new();
        if !self.saved.is_empty() {
            f.push(Field::Saved);
        }
        f.extend([Field::Kind, Field::Host, Field::Path]);
        if matches!(self.scheme(), Scheme::Smb | Scheme::Sftp) {
            f.extend([Field::User, Field::Password]);
        }
        f.extend([Field::Test, Field::Connect, Field::Save]);
        f
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
        self.password = PasswordField::default();
        self.saved_cursor = Some(i);
        self.message = None;
    }

    /// The effect that saves the form's location (and accepted host key, never the password):
    /// in the file its saved location came from, else the first file read, else on the first
    /// drive.
    fn save(&mut self, model: &mut Model) -> Vec<Effect> {
        let location = match self.location() {
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
            ..Access::default()
        }
    }

    /// The effect that opens the store (`keep`: Connect) or tests it, when the form is complete.
    fn open(&mut self, model: &mut Model, keep: bool) -> Vec<Effect> {
        match self.location() {
            Ok(location) => {
                let id = model.request();
                self.request = Some((id, keep));
                self.message = None;
                vec![Effect::OpenStore {
                    id,
                    location,
                    access: self.access(),
                    keep,
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
    match key {
        Key::Char(c) if !c.is_control() => {
            if text.chars().count() < MAX_TEXT {
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
            model
                .stores
                .push((open.folder.clone(), open.read_only, open.url.clone()));
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
        .map(|(folder, _, url)| {
            log::info!("closing {url}: the job ended or was left");
            Effect::CloseStore { folder }
        })
        .collect()
}

/// Why `dir` cannot receive a new image: it is on a read-only (HTTP) store.
pub fn read_only_refusal(model: &Model, dir: &std::path::Path) -> Option<String> {
    model
        .stores
        .iter()
        .find(|(folder, ro, _)| *ro && dir.starts_with(folder))
        .map(|(_, _, url)| {
            format!(
                "{url} is read-only (http): save images to an SMB, NFS or SFTP location or a drive"
            )
        })
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
        let (said, compare) = if tls {
            (
                "'s certificate is signed by no trusted CA. Its fingerprint:",
                " Compare (openssl x509 -noout -fingerprint -sha256 on the server).",
            )
        } else {
            (
                " is not known yet. Its host key:",
                " Compare it with the server's own (ssh-keygen -lf on its host key).",
            )
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
