//! The job lifecycle (`engine::job`): plan → run → outcome, as every front end uses it.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

use disk::{FaultyDisk, FileDisk, SysRoot, WriteConsent};
use engine::backup::BackupOptions;
use engine::job::{self, BackupSpec, CloneSpec, Disks, JobSpec, RestoreSpec, Status};
use engine::Cancel;
use qemu_tests::fixture::{self, Mkfs};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const MIB: u64 = 1024 * 1024;

fn ext4(dir: &Path, name: &str) -> PathBuf {
    let tree = dir.join(format!("{name}-tree"));
    fixture::file_tree(&tree, 40).unwrap();
    let fs = dir.join(name);
    fixture::mkfs(
        Mkfs::Ext4,
        &fs,
        16 * MIB,
        "job",
        &["-d", tree.to_str().unwrap()],
    )
    .unwrap();
    fs
}

fn backup_spec(source: &Path, image: &Path) -> JobSpec {
    JobSpec::Backup(BackupSpec {
        source: source.to_path_buf(),
        image: image.to_path_buf(),
        part: None,
        options: BackupOptions::default(),
        all_unpartitioned: false,
        identity: None,
        key: None,
        decrypted: false,
        encryption: None,
    })
}

#[test]
fn a_decrypted_backup_without_a_key_is_refused_before_anything_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let fs = ext4(dir.path(), "fs.img");
    let image = dir.path().join("d.lbi");
    let JobSpec::Backup(mut spec) = backup_spec(&fs, &image) else {
        unreachable!()
    };
    spec.decrypted = true;
    let disks = Disks::discover(&SysRoot::default()).unwrap();
    let e = job::plan(JobSpec::Backup(spec), &disks).unwrap_err();
    assert!(e.to_string().contains("--decrypted needs the key"), "{e}");
    assert!(!image.exists());
}

#[test]
fn a_backup_with_unreadable_sectors_writes_a_private_map_and_never_follows_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let fs = ext4(dir.path(), "fs.img");
    let image = dir.path().join("b.lbi");
    // Someone left a link where the map goes: it must be replaced, not written through.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "keep me").unwrap();
    let map = dir.path().join("b.badsectors");
    std::os::unix::fs::symlink(&victim, &map).unwrap();
    let disks = Disks::discover(&SysRoot::default()).unwrap();
    let plan = job::plan(backup_spec(&fs, &image), &disks).unwrap();
    assert!(plan.target.is_none(), "a backup overwrites nothing");
    let bad = || FaultyDisk::new(FileDisk::open_read(&fs).unwrap()).with_bad_sectors(2048..2052);
    let outcome = job::run_with_source(&plan, None, Some(&bad()), None, &Cancel::new());
    assert_eq!(
        outcome.status,
        Status::CompletedWithBadSectors,
        "{outcome:?}"
    );
    assert_eq!(outcome.bad_sector_map, None);
    assert!(
        outcome.notes.iter().any(|n| n.contains("not replaced")),
        "{:?}",
        outcome.notes
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    // Where the name is free (or an old map of ours), the map is written, owner-only.
    let image = dir.path().join("c.lbi");
    let map = dir.path().join("c.badsectors");
    std::fs::write(&map, "an old map").unwrap();
    let plan = job::plan(backup_spec(&fs, &image), &disks).unwrap();
    let outcome = job::run_with_source(&plan, None, Some(&bad()), None, &Cancel::new());
    assert_eq!(
        outcome.status,
        Status::CompletedWithBadSectors,
        "{outcome:?}"
    );
    assert_eq!(outcome.bad_sector_map.as_deref(), Some(map.as_path()));
    let meta = std::fs::symlink_metadata(&map).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&map).unwrap();
    assert!(
        text.contains(&format!("0x{:08X}  0x{:08X}  -", 2048 * 512, 4 * 512)),
        "{text}"
    );
    let report = outcome.report();
    assert!(
        report.contains("bad-sector map (ddrescue format)"),
        "{report}"
    );
    assert!(
        report.contains("result: OK, with skipped unreadable sectors"),
        "{report}"
    );
}

#[test]
fn restoring_an_image_onto_itself_or_a_file_being_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fs = ext4(dir.path(), "fs.img");
    let image = dir.path().join("a.lbi");
    let disks = Disks::discover(&SysRoot::default()).unwrap();
    let plan = job::plan(backup_spec(&fs, &image), &disks).unwrap();
    let outcome = job::run(&plan, None, None, &Cancel::new());
    assert_eq!(outcome.status, Status::Completed, "{outcome:?}");
    let restore = |target: &Path| {
        job::plan(
            JobSpec::Restore(RestoreSpec {
                image: image.clone(),
                target: target.to_path_buf(),
                whole_disk: None,
                part: None,
                into: None,
                options: Default::default(),
            }),
            &disks,
        )
    };
    let e = restore(&image).unwrap_err().to_string();
    assert!(e.contains("refusing to write"), "{e}");
    // A clone onto the file it reads, through another name.
    let link = dir.path().join("same.img");
    std::fs::hard_link(&fs, &link).unwrap();
    let e = job::plan(
        JobSpec::Clone(CloneSpec {
            source: fs.clone(),
            target: link,
            options: Default::default(),
        }),
        &disks,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("it is the source"), "{e}");
}

