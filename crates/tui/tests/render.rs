//! Views rendered into ratatui's `TestBackend` at 80×25 and compared with expected lines.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use tui::model::{Row, Screen, SmartHealth};
use tui::screens::transfer::Step;
use tui::{view, Key, Model, Msg};

fn dump(lines: &[String]) -> String {
    lines.join("\n")
}

fn smart_model() -> Model {
    let mut m = model();
    answer(
        &mut m,
        |m| smart_id(m, "/dev/sda".into()),
        |id| Msg::Smart {
            id,
            path: "/dev/sda".into(),
            health: SmartHealth::Passed,
        },
    );
    answer(
        &mut m,
        |m| smart_id(m, "/dev/sdd".into()),
        |id| Msg::Smart {
            id,
            path: "/dev/sdd".into(),
            health: SmartHealth::Failed,
        },
    );
    answer(
        &mut m,
        |m| smart_id(m, "/dev/vda".into()),
        |id| Msg::Smart {
            id,
            path: "/dev/vda".into(),
            health: SmartHealth::Unavailable("/dev/vda: Unable to detect device type".into()),
        },
    );
    m
}

#[test]
fn main_screen_at_80x25_lists_disks_partitions_smart_and_the_boot_medium() {
    let m = smart_model();
    let lines = screen(&m, 80, 25);
    let expected_top = [
        " Lifeboat 0.1.0 - disks",
        "┌ Disks ───────────────────────────────────────────────────────────────────────┐",
        "│sda     sata    64.0 MiB gpt   Samsung SSD 870  S6PU1            PASSED       │",
        "│  sda1      ext4 \"ROOT\"       16.0 MiB █░░░░  13.4 MiB free                   │",
        "│  sda2      vfat \"DATA\"       16.0 MiB █░░░░  16.0 MiB free                   │",
        "│sdb     sata     128 MiB none  Crucial MX500    CT22             …            │",
        "│sdc     usb     32.0 MiB none  Cruzer Blade     4C53             …            │",
        "│sdd     usb     64.0 MiB gpt   Ultra Fit        4C99             FAILED in use│",
        "│  sdd1      ext4 \"ROOT\"       16.0 MiB █░░░░  13.4 MiB free                   │",
        "│  sdd2      vfat \"DATA\"       16.0 MiB █░░░░  16.0 MiB free  on /media/stick  │",
        "│vda     virtio  64.0 MiB gpt   QEMU HARDDISK    QM0001           n/a    BOOT  │",
        "│  vda1      ext4 \"ROOT\"       16.0 MiB █░░░░  13.4 MiB free  on /             │",
        "│  vda2      vfat \"DATA\"       16.0 MiB █░░░░  16.0 MiB free                   │",
    ];
    assert_eq!(
        &lines[..expected_top.len()],
        &expected_top[..],
        "\n{}",
        dump(&lines)
    );
    assert_eq!(
        lines[17],
        "│Samsung SSD 870, serial S6PU1, 64.0 MiB (67.1 MB)                             │"
    );
    assert_eq!(
        lines[18],
        "│/dev/sda  sata  sectors 512/512                                               │"
    );
    assert!(lines[19].starts_with("│gpt table, id ") && lines[19].contains(", 2 partitions"));
    assert_eq!(
        lines[24],
        " ↑↓ move  Enter menu  a back up  e restore  f files  c clone  m mount  q quit"
    );
}

#[test]
fn the_main_screen_says_how_the_machine_booted_and_if_secure_boot_is_on() {
    let mut m = smart_model();
    m.boot_mode = Some(tui::system::BootMode::Uefi {
        secure_boot: Some(true),
    });
    let lines = screen(&m, 80, 25);
    assert_eq!(
        lines[0],
        " Lifeboat 0.1.0 - disks                                    UEFI, Secure Boot on"
    );
    m.boot_mode = Some(tui::system::BootMode::Bios);
    let lines = screen(&m, 80, 25);
    assert!(lines[0].ends_with("legacy BIOS boot"), "{}", lines[0]);
    // The address the machine got, once DHCP answered, beside it.
    tui::update(&mut m, tui::Msg::Network("eth0 10.0.2.15/24".into()));
    let lines = screen(&m, 80, 25);
    assert_eq!(
        lines[0],
        " Lifeboat 0.1.0 - disks                    eth0 10.0.2.15/24 · legacy BIOS boot"
    );
    // Not on the job screens.
    keys(&mut m, &[tui::Key::Char('e')]);
    let lines = screen(&m, 80, 25);
    assert!(!lines[0].contains("BIOS"), "{}", lines[0]);
}

