//! Send an image to several PCs from the keyboard (issue 19): the options form, the live
//! session (receivers joining, udp-sender's progress, reports), the cancel question, and the
//! per-receiver result — `update` without a terminal, the screens at 80×25, and the worker
//! function in a real udpcast session over loopback with a receiver running the engine's
//! confirm-first receive.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use engine::cast::udp::{Receiver, ReceiverOutcome, SendEvent, Session};
use std::path::PathBuf;
use std::sync::Arc;
use tui::model::Screen;
use tui::screens::send::{SendScreen, Sent};
use tui::{update, Effect, Key, Model, Msg};

fn text(m: &Model) -> String {
    render(m).join("\n")
}

fn on_options(m: &mut Model) {
    m.screen = Screen::Send(Box::new(SendScreen::Options {
        image: PathBuf::from("/run/lifeboat/mnt/sdb1/lab.lbi"),
        fields: ["1".into(), String::new(), String::new()],
        focus: 0,
        error: None,
    }));
}

fn joined(n: u32, address: &str, state: &'static str) -> Receiver {
    Receiver {
        number: n,
        address: address.into(),
        state,
    }
}

#[test]
fn the_menu_entry_opens_the_image_picker() {
    let mut m = model();
    let effects = keys(&mut m, &[Key::Char('d')]);
    assert!(
        matches!(effects.as_slice(), [Effect::ListImages { .. }]),
        "{effects:?}"
    );
    assert!(text(&m).contains("Send to several PCs - step 1 of 3: image"));
}

#[test]
fn the_options_are_checked_and_start_a_session_that_shows_receivers_reports_and_stops_on_request() {
    let mut m = model();
    on_options(&mut m);
    let t = text(&m);
    assert!(
        t.contains("Send /run/lifeboat/mnt/sdb1/lab.lbi to several PCs"),
        "{t}"
    );
    assert!(t.contains("> Number of PCs                  1_"), "{t}");
    // 0 PCs is refused with the reason, nothing starts.
    keys(&mut m, &[Key::Backspace]);
    typed(&mut m, "0");
    assert!(keys(&mut m, &[Key::Enter]).is_empty());
    assert!(text(&m).contains("the number of PCs is a number from 1 to 1000"));
    keys(&mut m, &[Key::Backspace]);
    typed(&mut m, "3");
    keys(&mut m, &[Key::Down]);
    typed(&mut m, "20");
    keys(&mut m, &[Key::Down]);
    typed(&mut m, "10mm");
    assert!(keys(&mut m, &[Key::Enter]).is_empty());
    assert!(text(&m).contains("`10mm` is not a rate"));
    keys(&mut m, &[Key::Backspace, Key::Backspace]);
    typed(&mut m, "0m");
    let effects = keys(&mut m, &[Key::Enter]);
    let (job, opts) = match effects.as_slice() {
        [Effect::Send {
            id,
            image,
            name,
            options,
            ..
        }] => {
            assert_eq!(image, &PathBuf::from("/run/lifeboat/mnt/sdb1/lab.lbi"));
            // On a drive the report names the path (on a network store, its URL).
            assert_eq!(name, "/run/lifeboat/mnt/sdb1/lab.lbi");
            (*id, options.clone())
        }
        other => panic!("expected the session to start: {other:?}"),
    };
    assert_eq!(
        (opts.clients, opts.wait, opts.max_rate.as_deref()),
        (3, Some(20), Some("100m"))
    );
    let t = text(&m);
    assert!(t.contains("step 3 of 3: sending"), "{t}");
    assert!(
        t.contains("Waiting for the PCs: 0 of 3 joined (starts 20 s after the first)"),
        "{t}"
    );
    for (i, a) in ["10.0.0.11", "10.0.0.12"].iter().enumerate() {
        update(
            &mut m,
            Msg::SendEvent {
                id: job,
                event: SendEvent::Receiver(joined(i as u32, a, "joined")),
            },
        );
    }
    // News of another session is dropped.
    let other = m.request();
    update(
        &mut m,
        Msg::SendEvent {
            id: other,
            event: SendEvent::Receiver(joined(7, "10.0.0.99", "joined")),
        },
    );
    let t = text(&m);
    assert!(t.contains("2 of 3 joined"), "{t}");
    assert!(
        t.contains("#0   10.0.0.11") && t.contains("#1   10.0.0.12"),
        "{t}"
    );
    assert!(!t.contains("10.0.0.99"), "{t}");
    update(
        &mut m,
        Msg::SendEvent {
            id: job,
            event: SendEvent::Progress("bytes=  3 000 000  re-xmits=0000038".into()),
        },
    );
    update(
        &mut m,
        Msg::SendEvent {
            id: job,
            event: SendEvent::Receiver(joined(1, "10.0.0.12", "dropped")),
        },
    );
    let t = text(&m);
    assert!(t.contains("2 PCs in the session"), "{t}");
    assert!(t.contains("bytes=  3 000 000"), "{t}");
    assert!(t.contains("#1   10.0.0.12") && t.contains("dropped"), "{t}");
    keys(&mut m, &[Key::Esc]);
    assert!(text(&m).contains("Stop the session?"));
    let effects = keys(&mut m, &[Key::Char('y')]);
    assert!(
        matches!(effects.as_slice(), [Effect::CancelJob { id }] if *id == job),
        "{effects:?}"
    );
    let session = Session {
        receivers: vec![
            ReceiverOutcome {
                number: Some(0),
                address: "10.0.0.11".into(),
                state: "done",
                reason: None,
                report: None,
            },
            ReceiverOutcome {
                number: Some(1),
                address: "10.0.0.12".into(),
                state: "dropped",
                reason: Some("stopped answering".into()),
                report: None,
            },
        ],
        records: 12,
        bytes: 5 * MIB,
        problem: None,
        cancelled: false,
    };
    update(
        &mut m,
        Msg::Sent {
            id: job,
            result: Ok(Box::new(Sent {
                session,
                saved: Ok(PathBuf::from(
                    "/run/lifeboat/mnt/sdb1/lab.lbi.cast-report.txt",
                )),
            })),
        },
    );
    let t = text(&m);
    assert!(t.contains("Send to several PCs - result"), "{t}");
    assert!(
        t.contains("The session did not succeed: 1 of 2 receivers did not restore the image"),
        "{t}"
    );
    assert!(t.contains("receiver #0 10.0.0.11: done"), "{t}");
    assert!(
        t.contains("receiver #1 10.0.0.12: dropped (stopped answering)"),
        "{t}"
    );
    assert!(t.contains("1 done, 0 failed, 1 dropped"), "{t}");
    assert!(
        t.contains("Report saved to /run/lifeboat/mnt/sdb1/lab.lbi.cast-report.txt"),
        "{t}"
    );
    keys(&mut m, &[Key::Enter]);
    assert!(matches!(m.screen, Screen::Main));
}

