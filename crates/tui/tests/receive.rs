//! Receive an image from the keyboard (issue 19): the disk list, the engine's check, the
//! confirmation naming the disk, waiting for a sender (cancellable), the result with whether
//! the report reached the sender — `update` without a terminal, the screens at 80×25, and the
//! worker function against a real udpcast session over loopback (the sender is
//! `engine::cast::udp::serve`, the code `lifeboat serve` runs).

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use engine::job::{ReportDelivery, Status};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tui::model::Screen;
use tui::screens::receive::ReceiveScreen;
use tui::{update, Effect, Key, Model, Msg};

/// A real receive target: a blank 64 MiB disk image file checked by the engine.
fn checked_target(name: &str) -> (PathBuf, Arc<engine::job::ReceiveTarget>) {
    let path = scratch().join(name);
    qemu_tests::fixture::sparse_file(&path, 64 * MIB).unwrap();
    let t = tui::jobs::plan_receive(
        &disk::SysRoot::default(),
        &path,
        tui::screens::receive::ReceiveSettings::default().options(),
    )
    .unwrap();
    (path, Arc::new(t))
}

/// Opens "Receive an image" from the main screen, chooses the second disk (sdb) and returns
/// the check asked of the engine.
fn choose_sdb(m: &mut Model) -> (tui::RequestId, PathBuf) {
    assert!(keys(m, &[Key::Char('g')]).is_empty());
    assert!(matches!(&m.screen, Screen::Receive(r) if matches!(**r, ReceiveScreen::Target { .. })));
    let effects = keys(m, &[Key::Down, Key::Enter]);
    match effects.as_slice() {
        [Effect::PlanReceive { id, disk, options }] => {
            assert!(options.grow_last && options.verify && !options.new_ids);
            (*id, disk.clone())
        }
        other => panic!("expected the engine's check: {other:?}"),
    }
}

fn text(m: &Model) -> String {
    render(m).join("\n")
}

#[test]
fn the_disk_list_names_each_disk_and_the_options_toggle() {
    let mut m = model();
    keys(&mut m, &[Key::Char('g')]);
    let t = text(&m);
    assert!(t.contains("Receive an image - step 1 of 3: disk"), "{t}");
    assert!(t.contains("onto which disk?"), "{t}");
    assert!(t.contains("/dev/sdb") && t.contains("Crucial MX500"), "{t}");
    assert!(t.contains("[x] g  grow the last partition"), "{t}");
    assert!(t.contains("[ ] n  new disk and partition ids"), "{t}");
    keys(&mut m, &[Key::Char('n'), Key::Char('v')]);
    let t = text(&m);
    assert!(t.contains("[x] n  new disk and partition ids"), "{t}");
    assert!(t.contains("[ ] v  verify what was written"), "{t}");
    assert!(keys(&mut m, &[Key::Esc]).is_empty() || matches!(m.screen, Screen::Main));
    assert!(matches!(m.screen, Screen::Main));
}

#[test]
fn a_refused_disk_says_why_and_goes_back_to_the_list() {
    let mut m = model();
    let (id, disk) = choose_sdb(&mut m);
    assert_eq!(disk, PathBuf::from("/dev/sdb"));
    assert!(text(&m).contains("Checking /dev/sdb"));
    update(
        &mut m,
        Msg::ReceivePlanned {
            id,
            result: Err("refusing to write to /dev/sdb: it is mounted at /media/x".into()),
        },
    );
    let t = text(&m);
    assert!(t.contains("/dev/sdb cannot receive an image."), "{t}");
    assert!(t.contains("it is mounted at /media/x"), "{t}");
    keys(&mut m, &[Key::Enter]);
    assert!(
        matches!(&m.screen, Screen::Receive(r) if matches!(**r, ReceiveScreen::Target { cursor: 1, .. }))
    );
}