#[test]
fn the_boot_medium_details_say_it_is_protected() {
    let mut m = smart_model();
    let vda = m.disks.iter().position(|d| d.device.name == "vda").unwrap();
    m.cursor = m.rows().iter().position(|r| *r == Row::Disk(vda)).unwrap();
    let lines = screen(&m, 80, 25);
    assert!(
        lines.iter().any(|l| l
            .contains("protected: it holds the running system or the medium Lifeboat booted from")),
        "\n{}",
        dump(&lines)
    );
    assert!(lines
        .iter()
        .any(|l| l.contains("SMART: /dev/vda: Unable to detect device type")));
}

#[test]
fn without_smartctl_the_smart_column_is_hidden() {
    let mut m = Model::new(false, false, Default::default(), None);
    scanned(&mut m, Ok(machine()));
    let lines = screen(&m, 80, 25);
    assert_eq!(
        lines[2],
        "│sda     sata    64.0 MiB gpt   Samsung SSD 870         S6PU1                  │"
    );
    assert_eq!(
        lines[10],
        "│vda     virtio  64.0 MiB gpt   QEMU HARDDISK           QM0001           BOOT  │"
    );
}

#[test]
fn clone_target_screen_marks_refused_disks_and_explains_the_larger_target() {
    let mut m = smart_model();
    m.cursor = 0;
    keys(&mut m, &[Key::Char('c'), Key::Enter]);
    let lines = screen(&m, 80, 25);
    let expected = [
        " Lifeboat 0.1.0 - Clone disk - step 2 of 6: target",
        "From: sda        64.0 MiB  Samsung SSD 870",
        "Pick the disk to copy TO. Everything on it will be replaced.",
        "┌ Target disk ─────────────────────────────────────────────────────────────────┐",
        "│x sda        64.0 MiB  Samsung SSD 870                                        │",
        "│  sdb         128 MiB  Crucial MX500                                          │",
        "│x sdc        32.0 MiB  Cruzer Blade                                           │",
        "│x sdd        64.0 MiB  Ultra Fit                                              │",
        "│x vda        64.0 MiB  QEMU HARDDISK                                          │",
    ];
    assert_eq!(
        &lines[..expected.len()],
        &expected[..],
        "\n{}",
        dump(&lines)
    );
    assert_eq!(
        lines[20],
        "64.0 MiB larger than the source: the last partition can grow (next screen)"
    );
    assert_eq!(lines[24], " ↑↓ move  Enter choose  Esc back");
    // On the too-small disk the shortfall is shown.
    keys(&mut m, &[Key::Down]);
    let lines = screen(&m, 80, 25);
    assert!(
        lines[20].starts_with(
            "Cannot be used: too small: the source's partitions need 33.0 MiB, it has"
        ),
        "{}",
        lines[20]
    );
    assert!(
        lines.iter().any(|l| l.contains("short)")),
        "\n{}",
        dump(&lines)
    );
}

#[test]
fn confirmation_names_model_serial_and_size_and_shows_what_is_typed() {
    let mut m = smart_model();
    m.cursor = 0;
    keys(&mut m, &[Key::Char('c'), Key::Enter, Key::Enter]);
    let req = match keys(&mut m, &[Key::Enter]).pop() {
        Some(tui::Effect::Plan { request: r, .. }) => r,
        other => panic!("{other:?}"),
    };
    answer(&mut m, plan_id, |id| Msg::Planned {
        id,
        result: Ok(planned(&req)),
    });
    let plan_lines = screen(&m, 80, 25);
    assert_eq!(
        plan_lines[1],
        "Nothing has been written yet. This is what will happen:"
    );
    // The engine's plan (made against a file of the target's size: see `planned`).
    assert!(
        plan_lines[3].starts_with("│clone ")
            && plan_lines
                .iter()
                .any(|l| l.starts_with("│1. invalidate the partition table of ")),
        "\n{}",
        dump(&plan_lines)
    );
    keys(&mut m, &[Key::Enter]);
    typed(&mut m, "ye");
    let lines = screen(&m, 80, 25);
    let expected = [
        " Lifeboat 0.1.0 - Clone disk - step 5 of 6: confirm",
        "┌ Confirm ─────────────────────────────────────────────────────────────────────┐",
        "│ALL DATA ON THIS DISK WILL BE DESTROYED:                                      │",
        "│                                                                              │",
        "│  Crucial MX500, serial CT22, 128 MiB (134.2 MB)                              │",
        "│  /dev/sdb                                                                    │",
        "│                                                                              │",
        "│It will become a copy of /dev/sda: Samsung SSD 870, serial S6PU1, 64.0 MiB    │",
        "│(67.1 MB)                                                                     │",
        "│                                                                              │",
        "│Type yes and press Enter to start. Esc goes back.                             │",
        "│                                                                              │",
        "│> ye_                                                                         │",
    ];
    assert_eq!(
        &lines[..expected.len()],
        &expected[..],
        "\n{}",
        dump(&lines)
    );
}

