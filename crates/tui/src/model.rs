//! The state of the UI ([`Model`]), what changes it ([`Msg`]) and what it asks the runtime to do
//! ([`Effect`]). Everything here is plain data: no terminal, no threads, no I/O.

use crate::confirm::Confirmed;
use crate::logger::LogRing;
use disk::BlockDevice;
use engine::clone::{CloneOptions, ClonePlan, CopyPlan, JobReport};
use engine::rescue::ReadPolicy;
use engine::units::human;
use engine::{Content, DiskReport, Progress};
use fs::FsInfo;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// A key, decoded from the terminal so that `update` does not depend on crossterm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Home,
    End,
    Enter,
    Esc,
    Tab,
    BackTab,
    Backspace,
    Char(char),
}

/// One disk as the main screen shows it: what the kernel says and what the disk holds.
#[derive(Debug, Clone)]
pub struct DiskEntry {
    pub device: BlockDevice,
    /// The partition table and file systems, or why they could not be read.
    pub report: Result<DiskReport, String>,
}

/// The SMART overall health of a disk, from `smartctl -H -j`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmartHealth {
    Passed,
    Failed,
    /// The disk does not report SMART health (virtual disks, some USB bridges), with why.
    Unavailable(String),
}

/// The jobs that write to a disk. [`Action::WIRED`] are the ones that start from a disk list;
/// the restores start from an image (their first steps are [`Screen::Restore`]). Verifying an image writes nothing
/// and has no target: it has its own screen ([`Screen::Verify`]); a backup writes only a new
/// file, never a disk, and has its own screens too ([`Screen::Backup`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Whole disk → whole disk.
    CloneDisk,
    /// Partition → partition.
    CopyPartition,
    /// A whole-disk image → a disk (table written last).
    RestoreDisk,
    /// One partition of an image → an existing partition.
    RestorePartition,
}

impl Action {
    /// The jobs shown in the menu.
    pub const WIRED: &'static [Action] = &[Action::CloneDisk, Action::CopyPartition];

    pub fn title(self) -> &'static str {
        match self {
            Action::CloneDisk => "Clone disk",
            Action::CopyPartition => "Copy partition",
            Action::RestoreDisk => "Restore disk",
            Action::RestorePartition => "Restore partition",
        }
    }

    /// What the user picks for this job: whole disks or partitions.
    pub fn picks_partitions(self) -> bool {
        matches!(self, Action::CopyPartition | Action::RestorePartition)
    }

    /// True for the jobs whose source is an image file.
    pub fn is_restore(self) -> bool {
        matches!(self, Action::RestoreDisk | Action::RestorePartition)
    }

    /// The options offered on the options screen, in order.
    pub fn options(self) -> &'static [JobOption] {
        match self {
            Action::CloneDisk => &[
                JobOption::GrowLast,
                JobOption::NewIds,
                JobOption::Verify,
                JobOption::Strict,
            ],
            Action::CopyPartition => &[JobOption::Verify, JobOption::Strict],
            Action::RestoreDisk => &[
                JobOption::GrowLast,
                JobOption::NewIds,
                JobOption::Discard,
                JobOption::Verify,
            ],
            Action::RestorePartition => &[JobOption::Discard, JobOption::Verify],
        }
    }
}

/// One switch on the options screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOption {
    GrowLast,
    NewIds,
    Verify,
    Strict,
    Discard,
}

impl JobOption {
    pub fn title(self) -> &'static str {
        match self {
            JobOption::GrowLast => "Grow the last partition to fill the target",
            JobOption::NewIds => "New disk and partition IDs (both disks stay attached)",
            JobOption::Verify => "Verify: read back and compare after writing",
            JobOption::Strict => "Stop at the first unreadable sector (else skip it)",
            JobOption::Discard => "Discard (TRIM) the blocks no file system uses",
        }
    }
}

/// The switches of a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobOptions {
    pub grow_last: bool,
    pub new_ids: bool,
    pub verify: bool,
    pub strict: bool,
    pub discard: bool,
}

impl JobOptions {
    pub fn get(&self, o: JobOption) -> bool {
        match o {
            JobOption::GrowLast => self.grow_last,
            JobOption::NewIds => self.new_ids,
            JobOption::Verify => self.verify,
            JobOption::Strict => self.strict,
            JobOption::Discard => self.discard,
        }
    }

