//! `update` without a terminal: every wizard path, cancel, back, and the refusal of unsafe
//! targets, over fake discovery data around real partition tables.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use engine::job::Status;
use std::path::PathBuf;
use tui::model::{Action, Endpoint, PlanRequest, Row, Screen, SmartHealth};
use tui::screens::menu::Ask;
use tui::screens::transfer::Step;
use tui::{update, Effect, Key, Model, Msg};

fn step(m: &Model) -> &Step {
    match &m.screen {
        Screen::Wizard(w) => &w.step,
        other => panic!("not in a wizard: {other:?}"),
    }
}

fn wizard_endpoints(m: &Model) -> (Option<Endpoint>, Option<Endpoint>) {
    match &m.screen {
        Screen::Wizard(w) => (w.source.clone(), w.target.clone()),
        other => panic!("not in a wizard: {other:?}"),
    }
}

/// Moves the main cursor onto the disk `name`.
fn select_disk(m: &mut Model, name: &str) {
    let idx = m.disks.iter().position(|d| d.device.name == name).unwrap();
    let row = m.rows().iter().position(|r| *r == Row::Disk(idx)).unwrap();
    m.cursor = row;
}

fn select_part(m: &mut Model, disk: &str, n: usize) {
    let idx = m.disks.iter().position(|d| d.device.name == disk).unwrap();
    let row = m
        .rows()
        .iter()
        .position(|r| *r == Row::Part(idx, n))
        .unwrap();
    m.cursor = row;
}

fn the_plan_request(effects: Vec<Effect>) -> PlanRequest {
    match effects.as_slice() {
        [Effect::Plan { request: req, .. }] => (**req).clone(),
        other => panic!("expected one Plan effect, got {other:?}"),
    }
}

/// Picks source `sda`, target `sdb` (larger), toggles grow, asks for the plan.
fn clone_to_plan_request(m: &mut Model) -> PlanRequest {
    select_disk(m, "sda");
    assert!(keys(m, &[Key::Char('c')]).is_empty());
    assert!(
        matches!(step(m), Step::PickSource { cursor: 0 }),
        "sda is preselected"
    );
    assert!(keys(m, &[Key::Enter]).is_empty());
    // The cursor starts on the first target that may be written: sdb.
    match step(m) {
        Step::PickTarget {
            cursor,
            refused: None,
        } => assert_eq!(*cursor, 1),
        s => panic!("{s:?}"),
    }
    assert!(keys(m, &[Key::Enter]).is_empty());
    assert!(matches!(step(m), Step::Options { cursor: 0 }));
    keys(m, &[Key::Char(' ')]);
    let req = the_plan_request(keys(m, &[Key::Enter]));
    assert!(matches!(step(m), Step::Planning { .. }));
    req
}

