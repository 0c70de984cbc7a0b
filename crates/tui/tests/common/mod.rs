//! Fake discovery data around real partition tables: a GPT disk image made by sgdisk and mkfs,
//! inspected by the engine, and `BlockDevice` values built by hand.

#![allow(dead_code, clippy::unwrap_used)]

use disk::{BlockDevice, DevNum, DeviceKind, Partition, Transport};
use engine::DiskReport;
use qemu_tests::fixture::{self, Mkfs};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tui::logger::LogRing;
use tui::model::{DiskEntry, Model, Screen};
use tui::screens::backup::BackupScreen;
use tui::screens::files::FilesScreen;
use tui::screens::transfer::Step;
use tui::{update, Effect, Key, Msg, RequestId};

pub const MIB: u64 = 1 << 20;

/// What `m` draws on a `w`×`h` terminal (ratatui's `TestBackend`), one string per row with
/// trailing blanks trimmed.
pub fn screen(m: &Model, w: u16, h: u16) -> Vec<String> {
    let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h)).unwrap();
    t.draw(|f| tui::view(m, f)).unwrap();
    let buf = t.backend().buffer().clone();
    (0..h)
        .map(|y| {
            (0..w)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect()
}

/// What `m` draws on the 80×25 console.
pub fn render(m: &Model) -> Vec<String> {
    screen(m, 80, 25)
}

/// A 64 MiB GPT disk: partition 1 ext4 "ROOT" (16 MiB at 1 MiB), partition 2 vfat "DATA"
/// (16 MiB at 17 MiB). Made once per test binary.
pub fn gpt_image() -> &'static Path {
    static IMAGE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = IMAGE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        make_gpt(&img, dir.path());
        (dir, img)
    });
    path
}

/// Writes the 64 MiB two-partition GPT disk described at [`gpt_image`] to `img`.
pub fn make_gpt(img: &Path, scratch: &Path) {
    fixture::sparse_file(img, 64 * MIB).unwrap();
    fixture::sgdisk(
        img,
        &[
            "-n",
            "1:2048:+16M",
            "-t",
            "1:8300",
            "-c",
            "1:root",
            "-n",
            "2:0:+16M",
            "-t",
            "2:0700",
        ],
    )
    .unwrap();
    let dir = scratch.join("tree");
    fixture::file_tree(&dir, 12).unwrap();
    let ext4 = scratch.join("p1d.img");
    fixture::mkfs(
        Mkfs::Ext4,
        &ext4,
        16 * MIB,
        "ROOT",
        &["-d", dir.to_str().unwrap()],
    )
    .unwrap();
    fixture::write_into(img, MIB, &ext4).unwrap();
    let fat = scratch.join("p2.img");
    fixture::mkfs(Mkfs::Fat16, &fat, 16 * MIB, "DATA", &[]).unwrap();
    fixture::write_into(img, 17 * MIB, &fat).unwrap();
}

/// The engine's report of [`gpt_image`], as if it were `path`.
pub fn gpt_report(path: &str) -> DiskReport {
    let mut r = engine::inspect(gpt_image()).unwrap();
    r.path = path.to_string();
    r
}

/// The report of a blank disk of `size` bytes.
pub fn blank_report(path: &str, size: u64) -> DiskReport {
    let mem = disk::MemDisk::new(size as usize, 512);
    engine::inspect_io(&mem, path)
}

pub fn device(
    name: &str,
    size: u64,
    model: &str,
    serial: &str,
    transport: Transport,
) -> BlockDevice {
    BlockDevice {
        name: name.to_string(),
        path: PathBuf::from(format!("/dev/{name}")),
        dev: Some(DevNum { major: 8, minor: 0 }),
        kind: DeviceKind::Disk,
        transport,
        model: Some(model.to_string()),
        vendor: None,
        serial: Some(serial.to_string()),
        wwn: None,
        size,
        logical_sector_size: 512,
        physical_sector_size: 512,
        rotational: Some(false),
        removable: Some(false),
        read_only: Some(false),
        discard: Some(true),
        partitions: Vec::new(),
        mount_points: Vec::new(),
        swap: false,
        holders: Vec::new(),
        slaves: Vec::new(),
        is_boot_medium: false,
    }
}