    pub fn toggle(&mut self, o: JobOption) {
        let flag = match o {
            JobOption::GrowLast => &mut self.grow_last,
            JobOption::NewIds => &mut self.new_ids,
            JobOption::Verify => &mut self.verify,
            JobOption::Strict => &mut self.strict,
            JobOption::Discard => &mut self.discard,
        };
        *flag = !*flag;
    }

    /// The restore engine's options.
    pub fn restore(&self) -> engine::restore::RestoreOptions {
        engine::restore::RestoreOptions {
            grow_last: self.grow_last,
            new_ids: self.new_ids,
            verify: self.verify,
            discard: self.discard,
            threads: 0,
        }
    }

    /// The engine's options.
    pub fn engine(&self) -> CloneOptions {
        CloneOptions {
            grow_last: self.grow_last,
            new_ids: self.new_ids,
            verify: self.verify,
            read: ReadPolicy {
                strict: self.strict,
            },
        }
    }
}

/// A disk or partition a job reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The node that is opened: the disk, or the partition's own node.
    pub path: PathBuf,
    /// Where the object starts in `path` (0 unless it is a partition the kernel has no node for,
    /// which is then a window on the disk).
    pub offset: u64,
    /// Its size in bytes.
    pub len: u64,
    /// The disk it is on.
    pub disk: PathBuf,
    /// The partition number, for partitions.
    pub number: Option<u32>,
    /// One line for lists: name, size, model or file system.
    pub label: String,
    /// Model, serial and size of the disk (with the partition), as the confirmation names it.
    pub identity: String,
    /// The partition table of a disk source (`gpt`/`mbr`), for explanations.
    pub table: Option<String>,
    /// Bytes a target needs to hold a disk source's partitions (its table included).
    pub needs: u64,
}

/// One entry of a source or target list: the object, and why it may not be picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub endpoint: Endpoint,
    /// Why it cannot be used (shown, and Enter is refused).
    pub refusal: Option<String>,
    /// Something worth knowing (a larger or smaller target).
    pub note: Option<String>,
}

/// A plan built by a worker, ready to show and (after confirmation) execute.
#[derive(Debug)]
pub struct PlannedJob {
    pub action: Action,
    pub source: Endpoint,
    pub target: Endpoint,
    pub options: JobOptions,
    /// What the confirmation names, from the safety check.
    pub identity: String,
    /// The plan's text.
    pub text: String,
    pub kind: PlannedKind,
}

/// The engine's plan.
#[derive(Debug)]
pub enum PlannedKind {
    Clone(Box<ClonePlan>),
    Copy(Box<CopyPlan>),
    /// A restore: the source endpoint is the image file (its `number` the partition restored).
    Restore(Box<engine::restore::RestorePlan>),
}

/// Why a job did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    pub message: String,
    pub cancelled: bool,
    /// The engine's own words on the target's state, when it says (cancellation).
    pub state: Option<String>,
}

/// A finished job.
#[derive(Debug, Clone)]
pub struct Finished {
    pub result: Result<JobReport, JobFailure>,
    /// Extra lines: partition-table re-read, file system grown.
    pub notes: Vec<String>,
}

/// What the result screen shows.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub finished: Finished,
    /// The state the target is in after a failure, in words.
    pub target_state: Option<String>,
}

/// A step of a job's wizard.
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
    /// A worker is checking the target and building the plan.
    Planning,
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
        progress: Option<Progress>,
        ask_cancel: bool,
        cancelling: bool,
    },
    Done {
        plan: Arc<PlannedJob>,
        outcome: Outcome,
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
                "unknown"
            } else {
                &self.fs
            }
        );
        if !self.label.is_empty() {
            line.push_str(&format!(" \"{}\"", self.label));
        }
        line
    }
}

/// What can be restored from an image: the whole disk, or one of its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreChoice {
    Disk,
    Partition(ImagePart),
}

/// The restore choices an image offers, each with why it cannot be used, if it cannot.
pub fn restore_choices(s: &ImageSummary) -> Vec<(RestoreChoice, Option<String>)> {
    let mut out = Vec::new();
    if s.whole_disk {
        out.push((RestoreChoice::Disk, None));
    }
    for p in &s.parts {
        let refusal = (!p.restorable).then(|| {
            format!(
                "partition {} was not imaged (only its header or nothing was stored)",
                p.number
            )
        });
        out.push((RestoreChoice::Partition(p.clone()), refusal));
    }
    out
}

