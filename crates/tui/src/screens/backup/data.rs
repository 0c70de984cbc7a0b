//! What a backup is, as data: its source, the request to plan it, the planned job, its switches,
//! and the names of image files. `jobs` (the worker) and the backup screens share these.

use crate::inventory::Endpoint;
use crate::inventory::{disk_endpoint, part_endpoint, part_rows, whole_fs_row, Candidate};
use crate::model::Model;
use engine::units::human;
use engine::Content;
use std::path::PathBuf;

/// What a backup reads: a whole disk (`part` is `None`; a disk holding a bare file system is
/// imaged as that file system) or one partition of a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSource {
    /// The disk, or the partition, as the lists show it.
    pub endpoint: Endpoint,
    /// The disk that is opened.
    pub disk: PathBuf,
    /// The partition of `disk`, for a partition backup.
    pub part: Option<u32>,
    /// Model and serial of the disk, for the image's manifest and its default name.
    pub model: String,
    pub serial: String,
}

/// A request to check a backup's destination and plan it (reads only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRequest {
    pub source: BackupSource,
    /// The folder that receives the image.
    pub dir: PathBuf,
    /// The image file's name (in `dir`).
    pub name: String,
    /// The passphrase of the source's encrypted volumes, typed at the key prompt (issue 16):
    /// the engine unlocks them read-only and stores only their used blocks' ciphertext.
    pub key: Option<engine::unlock::Key>,
    /// With `key`: store the plaintext file system instead (browsable, restores unencrypted).
    pub decrypted: bool,
}

/// A backup the engine planned (with the default settings), with the request it answers.
#[derive(Debug)]
pub struct BackupJob {
    pub request: BackupRequest,
    /// The engine's plan: what is read, the destination's free space and file system.
    pub plan: engine::job::Plan,
}

impl BackupJob {
    /// The image file that will be created (the plan's: `jobs` plans the request's folder and
    /// name).
    pub fn image(&self) -> PathBuf {
        self.request.dir.join(&self.request.name)
    }

    /// Bytes free for an unprivileged user in the destination folder, when known.
    pub fn free(&self) -> Option<u64> {
        self.plan.destination.map(|d| d.free)
    }

    /// The destination is FAT: volumes must stay below 4 GiB (the engine forces the split).
    pub fn fat(&self) -> bool {
        self.plan.destination.is_some_and(|d| d.fat)
    }

    /// A guess of the image's size: half of what is read (it depends on the data).
    pub fn estimate(&self) -> u64 {
        self.plan.total_bytes / 2
    }

    /// The warning when the estimate exceeds the free space.
    pub fn space_warning(&self) -> Option<String> {
        let free = self.free()?;
        (self.estimate() > free).then(|| {
            format!(
                "the image may not fit: about {} expected (an estimate: half of the {} read), \
                 {} free in {}",
                human(self.estimate()),
                human(self.plan.total_bytes),
                human(free),
                self.request.dir.display()
            )
        })
    }

    /// The source holds an encrypted volume that, without a key, is copied whole: the options
    /// offer the key prompt.
    pub fn locked(&self) -> bool {
        match &self.plan.steps {
            engine::job::Steps::Backup(b) => b.streams.iter().any(|s| {
                matches!(s, engine::backup::StreamPlan::Partition { copy, .. }
                    if copy.mode == engine::pipeline::CopyMode::Whole
                        && copy.fs.as_ref().is_some_and(|f| f.kind.is_encrypted()))
            }),
            _ => false,
        }
    }

    /// The plan's text as shown before it starts.
    pub fn text(&self) -> String {
        self.plan.lines().join("\n")
    }
}

/// The zstd levels offered, fastest first.
pub const BACKUP_LEVELS: [i32; 4] = [1, 3, 9, 19];

/// Volume size when splitting: below FAT32's 4 GiB file limit (the engine's).
pub use engine::job::FAT_SPLIT as SPLIT_4G;

/// The switches of a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSettings {
    /// zstd level, one of [`BACKUP_LEVELS`].
    pub level: i32,
    /// Split into volumes below 4 GiB (forced on FAT).
    pub split_4g: bool,
    /// Verify the image when the backup is done.
    pub verify: bool,
    /// Encrypt the image with this password (typed twice; never shown, `Debug` hides it).
    pub password: Option<crate::widgets::password::PasswordField>,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings {
            level: 3,
            split_4g: false,
            verify: false,
            password: None,
        }
    }
}

impl BackupSettings {
    /// The next level of [`BACKUP_LEVELS`], wrapping.
    pub fn next_level(&mut self) {
        let i = BACKUP_LEVELS
            .iter()
            .position(|l| *l == self.level)
            .map_or(0, |i| (i + 1) % BACKUP_LEVELS.len());
        self.level = BACKUP_LEVELS.get(i).copied().unwrap_or(3);
    }

    /// The volume size, when split.
    pub fn split(&self) -> Option<u64> {
        self.split_4g.then_some(SPLIT_4G)
    }

    /// The options screen's lines, in order (four rows).
    pub fn lines(&self) -> [String; 4] {
        let speed = match self.level {
            1 => "fastest",
            3 => "fast, the default",
            9 => "smaller, slower",
            _ => "smallest, much slower",
        };
        [
            format!("Compression level {} ({speed})", self.level),
            if self.split_4g {
                "Split into volumes below 4 GiB: yes".to_string()
            } else {
                "Split into volumes below 4 GiB: no (one file)".to_string()
            },
            format!(
                "Verify the image when done: {}",
                if self.verify { "yes" } else { "no" }
            ),
            if self.password.is_some() {
                "Encrypt image: yes (password set; AES-256-GCM)".to_string()
            } else {
                "Encrypt image: no".to_string()
            },
        ]
    }
}