#[test]
fn progress_shows_bar_speed_elapsed_eta_and_bad_sectors() {
    let mut m = smart_model();
    m.cursor = 0;
    keys(&mut m, &[Key::Char('c'), Key::Enter, Key::Enter]);
    let req = match keys(&mut m, &[Key::Enter]).pop() {
        Some(tui::Effect::Plan { request: r, .. }) => r,
        other => panic!("{other:?}"),
    };
    answer(&mut m, plan_id, |id| Msg::Planned {
        id,
        result: Ok(planned(&req)),
    });
    keys(&mut m, &[Key::Enter]);
    typed(&mut m, "yes");
    keys(&mut m, &[Key::Enter]);
    answer(&mut m, job_id, |id| Msg::Progress {
        id,
        progress: engine::Progress {
            phase: "copying partition 1".into(),
            done: 3 * MIB,
            total: 10 * MIB,
            bytes_per_sec: 52.4e6,
            eta_secs: Some(75),
            elapsed_secs: 3663.0,
            bad_bytes: 4096,
            finished: false,
        },
    });
    let lines = screen(&m, 80, 25);
    let expected = [
        " Lifeboat 0.1.0 - Clone disk - step 6 of 6: running",
        "/dev/sda -> /dev/sdb",
        "Crucial MX500, serial CT22, 128 MiB (134.2 MB)",
        "copying partition 1",
        "┌──────────────────────────────────────────────────────────────────────────────┐",
        "│███████████████████████             30.0%                                     │",
        "└──────────────────────────────────────────────────────────────────────────────┘",
        "Done     3.0 MiB of 10.0 MiB",
        "Speed    50.0 MiB/s",
        "Elapsed  1:01:03",
        "Left     1:15",
        "Unreadable so far: 4.0 KiB (written as zeros)",
    ];
    assert_eq!(
        &lines[..expected.len()],
        &expected[..],
        "\n{}",
        dump(&lines)
    );
    assert_eq!(lines[24], " Esc cancel");
    keys(&mut m, &[Key::Esc]);
    let lines = screen(&m, 80, 25);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Cancel the job? The target will be")),
        "\n{}",
        dump(&lines)
    );
    assert_eq!(lines[24], " y cancel the job  n keep going");
}

#[test]
fn every_screen_fits_80_columns_and_survives_tiny_and_huge_terminals() {
    let mut m = smart_model();
    let script: &[&[Key]] = &[
        &[],
        &[Key::Enter],
        &[Key::Esc, Key::Char('l')],
        &[Key::Esc, Key::Char('o')],
        &[Key::Char('n'), Key::Char('p')],
        &[Key::Enter],
        &[Key::Enter],
    ];
    for ks in script {
        keys(&mut m, ks);
        let help = tui::app::help_text(&m);
        assert!(help.chars().count() <= 80, "help line too long: {help}");
        for (w, h) in [(80, 25), (20, 5), (1, 1), (200, 60)] {
            let lines = screen(&m, w, h);
            assert_eq!(lines.len(), h as usize);
        }
    }
    assert!(matches!(&m.screen, Screen::Wizard(w) if matches!(w.step, Step::Options { .. })));
}

#[test]
fn a_failed_job_shows_the_error_the_target_state_and_the_log() {
    let mut m = smart_model();
    m.cursor = 0;
    keys(&mut m, &[Key::Char('c'), Key::Enter, Key::Enter]);
    let req = match keys(&mut m, &[Key::Enter]).pop() {
        Some(tui::Effect::Plan { request: r, .. }) => r,
        other => panic!("{other:?}"),
    };
    answer(&mut m, plan_id, |id| Msg::Planned {
        id,
        result: Ok(planned(&req)),
    });
    keys(&mut m, &[Key::Enter]);
    typed(&mut m, "yes");
    keys(&mut m, &[Key::Enter]);
    answer(&mut m, job_id, |id| Msg::Progress {
        id,
        progress: engine::Progress {
            phase: "copying partition 2".into(),
            done: MIB,
            total: 4 * MIB,
            bytes_per_sec: 1e6,
            eta_secs: Some(3),
            elapsed_secs: 1.0,
            bad_bytes: 0,
            finished: false,
        },
    });
    answer(&mut m, job_id, |id| Msg::JobDone {
        id,
        outcome: outcome(
            engine::job::Status::Failed,
            Some("writing 1048576 bytes at byte 17825792 of /dev/sdb: Input/output error"),
        ),
    });
    let lines = screen(&m, 80, 25);
    let text = dump(&lines);
    assert_eq!(
        lines[2],
        "│Clone disk failed.                                                            │",
        "\n{text}"
    );
    assert!(text.contains("Input/output error"), "\n{text}");
    assert!(
        text.contains("State of /dev/sdb: the target has no partition table yet"),
        "\n{text}"
    );
    assert!(
        text.contains("The log is in /run/lifeboat/lifeboat.log"),
        "\n{text}"
    );
    assert_eq!(lines[24], " Enter back to the disks");
}

