//! Browsing one logical volume of an LVM2 PV (issue 16): the PV's partition asks which LV, the
//! picker shows each LV's size and file system (and why one cannot be browsed), Enter browses the
//! chosen one; and the worker reads the LVs of a PV made by the LVM tools.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use engine::extract::LvChoice;
use fs::{FsInfo, FsKind};
use qemu_tests::fixture::{self, Mkfs};
use std::path::PathBuf;
use tui::model::{BrowseEntry, FileSource, ImagePart, ImageSummary, Listing, Screen};
use tui::screens::files::FilesScreen;
use tui::{Effect, Key, Msg};

fn image_path() -> PathBuf {
    PathBuf::from("/run/lifeboat/mnt/disk.lbi")
}

fn summary() -> ImageSummary {
    let part = |number, fs: &str| ImagePart {
        number,
        size: 64 * MIB,
        fs: fs.into(),
        label: String::new(),
        restorable: true,
    };
    ImageSummary {
        model: "Samsung SSD 870".into(),
        serial: "S6PU1".into(),
        created: "2026-11-22T03:14:34Z".into(),
        source_size: 160 * MIB,
        table: Some("gpt".into()),
        partitions: vec![],
        stored: 9 * MIB,
        volumes: 1,
        file_size: 9 << 20,
        bad_ranges: 0,
        whole_disk: true,
        needs: 130 * MIB,
        parts: vec![part(1, "vfat"), part(2, "LVM2_member")],
    }
}

fn fs_info(kind: FsKind, label: &str) -> FsInfo {
    FsInfo {
        kind,
        version: None,
        label: Some(label.into()),
        uuid: None,
        block_size: 4096,
        cluster_size: 4096,
        size: 32 * MIB,
        used: None,
        needs_check: false,
        state: None,
        warnings: vec![],
        detail: None,
    }
}

fn lv_source(lv: &str) -> FileSource {
    FileSource::Lv {
        pv: Box::new(FileSource::Image {
            path: image_path(),
            partition: 2,
        }),
        vg: "vg0".into(),
        lv: lv.into(),
    }
}