#[test]
fn a_target_replaced_after_the_plan_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let fs = ext4(dir.path(), "fs.img");
    let image = dir.path().join("a.lbi");
    let disks = Disks::discover(&SysRoot::default()).unwrap();
    let plan = job::plan(backup_spec(&fs, &image), &disks).unwrap();
    assert_eq!(
        job::run(&plan, None, None, &Cancel::new()).status,
        Status::Completed
    );
    let target = dir.path().join("target.img");
    fixture::sparse_file(&target, 32 * MIB).unwrap();
    let plan = job::plan(
        JobSpec::Restore(RestoreSpec {
            image: image.clone(),
            target: target.clone(),
            whole_disk: None,
            part: None,
            into: None,
            options: Default::default(),
        }),
        &disks,
    )
    .unwrap();
    let t = plan.target.clone().unwrap();
    assert_eq!(t.overwrites, job::Overwrites::Partition);
    // After the confirmation, the name now leads to another file (a link to a precious one).
    let precious = dir.path().join("precious");
    std::fs::write(&precious, vec![7u8; 32 * MIB as usize]).unwrap();
    std::fs::remove_file(&target).unwrap();
    std::os::unix::fs::symlink(&precious, &target).unwrap();
    let consent = WriteConsent::confirmed_by_user(&t.path, &t.identity);
    let outcome = job::run(&plan, Some(&consent), None, &Cancel::new());
    assert_eq!(outcome.status, Status::Failed);
    let e = outcome.error.unwrap();
    assert!(e.contains("changed since the plan"), "{e}");
    assert!(std::fs::read(&precious).unwrap().iter().all(|&b| b == 7));
    // Without a consent nothing is opened either.
    let outcome = job::run(&plan, None, None, &Cancel::new());
    assert_eq!(outcome.status, Status::Failed);
}

#[test]
fn plans_print_names_from_disks_with_control_characters_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("t");
    fixture::file_tree(&tree, 5).unwrap();
    let fs = dir.path().join("fs.img");
    // A label that would clear the screen and move the cursor home.
    fixture::mkfs(
        Mkfs::Ext4,
        &fs,
        16 * MIB,
        "a\u{1b}[2J\u{1b}[H",
        &["-d", tree.to_str().unwrap()],
    )
    .unwrap();
    let disks = Disks::discover(&SysRoot::default()).unwrap();
    let plan = job::plan(backup_spec(&fs, &dir.path().join("x.lbi")), &disks).unwrap();
    let text = plan.to_string();
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(text.contains("\\x1b[2J"), "{text}");
}

#[test]
fn plans_and_outcomes_can_move_to_a_worker_thread_and_back() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<job::Plan>();
    send_sync::<job::Outcome>();
    send_sync::<job::JobSpec>();
}

/// `losetup ARGS`, trimmed stdout.
fn losetup(args: &[&str]) -> String {
    fixture::run("losetup", args).unwrap().trim().to_string()
}

#[test]
fn a_loop_device_reattached_to_another_file_after_the_plan_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fs = ext4(dir.path(), "fs.img");
    let image = dir.path().join("a.lbi");
    let disks = Disks::discover(&SysRoot::default()).unwrap();
    let plan = job::plan(backup_spec(&fs, &image), &disks).unwrap();
    assert_eq!(
        job::run(&plan, None, None, &Cancel::new()).status,
        Status::Completed
    );
    let planned = dir.path().join("planned.img");
    fixture::sparse_file(&planned, 32 * MIB).unwrap();
    let other = dir.path().join("other.img");
    std::fs::write(&other, vec![7u8; 32 * MIB as usize]).unwrap();
    let dev = losetup(&["-f", "--show", planned.to_str().unwrap()]);
    let disks = Disks::discover(&SysRoot::default()).unwrap();
    let plan = job::plan(
        JobSpec::Restore(RestoreSpec {
            image: image.clone(),
            target: PathBuf::from(&dev),
            whole_disk: None,
            part: None,
            into: None,
            options: Default::default(),
        }),
        &disks,
    );
    // Same device number, same size, another file behind it.
    losetup(&["-d", &dev]);
    let reattached = fixture::run("losetup", &[&dev, other.to_str().unwrap()]);
    let outcome = plan.as_ref().ok().map(|plan| {
        let t = plan.target.clone().unwrap();
        let consent = WriteConsent::confirmed_by_user(&t.path, &t.identity);
        job::run(plan, Some(&consent), None, &Cancel::new())
    });
    if reattached.is_ok() {
        losetup(&["-d", &dev]);
    }
    reattached.unwrap();
    let outcome = outcome.unwrap();
    assert_eq!(outcome.status, Status::Failed, "{outcome:?}");
    let e = outcome.error.unwrap();
    assert!(e.contains("now shows another file"), "{e}");
    assert!(std::fs::read(&other).unwrap().iter().all(|&b| b == 7));
}