/// The endpoint a restore reads: the image, as a disk (`choice` Disk) or one of its partitions.
pub fn image_endpoint(image: &ChosenImage, choice: &RestoreChoice) -> Endpoint {
    let s = &image.summary;
    let name = image
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| image.path.display().to_string());
    let mut made_from = if s.model == "unknown" {
        "a disk of unknown model".to_string()
    } else {
        s.model.clone()
    };
    if s.serial != "unknown" {
        made_from.push_str(&format!(" serial {}", s.serial));
    }
    made_from.push_str(&format!(", {}", human(s.source_size)));
    match choice {
        RestoreChoice::Disk => Endpoint {
            path: image.path.clone(),
            offset: 0,
            len: s.source_size,
            disk: image.path.clone(),
            number: None,
            label: format!("{name} ({made_from})"),
            identity: format!("image {name} of {made_from}"),
            table: s.table.clone(),
            needs: s.needs,
        },
        RestoreChoice::Partition(p) => Endpoint {
            path: image.path.clone(),
            offset: 0,
            len: p.size,
            disk: image.path.clone(),
            number: Some(p.number),
            label: format!("{name} partition {}", p.line()),
            identity: format!("partition {} in image {name} of {made_from}", p.number),
            table: None,
            needs: p.size,
        },
    }
}

/// The steps of a restore before the target: the image, then what to restore from it. The
/// later steps are the shared [`Wizard`] ([`Action::RestoreDisk`], [`Action::RestorePartition`]).
#[derive(Debug)]
pub enum RestoreScreen {
    PickImage(Browser),
    PickWhat { image: ChosenImage, cursor: usize },
}

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
    BrowsePartition,
    VerifyImage,
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
            MenuItem::BrowsePartition,
            MenuItem::VerifyImage,
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
            MenuItem::BrowsePartition => 'x',
            MenuItem::VerifyImage => 'i',
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
            MenuItem::BrowsePartition => "Browse files of the selected partition",
            MenuItem::VerifyImage => "Verify an image",
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

/// Which screen is shown.
#[derive(Debug)]
pub enum Screen {
    Main,
    Menu {
        cursor: usize,
    },
    Wizard(Box<Wizard>),
    Log {
        scroll: usize,
    },
    Ask(Ask),
    /// Verify an image: pick it, check every chunk, show what is bad.
    Verify(Box<VerifyScreen>),
    /// Back up a disk or partition into a new image file.
    Backup(Box<BackupScreen>),
    /// Restore: pick the image and what to restore (then [`Screen::Wizard`]).
    Restore(Box<RestoreScreen>),
    /// Browse the files of an image or a live partition and extract some.
    Files(Box<FilesScreen>),
}

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

/// A folder of the image browser, below [`Model::image_root`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Browser {
    pub dir: PathBuf,
    /// `None` while the listing is being read.
    pub entries: Option<Result<Vec<BrowseEntry>, String>>,
    pub cursor: usize,
    /// Why Enter was refused on the selected entry.
    pub refused: Option<String>,
}

/// The steps of verifying an image.
#[derive(Debug)]
pub enum VerifyScreen {
    Pick(Browser),
    Running {
        image: PathBuf,
        progress: Option<Progress>,
        ask_cancel: bool,
        cancelling: bool,
    },
    Done {
        image: PathBuf,
        /// The report, or why verify could not run (cannot open, cancelled).
        result: Result<image::VerifyReport, String>,
        /// The first line of the list shown.
        scroll: usize,
    },
}

/// All state of the UI.
#[derive(Debug)]
pub struct Model {
    pub disks: Vec<DiskEntry>,
    /// Why the last discovery failed, when it did.
    pub scan_error: Option<String>,
    /// A rescan is under way.
    pub scanning: bool,
    /// Loop and RAM devices are listed too.
    pub show_virtual: bool,
    /// `smartctl` exists: the SMART column is shown.
    pub smart_tool: bool,
    pub smart: BTreeMap<PathBuf, SmartHealth>,
    /// The selected row of the disk tree.
    pub cursor: usize,
    pub screen: Screen,
    /// A one-line message for the user (mount done, a refusal).
    pub status: Option<String>,
    /// The in-memory log the Log screen shows.
    pub log: LogRing,
    /// Where the log file is, when there is one.
    pub log_path: Option<PathBuf>,
    /// Counts ticks, for the spinner.
    pub tick: u64,
    /// The top folder of the image browser: where Lifeboat mounts drives.
    pub image_root: PathBuf,
    /// How the machine booted (shown on the main screen), when known.
    pub boot_mode: Option<crate::system::BootMode>,
}