#[test]
fn the_disk_is_confirmed_before_waiting_and_a_cancel_while_waiting_reaches_the_job() {
    let mut m = model();
    let (id, _) = choose_sdb(&mut m);
    let (path, target) = checked_target("confirm.img");
    // An answer to an earlier question is dropped.
    let stale = m.request();
    update(
        &mut m,
        Msg::ReceivePlanned {
            id: stale,
            result: Ok(Arc::clone(&target)),
        },
    );
    assert!(text(&m).contains("Checking"));
    update(
        &mut m,
        Msg::ReceivePlanned {
            id,
            result: Ok(Arc::clone(&target)),
        },
    );
    let t = text(&m);
    assert!(t.contains("step 2 of 3: confirm"), "{t}");
    assert!(
        t.contains("ALL DATA ON THIS DISK WILL BE DESTROYED:"),
        "{t}"
    );
    assert!(t.contains(&path.display().to_string()), "{t}");
    assert!(t.contains("67108864 bytes"), "{t}");
    assert!(t.contains("without another"), "{t}");
    // Anything but "yes" starts nothing.
    assert!(typed(&mut m, "no").is_empty());
    assert!(keys(&mut m, &[Key::Enter]).is_empty());
    assert!(text(&m).contains("Only the word yes starts waiting for the sender."));
    typed(&mut m, "yes");
    let effects = keys(&mut m, &[Key::Enter]);
    let job = match effects.as_slice() {
        [Effect::StartReceive { id, confirmed }] => {
            assert_eq!(confirmed.target().target.path, path);
            *id
        }
        other => panic!("expected the receive to start: {other:?}"),
    };
    let t = text(&m);
    assert!(t.contains("step 3 of 3: waiting for a sender"), "{t}");
    assert!(t.contains("Waiting for a sender (udp port 9000)"), "{t}");
    assert!(
        t.contains("Nothing is written until the sender starts."),
        "{t}"
    );
    assert!(keys(&mut m, &[Key::Esc]).is_empty());
    assert!(text(&m).contains("Stop receiving?"));
    let effects = keys(&mut m, &[Key::Char('y')]);
    assert!(
        matches!(effects.as_slice(), [Effect::CancelJob { id }] if *id == job),
        "{effects:?}"
    );
    assert!(text(&m).contains("Stopping..."));
    let received = engine::job::Received {
        plan: None,
        outcome: Some(outcome(
            Status::Cancelled,
            Some("cancelled: nothing was written"),
        )),
        report: None,
        delivery: ReportDelivery::NotAsked,
    };
    update(
        &mut m,
        Msg::Received {
            id: job,
            received: Box::new(received),
        },
    );
    let t = text(&m);
    assert!(t.contains("Receive cancelled."), "{t}");
    assert!(t.contains("nothing was written"), "{t}");
    assert!(t.contains("The sender asked for no report."), "{t}");
    keys(&mut m, &[Key::Enter]);
    assert!(matches!(m.screen, Screen::Main));
}

#[test]
fn a_receive_over_loopback_restores_the_disk_and_the_screen_says_the_sender_has_the_report() {
    use engine::cast::udp::{ReceiverOptions, SendEvent, SenderOptions};
    let mut m = model();
    let (id, _) = choose_sdb(&mut m);
    let (path, target) = checked_target("loopback.img");
    update(
        &mut m,
        Msg::ReceivePlanned {
            id,
            result: Ok(target),
        },
    );
    typed(&mut m, "yes");
    let effects = keys(&mut m, &[Key::Enter]);
    let Some(Effect::StartReceive { id: job, confirmed }) = effects.into_iter().next() else {
        panic!("the receive did not start");
    };
    let port = 9330;
    let sender = std::thread::spawn(move || {
        let img = engine::keys::open_image(gpt_lbi()).unwrap();
        let opts = SenderOptions {
            clients: 1,
            interface: Some("lo".into()),
            port,
            report_wait: 60,
            ..SenderOptions::default()
        };
        let quiet: Arc<dyn Fn(SendEvent) + Send + Sync> = Arc::new(|_| {});
        engine::cast::udp::serve(&img, &opts, quiet, &engine::Cancel::new()).unwrap()
    });
    let messages = Arc::new(Mutex::new(Vec::new()));
    let plan_seen = Arc::clone(&messages);
    let progress_seen = Arc::new(Mutex::new(0usize));
    let p = Arc::clone(&progress_seen);
    let sink = move |_: &engine::Progress| *p.lock().unwrap() += 1;
    let received = tui::jobs::receive(
        &confirmed,
        ReceiverOptions {
            interface: Some("lo".into()),
            port,
            timeout: 30,
        },
        &move |plan: &engine::job::Plan| plan_seen.lock().unwrap().push(plan.lines()),
        &sink,
        &engine::Cancel::new(),
    );
    let session = sender.join().unwrap();
    assert!(session.complete(), "{}", session.text());
    assert!(*progress_seen.lock().unwrap() > 0);
    let plans = messages.lock().unwrap().clone();
    assert_eq!(plans.len(), 1);
    // The worker's messages, through `update`, as the runtime sends them.
    update(
        &mut m,
        Msg::ReceiveStream {
            id: job,
            plan: plans[0].clone(),
        },
    );
    let t = text(&m);
    assert!(t.contains("step 3 of 3: receiving"), "{t}");
    assert!(t.contains("each chunk is written as it is received"), "{t}");
    update(
        &mut m,
        Msg::Received {
            id: job,
            received: Box::new(received),
        },
    );
    let t = text(&m);
    assert!(t.contains("Receive finished."), "{t}");
    assert!(
        t.contains("The result was reported to the sender (127.0.0.1:9330)."),
        "{t}"
    );
    assert_eq!(
        qemu_tests::fixture::sha256(&path).unwrap().len(),
        64,
        "the target is readable"
    );
    // The disk holds the image's table now: the GPT header at LBA 1.
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[512..520], b"EFI PART");
}

#[test]
fn the_menu_lists_send_and_receive_and_still_fits_80x25() {
    let mut m = model();
    keys(&mut m, &[Key::Enter]);
    let t = text(&m);
    assert!(
        t.contains(" d  Send an image to several PCs (multicast)"),
        "{t}"
    );
    assert!(
        t.contains(" g  Receive an image (from a sender on the network)"),
        "{t}"
    );
    // The last entry is not cut off.
    assert!(t.contains(" q  Quit Lifeboat"), "{t}");
}