#[test]
fn loop_devices_are_named_by_their_file_and_have_no_smart_column_value() {
    let mut m = Model::new(true, true, Default::default(), None);
    let mut lo = device("loop0", 64 * MIB, "x", "y", disk::Transport::Virtual);
    lo.model = None;
    lo.serial = None;
    lo.kind = disk::DeviceKind::Loop {
        backing_file: "/tmp/tui-e2e/src.img".into(),
    };
    scanned(
        &mut m,
        Ok(vec![tui::model::DiskEntry {
            report: Ok(gpt_report("/dev/loop0")),
            device: lo,
        }]),
    );
    let lines = screen(&m, 80, 25);
    assert_eq!(
        lines[1],
        "┌ Disks (with loop and RAM devices) ───────────────────────────────────────────┐"
    );
    assert_eq!(
        lines[2],
        "│loop0   virtual 64.0 MiB gpt   file src.img                                   │"
    );
}

#[test]
fn the_log_screen_wraps_long_lines_and_shows_the_newest() {
    let m = smart_model();
    for i in 0..40 {
        m.log.push(format!("04:00:{i:02} info: line {i}"));
    }
    m.log.push(format!("04:01:00 error: {}", "x".repeat(100)));
    let mut m = m;
    keys(&mut m, &[Key::Char('l')]);
    let lines = screen(&m, 80, 25);
    assert_eq!(
        lines[1],
        "┌ Log (also in /run/lifeboat/lifeboat.log) ────────────────────────────────────┐"
    );
    assert_eq!(lines[20], format!("│04:01:00 error: {}│", "x".repeat(62)));
    assert_eq!(lines[21], format!("│{}{}│", "x".repeat(38), " ".repeat(40)));
    assert_eq!(
        lines[19],
        format!("│04:00:39 info: line 39{}│", " ".repeat(56))
    );
    assert_eq!(lines[24], " ↑↓ PgUp PgDn scroll  End newest  Esc back");
}

#[test]
fn only_screens_with_a_spinner_need_redrawing_on_ticks() {
    let mut m = smart_model();
    assert!(!tui::app::animated(&m));
    m.scanning = Some(m.request());
    assert!(tui::app::animated(&m));
    m.scanning = None;
    // The image browser spins until its folder is read.
    keys(&mut m, &[tui::Key::Char('e')]);
    assert!(tui::app::animated(&m));
    let _ = answer(&mut m, picker_id, |id| Msg::Listed {
        id,
        result: Ok(vec![]),
    });
    assert!(!tui::app::animated(&m));
}

#[test]
fn long_models_and_serials_are_cut_with_an_ellipsis_and_grow_with_the_terminal() {
    let mut m = Model::new(false, false, Default::default(), None);
    let long = device(
        "nvme0n1",
        1000 * 1000 * MIB,
        "Samsung SSD 990 PRO with Heatsink 2TB",
        "S7HENJ0W123456789XYZ",
        disk::Transport::Nvme,
    );
    scanned(
        &mut m,
        Ok(vec![tui::model::DiskEntry {
            report: Ok(gpt_report("/dev/nvme0n1")),
            device: long,
        }]),
    );
    let lines = screen(&m, 80, 25);
    assert_eq!(
        lines[2],
        "│nvme0n1 nvme     977 GiB gpt   Samsung SSD 990 PRO with Hea… S7HENJ0W1234567… │"
    );
    // The details name model, serial and the size in both units.
    assert_eq!(
        lines[17..19],
        [
            "│Samsung SSD 990 PRO with Heatsink 2TB, serial S7HENJ0W123456789XYZ, 977 GiB   │",
            "│(1.0 TB)                                                                      │",
        ],
        "\n{}",
        dump(&lines)
    );
    // A wider terminal shows them whole.
    let wide = screen(&m, 120, 25);
    assert!(
        wide[2].contains("Samsung SSD 990 PRO with Heatsink 2TB    S7HENJ0W123456789XYZ "),
        "\n{}",
        dump(&wide)
    );
}