impl Model {
    /// An empty model; the first [`Effect::Rescan`] fills it.
    pub fn new(
        show_virtual: bool,
        smart_tool: bool,
        log: LogRing,
        log_path: Option<PathBuf>,
    ) -> Self {
        Model {
            disks: Vec::new(),
            scan_error: None,
            scanning: false,
            show_virtual,
            smart_tool,
            smart: BTreeMap::new(),
            cursor: 0,
            screen: Screen::Main,
            status: None,
            log,
            log_path,
            tick: 0,
            image_root: PathBuf::from(crate::update::MOUNT_BASE),
            boot_mode: None,
        }
    }

    /// True while a job writes to a disk: quitting, rebooting and the shell are refused.
    pub fn job_running(&self) -> bool {
        match &self.screen {
            Screen::Wizard(w) => matches!(w.step, Step::Running { .. }),
            Screen::Verify(v) => matches!(**v, VerifyScreen::Running { .. }),
            Screen::Backup(b) => matches!(**b, BackupScreen::Running { .. }),
            Screen::Files(f) => matches!(**f, FilesScreen::Running { .. }),
            _ => false,
        }
    }

    /// The rows of the disk tree.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        for (d, entry) in self.disks.iter().enumerate() {
            rows.push(Row::Disk(d));
            for p in 0..part_rows(entry).len() {
                rows.push(Row::Part(d, p));
            }
        }
        rows
    }

    /// The selected row, if there are any.
    pub fn selected(&self) -> Option<Row> {
        let rows = self.rows();
        rows.get(self.cursor.min(rows.len().saturating_sub(1)))
            .copied()
    }
}

/// A row of the disk tree: a disk (index into `Model::disks`) or one of its partitions (index
/// into [`part_rows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    Disk(usize),
    Part(usize, usize),
}

/// A partition as the UI shows it: the partition table's view joined with the kernel's (device
/// node, mount state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRow {
    pub number: u32,
    /// The kernel's node, when the kernel knows the partition.
    pub node: Option<PathBuf>,
    /// Kernel name (`sda1`), or `<disk> #N` when the kernel has no node.
    pub name: String,
    pub start: u64,
    pub size: u64,
    pub type_name: String,
    /// The GPT partition name.
    pub part_name: String,
    pub fs: Option<FsInfo>,
    /// Bytes its file system uses, when known.
    pub used: Option<u64>,
    pub extended: bool,
    pub mount_points: Vec<PathBuf>,
    pub swap: bool,
    pub holders: Vec<String>,
}