#[test]
fn scanning_fills_the_tree_and_asks_smart_for_each_real_disk() {
    let mut m = Model::new(false, true, Default::default(), None);
    let effects = scanned(&mut m, Ok(machine()));
    let asked: Vec<PathBuf> = effects
        .iter()
        .map(|e| match e {
            Effect::Smart { path: p, .. } => p.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(asked.len(), 5);
    // 5 disks, 2 partitions on each GPT disk (sda, sdd, vda).
    assert_eq!(m.rows().len(), 5 + 6);
    // A second scan of the same disks does not ask again; the answer is kept.
    answer(
        &mut m,
        |m| smart_id(m, "/dev/sda".into()),
        |id| Msg::Smart {
            id,
            path: "/dev/sda".into(),
            health: SmartHealth::Passed,
        },
    );
    assert!(scanned(&mut m, Ok(machine())).is_empty());
    assert_eq!(
        m.smart.get(&PathBuf::from("/dev/sda")),
        Some(&SmartHealth::Passed)
    );
}

#[test]
fn no_smart_queries_without_smartctl() {
    let mut m = Model::new(false, false, Default::default(), None);
    assert!(scanned(&mut m, Ok(machine())).is_empty());
}

#[test]
fn rescan_keeps_the_cursor_on_the_same_partition() {
    let mut m = model();
    select_part(&mut m, "sdd", 1);
    let before = m.cursor;
    let mut disks = machine();
    disks.remove(1); // sdb unplugged
    scanned(&mut m, Ok(disks));
    assert_eq!(m.cursor, before - 1);
    match m.selected() {
        Some(Row::Part(d, 1)) => assert_eq!(m.disks[d].device.name, "sdd"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn hot_plug_and_r_trigger_a_rescan() {
    let mut m = model();
    assert!(matches!(
        update(&mut m, Msg::BlockListChanged).as_slice(),
        [Effect::Rescan {
            include_virtual: false,
            ..
        }]
    ));
    assert!(matches!(
        keys(&mut m, &[Key::Char('r')]).as_slice(),
        [Effect::Rescan { .. }]
    ));
    assert!(matches!(
        keys(&mut m, &[Key::Char('v')]).as_slice(),
        [Effect::Rescan {
            include_virtual: true,
            ..
        }]
    ));
}

#[test]
fn clone_wizard_runs_only_after_yes_is_typed() {
    let mut m = model();
    let req = clone_to_plan_request(&mut m);
    assert_eq!(req.action, Action::CloneDisk);
    assert_eq!(req.source.path, PathBuf::from("/dev/sda"));
    assert_eq!(req.target.path, PathBuf::from("/dev/sdb"));
    assert!(req.options.grow_last, "grow was toggled on a larger target");
    let plan = planned(&req);
    assert!(answer(&mut m, plan_id, |id| Msg::Planned {
        id,
        result: Ok(plan.clone())
    })
    .is_empty());
    assert!(matches!(step(&m), Step::Plan { scroll: 0, .. }));
    keys(&mut m, &[Key::Down, Key::Down]);
    assert!(matches!(step(&m), Step::Plan { scroll: 2, .. }));
    assert!(keys(&mut m, &[Key::Enter]).is_empty());
    assert!(matches!(step(&m), Step::Confirm { .. }));
    // Anything but "yes" starts nothing.
    assert!(typed(&mut m, "y").is_empty());
    assert!(keys(&mut m, &[Key::Enter]).is_empty());
    assert!(matches!(step(&m), Step::Confirm { wrong: true, .. }));
    assert!(typed(&mut m, "yess").is_empty());
    keys(&mut m, &[Key::Backspace]);
    let effects = keys(&mut m, &[Key::Enter]);
    match effects.as_slice() {
        [Effect::Start { confirmed: c, .. }] => {
            assert_eq!(c.plan().target.path, PathBuf::from("/dev/sdb"));
            // The consent is for the target the engine planned and the screen named.
            let t = c.plan().plan.target.as_ref().unwrap();
            assert_eq!(c.plan().identity(), t.identity);
            assert!(c.plan().identity().contains("Crucial MX500"));
            assert_eq!(c.plan().target_path(), t.path);
            assert!(c.consent().is_some());
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(step(&m), Step::Running { .. }));
    assert!(m.job_running());
    // Quitting is not possible while the job runs.
    assert!(keys(&mut m, &[Key::Char('q')]).is_empty());
    let mut done = outcome(Status::Completed, None);
    done.notes.push("partition 2 grew".into());
    let effects = answer(&mut m, job_id, |id| Msg::JobDone { id, outcome: done });
    assert!(matches!(effects.as_slice(), [Effect::Rescan { .. }]));
    match step(&m) {
        Step::Done {
            outcome,
            target_state,
            ..
        } => {
            assert_eq!(outcome.status, Status::Completed);
            assert_eq!(*target_state, None);
        }
        s => panic!("{s:?}"),
    }
    keys(&mut m, &[Key::Enter]);
    assert!(matches!(m.screen, Screen::Main));
}

#[test]
fn cancelling_a_running_job_asks_first_and_reports_the_target_state() {
    let mut m = model();
    let req = clone_to_plan_request(&mut m);
    answer(&mut m, plan_id, |id| Msg::Planned {
        id,
        result: Ok(planned(&req)),
    });
    keys(&mut m, &[Key::Enter]);
    typed(&mut m, "yes");
    assert_eq!(keys(&mut m, &[Key::Enter]).len(), 1);
    let progress = engine::Progress {
        phase: "copying partition 1".into(),
        done: 3 * MIB,
        total: 10 * MIB,
        bytes_per_sec: 1e6,
        eta_secs: Some(7),
        elapsed_secs: 3.0,
        bad_bytes: 0,
        finished: false,
    };
    answer(&mut m, job_id, |id| Msg::Progress { id, progress });
    // Esc asks; n keeps going.
    assert!(keys(&mut m, &[Key::Esc]).is_empty());
    assert!(matches!(
        step(&m),
        Step::Running { run, .. } if run.ask_cancel
    ));
    assert!(keys(&mut m, &[Key::Char('n')]).is_empty());
    assert!(matches!(
        step(&m),
        Step::Running { run, .. } if !run.ask_cancel && !run.cancelling
    ));
    // Esc, y cancels.
    keys(&mut m, &[Key::Esc]);
    assert!(matches!(
        keys(&mut m, &[Key::Char('y')]).as_slice(),
        [Effect::CancelJob { .. }]
    ));
    assert!(matches!(
        step(&m),
        Step::Running { run, .. } if run.cancelling
    ));
    // A second Esc does not ask again while cancelling.
    assert!(keys(&mut m, &[Key::Esc]).is_empty());
    answer(&mut m, job_id, |id| Msg::JobDone {
        id,
        outcome: outcome(
            Status::Cancelled,
            Some("cancelled: the target has no partition table yet"),
        ),
    });
    // The engine's error names the state a cancellation left the target in.
    match step(&m) {
        Step::Done {
            outcome,
            target_state,
            ..
        } => {
            assert_eq!(outcome.status, Status::Cancelled);
            assert!(outcome
                .report()
                .contains("error: cancelled: the target has no partition table yet"));
            assert_eq!(*target_state, None);
        }
        s => panic!("{s:?}"),
    }
}

#[test]
fn a_failed_clone_names_the_state_from_the_phase_it_was_in() {
    let fail = |msg: &str| outcome(Status::Failed, Some(msg));
    let f = fail("writing 4096 bytes at byte 0 of /dev/sdb: Input/output error");
    let s =
        tui::screens::transfer::target_state(Action::CloneDisk, &f, Some("copying partition 2"))
            .unwrap();
    assert!(s.contains("no partition table yet"), "{s}");
    let s = tui::screens::transfer::target_state(Action::CloneDisk, &f, Some("verifying")).unwrap();
    assert!(s.contains("do not trust"), "{s}");
    let s = tui::screens::transfer::target_state(Action::CopyPartition, &f, None).unwrap();
    assert!(s.contains("no valid file system"), "{s}");
}

#[test]
fn unsafe_clone_targets_are_listed_but_refused_with_the_reason() {
    let mut m = model();
    select_disk(&mut m, "sda");
    keys(&mut m, &[Key::Char('c'), Key::Enter]);
    let (source, _) = wizard_endpoints(&m);
    let list = tui::screens::transfer::targets(&m, Action::CloneDisk, &source.unwrap());
    let reason = |name: &str| {
        list.iter()
            .find(|c| c.endpoint.path.as_os_str() == format!("/dev/{name}").as_str())
            .unwrap()
            .refusal
            .clone()
    };
    assert_eq!(reason("sda").as_deref(), Some("it is the source"));
    assert_eq!(reason("sdb"), None);
    let small = reason("sdc").unwrap();
    assert!(
        small.starts_with("too small:") && small.contains("short"),
        "{small}"
    );
    assert!(reason("sdd").unwrap().contains("mounted at /media/stick"));
    assert!(reason("vda").unwrap().contains("booted from"));
    // Enter on each refused target shows the reason and stays.
    for (i, c) in list.iter().enumerate() {
        let Some(r) = &c.refusal else { continue };
        if let Screen::Wizard(w) = &mut m.screen {
            w.step = Step::PickTarget {
                cursor: i,
                refused: None,
            };
        }
        assert!(keys(&mut m, &[Key::Enter]).is_empty());
        match step(&m) {
            Step::PickTarget {
                refused: Some(shown),
                ..
            } => assert_eq!(shown, r),
            s => panic!("{s:?}"),
        }
    }
    // The larger target carries the grow explanation.
    let note = list[1].note.clone().unwrap();
    assert!(note.contains("larger") && note.contains("grow"), "{note}");
}

#[test]
fn sources_without_a_table_are_refused_for_clone() {
    let mut m = model();
    select_disk(&mut m, "sdb");
    keys(&mut m, &[Key::Char('c')]);
    match step(&m) {
        Step::PickSource { cursor } => assert_eq!(*cursor, 1),
        s => panic!("{s:?}"),
    }
    assert!(keys(&mut m, &[Key::Enter]).is_empty());
    assert!(matches!(step(&m), Step::PickSource { .. }));
    assert!(m.status.as_deref().unwrap().contains("no partition table"));
}

#[test]
fn grow_cannot_be_chosen_for_a_target_that_is_not_larger() {
    let mut m = model();
    // sda (64 MiB) to sdd would be refused (mounted); make sdd free for this test.
    let mut disks = machine();
    disks[3].device.partitions[1].mount_points.clear();
    scanned(&mut m, Ok(disks));
    select_disk(&mut m, "sda");
    keys(
        &mut m,
        &[Key::Char('c'), Key::Enter, Key::Down, Key::Down, Key::Enter],
    );
    let (_, target) = wizard_endpoints(&m);
    assert_eq!(target.unwrap().path, PathBuf::from("/dev/sdd"));
    keys(&mut m, &[Key::Char(' ')]);
    assert!(m.status.as_deref().unwrap().contains("nothing to grow"));
    let req = the_plan_request(keys(&mut m, &[Key::Enter]));
    assert!(!req.options.grow_last);
    let e = tui::screens::transfer::size_explanation(Action::CloneDisk, &req.source, &req.target);
    assert!(e.contains("exactly as large"), "{e}");
}

#[test]
fn esc_walks_back_through_every_step() {
    let mut m = model();
    let req = clone_to_plan_request(&mut m);
    let late = plan_id(&m);
    // Esc while planning: back to the options; the late plan is dropped.
    keys(&mut m, &[Key::Esc]);
    assert!(matches!(step(&m), Step::Options { .. }));
    update(
        &mut m,
        Msg::Planned {
            id: late,
            result: Ok(planned(&req)),
        },
    );
    assert!(matches!(step(&m), Step::Options { .. }));
    // Plan → confirm → Esc → plan → Esc → options.
    keys(&mut m, &[Key::Enter]);
    answer(&mut m, plan_id, |id| Msg::Planned {
        id,
        result: Ok(planned(&req)),
    });
    keys(&mut m, &[Key::Enter]);
    typed(&mut m, "ye");
    keys(&mut m, &[Key::Esc]);
    assert!(matches!(step(&m), Step::Plan { .. }));
    keys(&mut m, &[Key::Esc]);
    assert!(matches!(step(&m), Step::Options { .. }));
    // Options → target (cursor on the target picked before) → source → main.
    keys(&mut m, &[Key::Esc]);
    match step(&m) {
        Step::PickTarget { cursor, .. } => assert_eq!(*cursor, 1),
        s => panic!("{s:?}"),
    }
    assert_eq!(wizard_endpoints(&m).1, None);
    keys(&mut m, &[Key::Esc]);
    assert!(matches!(step(&m), Step::PickSource { cursor: 0 }));
    keys(&mut m, &[Key::Esc]);
    assert!(matches!(m.screen, Screen::Main));
}

#[test]
fn a_refused_plan_shows_the_reason_and_returns_to_the_targets() {
    let mut m = model();
    clone_to_plan_request(&mut m);
    answer(&mut m, plan_id, |id| Msg::Planned {
        id,
        result: Err("refusing to write to /dev/sdb: sdb1 is mounted at /mnt".into()),
    });
    match step(&m) {
        Step::Refused { reason } => assert!(reason.contains("mounted at /mnt")),
        s => panic!("{s:?}"),
    }
    keys(&mut m, &[Key::Enter]);
    assert!(matches!(step(&m), Step::PickTarget { .. }));
}

#[test]
fn copy_partition_wizard_picks_partitions_and_refuses_unsafe_ones() {
    let mut m = model();
    select_part(&mut m, "sda", 0);
    keys(&mut m, &[Key::Char('p')]);
    assert!(matches!(step(&m), Step::PickSource { cursor: 0 }));
    keys(&mut m, &[Key::Enter]);
    let (source, _) = wizard_endpoints(&m);
    let source = source.unwrap();
    assert_eq!(source.path, PathBuf::from("/dev/sda1"));
    let list = tui::screens::transfer::targets(&m, Action::CopyPartition, &source);
    let reason = |name: &str| {
        list.iter()
            .find(|c| c.endpoint.path.as_os_str() == format!("/dev/{name}").as_str())
            .unwrap()
            .refusal
            .clone()
    };
    assert_eq!(reason("sda1").as_deref(), Some("it is the source"));
    assert_eq!(reason("sda2"), None);
    assert!(reason("sdd2").unwrap().contains("mounted at /media/stick"));
    assert_eq!(reason("sdd1"), None);
    assert!(reason("vda2").unwrap().contains("booted from"));
    // The first free target is sda2.
    match step(&m) {
        Step::PickTarget { cursor, .. } => {
            assert_eq!(list[*cursor].endpoint.path, PathBuf::from("/dev/sda2"))
        }
        s => panic!("{s:?}"),
    }
    keys(&mut m, &[Key::Enter]);
    // Copy offers verify and strict only.
    keys(&mut m, &[Key::Char(' '), Key::Down, Key::Down, Key::Down]);
    let req = the_plan_request(keys(&mut m, &[Key::Enter]));
    assert_eq!(req.action, Action::CopyPartition);
    assert!(req.options.verify && !req.options.grow_last);
    let plan = planned(&req);
    answer(&mut m, plan_id, |id| Msg::Planned {
        id,
        result: Ok(plan),
    });
    keys(&mut m, &[Key::Enter]);
    typed(&mut m, "yes");
    match keys(&mut m, &[Key::Enter]).as_slice() {
        [Effect::Start { confirmed: c, .. }] => {
            assert_eq!(c.plan().target.path, PathBuf::from("/dev/sda2"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn main_screen_keys_quit_reboot_power_off_shell_and_log() {
    let mut m = model();
    assert!(matches!(
        keys(&mut m, &[Key::Char('q')]).as_slice(),
        [Effect::Quit]
    ));
    assert!(keys(&mut m, &[Key::Char('b')]).is_empty());
    assert!(matches!(m.screen, Screen::Ask(Ask::Reboot)));
    assert!(matches!(
        keys(&mut m, &[Key::Char('y')]).as_slice(),
        [Effect::Reboot]
    ));
    keys(&mut m, &[Key::Char('o')]);
    assert!(keys(&mut m, &[Key::Char('n')]).is_empty());
    assert!(matches!(m.screen, Screen::Main));
    assert!(matches!(
        keys(&mut m, &[Key::Char('s')]).as_slice(),
        [Effect::Shell { .. }]
    ));
    keys(&mut m, &[Key::Char('l')]);
    assert!(matches!(m.screen, Screen::Log { scroll: 0 }));
    keys(&mut m, &[Key::Esc]);
    assert!(matches!(m.screen, Screen::Main));
    // The menu lists the same actions: Enter on the second item is Copy partition.
    keys(&mut m, &[Key::Enter, Key::Down, Key::Enter]);
    match &m.screen {
        Screen::Wizard(w) => assert_eq!(w.action, Action::CopyPartition),
        s => panic!("{s:?}"),
    }
    keys(&mut m, &[Key::Esc]);
    keys(&mut m, &[Key::Enter, Key::End, Key::Enter]);
    assert!(matches!(m.screen, Screen::Main), "the last item is Quit");
}

#[test]
fn mount_and_unmount_only_what_is_safe() {
    let mut m = model();
    select_disk(&mut m, "sda");
    assert!(keys(&mut m, &[Key::Char('m')]).is_empty());
    assert!(m.status.as_deref().unwrap().contains("select a partition"));
    select_part(&mut m, "sda", 0);
    match keys(&mut m, &[Key::Char('m')]).as_slice() {
        [Effect::Mount { node, name, fs, .. }] => {
            assert_eq!(node, &PathBuf::from("/dev/sda1"));
            assert_eq!(name, "sda1");
            assert_eq!(*fs, fs::FsKind::Ext4);
        }
        other => panic!("{other:?}"),
    }
    select_part(&mut m, "vda", 0);
    assert!(keys(&mut m, &[Key::Char('m')]).is_empty());
    assert!(m.status.as_deref().unwrap().contains("mounted at /"));
    assert!(keys(&mut m, &[Key::Char('u')]).is_empty());
    assert!(m
        .status
        .as_deref()
        .unwrap()
        .contains("only unmounts what it mounted"));
    // A partition Lifeboat mounted can be unmounted.
    let mut disks = machine();
    disks[0].device.partitions[1].mount_points = vec!["/run/lifeboat/mnt/sda2".into()];
    scanned(&mut m, Ok(disks));
    select_part(&mut m, "sda", 1);
    match keys(&mut m, &[Key::Char('u')]).as_slice() {
        [Effect::Unmount { mount_point, .. }] => {
            assert_eq!(mount_point, &PathBuf::from("/run/lifeboat/mnt/sda2"))
        }
        other => panic!("{other:?}"),
    }
    let id = m.request();
    let effects = update(
        &mut m,
        Msg::SystemDone {
            id,
            result: Ok("/run/lifeboat/mnt/sda2 is unmounted".into()),
        },
    );
    assert!(matches!(effects.as_slice(), [Effect::Rescan { .. }]));
    assert_eq!(
        m.status.as_deref(),
        Some("/run/lifeboat/mnt/sda2 is unmounted")
    );
}

/// A tiny xorshift generator for the key storm.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_key_storms_never_panic_and_only_confirmation_starts_jobs() {
    let pool = [
        Key::Up,
        Key::Down,
        Key::PageUp,
        Key::PageDown,
        Key::Home,
        Key::End,
        Key::Enter,
        Key::Esc,
        Key::Tab,
        Key::Backspace,
        Key::Left,
        Key::Right,
        Key::Char(' '),
        Key::Char('c'),
        Key::Char('p'),
        Key::Char('y'),
        Key::Char('e'),
        Key::Char('s'),
        Key::Char('n'),
        Key::Char('j'),
        Key::Char('k'),
        Key::Char('l'),
        Key::Char('m'),
        Key::Char('u'),
        Key::Char('r'),
        Key::Char('v'),
        Key::Char('x'),
        Key::Char('a'),
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut backups = 0;
    let mut starts = 0;
    for round in 0..40 {
        let mut m = model();
        let mut queue: Vec<Key> = Vec::new();
        for _ in 0..1500 {
            let in_confirm =
                matches!(&m.screen, Screen::Wizard(w) if matches!(w.step, Step::Confirm { .. }));
            if queue.is_empty() && in_confirm && rng.next() % 4 == 1 {
                queue = vec![Key::Enter, Key::Char('s'), Key::Char('e'), Key::Char('y')];
            }
            // The picker's network-location form takes every printable key as text and only
            // Esc leaves it: a person typing at random there would give up now and then.
            let in_network_form = m.screen.browser().is_some_and(|b| b.network.is_some());
            if queue.is_empty() && in_network_form && rng.next() % 8 == 1 {
                queue = vec![Key::Esc];
            }
            let key = queue
                .pop()
                .unwrap_or_else(|| pool[(rng.next() % pool.len() as u64) as usize]);
            let was_confirm_with_yes = matches!(
                &m.screen,
                Screen::Wizard(w) if matches!(&w.step, Step::Confirm { typed, .. } if typed.trim() == "yes")
            );
            let was_backup_plan = matches!(
                &m.screen,
                Screen::Backup(b) if matches!(**b, tui::screens::backup::BackupScreen::Plan { .. })
            );
            for e in update(&mut m, Msg::Key(key)) {
                match e {
                    Effect::StartBackup { id, .. } => {
                        // A backup only creates a file: Enter on its plan starts it.
                        assert!(was_backup_plan && key == Key::Enter, "round {round}");
                        backups += 1;
                        update(
                            &mut m,
                            Msg::BackupDone {
                                id,
                                outcome: outcome(Status::Cancelled, Some("x")),
                            },
                        );
                    }
                    Effect::ListImages { id, dir } => {
                        let entries = vec![
                            tui::model::BrowseEntry::Up,
                            tui::model::BrowseEntry::Dir(dir.join("d")),
                        ];
                        update(
                            &mut m,
                            Msg::Listed {
                                id,
                                result: Ok(entries),
                            },
                        );
                    }
                    Effect::PlanBackup { id, request: req } => {
                        let result = if rng.next() % 3 == 1 {
                            Err("refused".to_string())
                        } else {
                            Ok(planned_backup(&req))
                        };
                        update(&mut m, Msg::BackupPlanned { id, result });
                    }
                    Effect::Start { id, .. } => {
                        assert!(was_confirm_with_yes && key == Key::Enter, "round {round}");
                        starts += 1;
                        // Finish the job at once so the storm goes on.
                        update(
                            &mut m,
                            Msg::JobDone {
                                id,
                                outcome: outcome(Status::Cancelled, Some("x")),
                            },
                        );
                    }
                    Effect::Plan { id, request: req } => {
                        let result = if rng.next() % 3 == 1 {
                            Err("refused".to_string())
                        } else {
                            Ok(planned(&req))
                        };
                        update(&mut m, Msg::Planned { id, result });
                    }
                    // Nothing leaves the UI in the storm except Quit/Reboot/PowerOff, which the
                    // runtime would act on; keep going.
                    _ => {}
                }
            }
            if rng.next() % 50 == 1 {
                scanned(&mut m, Ok(machine()));
            }
        }
    }
    // On the confirmation screen the storm sometimes types "yes" and Enter: jobs started.
    assert!(starts > 0, "no job was ever started");
    assert!(backups > 0, "no backup was ever started");
}

#[test]
fn a_stick_with_a_bare_file_system_can_be_mounted_and_copied_from() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("stick.img");
    qemu_tests::fixture::mkfs(
        qemu_tests::fixture::Mkfs::Fat32,
        &img,
        40 * MIB,
        "STICK",
        &[],
    )
    .unwrap();
    let mut report = engine::inspect(&img).unwrap();
    report.path = "/dev/sde".into();
    let mut disks = machine();
    disks.push(tui::model::DiskEntry {
        device: device("sde", 40 * MIB, "Cruzer", "77", disk::Transport::Usb),
        report: Ok(report),
    });
    let mut m = model();
    scanned(&mut m, Ok(disks));
    select_disk(&mut m, "sde");
    match keys(&mut m, &[Key::Char('m')]).as_slice() {
        [Effect::Mount { node, name, fs, .. }] => {
            assert_eq!(node, &PathBuf::from("/dev/sde"));
            assert_eq!(name, "sde");
            assert_eq!(*fs, fs::FsKind::Vfat);
        }
        other => panic!("{other:?}"),
    }
    let list = tui::screens::transfer::sources(&m, Action::CopyPartition);
    let stick = list
        .iter()
        .find(|c| c.endpoint.path.as_os_str() == "/dev/sde")
        .unwrap();
    assert_eq!(stick.refusal, None);
    assert_eq!(stick.endpoint.number, None);
    assert!(
        stick.endpoint.label.contains("vfat \"STICK\""),
        "{}",
        stick.endpoint.label
    );
    // As a clone source it is refused, pointing to Copy partition.
    let list = tui::screens::transfer::sources(&m, Action::CloneDisk);
    let r = list
        .iter()
        .find(|c| c.endpoint.path.as_os_str() == "/dev/sde")
        .and_then(|c| c.refusal.clone())
        .unwrap();
    assert!(r.contains("use Copy partition"), "{r}");
}

/// Copy partition from sda1: Enter on the target `target` (a partition row), then on the
/// options; returns the plan request and the id its answer must carry.
fn copy_plan_to(m: &mut Model, target: &str) -> (PlanRequest, tui::RequestId) {
    let w = match &m.screen {
        Screen::Wizard(w) => w,
        other => panic!("{other:?}"),
    };
    let list = tui::screens::transfer::targets(m, w.action, w.source.as_ref().unwrap());
    let i = list
        .iter()
        .position(|c| c.endpoint.path == std::path::Path::new(target))
        .unwrap();
    assert!(list[i].refusal.is_none(), "{:?}", list[i]);
    keys(m, &[Key::Home]);
    keys(m, &vec![Key::Down; i]);
    keys(m, &[Key::Enter]);
    assert!(matches!(step(m), Step::Options { .. }));
    match keys(m, &[Key::Enter]).as_slice() {
        [Effect::Plan { id, request }] => {
            assert!(matches!(step(m), Step::Planning { id: waiting } if waiting == id));
            ((**request).clone(), *id)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_late_plan_for_a_target_the_user_left_never_appears() {
    let mut m = model();
    select_part(&mut m, "sda", 0);
    keys(&mut m, &[Key::Char('p'), Key::Enter]);
    let (first, first_id) = copy_plan_to(&mut m, "/dev/sda2");
    // Esc out of planning, back to the targets, choose another one.
    keys(&mut m, &[Key::Esc, Key::Esc]);
    assert!(matches!(step(&m), Step::PickTarget { .. }));
    let (second, second_id) = copy_plan_to(&mut m, "/dev/sdd1");
    assert_ne!(first_id, second_id);
    // The plan for the first target arrives late: nothing changes.
    let effects = update(
        &mut m,
        Msg::Planned {
            id: first_id,
            result: Ok(planned(&first)),
        },
    );
    assert!(effects.is_empty());
    assert!(matches!(step(&m), Step::Planning { id } if *id == second_id));
    // The plan for the second is shown; a second late copy of the first does not replace it.
    update(
        &mut m,
        Msg::Planned {
            id: second_id,
            result: Ok(planned(&second)),
        },
    );
    update(
        &mut m,
        Msg::Planned {
            id: first_id,
            result: Err("refusing to write to /dev/sda2".into()),
        },
    );
    match step(&m) {
        Step::Plan { plan, .. } => assert_eq!(plan.target.path, PathBuf::from("/dev/sdd1")),
        s => panic!("{s:?}"),
    }
    // What is confirmed is the second target's plan.
    keys(&mut m, &[Key::Enter]);
    typed(&mut m, "yes");
    match keys(&mut m, &[Key::Enter]).as_slice() {
        [Effect::Start { confirmed, .. }] => {
            assert_eq!(confirmed.plan().target.path, PathBuf::from("/dev/sdd1"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn progress_and_results_of_another_job_are_dropped_and_cancel_names_the_job() {
    let mut m = model();
    let req = clone_to_plan_request(&mut m);
    answer(&mut m, plan_id, |id| Msg::Planned {
        id,
        result: Ok(planned(&req)),
    });
    keys(&mut m, &[Key::Enter]);
    typed(&mut m, "yes");
    let job = match keys(&mut m, &[Key::Enter]).as_slice() {
        [Effect::Start { id, .. }] => *id,
        other => panic!("{other:?}"),
    };
    let other = m.request();
    let progress = engine::Progress {
        phase: "copying partition 1".into(),
        done: MIB,
        total: 10 * MIB,
        bytes_per_sec: 1e6,
        eta_secs: Some(9),
        elapsed_secs: 1.0,
        bad_bytes: 0,
        finished: false,
    };
    update(
        &mut m,
        Msg::Progress {
            id: other,
            progress: progress.clone(),
        },
    );
    assert!(m.screen.run().unwrap().progress.is_none());
    let failed = || outcome(Status::Failed, Some("x"));
    assert!(update(
        &mut m,
        Msg::JobDone {
            id: other,
            outcome: failed()
        }
    )
    .is_empty());
    assert!(matches!(step(&m), Step::Running { .. }));
    update(&mut m, Msg::Progress { id: job, progress });
    assert!(m.screen.run().unwrap().progress.is_some());
    // Cancelling names the running job.
    keys(&mut m, &[Key::Esc]);
    match keys(&mut m, &[Key::Char('y')]).as_slice() {
        [Effect::CancelJob { id }] => assert_eq!(*id, job),
        other => panic!("{other:?}"),
    }
    update(
        &mut m,
        Msg::JobDone {
            id: job,
            outcome: failed(),
        },
    );
    assert!(matches!(step(&m), Step::Done { .. }));
}

#[test]
fn a_late_discovery_or_smart_answer_is_dropped() {
    let mut m = model();
    let first = m.rescan();
    let first = match first.as_slice() {
        [Effect::Rescan { id, .. }] => *id,
        other => panic!("{other:?}"),
    };
    // A newer discovery supersedes the first; the first answers late with no disks.
    m.rescan();
    assert!(update(
        &mut m,
        Msg::Scanned {
            id: first,
            result: Ok(vec![])
        }
    )
    .is_empty());
    assert_eq!(m.disks.len(), 5);
    assert!(m.scanning.is_some());
    // A SMART answer nobody asked for (or asked again since) is dropped.
    let stale = m.request();
    update(
        &mut m,
        Msg::Smart {
            id: stale,
            path: "/dev/sdb".into(),
            health: SmartHealth::Failed,
        },
    );
    assert_eq!(m.smart.get(&PathBuf::from("/dev/sdb")), None);
}
