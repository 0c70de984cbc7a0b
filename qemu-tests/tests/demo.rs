//! What `cargo xtask run` shows a newcomer: the same image, the same VM and the same demo disks
//! (`qemu_tests::demo`, which `xtask run` calls too), driven over the serial console. The first
//! screen must list the system disk's partitions (the ESP and the ext4 root, with labels, a usage
//! bar and free space), and a file of the demo user's `Documents` must be found by browsing.
//!
//! Run with `cargo xtask qemu-test --test demo`.

use anyhow::{ensure, Result};
use qemu_tests::demo;
use qemu_tests::e2e::{report, BOOT};
use qemu_tests::fixture::scratch;
use qemu_tests::screen::{key, Terminal};
use qemu_tests::vm::{workspace_root, Image};
use std::time::{Duration, Instant};

/// How long a screen may take to change after a key, under TCG on a loaded host.
const STEP: Duration = Duration::from_secs(120);

#[test]
fn the_demo_of_xtask_run_lists_the_system_disk_partitions_and_browses_its_documents() -> Result<()>
{
    let t0 = Instant::now();
    let img = Image::find()?;
    let disks = demo::disks(&scratch("demo")?)?;
    let mut vm = demo::vm("demo", &img, &disks, demo::Boot::Kernel).start()?;
    vm.expect("started /bin/lifeboat on ttyS0", BOOT)?;
    let mut term = Terminal::new(80, 25);
    let esp = format!("vfat \"{}\"", demo::ESP_LABEL);
    let root = format!("ext4 \"{}\"", demo::ROOT_LABEL);
    let screen = term.wait_for(
        &mut vm,
        &[
            "vda1",
            &esp,
            "vda2",
            &root,
            demo::SYSTEM_SERIAL,
            demo::BLANK_SERIAL,
            demo::USB_SERIAL,
            "exfat \"BACKUPS\"",
        ],
        BOOT,
    )?;
    // The first screen, for the README.
    let capture = workspace_root().join("target/qemu-logs/demo-first-screen.txt");
    if let Some(dir) = capture.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&capture, &screen)?;
    eprintln!("{screen}");
    let rows: Vec<&str> = screen.lines().collect();
    ensure!(rows.len() == 25, "an 80x25 screen:\n{screen}");
    for (part, label) in [("vda1", &esp), ("vda2", &root)] {
        let row = rows
            .iter()
            .find(|r| r.contains(part))
            .copied()
            .unwrap_or_default();
        ensure!(
            row.contains(label.as_str())
                && row.contains(" free")
                && (row.contains('\u{2588}') || row.contains('\u{2591}')),
            "the {part} row shows its label, a usage bar and its free space: `{row}`\n{screen}"
        );
    }
    let disk_row = rows
        .iter()
        .find(|r| r.contains(demo::SYSTEM_SERIAL))
        .copied()
        .unwrap_or_default();
    ensure!(
        disk_row.contains(" gpt "),
        "the system disk has its GPT: `{disk_row}`\n{screen}"
    );

    // Browse the root file system down to the demo user's Documents.
    term.select(&mut vm, "vda2", 12)?;
    term.type_keys(&mut vm, "x")?;
    term.wait(&mut vm, "home/", STEP)?;
    for folder in ["home/", "demo/", "Documents/"] {
        term.select(&mut vm, folder, 12)?;
        term.type_keys(&mut vm, key::ENTER)?;
    }
    let letter_size = format!("{} B", demo::LETTER_TEXT.len());
    let listing = term.wait_for(&mut vm, &["letter.txt", &letter_size, "numbers.csv"], STEP)?;
    eprintln!("{listing}");
    report("demo first screen and browsing", t0);
    Ok(())
}