pub fn partition(disk: &str, n: u32, start: u64, size: u64, mounted: Option<&str>) -> Partition {
    let name = format!("{disk}{n}");
    Partition {
        path: PathBuf::from(format!("/dev/{name}")),
        name,
        number: Some(n),
        dev: Some(DevNum { major: 8, minor: n }),
        start: Some(start),
        size: Some(size),
        mount_points: mounted.map(PathBuf::from).into_iter().collect(),
        swap: false,
        holders: Vec::new(),
    }
}

/// The machine of the tests, in discovery order:
/// - `sda`: the 64 MiB GPT source (Samsung), partitions not mounted;
/// - `sdb`: a blank 128 MiB disk (larger target);
/// - `sdc`: a blank 32 MiB disk (too small);
/// - `sdd`: a 64 MiB GPT disk whose partition 2 is mounted at /media/stick;
/// - `vda`: the 64 MiB GPT boot medium, partition 1 mounted at /.
pub fn machine() -> Vec<DiskEntry> {
    let parts = |d: &str, mounted2: Option<&str>, mounted1: Option<&str>| {
        vec![
            partition(d, 1, MIB, 16 * MIB, mounted1),
            partition(d, 2, 17 * MIB, 16 * MIB, mounted2),
        ]
    };
    let mut sda = device("sda", 64 * MIB, "Samsung SSD 870", "S6PU1", Transport::Sata);
    sda.partitions = parts("sda", None, None);
    let sdb = device("sdb", 128 * MIB, "Crucial MX500", "CT22", Transport::Sata);
    let sdc = device("sdc", 32 * MIB, "Cruzer Blade", "4C53", Transport::Usb);
    let mut sdd = device("sdd", 64 * MIB, "Ultra Fit", "4C99", Transport::Usb);
    sdd.partitions = parts("sdd", Some("/media/stick"), None);
    let mut vda = device(
        "vda",
        64 * MIB,
        "QEMU HARDDISK",
        "QM0001",
        Transport::Virtio,
    );
    vda.partitions = parts("vda", None, Some("/"));
    vda.is_boot_medium = true;
    vec![
        DiskEntry {
            report: Ok(gpt_report("/dev/sda")),
            device: sda,
        },
        DiskEntry {
            report: Ok(blank_report("/dev/sdb", 128 * MIB)),
            device: sdb,
        },
        DiskEntry {
            report: Ok(blank_report("/dev/sdc", 32 * MIB)),
            device: sdc,
        },
        DiskEntry {
            report: Ok(gpt_report("/dev/sdd")),
            device: sdd,
        },
        DiskEntry {
            report: Ok(gpt_report("/dev/vda")),
            device: vda,
        },
    ]
}

/// A model that has seen [`machine`], with the SMART column on.
pub fn model() -> Model {
    let mut m = Model::new(
        false,
        true,
        LogRing::default(),
        Some(PathBuf::from("/run/lifeboat/lifeboat.log")),
    );
    let _ = scanned(&mut m, Ok(machine()));
    m
}

/// Sends keys; returns all effects.
pub fn keys(m: &mut Model, keys: &[Key]) -> Vec<Effect> {
    keys.iter().flat_map(|k| update(m, Msg::Key(*k))).collect()
}

/// Types text.
pub fn typed(m: &mut Model, text: &str) -> Vec<Effect> {
    text.chars()
        .flat_map(|c| update(m, Msg::Key(Key::Char(c))))
        .collect()
}

/// A folder for the files the tests' plans are made against, kept for the test binary's life.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

/// The disks of this machine, as the engine sees them: the tests' plans are made against image
/// files in [`scratch`].
pub fn this_machine() -> engine::job::Disks {
    engine::job::Disks::discover(&disk::SysRoot::default()).unwrap()
}