fn lv_id(m: &tui::Model) -> tui::model::RequestId {
    match &m.screen {
        Screen::Files(f) => match &**f {
            FilesScreen::PickLv { request, .. } => request.expect("LVs being read"),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_pv_partition_asks_which_logical_volume_and_browses_the_chosen_one() {
    let mut m = model();
    keys(&mut m, &[Key::Char('f')]);
    let _ = answer(&mut m, picker_id, |id| Msg::Listed {
        id,
        result: Ok(vec![BrowseEntry::Image {
            path: image_path(),
            summary: Ok(summary()),
        }]),
    });
    keys(&mut m, &[Key::Enter]);
    // Partition 2 holds the PV: the LVs are read first.
    let effects = keys(&mut m, &[Key::Down, Key::Enter]);
    match effects.as_slice() {
        [Effect::ListLvs { source, .. }] => assert_eq!(
            source,
            &FileSource::Image {
                path: image_path(),
                partition: 2
            }
        ),
        other => panic!("{other:?}"),
    }
    let text = render(&m).join("\n");
    assert!(text.contains("reading the LVM metadata"), "{text}");
    let lvs = vec![
        LvChoice {
            name: "vg0/swap".into(),
            size: 8 * MIB,
            source: lv_source("swap"),
            fs: Some(fs_info(FsKind::Swap, "lbswap")),
            refused: Some("swap holds no files to browse".into()),
        },
        LvChoice {
            name: "vg0/root".into(),
            size: 48 * MIB,
            source: lv_source("root"),
            fs: Some(fs_info(FsKind::Ext4, "lbroot")),
            refused: None,
        },
        LvChoice {
            name: "vg0/home".into(),
            size: 24 * MIB,
            source: lv_source("home"),
            fs: Some(fs_info(FsKind::Ext4, "lbhome")),
            refused: None,
        },
    ];
    let _ = answer(&mut m, lv_id, |id| Msg::LvsListed {
        id,
        result: Ok(lvs),
    });
    let text = render(&m).join("\n");
    assert!(
        text.contains("Browse which logical volume of disk.lbi #2"),
        "{text}"
    );
    assert!(
        text.contains("vg0/root") && text.contains("ext4 \"lbroot\""),
        "{text}"
    );
    assert!(text.contains("swap holds no files to browse"), "{text}");
    assert!(text.contains("Enter browse this volume"), "{text}");
    // The cursor starts on the first browsable LV; the swap LV is refused with the reason.
    let effects = keys(&mut m, &[Key::Up, Key::Enter]);
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(
        m.status.as_deref(),
        Some("vg0/swap: swap holds no files to browse")
    );
    let effects = keys(&mut m, &[Key::Down, Key::Down, Key::Enter]);
    match effects.as_slice() {
        [Effect::ListFiles {
            source,
            dir,
            listing: Listing::Dir,
            ..
        }] => {
            assert_eq!(source, &lv_source("home"));
            assert_eq!(dir, "/");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_late_answer_for_another_pv_is_dropped_and_esc_leaves() {
    let mut m = model();
    keys(&mut m, &[Key::Char('f')]);
    let _ = answer(&mut m, picker_id, |id| Msg::Listed {
        id,
        result: Ok(vec![BrowseEntry::Image {
            path: image_path(),
            summary: Ok(summary()),
        }]),
    });
    keys(&mut m, &[Key::Enter, Key::Down, Key::Enter]);
    let waiting = lv_id(&m);
    let stale = m.request();
    let _ = tui::update(
        &mut m,
        Msg::LvsListed {
            id: stale,
            result: Err("old".into()),
        },
    );
    assert_eq!(lv_id(&m), waiting, "still waiting for its own answer");
    let _ = tui::update(
        &mut m,
        Msg::LvsListed {
            id: waiting,
            result: Err("cannot read the PV".into()),
        },
    );
    let text = render(&m).join("\n");
    assert!(
        text.contains("cannot read the LVM metadata: cannot read the PV"),
        "{text}"
    );
    keys(&mut m, &[Key::Esc]);
    assert!(matches!(m.screen, Screen::Main), "{:?}", m.screen);
}

#[test]
fn the_worker_reads_the_logical_volumes_of_a_pv_made_by_the_lvm_tools() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pv = d.join("pv.img");
    let lvs = fixture::lvm_pv(
        &pv,
        64 * MIB,
        "lbtuivg1",
        &[("data", 24, 0), ("swap", 8, 0)],
    )
    .unwrap();
    let data = lvs.iter().find(|l| l.name == "data").unwrap();
    let src = d.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("report.txt"), b"in the LV\n").unwrap();
    let ext4 = d.join("data.ext4");
    fixture::mkfs(
        Mkfs::Ext4,
        &ext4,
        data.size,
        "lbdata",
        &["-d", src.to_str().unwrap()],
    )
    .unwrap();
    fixture::write_lv(&pv, data, &ext4).unwrap();
    let swap = lvs.iter().find(|l| l.name == "swap").unwrap();
    let sw = d.join("swap.img");
    fixture::mkfs(Mkfs::Swap, &sw, swap.size, "lbswap", &[]).unwrap();
    fixture::write_lv(&pv, swap, &sw).unwrap();
    let source = FileSource::Live {
        node: pv.clone(),
        offset: 0,
        len: 64 * MIB,
        name: "pv.img".into(),
    };
    let got = engine::extract::logical_volumes(&source).unwrap();
    let names: Vec<_> = got.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["lbtuivg1/data", "lbtuivg1/swap"]);
    assert_eq!(got[0].refused, None);
    assert_eq!(got[0].size, 24 * MIB);
    assert_eq!(
        got[0].fs.as_ref().and_then(|f| f.label.as_deref()),
        Some("lbdata")
    );
    assert_eq!(
        got[1].refused.as_deref(),
        Some("swap holds no files to browse")
    );
    let (fs, items) = tui::extract::list(&got[0].source, "/", &Listing::Dir);
    assert_eq!(fs.as_deref(), Some("ext4 \"lbdata\""));
    assert!(items.unwrap().iter().any(|i| i.entry.name == "report.txt"));
}
