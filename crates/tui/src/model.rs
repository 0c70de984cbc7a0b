//! The state of the UI ([`Model`], its [`Screen`]), what changes it ([`Msg`]) and what it asks
//! the runtime to do ([`Effect`]). Everything here is plain data: no terminal, no threads, no I/O.
//!
//! **Request ids.** Every effect that a worker answers carries a [`RequestId`] that `update`
//! drew from [`Model::request`], and the worker's reply (and every progress message of a job)
//! carries it back. The screen that waits for an answer keeps the id it waits for; a reply with
//! another id answers a question the user no longer asks (they went back and chose again) and is
//! dropped. Only the results of mount, unmount and the shell (`SystemDone`) are applied whatever
//! the screen: they report what happened to the machine.

use crate::confirm::Confirmed;
use crate::logger::LogRing;
use crate::screens::backup::BackupScreen;
use crate::screens::files::FilesScreen;
use crate::screens::menu::Ask;
use crate::screens::restore::RestoreScreen;
use crate::screens::transfer::Wizard;
use crate::screens::verify::VerifyScreen;
use crate::widgets::running::Run;
use engine::Progress;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

// The vocabulary of worker requests and replies, defined with the screens that use them and
// re-exported here so the worker modules (`jobs`, `extract`, `system`) name them in one place.
pub use crate::inventory::{
    part_rows, whole_fs_row, Candidate, DiskEntry, Endpoint, PartRow, Row, SmartHealth,
};
pub use crate::screens::backup::{
    BackupJob, BackupRequest, BackupSettings, BackupSource, BACKUP_LEVELS, SPLIT_4G,
};
pub use crate::screens::files::{
    ExtractReport, ExtractRequest, FileItem, FileSource, FileView, Listing,
};
pub use crate::screens::transfer::job::{Action, JobOption, JobOptions, PlanRequest, PlannedJob};
pub use crate::widgets::image_picker::{
    BrowseEntry, Browser, ChosenImage, ImagePart, ImageSummary,
};

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

/// The id of a request to a worker; its reply carries it back (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(u64);

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Which screen is shown. Each has its module in [`crate::screens`].
#[derive(Debug)]
pub enum Screen {
    /// The disk tree ([`crate::screens::disks`]).
    Main,
    /// The actions menu over the disk tree ([`crate::screens::menu`]).
    Menu {
        cursor: usize,
    },
    /// Clone, copy and the restores from the target on ([`crate::screens::transfer`]).
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
    /// Mount a partition of an image read-only: pick it.
    MountImage(Box<crate::screens::mount_image::MountImageScreen>),
    /// Receive an image a sender streams (issue 19): disk, confirm, wait, receive, result.
    Receive(Box<crate::screens::receive::ReceiveScreen>),
    /// Send an image to several PCs (issue 19): image, options, live session, result.
    Send(Box<crate::screens::send::SendScreen>),
}

impl Screen {
    /// The job this screen runs, when it runs one.
    pub fn run(&self) -> Option<&Run> {
        match self {
            Screen::Wizard(w) => w.run(),
            Screen::Verify(v) => v.run(),
            Screen::Backup(b) => b.run(),
            Screen::Files(f) => f.run(),
            Screen::Receive(r) => r.run(),
            Screen::Send(s) => s.run(),
            _ => None,
        }
    }

    fn run_mut(&mut self) -> Option<&mut Run> {
        match self {
            Screen::Wizard(w) => w.run_mut(),
            Screen::Verify(v) => v.run_mut(),
            Screen::Backup(b) => b.run_mut(),
            Screen::Files(f) => f.run_mut(),
            Screen::Receive(r) => r.run_mut(),
            Screen::Send(s) => s.run_mut(),
            _ => None,
        }
    }

    /// Gives a job's progress to the screen running it (dropped when the id is not its job's).
    pub fn on_progress(&mut self, id: RequestId, progress: Progress) {
        if let Some(run) = self.run_mut() {
            run.on_progress(id, progress);
        }
    }

    /// The image or folder picker this screen shows, if any.
    pub fn browser(&self) -> Option<&Browser> {
        match self {
            Screen::Verify(v) => v.browser(),
            Screen::Backup(b) => b.browser(),
            Screen::Restore(r) => r.browser(),
            Screen::Files(f) => f.browser(),
            Screen::MountImage(m) => m.browser(),
            Screen::Send(s) => s.browser(),
            _ => None,
        }
    }