/// The plan the engine makes for `req`'s job and options, with [`gpt_image`] (clone, copy) or
/// [`gpt_lbi`] (restores) as the source and a new file of the target's size as the target: the
/// engine plans only real objects, so the plan's steps name that file; its target (path and
/// identity, what the confirmation names) is the request's.
pub fn planned(req: &tui::model::PlanRequest) -> std::sync::Arc<tui::model::PlannedJob> {
    planned_with(req, gpt_lbi())
}

/// [`planned`] with `image` as the image a restore reads.
pub fn planned_with(
    req: &tui::model::PlanRequest,
    image: &Path,
) -> std::sync::Arc<tui::model::PlannedJob> {
    use engine::job::{CloneSpec, CopyInto, CopySpec, JobSpec, RestoreSpec};
    use std::sync::atomic::{AtomicU32, Ordering};
    use tui::model::Action;
    static N: AtomicU32 = AtomicU32::new(0);
    let target = scratch().join(format!("target{}.img", N.fetch_add(1, Ordering::SeqCst)));
    fixture::sparse_file(&target, req.target.len).unwrap();
    let spec = match req.action {
        Action::CloneDisk => JobSpec::Clone(CloneSpec {
            source: gpt_image().to_path_buf(),
            target,
            options: req.options.engine(),
        }),
        Action::CopyPartition => JobSpec::Copy(CopySpec {
            source: gpt_image().to_path_buf(),
            part: Some(req.source.number.unwrap_or(1)),
            target,
            into: CopyInto::Whole,
            options: req.options.engine(),
        }),
        Action::RestoreDisk | Action::RestorePartition => JobSpec::Restore(RestoreSpec {
            image: image.to_path_buf(),
            target,
            whole_disk: Some(req.action == Action::RestoreDisk),
            part: req.source.number,
            into: None,
            options: req.options.restore(),
        }),
    };
    let mut plan = engine::job::plan(spec, &this_machine()).unwrap();
    // The target as the engine names the fake machine's disk (these plans are shown and
    // confirmed, never run: the engine would refuse a target that is not the object planned).
    if let Some(t) = plan.target.as_mut() {
        t.path = req.target.path.clone();
        t.identity = req.target.identity.clone();
    }
    std::sync::Arc::new(tui::model::PlannedJob {
        action: req.action,
        source: req.source.clone(),
        target: req.target.clone(),
        options: req.options,
        plan,
    })
}

/// The backup the engine plans for `req`, reading [`gpt_image`] (the tests' source), into a
/// folder of [`scratch`] (the request's folder need not exist), with 1 TiB free on a non-FAT
/// drive.
pub fn planned_backup(req: &tui::model::BackupRequest) -> std::sync::Arc<tui::model::BackupJob> {
    planned_backup_on(req, 1 << 40, false)
}

/// [`planned_backup`] with `free` bytes free on a FAT drive or not (the destination's facts in
/// the engine's plan are set as a worker on such a drive would find them).
pub fn planned_backup_on(
    req: &tui::model::BackupRequest,
    free: u64,
    fat: bool,
) -> std::sync::Arc<tui::model::BackupJob> {
    let dir = scratch().join("backups");
    std::fs::create_dir_all(&dir).unwrap();
    let spec = engine::job::JobSpec::Backup(engine::job::BackupSpec {
        source: gpt_image().to_path_buf(),
        image: dir.join(&req.name),
        part: req.source.part,
        options: engine::backup::BackupOptions::default(),
        all_unpartitioned: false,
        identity: Some(engine::backup::SourceIdentity {
            model: req.source.model.clone(),
            serial: req.source.serial.clone(),
        }),
        key: None,
        decrypted: false,
        encryption: None,
    });
    let mut plan = engine::job::plan(spec, &this_machine()).unwrap();
    plan.destination = Some(engine::job::Destination { free, fat });
    std::sync::Arc::new(tui::model::BackupJob {
        request: req.clone(),
        plan,
    })
}

/// An image of [`gpt_image`] made by the backup engine, as disk "Samsung SSD 870" serial
/// "S6PU1". Made once per test binary.
pub fn gpt_lbi() -> &'static Path {
    static IMAGE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = IMAGE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.lbi");
        backup_into(gpt_image(), &img, None);
        (dir, img)
    });
    path
}