/// How a finished backup went, for the result screen: the engine's outcome.
#[derive(Debug)]
pub struct BackupOutcome {
    pub outcome: engine::job::Outcome,
}

impl BackupOutcome {
    /// The backup's report, when the image was written.
    pub fn report(&self) -> Option<&engine::backup::BackupReport> {
        match &self.outcome.step {
            Some(engine::job::StepReport::Backup(r)) if self.outcome.status.is_complete() => {
                Some(r)
            }
            _ => None,
        }
    }
}

/// What a backup may read: disks with a partition table or a bare file system, and partitions.
pub fn backup_sources(model: &Model) -> Vec<(Candidate, BackupSource)> {
    let mut out = Vec::new();
    for entry in &model.disks {
        let d = &entry.device;
        if d.size == 0 {
            continue;
        }
        let src = |endpoint: Endpoint, part: Option<u32>| BackupSource {
            endpoint,
            disk: d.path.clone(),
            part,
            model: d.model.clone().unwrap_or_default(),
            serial: d.serial.clone().unwrap_or_default(),
        };
        let refusal = match &entry.report {
            Err(e) => Some(format!("cannot be read: {e}")),
            Ok(r) => match &r.content {
                Content::Table { .. } | Content::FileSystem { .. } => None,
                Content::Unknown => {
                    Some("holds no partition table or file system Lifeboat knows".to_string())
                }
                Content::Unreadable { error } => {
                    Some(format!("its partition table cannot be read: {error}"))
                }
            },
        };
        let endpoint = disk_endpoint(entry);
        out.push((
            Candidate {
                endpoint: endpoint.clone(),
                refusal,
                note: whole_fs_row(entry)
                    .map(|_| "the whole disk holds one file system".to_string()),
            },
            src(endpoint, None),
        ));
        if entry.report.is_err() {
            continue;
        }
        for p in part_rows(entry) {
            let endpoint = part_endpoint(entry, &p);
            let refusal = p
                .extended
                .then(|| "an extended partition only holds other partitions".to_string());
            let mut endpoint_shown = endpoint.clone();
            endpoint_shown.label = format!("  {}", endpoint.label);
            out.push((
                Candidate {
                    endpoint: endpoint_shown,
                    refusal,
                    note: None,
                },
                src(endpoint, Some(p.number)),
            ));
        }
    }
    out
}

/// The default image name: `<model>-<serial>-<YYYY-MM-DD>.lbi` (with `-pN` for a partition),
/// made of letters, digits, `.`, `_` and `-` only.
pub fn default_image_name(source: &BackupSource, date: &str) -> String {
    let clean = |s: &str| -> String {
        let mut out = String::new();
        for c in s.trim().chars() {
            let c = if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            };
            if !(c == '_' && out.ends_with('_')) {
                out.push(c);
            }
        }
        out.trim_matches(|c| c == '_' || c == '.')
            .chars()
            .take(40)
            .collect()
    };
    let model = match clean(&source.model) {
        m if m.is_empty() => source
            .disk
            .file_name()
            .map(|n| clean(&n.to_string_lossy()))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "disk".to_string()),
        m => m,
    };
    let mut name = model;
    let serial = clean(&source.serial);
    if !serial.is_empty() {
        name.push('-');
        name.push_str(&serial);
    }
    if let Some(n) = source.part {
        name.push_str(&format!("-p{n}"));
    }
    let date = clean(date);
    if !date.is_empty() {
        name.push('-');
        name.push_str(&date);
    }
    name.push_str(".lbi");
    name
}

/// `name` when no entry of `taken` has it (compared without case: FAT and exFAT drives fold it),
/// else the first free `<stem>-2.lbi`, `<stem>-3.lbi`, … (`name` itself after 99 tries: the plan
/// then refuses it and says why).
pub fn free_image_name(name: &str, taken: &[String]) -> String {
    let is_taken = |n: &str| taken.iter().any(|t| t.eq_ignore_ascii_case(n));
    if !is_taken(name) {
        return name.to_string();
    }
    let stem = name.strip_suffix(".lbi").unwrap_or(name);
    (2..=99)
        .map(|i| format!("{stem}-{i}.lbi"))
        .find(|n| !is_taken(n))
        .unwrap_or_else(|| name.to_string())
}

/// The image file name the user typed, checked: a plain name (no folder), not hidden, ending in
/// `.lbi` (added when missing).
pub fn checked_image_name(typed: &str) -> Result<String, String> {
    let name = typed.trim();
    if name.is_empty() {
        return Err("type a file name".to_string());
    }
    if name.contains('/') {
        return Err("a file name cannot contain /".to_string());
    }
    if name.starts_with('.') {
        return Err("a file name cannot start with a dot (it would be hidden)".to_string());
    }
    if name.chars().any(char::is_control) {
        return Err("a file name cannot contain control characters".to_string());
    }
    let mut name = name.to_string();
    if !name.to_ascii_lowercase().ends_with(".lbi") {
        name.push_str(".lbi");
    }
    if name.len() > 200 {
        return Err("the file name is too long".to_string());
    }
    Ok(name)
}