    /// The picker this screen shows, to take a listing.
    pub fn browser_mut(&mut self) -> Option<&mut Browser> {
        match self {
            Screen::Verify(v) => v.browser_mut(),
            Screen::Backup(b) => b.browser_mut(),
            Screen::Restore(r) => r.browser_mut(),
            Screen::Files(f) => f.browser_mut(),
            Screen::MountImage(m) => m.browser_mut(),
            Screen::Send(s) => s.browser_mut(),
            _ => None,
        }
    }
}

/// All state of the UI.
#[derive(Debug)]
pub struct Model {
    pub disks: Vec<DiskEntry>,
    /// Why the last discovery failed, when it did.
    pub scan_error: Option<String>,
    /// The discovery under way, whose answer fills `disks`.
    pub scanning: Option<RequestId>,
    /// Loop and RAM devices are listed too.
    pub show_virtual: bool,
    /// `smartctl` exists: the SMART column is shown.
    pub smart_tool: bool,
    pub smart: BTreeMap<PathBuf, SmartHealth>,
    /// The SMART questions under way, per disk.
    pub smart_asked: BTreeMap<PathBuf, RequestId>,
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
    /// The machine's network address for the header (`eth0 10.0.2.15/24`, `no network`), once
    /// the runtime has looked.
    pub network: Option<String>,
    /// The drive a picker is mounting (the mount's request id, the folder it is mounted on).
    pub auto_mounting: Option<(RequestId, PathBuf)>,
    /// The drives the pickers mounted, unmounted when the user is back on the disk list.
    pub auto_mounted: Vec<PathBuf>,
    /// The network stores the pickers opened (issue 17), closed when the user is back on the
    /// disk list; while open, the screens name their files by URL.
    pub stores: Vec<crate::widgets::network::OpenStore>,
    /// The last request id handed out.
    last_request: u64,
}

impl Model {
    /// An empty model; the first [`Model::rescan`] fills it.
    pub fn new(
        show_virtual: bool,
        smart_tool: bool,
        log: LogRing,
        log_path: Option<PathBuf>,
    ) -> Self {
        Model {
            disks: Vec::new(),
            scan_error: None,
            scanning: None,
            show_virtual,
            smart_tool,
            smart: BTreeMap::new(),
            smart_asked: BTreeMap::new(),
            cursor: 0,
            screen: Screen::Main,
            status: None,
            log,
            log_path,
            tick: 0,
            image_root: PathBuf::from(crate::screens::disks::MOUNT_BASE),
            boot_mode: None,
            network: None,
            auto_mounting: None,
            auto_mounted: Vec::new(),
            stores: Vec::new(),
            last_request: 0,
        }
    }

    /// A new request id, never handed out before by this model.
    pub fn request(&mut self) -> RequestId {
        self.last_request = self.last_request.wrapping_add(1);
        RequestId(self.last_request)
    }

    /// Starts a discovery; its answer replaces the disk list (an earlier one still under way is
    /// dropped when it answers).
    pub fn rescan(&mut self) -> Vec<Effect> {
        let id = self.request();
        self.scanning = Some(id);
        vec![Effect::Rescan {
            id,
            include_virtual: self.show_virtual,
        }]
    }