impl PartRow {
    /// Why this partition must not be written, or `None`.
    pub fn in_use(&self) -> Option<String> {
        let mut reasons: Vec<String> = self
            .mount_points
            .iter()
            .map(|m| format!("{} is mounted at {}", self.name, m.display()))
            .collect();
        if self.swap {
            reasons.push(format!("{} is in use as swap", self.name));
        }
        reasons.extend(
            self.holders
                .iter()
                .map(|h| format!("{} is held by {h}", self.name)),
        );
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// `ext4 "root"`, `vfat`, or `-`.
    pub fn fs_text(&self) -> String {
        match &self.fs {
            Some(f) => match &f.label {
                Some(l) => format!("{} \"{l}\"", f.kind.name()),
                None => f.kind.name().to_string(),
            },
            None if self.extended => "extended".to_string(),
            None => "-".to_string(),
        }
    }
}

/// The partitions of a disk: from its partition table when it could be read (with the kernel's
/// node and mount state matched by number), else the kernel's list.
pub fn part_rows(entry: &DiskEntry) -> Vec<PartRow> {
    let kernel = &entry.device.partitions;
    match &entry.report {
        Ok(report) if !report.partitions().is_empty() => report
            .partitions()
            .iter()
            .map(|p| {
                let k = kernel.iter().find(|k| k.number == Some(p.number));
                PartRow {
                    number: p.number,
                    node: k.map(|k| k.path.clone()),
                    name: k
                        .map(|k| k.name.clone())
                        .unwrap_or_else(|| format!("{} #{}", entry.device.name, p.number)),
                    start: p.start,
                    size: p.size,
                    type_name: p.type_name.clone(),
                    part_name: p.name.clone(),
                    fs: p.fs.clone(),
                    used: p.used,
                    extended: p.extended,
                    mount_points: k.map(|k| k.mount_points.clone()).unwrap_or_default(),
                    swap: k.is_some_and(|k| k.swap),
                    holders: k.map(|k| k.holders.clone()).unwrap_or_default(),
                }
            })
            .collect(),
        _ => kernel
            .iter()
            .map(|k| PartRow {
                number: k.number.unwrap_or(0),
                node: Some(k.path.clone()),
                name: k.name.clone(),
                start: k.start.unwrap_or(0),
                size: k.size.unwrap_or(0),
                type_name: String::new(),
                part_name: String::new(),
                fs: None,
                used: None,
                extended: false,
                mount_points: k.mount_points.clone(),
                swap: k.swap,
                holders: k.holders.clone(),
            })
            .collect(),
    }
}

/// A disk that holds a bare file system (a "superfloppy" stick) as a partition-like row, so it
/// can be mounted and copied like a partition. `None` for other disks.
pub fn whole_fs_row(entry: &DiskEntry) -> Option<PartRow> {
    let Ok(report) = &entry.report else {
        return None;
    };
    let Content::FileSystem { fs } = &report.content else {
        return None;
    };
    let d = &entry.device;
    Some(PartRow {
        number: 0,
        node: Some(d.path.clone()),
        name: d.name.clone(),
        start: 0,
        size: d.size,
        type_name: String::new(),
        part_name: String::new(),
        fs: Some(fs.clone()),
        used: None,
        extended: false,
        mount_points: d.mount_points.clone(),
        swap: d.swap,
        holders: d.holders.clone(),
    })
}

/// `gpt`, `mbr`, `fs`, `none` or `?` for a disk.
pub fn table_text(entry: &DiskEntry) -> String {
    match &entry.report {
        Ok(r) => match &r.content {
            Content::Table { table, .. } => table.clone(),
            Content::FileSystem { fs } => fs.kind.name().to_string(),
            Content::Unknown => "none".to_string(),
            Content::Unreadable { .. } => "bad".to_string(),
        },
        Err(_) => "?".to_string(),
    }
}

/// Bytes a clone target needs to hold this disk's partitions and its table.
pub fn clone_needs(entry: &DiskEntry) -> u64 {
    let Ok(report) = &entry.report else {
        return entry.device.size;
    };
    match &report.content {
        Content::Table { layout, .. } => {
            let ss = u64::from(layout.sector_size);
            let tail = match &layout.kind {
                layout::TableKind::Gpt(g) => {
                    g.entries_sectors(layout.sector_size).saturating_add(1) * ss
                }
                _ => 0,
            };
            layout.used_end().saturating_add(tail).max(ss)
        }
        _ => entry.device.size,
    }
}

/// What to call a disk in lists: its model, or the file behind a loop device.
pub fn model_name(d: &BlockDevice) -> String {
    match (&d.model, &d.kind) {
        (Some(m), _) => m.clone(),
        (None, disk::DeviceKind::Loop { backing_file }) => match backing_file.file_name() {
            Some(f) => format!("file {}", f.to_string_lossy()),
            None => format!("file {}", backing_file.display()),
        },
        (None, _) => "unknown model".to_string(),
    }
}

/// The endpoint for a whole disk.
pub fn disk_endpoint(entry: &DiskEntry) -> Endpoint {
    let d = &entry.device;
    let model = model_name(d);
    let table = match &entry.report {
        Ok(r) => match &r.content {
            Content::Table { table, .. } => Some(table.clone()),
            _ => None,
        },
        Err(_) => None,
    };
    Endpoint {
        path: d.path.clone(),
        offset: 0,
        len: d.size,
        disk: d.path.clone(),
        number: None,
        label: format!("{:<8} {:>10}  {model}", d.name, human(d.size)),
        identity: d.identity(),
        table,
        needs: clone_needs(entry),
    }
}

/// The endpoint for a partition of a disk.
pub fn part_endpoint(entry: &DiskEntry, p: &PartRow) -> Endpoint {
    let (path, offset) = match &p.node {
        Some(node) => (node.clone(), 0),
        None => (entry.device.path.clone(), p.start),
    };
    Endpoint {
        path,
        offset,
        len: p.size,
        disk: entry.device.path.clone(),
        number: Some(p.number),
        label: format!("{:<10} {:>10}  {}", p.name, human(p.size), p.fs_text()),
        identity: format!("partition {} of {}", p.name, entry.device.identity()),
        table: None,
        needs: p.size,
    }
}

/// What a step of the wizard may pick from.
pub fn sources(model: &Model, action: Action) -> Vec<Candidate> {
    let mut out = Vec::new();
    for entry in &model.disks {
        if entry.device.size == 0 {
            continue;
        }
        match action {
            // Their source is an image, picked on the restore screens.
            Action::RestoreDisk | Action::RestorePartition => {}
            Action::CloneDisk => {
                let refusal = match &entry.report {
                    Err(e) => Some(format!("cannot be read: {e}")),
                    Ok(r) => match &r.content {
                        Content::Table { .. } => None,
                        Content::FileSystem { fs } => Some(format!(
                            "holds a bare {} file system, no partition table: use Copy partition",
                            fs.kind.name()
                        )),
                        Content::Unknown => {
                            Some("holds no partition table Lifeboat knows".to_string())
                        }
                        Content::Unreadable { error } => {
                            Some(format!("its partition table cannot be read: {error}"))
                        }
                    },
                };
                out.push(Candidate {
                    endpoint: disk_endpoint(entry),
                    refusal,
                    note: entry
                        .device
                        .is_boot_medium
                        .then(|| "the boot medium: it can be read, not written".to_string()),
                });
            }
            Action::CopyPartition => {
                if let Some(row) = whole_fs_row(entry) {
                    let mut endpoint = part_endpoint(entry, &row);
                    endpoint.number = None;
                    endpoint.identity = entry.device.identity();
                    out.push(Candidate {
                        endpoint,
                        refusal: None,
                        note: Some("the whole disk holds one file system".to_string()),
                    });
                }
                for p in part_rows(entry) {
                    let refusal = (p.extended)
                        .then(|| "an extended partition only holds other partitions".to_string());
                    out.push(Candidate {
                        endpoint: part_endpoint(entry, &p),
                        refusal,
                        note: None,
                    });
                }
            }
        }
    }
    out
}

/// What the target step may pick from, each with the reason it is refused, if it is.
pub fn targets(model: &Model, action: Action, source: &Endpoint) -> Vec<Candidate> {
    let mut out = Vec::new();
    for entry in &model.disks {
        let d = &entry.device;
        if d.size == 0 {
            continue;
        }
        let protected = if d.is_boot_medium {
            Some(format!(
                "{} holds the running system or the medium Lifeboat booted from",
                d.name
            ))
        } else if d.read_only == Some(true) {
            Some(format!("{} is write-protected", d.name))
        } else {
            None
        };
        // A restore must not write the drive its image is read from.
        let home = if action.is_restore() {
            image_home(entry, &source.path)
        } else {
            None
        };
        match action {
            Action::CloneDisk | Action::RestoreDisk => {
                let endpoint = disk_endpoint(entry);
                let (refusal, note) = if endpoint.path == source.path {
                    (Some("it is the source".to_string()), None)
                } else if let Some(h) = home {
                    (Some(h), None)
                } else if let Some(p) = protected {
                    (Some(p), None)
                } else if let Some(reason) = d.in_use() {
                    (Some(reason), None)
                } else {
                    size_verdict(source, endpoint.len, true)
                };
                out.push(Candidate {
                    endpoint,
                    refusal,
                    note,
                });
            }
            Action::CopyPartition | Action::RestorePartition => {
                for p in part_rows(entry) {
                    let endpoint = part_endpoint(entry, &p);
                    let (refusal, note) = if endpoint.path == source.path
                        && endpoint.offset == source.offset
                    {
                        (Some("it is the source".to_string()), None)
                    } else if let Some(h) = home.clone() {
                        (Some(h), None)
                    } else if let Some(r) = protected.clone() {
                        (Some(r), None)
                    } else if p.extended {
                        (
                            Some("an extended partition only holds other partitions".to_string()),
                            None,
                        )
                    } else if let Some(reason) = p.in_use() {
                        (Some(reason), None)
                    } else if p.node.is_none() && d.in_use().is_some() {
                        // Without its own node the partition is written through the disk, and
                        // the kernel refuses an exclusive open of a disk that is in use.
                        (d.in_use(), None)
                    } else {
                        size_verdict(source, endpoint.len, false)
                    };
                    out.push(Candidate {
                        endpoint,
                        refusal,
                        note,
                    });
                }
            }
        }
    }
    out
}

/// Why a restore may not write `entry`: the image file lies on one of its mounted file systems.
pub fn image_home(entry: &DiskEntry, image: &std::path::Path) -> Option<String> {
    let d = &entry.device;
    let mounts = d.mount_points.iter().map(|m| (&d.name, m)).chain(
        d.partitions
            .iter()
            .flat_map(|p| p.mount_points.iter().map(move |m| (&p.name, m))),
    );
    // The deepest mount point holding the image is the one it lives on.
    let (name, m) = mounts
        .filter(|(_, m)| m.as_os_str() != "/" && image.starts_with(m))
        .max_by_key(|(_, m)| m.components().count())?;
    Some(format!(
        "the image is read from this drive ({name}, mounted at {}): it cannot be written \
         while the image is read",
        m.display()
    ))
}

/// Refusal or note for a target of `have` bytes: too small (with the shortfall), larger (the
/// grow option), smaller but fitting.
fn size_verdict(source: &Endpoint, have: u64, disk: bool) -> (Option<String>, Option<String>) {
    let need = source.needs;
    if have < need {
        let what = if disk {
            "the source's partitions need"
        } else {
            "the source partition needs"
        };
        return (
            Some(format!(
                "too small: {what} {}, it has {} ({} short)",
                human(need),
                human(have),
                human(need - have)
            )),
            None,
        );
    }
    let note = match have.cmp(&source.len) {
        std::cmp::Ordering::Greater if disk => Some(format!(
            "{} larger than the source: the last partition can grow (next screen)",
            human(have - source.len)
        )),
        std::cmp::Ordering::Greater => Some(format!(
            "{} larger than the source: the file system keeps its size",
            human(have - source.len)
        )),
        std::cmp::Ordering::Less => Some(format!(
            "{} smaller than the source, but the partitions fit",
            human(source.len - have)
        )),
        std::cmp::Ordering::Equal => None,
    };
    (None, note)
}

/// Messages: keys, ticks, and results that workers send back.
#[derive(Debug)]
pub enum Msg {
    Key(Key),
    /// About four times a second.
    Tick,
    /// The `/sys/block` listing changed (a disk was plugged in or removed).
    BlockListChanged,
    Scanned(Result<Vec<DiskEntry>, String>),
    Smart {
        path: PathBuf,
        health: SmartHealth,
    },
    Planned(Result<Arc<PlannedJob>, String>),
    Progress(Progress),
    JobDone(Finished),
    /// A mount, unmount or shell finished: what to tell the user.
    SystemDone(Result<String, String>),
    /// A folder of the image browser was read.
    Listed {
        dir: PathBuf,
        result: Result<Vec<BrowseEntry>, String>,
    },
    /// Verify finished: the report, or why it could not run.
    Verified(Result<image::VerifyReport, String>),
    /// A backup was checked and planned, or why it cannot be made.
    BackupPlanned(Result<Arc<BackupJob>, String>),
    /// A backup finished: its report, or why it did not complete.
    BackupDone(Result<engine::backup::BackupReport, JobFailure>),
    /// A folder of the file browser was read, or a search finished.
    FilesListed {
        source: FileSource,
        dir: String,
        listing: Listing,
        /// The file system's name and label.
        fs: Option<String>,
        result: Result<Vec<FileItem>, String>,
    },
    /// The destination of an extract was checked: the names that exist there.
    ExtractChecked {
        request: ExtractRequest,
        existing: Vec<PathBuf>,
    },
    /// An extract finished (failures of single files are in the report).
    Extracted(Result<ExtractReport, String>),
}

/// A request to check a target and plan a job (reads only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRequest {
    pub action: Action,
    pub source: Endpoint,
    pub target: Endpoint,
    pub options: JobOptions,
    /// Discover loop and RAM devices for the safety check too.
    pub include_virtual: bool,
}

