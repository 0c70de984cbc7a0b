//! The receive flow (`engine::job::plan_receive_target` → confirmation → `engine::job::receive`,
//! issue 19): the disk is checked and confirmed before the stream starts, the restore is planned
//! from the stream and runs without a second question, and nothing is written when the plan
//! turns out impossible or the confirmed disk has changed.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

use disk::{SysRoot, WriteConsent};
use engine::job::{self, Disks, JobSpec, Overwrites, RestoreSpec, Status, StreamFrom};
use engine::restore::RestoreOptions;
use engine::Cancel;
use qemu_tests::fixture::{self, Mkfs};
use std::cell::Cell;
use std::path::{Path, PathBuf};

const MIB: u64 = 1024 * 1024;

/// A GPT disk image with one ext4 partition holding files, and its `.lbi` image.
fn imaged_disk(dir: &Path) -> (PathBuf, PathBuf) {
    let disk = dir.join("src.img");
    fixture::sparse_file(&disk, 48 * MIB).unwrap();
    fixture::sgdisk(&disk, &["-n1:2048:+32M", "-t1:8300"]).unwrap();
    let tree = dir.join("tree");
    fixture::file_tree(&tree, 30).unwrap();
    let fs = dir.join("fs.img");
    fixture::mkfs(
        Mkfs::Ext4,
        &fs,
        32 * MIB,
        "rx",
        &["-d", tree.to_str().unwrap()],
    )
    .unwrap();
    fixture::write_into(&disk, MIB, &fs).unwrap();
    let image = dir.join("src.lbi");
    let disks = Disks::discover(&SysRoot::default()).unwrap();
    let plan = job::plan(
        JobSpec::Backup(job::BackupSpec {
            source: disk.clone(),
            image: image.clone(),
            part: None,
            options: engine::backup::BackupOptions::default(),
            all_unpartitioned: false,
            identity: None,
            key: None,
            decrypted: false,
            encryption: None,
        }),
        &disks,
    )
    .unwrap();
    let o = job::run(&plan, None, None, &Cancel::new());
    assert_eq!(o.status, Status::Completed, "{o:?}");
    (disk, image)
}

/// The cast stream of `image`.
fn stream_of(image: &Path) -> Vec<u8> {
    let img = engine::keys::open_image(image).unwrap();
    let mut out = Vec::new();
    image::cast::send(&img, &mut out, &|_| {}).unwrap();
    out
}

fn options() -> RestoreOptions {
    RestoreOptions {
        verify: true,
        ..RestoreOptions::default()
    }
}

fn consent(t: &job::Target) -> WriteConsent {
    WriteConsent::from_yes_flag(&t.path, &t.identity)
}

/// Receives the cast stream of `image`, held in memory, onto `confirmed`: with the `--yes`
/// consent for it when `write`, as a dry run otherwise; `on_plan` sees the plan made from it.
fn receive_stream(
    confirmed: &job::ReceiveTarget,
    image: &Path,
    write: bool,
    on_plan: &dyn Fn(&job::Plan),
) -> job::Received {
    let consent = write.then(|| consent(&confirmed.target));
    job::receive(
        confirmed,
        consent.as_ref(),
        StreamFrom::Reader(Box::new(std::io::Cursor::new(stream_of(image)))),
        "test stream",
        on_plan,
        None,
        &Cancel::new(),
    )
}

/// A target file full of a pattern, so any write shows.
fn patterned(path: &Path, size: u64) -> String {
    let block: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8).collect();
    let mut all = Vec::new();
    for _ in 0..size / MIB {
        all.extend_from_slice(&block);
    }
    std::fs::write(path, &all).unwrap();
    fixture::sha256(path).unwrap()
}

#[test]
fn a_confirmed_disk_receives_the_stream_without_a_second_question_and_equals_a_plain_restore() {
    let dir = tempfile::tempdir().unwrap();
    let (_, image) = imaged_disk(dir.path());
    let plain = dir.path().join("plain.img");
    fixture::sparse_file(&plain, 64 * MIB).unwrap();
    let disks = Disks::discover(&SysRoot::default()).unwrap();
    let plan = job::plan(
        JobSpec::Restore(RestoreSpec {
            image: image.clone(),
            target: plain.clone(),
            whole_disk: Some(true),
            part: None,
            into: None,
            options: options(),
        }),
        &disks,
    )
    .unwrap();
    let t = plan.target.clone().unwrap();
    let o = job::run(&plan, Some(&consent(&t)), None, &Cancel::new());
    assert_eq!(o.status, Status::Completed, "{o:?}");

    let target = dir.path().join("rx.img");
    fixture::sparse_file(&target, 64 * MIB).unwrap();
    let confirmed = job::plan_receive_target(&target, options(), &disks).unwrap();
    assert_eq!(confirmed.target.overwrites, Overwrites::Disk);
    assert_eq!(confirmed.target.size, 64 * MIB);
    assert!(confirmed.lines().iter().any(|l| l.contains("rx.img")));
    let planned = Cell::new(0);
    let got = receive_stream(&confirmed, &image, true, &|p| {
        assert!(p.lines().iter().any(|l| l.contains("arrives as a stream")));
        planned.set(planned.get() + 1);
    });
    let o = got.outcome.unwrap();
    assert_eq!(o.status, Status::Completed, "{o:?}");
    assert_eq!(planned.get(), 1, "the plan is made once, from the stream");
    assert!(got.plan.is_some());
    assert_eq!(got.delivery, job::ReportDelivery::NotAsked);
    assert_eq!(
        fixture::sha256(&target).unwrap(),
        fixture::sha256(&plain).unwrap()
    );
}