    /// True while a job runs: quitting, rebooting and the shell are refused.
    pub fn job_running(&self) -> bool {
        self.screen.run().is_some()
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

    /// A key for a row that survives a rescan: the disk path and partition number.
    pub fn row_key(&self, row: Row) -> Option<(PathBuf, Option<u32>)> {
        match row {
            Row::Disk(d) => self.disks.get(d).map(|e| (e.device.path.clone(), None)),
            Row::Part(d, p) => self.disks.get(d).and_then(|e| {
                part_rows(e)
                    .get(p)
                    .map(|r| (e.device.path.clone(), Some(r.number)))
            }),
        }
    }

    /// The selected row, if there are any.
    pub fn selected(&self) -> Option<Row> {
        let rows = self.rows();
        rows.get(self.cursor.min(rows.len().saturating_sub(1)))
            .copied()
    }
}

/// Messages: keys, ticks, and what workers send back, each reply with the id of its request.
#[derive(Debug)]
pub enum Msg {
    Key(Key),
    /// About four times a second.
    Tick,
    /// The `/sys/block` listing changed (a disk was plugged in or removed).
    BlockListChanged,
    /// The machine's addresses changed (a DHCP lease arrived, a cable was pulled): the header
    /// text, as `store::net::summary` words it.
    Network(String),
    Scanned {
        id: RequestId,
        result: Result<Vec<DiskEntry>, String>,
    },
    Smart {
        id: RequestId,
        path: PathBuf,
        health: SmartHealth,
    },
    /// A transfer was checked and planned, or why not.
    Planned {
        id: RequestId,
        result: Result<Arc<PlannedJob>, String>,
    },
    /// How far the job `id` is (any job: transfer, backup, verify, extract).
    Progress {
        id: RequestId,
        progress: Progress,
    },
    /// A transfer finished: the engine's outcome.
    JobDone {
        id: RequestId,
        outcome: engine::job::Outcome,
    },
    /// A disk was checked as a receive's target, or why not.
    ReceivePlanned {
        id: RequestId,
        result: Result<Arc<engine::job::ReceiveTarget>, String>,
    },
    /// The stream of the receive `id` started: the restore planned from it.
    ReceiveStream {
        id: RequestId,
        plan: Vec<String>,
    },
    /// The receive `id` ended.
    Received {
        id: RequestId,
        received: Box<engine::job::Received>,
    },
    /// News of the sending session `id`.
    SendEvent {
        id: RequestId,
        event: engine::cast::udp::SendEvent,
    },
    /// The sending session `id` ended, or why it could not start.
    Sent {
        id: RequestId,
        result: Result<Box<crate::screens::send::Sent>, String>,
    },
    /// A mount, unmount or shell finished: what to tell the user.
    SystemDone {
        id: RequestId,
        result: Result<String, String>,
    },
    /// A folder of the image picker was read.
    Listed {
        id: RequestId,
        result: Result<Vec<BrowseEntry>, String>,
    },
    /// A password check finished: `Ok` when the image opened with it.
    Unlocked {
        id: RequestId,
        result: Result<(), String>,
    },
    /// A network store was opened (or tested), or why not (issue 17).
    StoreOpened {
        id: RequestId,
        result: Result<crate::widgets::network::StoreOpen, crate::widgets::network::StoreRefusal>,
    },
    /// The saved network locations were read: each with its file, and the files that could not
    /// be read.
    LocationsLoaded {
        id: RequestId,
        saved: Vec<(PathBuf, store::saved::Saved)>,
        errors: Vec<String>,
    },
    /// A network location was saved in a file, or why not.
    LocationSaved {
        id: RequestId,
        result: Result<(PathBuf, store::saved::Saved), String>,
    },
    /// Verify finished: the report, or why it could not run.
    Verified {
        id: RequestId,
        result: Result<image::VerifyReport, String>,
    },
    /// A backup was checked and planned, or why it cannot be made.
    BackupPlanned {
        id: RequestId,
        result: Result<Arc<BackupJob>, String>,
    },
    /// A backup finished: the engine's outcome.
    BackupDone {
        id: RequestId,
        outcome: engine::job::Outcome,
    },
    /// A folder of the file browser was read, or a search finished.
    FilesListed {
        id: RequestId,
        /// The file system's name and label.
        fs: Option<String>,
        result: Result<Vec<FileItem>, String>,
    },
    /// The logical volumes of an LVM2 PV the file browser opened (issue 16).
    LvsListed {
        id: RequestId,
        result: Result<Vec<engine::extract::LvChoice>, String>,
    },
    /// The destination of an extract was checked: the names that exist there.
    ExtractChecked {
        id: RequestId,
        existing: Vec<PathBuf>,
    },
    /// An extract finished (failures of single files are in the report).
    Extracted {
        id: RequestId,
        result: Result<ExtractReport, String>,
    },
}

/// What `update` asks the runtime to do. The runtime sends each answer back with the `id`.
#[derive(Debug)]
pub enum Effect {
    /// Discover disks and inspect each.
    Rescan {
        id: RequestId,
        include_virtual: bool,
    },
    /// Ask `smartctl` for a disk's health.
    Smart {
        id: RequestId,
        path: PathBuf,
    },
    /// Run the safety check and build the plan.
    Plan {
        id: RequestId,
        request: Box<PlanRequest>,
    },
    /// Execute a confirmed plan: the only effect that writes to a disk, and only the
    /// confirmation screen can make a [`Confirmed`].
    Start {
        id: RequestId,
        confirmed: Confirmed,
        /// How the job waits for a network store that vanishes ([`crate::widgets::network::read_policy`]).
        policy: disk::netfs::Policy,
    },
    /// Check a disk as the target of a receive (issue 19; reads only).
    PlanReceive {
        id: RequestId,
        disk: PathBuf,
        options: engine::restore::RestoreOptions,
    },
    /// Wait for a sender and receive onto the confirmed disk: only the receive confirmation can
    /// make a [`crate::confirm::ConfirmedReceive`].
    StartReceive {
        id: RequestId,
        confirmed: crate::confirm::ConfirmedReceive,
    },
    /// Send `image` to several PCs with udp-sender (issue 19; reads the image only).
    Send {
        id: RequestId,
        image: PathBuf,
        /// The image as its report names it: its URL when it is on a network store.
        name: String,
        options: engine::cast::udp::SenderOptions,
        /// How the job waits for a network store that vanishes ([`crate::widgets::network::read_policy`]).
        policy: disk::netfs::Policy,
    },
    /// Ask the job `id` to stop (nothing happens when another job runs).
    CancelJob {
        id: RequestId,
    },
    /// Read a folder for the image picker (folders and `.lbi` files with their summaries).
    ListImages {
        id: RequestId,
        dir: PathBuf,
    },
    /// Check the password of an encrypted image; when it opens, remember it (`engine::keys`) for
    /// every later read of the image (reads only).
    UnlockImage {
        id: RequestId,
        path: PathBuf,
        password: image::Passphrase,
    },
    /// Open a network store under the picker's top folder (`keep`), or open and close it again
    /// (a test). Mounts a share or serves an HTTP file; writes nothing.
    OpenStore {
        id: RequestId,
        location: store::Location,
        access: store::Access,
        keep: bool,
        /// How long jobs reading it wait for a vanished server (`None`: the default).
        store_retry: Option<std::time::Duration>,
    },
    /// Read the saved network locations in `files` (those that exist). Reads only.
    LoadLocations {
        id: RequestId,
        files: Vec<PathBuf>,
    },
    /// Add a network location (never a password) to the locations file `file`.
    SaveLocation {
        id: RequestId,
        file: PathBuf,
        saved: store::saved::Saved,
    },
    /// Close (unmount) the store opened on `folder`.
    CloseStore {
        folder: PathBuf,
    },
    /// Verify an image (reads only).
    VerifyImage {
        id: RequestId,
        image: PathBuf,
        /// How the job waits for a network store that vanishes ([`crate::widgets::network::read_policy`]).
        policy: disk::netfs::Policy,
    },
    /// Check the destination of a backup and plan it (reads only).
    PlanBackup {
        id: RequestId,
        request: Box<BackupRequest>,
    },
    /// Make the backup: reads the source, creates a new image file (never overwrites one).
    StartBackup {
        id: RequestId,
        job: Arc<BackupJob>,
        settings: BackupSettings,
    },
    /// Read a folder of a file system (or search below it by name). Reads only.
    ListFiles {
        id: RequestId,
        source: FileSource,
        dir: String,
        listing: Listing,
    },
    /// Read the logical volumes of the LVM2 PV at `source` (issue 16). Reads only.
    ListLvs {
        id: RequestId,
        source: FileSource,
    },
    /// Look for the names an extract would create in its destination. Reads only.
    CheckExtract {
        id: RequestId,
        request: ExtractRequest,
    },
    /// Copy files out of a file system into a folder: creates files, writes no disk directly.
    Extract {
        id: RequestId,
        request: ExtractRequest,
        /// How the job waits for a network store that vanishes ([`crate::widgets::network::read_policy`]).
        policy: disk::netfs::Policy,
    },
    /// Mount a partition under `/run/lifeboat/mnt/<name>`.
    Mount {
        id: RequestId,
        node: PathBuf,
        name: String,
        fs: fs::FsKind,
    },
    Unmount {
        id: RequestId,
        mount_point: PathBuf,
    },
    /// Mount partition `part` of `image` read-only on `dir` with `lifeboat mount`, run as a
    /// child process.
    MountImage {
        id: RequestId,
        image: PathBuf,
        part: u32,
        dir: PathBuf,
    },
    /// Leave the full-screen UI, run a shell, come back.
    Shell {
        id: RequestId,
    },
    Reboot,
    PowerOff,
    Quit,
}