/// What `update` asks the runtime to do.
#[derive(Debug)]
pub enum Effect {
    /// Discover disks and inspect each.
    Rescan {
        include_virtual: bool,
    },
    /// Ask `smartctl` for a disk's health.
    Smart(PathBuf),
    /// Run the safety check and build the plan.
    Plan(Box<PlanRequest>),
    /// Execute a confirmed plan: the only effect that writes to a disk, and only the
    /// confirmation screen can make a [`Confirmed`].
    Start(Confirmed),
    /// Ask the running job to stop.
    CancelJob,
    /// Read a folder for the image browser (folders and `.lbi` files with their summaries).
    ListImages(PathBuf),
    /// Verify an image (reads only).
    VerifyImage(PathBuf),
    /// Check the destination of a backup and plan it (reads only).
    PlanBackup(Box<BackupRequest>),
    /// Make the backup: reads the source, creates a new image file (never overwrites one).
    StartBackup {
        job: Arc<BackupJob>,
        settings: BackupSettings,
    },
    /// Read a folder of a file system (or search below it by name). Reads only.
    ListFiles {
        source: FileSource,
        dir: String,
        listing: Listing,
    },
    /// Look for the names an extract would create in its destination. Reads only.
    CheckExtract(ExtractRequest),
    /// Copy files out of a file system into a folder: creates files, writes no disk directly.
    Extract(ExtractRequest),
    /// Mount a partition under `/run/lifeboat/mnt/<name>`.
    Mount {
        node: PathBuf,
        name: String,
        fs: fs::FsKind,
    },
    Unmount {
        mount_point: PathBuf,
    },
    /// Leave the full-screen UI, run a shell, come back.
    Shell,
    Reboot,
    PowerOff,
    Quit,
}

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
    /// Discover loop and RAM devices for the destination check too.
    pub include_virtual: bool,
}