#[test]
fn a_session_over_loopback_reaches_a_receiver_and_saves_its_report_beside_the_image() {
    use engine::cast::udp::{ReceiverOptions, SenderOptions};
    use engine::job::{self, Disks, StreamFrom};
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("lab.lbi");
    std::fs::copy(gpt_lbi(), &image).unwrap();
    let target = dir.path().join("pc1.img");
    qemu_tests::fixture::sparse_file(&target, 64 * MIB).unwrap();
    let disks = Disks::discover(&disk::SysRoot::default()).unwrap();
    let confirmed =
        job::plan_receive_target(&target, engine::restore::RestoreOptions::default(), &disks)
            .unwrap();
    let port = 9340;
    let pc = std::thread::spawn(move || {
        let consent =
            disk::WriteConsent::from_yes_flag(&confirmed.target.path, &confirmed.target.identity);
        job::receive(
            &confirmed,
            Some(&consent),
            StreamFrom::Udp(ReceiverOptions {
                interface: Some("lo".into()),
                port,
                timeout: 30,
            }),
            "udp-receiver",
            &|_| {},
            None,
            &engine::Cancel::new(),
        )
    });
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let events: Arc<dyn Fn(SendEvent) + Send + Sync> = Arc::new(move |e| s.lock().unwrap().push(e));
    let opts = SenderOptions {
        clients: 1,
        interface: Some("lo".into()),
        port,
        report_wait: 60,
        ..SenderOptions::default()
    };
    // The image as the screens name it (here: as if on a network store).
    let name = "smb://nas/imgs/lab.lbi";
    let sent = tui::jobs::send(&image, name, &opts, events, &engine::Cancel::new()).unwrap();
    let got = pc.join().unwrap();
    assert!(got.outcome.unwrap().status.is_complete());
    assert!(sent.session.complete(), "{}", sent.session.text());
    let saved = sent.saved.unwrap();
    assert_eq!(saved, dir.path().join("lab.lbi.cast-report.txt"));
    let report = std::fs::read_to_string(&saved).unwrap();
    assert!(
        report.contains("1 receiver (port 9340): completed"),
        "{report}"
    );
    assert!(report.contains("127.0.0.1: done"), "{report}");
    assert!(
        report.contains(&format!(" — {name} to 1 receiver")),
        "{report}"
    );
    assert!(!report.contains(&image.display().to_string()), "{report}");
    // The live screen's news, through `update`, as the runtime sends it.
    let mut m = model();
    on_options(&mut m);
    let job = match keys(&mut m, &[Key::Enter]).as_slice() {
        [Effect::Send { id, .. }] => *id,
        other => panic!("{other:?}"),
    };
    for event in seen.lock().unwrap().drain(..) {
        update(&mut m, Msg::SendEvent { id: job, event });
    }
    let t = text(&m);
    assert!(t.contains("127.0.0.1"), "{t}");
    assert!(t.contains("Reports:"), "{t}");
}