/// The text of every cell, in one string (control characters a terminal would act on included).
fn cells(m: &Model, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| view(m, f)).unwrap();
    let buf = t.backend().buffer().clone();
    (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .map(|(x, y)| buf[(x, y)].symbol().to_string())
        .collect()
}

#[test]
fn labels_names_and_models_with_escape_sequences_are_shown_escaped() {
    let mut m = Model::new(false, false, Default::default(), None);
    let mut disks = machine();
    // Written by whoever made the disk: a model that clears the screen, a partition name with a
    // colour and a right-to-left override, a file-system label that sets the window title.
    disks[0].device.model = Some("EVIL\x1b[2J".into());
    let mut report = gpt_report("/dev/sda");
    if let engine::Content::Table { partitions, .. } = &mut report.content {
        partitions[0].name = "p\x1b[31mred\u{202e}cod.exe".into();
        if let Some(fs) = &mut partitions[0].fs {
            fs.label = Some("ROOT\x1b]0;pwned\x07".into());
        }
    }
    disks[0].report = Ok(report);
    scanned(&mut m, Ok(disks));
    // The disk row, then its first partition with the details pane.
    m.cursor = 0;
    let disk_screen = cells(&m, 80, 25);
    m.cursor = 1;
    let part_screen = cells(&m, 80, 25);
    let lines = screen(&m, 80, 25);
    // The copy wizard's source list names the partition by its label too.
    keys(&mut m, &[Key::Char('p')]);
    let wizard_screen = cells(&m, 80, 25);
    for screen in [&disk_screen, &part_screen, &wizard_screen] {
        assert!(
            !screen.contains(|c: char| c.is_control() || c == '\u{202e}'),
            "{screen:?}"
        );
    }
    assert!(disk_screen.contains("EVIL\\x1b[2J"), "{disk_screen}");
    assert!(
        part_screen.contains("label \"ROOT\\x1b]0;pwned\\x07\""),
        "{}",
        dump(&lines)
    );
    assert!(
        part_screen.contains("\"p\\x1b[31mred\\u{202e}cod.exe\""),
        "{}",
        dump(&lines)
    );
    assert!(
        wizard_screen.contains("ROOT\\x1b]0;pwned"),
        "{wizard_screen}"
    );
}

#[test]
fn a_partitions_details_show_its_used_and_free_bytes_label_uuid_and_mount_state() {
    let mut m = smart_model();
    // What the scan reports each partition of the fixture uses (engine::inspect reads the maps).
    let report = gpt_report("/dev/sdd");
    let engine::Content::Table { partitions, .. } = &report.content else {
        panic!("the fixture has a partition table");
    };
    let used = |n: u32| {
        partitions
            .iter()
            .find(|p| p.number == n)
            .and_then(|p| p.used)
            .expect("the fixture's file systems have readable maps")
    };
    // sdd2: the mounted FAT partition of the stick (rows: sda, sda1, sda2, sdb, sdc, sdd, sdd1).
    m.cursor = 7;
    let lines = screen(&m, 80, 25);
    let text = dump(&lines);
    let details: Vec<&String> = lines
        .iter()
        .skip_while(|l| !l.contains(" Details "))
        .collect();
    let details = details
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        details.contains("file system vfat  label \"DATA\"  uuid "),
        "\n{text}"
    );
    let u = used(2);
    assert!(u > 0 && u < MIB, "{u}");
    assert!(
        details.contains(&format!("free ({u} bytes used)")),
        "\n{text}"
    );
    assert!(
        details.contains("sdd2 is mounted at /media/stick"),
        "\n{text}"
    );
    // An unmounted ext4 partition: its used bytes, and not mounted.
    m.cursor = 1;
    let text = dump(&screen(&m, 80, 25));
    assert!(
        text.contains(&format!(
            "2.6 MiB used, 13.4 MiB free ({} bytes used)",
            used(1)
        )),
        "\n{text}"
    );
    assert!(text.contains("not mounted"), "\n{text}");
}

#[test]
fn the_usage_bar_shows_the_used_share_in_five_cells() {
    use tui::screens::disks::usage_bar;
    assert_eq!(usage_bar(0, 100), "░░░░░");
    assert_eq!(usage_bar(1, 1000), "█░░░░");
    assert_eq!(usage_bar(50, 50), "███░░");
    assert_eq!(usage_bar(100, 0), "█████");
    assert_eq!(usage_bar(0, 0), "░░░░░");
}