/// A planned backup, with what the destination offers.
#[derive(Debug)]
pub struct BackupJob {
    pub request: BackupRequest,
    pub plan: engine::backup::BackupPlan,
    /// Bytes free for an unprivileged user in the destination folder, when known.
    pub free: Option<u64>,
    /// The destination is FAT: volumes must stay below 4 GiB.
    pub fat: bool,
}

impl BackupJob {
    /// The image file that will be created.
    pub fn image(&self) -> &std::path::Path {
        &self.plan.image
    }

    /// A guess of the image's size: half of what is read (it depends on the data).
    pub fn estimate(&self) -> u64 {
        self.plan.total_bytes() / 2
    }

    /// The warning when the estimate exceeds the free space.
    pub fn space_warning(&self) -> Option<String> {
        let free = self.free?;
        (self.estimate() > free).then(|| {
            format!(
                "the image may not fit: about {} expected (an estimate: half of the {} read), \
                 {} free in {}",
                human(self.estimate()),
                human(self.plan.total_bytes()),
                human(free),
                self.request.dir.display()
            )
        })
    }
}

/// The zstd levels offered, fastest first.
pub const BACKUP_LEVELS: [i32; 4] = [1, 3, 9, 19];

/// Volume size when splitting: below FAT32's 4 GiB file limit.
pub const SPLIT_4G: u64 = (4 << 30) - (1 << 20);