/// Backs up `disk` (or its partition `part`) into the new image `image` with the engine.
pub fn backup_into(disk: &Path, image: &Path, part: Option<u32>) {
    let src = disk::FileDisk::open_read(disk).unwrap();
    let plan = engine::backup::plan_backup(
        &src,
        engine::backup::SourceIdentity {
            model: "Samsung SSD 870".into(),
            serial: "S6PU1".into(),
        },
        image,
        part,
    )
    .unwrap();
    engine::backup::execute_backup(
        &plan,
        &src,
        &engine::backup::BackupOptions::default(),
        None,
        &engine::Cancel::new(),
    )
    .unwrap();
}

/// Answers the discovery the model waits for (asking for one first when none is under way).
pub fn scanned(m: &mut Model, result: Result<Vec<DiskEntry>, String>) -> Vec<Effect> {
    if m.scanning.is_none() {
        m.rescan();
    }
    let id = m.scanning.unwrap();
    update(m, Msg::Scanned { id, result })
}

/// Sends `make(id)`, `id` being the request the model waits for as `wait` reads it: how a
/// worker's answer arrives.
pub fn answer(
    m: &mut Model,
    wait: impl Fn(&Model) -> RequestId,
    make: impl FnOnce(RequestId) -> Msg,
) -> Vec<Effect> {
    let id = wait(m);
    update(m, make(id))
}

/// The plan (transfer or backup) the model waits for.
pub fn plan_id(m: &Model) -> RequestId {
    match &m.screen {
        Screen::Wizard(w) => match w.step {
            Step::Planning { id } => id,
            ref other => panic!("not planning: {other:?}"),
        },
        Screen::Backup(b) => match **b {
            BackupScreen::Planning { id, .. } => id,
            ref other => panic!("not planning: {other:?}"),
        },
        other => panic!("not planning: {other:?}"),
    }
}

/// The job that runs.
pub fn job_id(m: &Model) -> RequestId {
    m.screen.run().expect("a running job").id
}

/// The folder listing the picker waits for.
pub fn picker_id(m: &Model) -> RequestId {
    m.screen.browser().expect("a picker").request
}

/// The folder listing the file browser waits for.
pub fn files_id(m: &Model) -> RequestId {
    match &m.screen {
        Screen::Files(f) => match &**f {
            FilesScreen::Browse(v) => v.request.expect("a listing under way"),
            other => panic!("not browsing: {other:?}"),
        },
        other => panic!("not browsing: {other:?}"),
    }
}

/// The destination check the extract waits for.
pub fn check_id(m: &Model) -> RequestId {
    match &m.screen {
        Screen::Files(f) => match &**f {
            FilesScreen::Checking { id, .. } => *id,
            other => panic!("not checking: {other:?}"),
        },
        other => panic!("not checking: {other:?}"),
    }
}

/// The SMART question about `path` under way.
pub fn smart_id(m: &Model, path: PathBuf) -> RequestId {
    *m.smart_asked.get(&path).expect("a SMART question")
}

/// An outcome as the engine reports it (all its fields are the engine's public report).
pub fn outcome(status: engine::job::Status, error: Option<&str>) -> engine::job::Outcome {
    engine::job::Outcome {
        status,
        summary: match status {
            engine::job::Status::Cancelled => "cancelled".into(),
            engine::job::Status::Failed => "failed".into(),
            _ => "done: 10.0 MiB copied in 2.0 s".into(),
        },
        notes: Vec::new(),
        error: error.map(str::to_string),
        grow_error: None,
        bad_sectors: engine::rescue::BadSectorMap::default(),
        bad_sector_map: None,
        step: None,
    }
}

/// A finished backup's outcome as the engine reports it, with `report` as its step.
pub fn backup_outcome(report: engine::backup::BackupReport) -> engine::job::Outcome {
    let status = if report.bad_sectors.is_empty() {
        engine::job::Status::Completed
    } else {
        engine::job::Status::CompletedWithBadSectors
    };
    let mut o = outcome(status, None);
    o.bad_sectors = report.bad_sectors.clone();
    o.step = Some(engine::job::StepReport::Backup(report));
    o
}