#[test]
fn a_disk_too_small_even_with_shrinking_fails_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (_, image) = imaged_disk(dir.path());
    let target = dir.path().join("tiny.img");
    let before = patterned(&target, 4 * MIB);
    let disks = Disks::discover(&SysRoot::default()).unwrap();
    let confirmed = job::plan_receive_target(&target, options(), &disks).unwrap();
    let got = receive_stream(&confirmed, &image, true, &|_| panic!("no plan can be made"));
    let o = got.outcome.unwrap();
    assert_eq!(o.status, Status::Failed);
    assert!(o.error.as_deref().unwrap().contains("too small"), "{o:?}");
    assert!(got.plan.is_none());
    assert_eq!(
        fixture::sha256(&target).unwrap(),
        before,
        "the disk was written"
    );
}

#[test]
fn a_disk_replaced_after_the_confirmation_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (_, image) = imaged_disk(dir.path());
    let target = dir.path().join("rx.img");
    fixture::sparse_file(&target, 64 * MIB).unwrap();
    let disks = Disks::discover(&SysRoot::default()).unwrap();
    let confirmed = job::plan_receive_target(&target, options(), &disks).unwrap();
    // While the user waited for the sender, another file of the same size took the confirmed
    // one's place.
    let other = dir.path().join("other.img");
    let before = patterned(&other, 64 * MIB);
    std::fs::rename(&other, &target).unwrap();
    let got = receive_stream(&confirmed, &image, true, &|_| {});
    let o = got.outcome.unwrap();
    assert_eq!(o.status, Status::Failed);
    assert!(
        o.error
            .as_deref()
            .unwrap()
            .contains("another device or file"),
        "{o:?}"
    );
    assert_eq!(fixture::sha256(&target).unwrap(), before);
}

#[test]
fn a_dry_run_plans_from_the_stream_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_, image) = imaged_disk(dir.path());
    let target = dir.path().join("rx.img");
    let before = patterned(&target, 40 * MIB);
    let disks = Disks::discover(&SysRoot::default()).unwrap();
    let confirmed = job::plan_receive_target(&target, options(), &disks).unwrap();
    let got = receive_stream(&confirmed, &image, false, &|_| {});
    assert!(got.outcome.is_none());
    let lines = got.plan.unwrap().join("\n");
    assert!(
        lines.contains("shrink") || lines.contains("partition"),
        "{lines}"
    );
    assert_eq!(fixture::sha256(&target).unwrap(), before);
}

#[test]
fn a_missing_target_is_refused_before_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let disks = Disks::discover(&SysRoot::default()).unwrap();
    let e =
        job::plan_receive_target(&dir.path().join("nothing.img"), options(), &disks).unwrap_err();
    assert!(e.to_string().contains("nothing.img"), "{e}");
}

#[test]
fn a_session_over_loopback_restores_the_confirmed_disk_and_the_sender_gets_its_report() {
    use engine::cast::udp::{self, ReceiverOptions, SendEvent, SenderOptions};
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let (_, image) = imaged_disk(dir.path());
    let target = dir.path().join("rx.img");
    fixture::sparse_file(&target, 64 * MIB).unwrap();
    let disks = Disks::discover(&SysRoot::default()).unwrap();
    let confirmed = job::plan_receive_target(&target, options(), &disks).unwrap();
    let port = 9320;
    let events = Arc::new(Mutex::new(Vec::<String>::new()));
    let sender = {
        let (image, events) = (image.clone(), Arc::clone(&events));
        std::thread::spawn(move || {
            let img = engine::keys::open_image(&image).unwrap();
            let opts = SenderOptions {
                clients: 1,
                interface: Some("lo".into()),
                port,
                report_wait: 60,
                ..SenderOptions::default()
            };
            let seen = Arc::clone(&events);
            let on: Arc<dyn Fn(SendEvent) + Send + Sync> = Arc::new(move |e| {
                let line = match e {
                    SendEvent::Waiting { .. } => "waiting".to_string(),
                    SendEvent::Receiver(r) => format!("receiver {}", r.state),
                    SendEvent::Report(d) => format!("report {}", d.report.line()),
                    SendEvent::AwaitingReports { count, .. } => format!("awaiting {count}"),
                    SendEvent::Progress(_) => return,
                };
                seen.lock().unwrap().push(line);
            });
            udp::serve(&img, &opts, on, &Cancel::new()).unwrap()
        })
    };
    let got = job::receive(
        &confirmed,
        Some(&consent(&confirmed.target)),
        StreamFrom::Udp(ReceiverOptions {
            interface: Some("lo".into()),
            port,
            timeout: 30,
        }),
        udp::UDP_RECEIVER,
        &|_| {},
        None,
        &Cancel::new(),
    );
    let session = sender.join().unwrap();
    let o = got.outcome.unwrap();
    assert_eq!(o.status, Status::Completed, "{o:?}");
    assert!(
        matches!(got.delivery, job::ReportDelivery::Delivered(a) if a.ip().is_loopback()),
        "{:?}",
        got.delivery
    );
    assert!(session.complete(), "{}", session.text());
    assert_eq!(session.receivers.len(), 1);
    let r = session.receivers[0].report.as_ref().unwrap();
    assert_eq!(r.disk.size, 64 * MIB);
    assert_eq!(r.disk.path, target.display().to_string());
    let events = events.lock().unwrap().join("\n");
    for want in ["waiting", "receiver joined", "awaiting 1", "report "] {
        assert!(events.contains(want), "{want} in {events}");
    }
    let text = session.text();
    assert!(text.contains("1 done, 0 failed, 0 dropped"), "{text}");
}