/// The switches of a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupSettings {
    /// zstd level, one of [`BACKUP_LEVELS`].
    pub level: i32,
    /// Split into volumes below 4 GiB (forced on FAT).
    pub split_4g: bool,
    /// Verify the image when the backup is done.
    pub verify: bool,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings {
            level: 3,
            split_4g: false,
            verify: false,
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

    /// The options screen's lines, in order (three rows).
    pub fn lines(&self) -> [String; 3] {
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
        ]
    }
}

/// How a finished backup went, for the result screen.
#[derive(Debug)]
pub struct BackupOutcome {
    pub result: Result<engine::backup::BackupReport, JobFailure>,
}

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
    Planning {
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
    /// Editing the image file's name.
    Name {
        job: Arc<BackupJob>,
        settings: BackupSettings,
        typed: String,
        /// Why the last name was refused.
        refused: Option<String>,
    },
    Plan {
        job: Arc<BackupJob>,
        settings: BackupSettings,
        scroll: u16,
    },
    Running {
        job: Arc<BackupJob>,
        settings: BackupSettings,
        progress: Option<Progress>,
        ask_cancel: bool,
        cancelling: bool,
    },
    Done {
        job: Arc<BackupJob>,
        outcome: BackupOutcome,
    },
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
        }
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
pub use engine::extract::{ExtractReport, ExtractRequest};

/// The steps of browsing files and extracting some.
#[derive(Debug)]
pub enum FilesScreen {
    PickImage(Browser),
    /// A disk image: which partition to browse.
    PickPart {
        image: ChosenImage,
        cursor: usize,
    },
    Browse(FileView),
    /// Choosing the folder the files go to.
    PickDest {
        view: FileView,
        browser: Browser,
    },
    /// A worker looks for files of the same names in the destination.
    Checking {
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
        progress: Option<Progress>,
        ask_cancel: bool,
        cancelling: bool,
    },
    Done {
        view: FileView,
        request: ExtractRequest,
        result: Result<ExtractReport, String>,
        scroll: usize,
    },
}
