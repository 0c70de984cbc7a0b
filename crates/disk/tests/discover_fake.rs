//! `discover` against fake sysfs/procfs trees with the shapes of real machines.

#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

mod common;

use common::{standard_tree, FakeTree};
use disk::{
    discover, find, find_partition, BlockDevice, DevNum, DeviceKind, DiscoverError,
    DiscoverOptions, FindError, SysRoot, Transport, UseReason,
};
use std::path::{Path, PathBuf};

fn list(tree: &FakeTree) -> Vec<BlockDevice> {
    discover(&tree.root, &DiscoverOptions::default()).unwrap()
}

fn get<'a>(devs: &'a [BlockDevice], name: &str) -> &'a BlockDevice {
    devs.iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("{name} not discovered"))
}

#[test]
fn lists_disks_sorted_and_leaves_out_loop_ram_and_zram_by_default() {
    let tree = standard_tree();
    let names: Vec<String> = list(&tree).into_iter().map(|d| d.name).collect();
    assert_eq!(
        names,
        [
            "dm-0", "md127", "mmcblk0", "nvme0n1", "sda", "sdb", "sdc", "sdd", "sde", "sr0", "vda",
            "xvda"
        ]
    );
}

#[test]
fn include_virtual_lists_attached_loop_devices_and_zram_but_never_detached_loops() {
    let tree = standard_tree();
    let opts = DiscoverOptions {
        include_virtual: true,
        ..Default::default()
    };
    let devs = discover(&tree.root, &opts).unwrap();
    let loop0 = get(&devs, "loop0");
    assert_eq!(
        loop0.kind,
        DeviceKind::Loop {
            backing_file: PathBuf::from("/srv/images/disk one.img")
        }
    );
    assert_eq!(loop0.transport, Transport::Virtual);
    assert_eq!(loop0.size, 16_384 * 512);
    assert!(loop0.is_virtual());
    assert_eq!(get(&devs, "zram0").kind, DeviceKind::Ram);
    assert!(!devs.iter().any(|d| d.name == "loop1"));
}

#[test]
fn sata_disk_on_ahci_reads_serial_from_vpd_page_and_lists_partitions_in_bytes() {
    let tree = standard_tree();
    let devs = list(&tree);
    let sda = get(&devs, "sda");
    assert_eq!(sda.path, tree.root.dev.join("sda"));
    assert_eq!(sda.dev, Some(DevNum { major: 8, minor: 0 }));
    assert_eq!(sda.kind, DeviceKind::Disk);
    assert_eq!(sda.transport, Transport::Sata);
    assert_eq!(sda.serial.as_deref(), Some("S3Z9NB0K123456X"));
    assert_eq!(sda.model.as_deref(), Some("Samsung SSD 860"));
    assert_eq!(sda.vendor.as_deref(), Some("ATA"));
    assert_eq!(sda.wwn.as_deref(), Some("naa.5002538e40a1b2c3"));
    assert_eq!(sda.size, 976_773_168 * 512);
    assert_eq!(
        (sda.logical_sector_size, sda.physical_sector_size),
        (512, 512)
    );
    assert_eq!(sda.rotational, Some(false));
    assert_eq!(sda.removable, Some(false));
    assert_eq!(sda.read_only, Some(false));
    assert_eq!(sda.discard, Some(true));
    assert!(!sda.is_virtual());
    type Row<'a> = (&'a str, Option<u32>, Option<u64>, Option<u64>);
    let parts: Vec<Row> = sda
        .partitions
        .iter()
        .map(|p| (p.name.as_str(), p.number, p.start, p.size))
        .collect();
    assert_eq!(
        parts,
        [
            ("sda1", Some(1), Some(2048 * 512), Some(1_048_576 * 512)),
            (
                "sda2",
                Some(2),
                Some(1_050_624 * 512),
                Some(16_777_216 * 512)
            ),
            (
                "sda3",
                Some(3),
                Some(17_827_840 * 512),
                Some(958_943_232 * 512)
            ),
        ]
    );
    assert_eq!(sda.partitions[0].path, tree.root.dev.join("sda1"));
    assert_eq!(sda.partitions[0].dev, Some(DevNum { major: 8, minor: 1 }));
}

#[test]
fn sata_disk_reports_mounted_swap_and_held_partitions() {
    let tree = standard_tree();
    let devs = list(&tree);
    let sda = get(&devs, "sda");
    assert!(sda.mount_points.is_empty());
    assert_eq!(sda.partitions[0].mount_points, [PathBuf::from("/boot/efi")]);
    assert!(!sda.partitions[0].swap);
    // Listed in /proc/swaps through a /dev/disk/by-uuid link.
    assert!(sda.partitions[1].swap);
    assert_eq!(sda.partitions[2].holders, ["dm-0"]);
    assert!(!sda.is_boot_medium);
    assert_eq!(
        sda.in_use_reasons(),
        [
            UseReason::Mounted {
                device: "sda1".into(),
                mount_point: "/boot/efi".into()
            },
            UseReason::Swap {
                device: "sda2".into()
            },
            UseReason::HeldBy {
                device: "sda3".into(),
                holder: "dm-0".into()
            },
        ]
    );
    assert_eq!(
        sda.in_use().as_deref(),
        Some("sda1 is mounted at /boot/efi; sda2 is in use as swap; sda3 is held by dm-0")
    );
}

#[test]
fn nvme_disk_with_4k_sectors_keeps_sysfs_512_byte_units_and_holds_root() {
    let tree = standard_tree();
    let devs = list(&tree);
    let nvme = get(&devs, "nvme0n1");
    assert_eq!(nvme.transport, Transport::Nvme);
    assert_eq!(nvme.serial.as_deref(), Some("S4EWNX0R123456"));
    assert_eq!(nvme.model.as_deref(), Some("Samsung SSD 970 EVO Plus 1TB"));
    assert_eq!(nvme.vendor, None);
    assert_eq!(nvme.wwn.as_deref(), Some("eui.0025385b71b0a1c2"));
    assert_eq!(nvme.size, 1_000_204_886_016);
    assert_eq!(
        (nvme.logical_sector_size, nvme.physical_sector_size),
        (4096, 4096)
    );
    assert_eq!(nvme.partitions[0].start, Some(1024 * 1024));
    assert_eq!(nvme.partitions[1].size, Some(1_743_807_920 * 512));
    assert_eq!(nvme.partitions[0].mount_points, [PathBuf::from("/")]);
    assert_eq!(
        nvme.partitions[1].mount_points,
        [PathBuf::from("/mnt/my data")]
    );
    assert!(nvme.is_boot_medium);
    let reasons = nvme.in_use_reasons();
    assert_eq!(
        reasons[0],
        UseReason::BootMedium {
            device: "nvme0n1".into()
        }
    );
    assert_eq!(reasons.len(), 3);
    assert_eq!(
        nvme.identity(),
        "Samsung SSD 970 EVO Plus 1TB, serial S4EWNX0R123456, 1.0 TB"
    );
}

#[test]
fn usb_stick_takes_serial_from_usb_device_and_is_boot_medium_when_mounted_as_lifeboat_media() {
    let tree = standard_tree();
    let devs = list(&tree);
    let sdb = get(&devs, "sdb");
    assert_eq!(sdb.transport, Transport::Usb);
    assert_eq!(sdb.serial.as_deref(), Some("AA00000000012345"));
    assert_eq!(sdb.model.as_deref(), Some("Flash Disk"));
    assert_eq!(sdb.vendor.as_deref(), Some("Generic"));
    assert_eq!(sdb.removable, Some(true));
    assert_eq!(sdb.rotational, Some(true));
    assert!(sdb.is_boot_medium);
    assert_eq!(
        sdb.partitions[0].mount_points,
        [PathBuf::from("/run/lifeboat/media")]
    );
    assert_eq!(
        sdb.identity(),
        "Generic Flash Disk, serial AA00000000012345, 15.4 GB"
    );
}

#[test]
fn usb_disk_without_model_falls_back_to_usb_product_with_odd_bytes_replaced() {
    let tree = standard_tree();
    std::fs::remove_file(tree.path(
        "sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/model",
    ))
    .unwrap();
    let devs = list(&tree);
    assert_eq!(
        get(&devs, "sdb").model.as_deref(),
        Some("Mass \u{fffd}Storage")
    );
}

#[test]
fn virtio_disk_reads_serial_file_and_ignores_pci_vendor_id() {
    let tree = standard_tree();
    let devs = list(&tree);
    let vda = get(&devs, "vda");
    assert_eq!(vda.transport, Transport::Virtio);
    assert_eq!(vda.serial.as_deref(), Some("QM00001"));
    assert_eq!(vda.vendor, None);
    assert_eq!(vda.model, None);
    assert_eq!(vda.in_use(), None);
    assert_eq!(vda.identity(), "disk with serial QM00001, 21.5 GB");
}

#[test]
fn ata_transport_is_sata_only_for_ahci_or_a_sata_link_speed() {
    let tree = standard_tree();
    let devs = list(&tree);
    assert_eq!(get(&devs, "sdc").transport, Transport::Ata);
    assert_eq!(get(&devs, "sdd").transport, Transport::Sata);
    assert_eq!(get(&devs, "sdc").rotational, Some(true));
}

#[test]
fn sas_disk_is_scsi_and_btrfs_mount_with_anonymous_device_number_is_matched_by_source() {
    let tree = standard_tree();
    let devs = list(&tree);
    let sde = get(&devs, "sde");
    assert_eq!(sde.transport, Transport::Scsi);
    assert_eq!(sde.serial.as_deref(), Some("ZC1234AB"));
    assert_eq!(sde.vendor.as_deref(), Some("SEAGATE"));
    assert_eq!(
        (sde.logical_sector_size, sde.physical_sector_size),
        (512, 4096)
    );
    assert_eq!(sde.partitions[0].mount_points, [PathBuf::from("/srv")]);
    assert_eq!(
        sde.identity(),
        "SEAGATE ST4000NM0023, serial ZC1234AB, 4.0 TB"
    );
}

#[test]
fn optical_mmc_and_unknown_devices_are_recognized() {
    let tree = standard_tree();
    let devs = list(&tree);
    let sr0 = get(&devs, "sr0");
    assert_eq!(sr0.kind, DeviceKind::Optical);
    assert_eq!(sr0.transport, Transport::Sata);
    assert_eq!(sr0.size, 0);
    let mmc = get(&devs, "mmcblk0");
    assert_eq!(mmc.transport, Transport::Mmc);
    assert_eq!(mmc.model.as_deref(), Some("SD64G"));
    assert_eq!(mmc.serial.as_deref(), Some("0x12345678"));
    let xvda = get(&devs, "xvda");
    assert_eq!(xvda.transport, Transport::Unknown);
    assert_eq!(xvda.size, 20_971_520 * 512);
    assert_eq!(
        (xvda.model.clone(), xvda.serial.clone(), xvda.wwn.clone()),
        (None, None, None)
    );
    assert_eq!(xvda.read_only, None);
    assert_eq!(xvda.removable, None);
    assert_eq!(xvda.rotational, None);
    assert_eq!(xvda.discard, None);
    assert_eq!(xvda.physical_sector_size, 512);
    assert_eq!(xvda.identity(), "disk of unknown model and serial, 10.7 GB");
}

#[test]
fn device_mapper_and_raid_devices_are_listed_as_virtual_with_their_details() {
    let tree = standard_tree();
    let devs = list(&tree);
    let dm = get(&devs, "dm-0");
    assert_eq!(
        dm.kind,
        DeviceKind::DeviceMapper {
            name: Some("vg-home".into()),
            uuid: Some("LVM-Hq3bEh2bVw".into())
        }
    );
    assert_eq!(dm.transport, Transport::Virtual);
    assert_eq!(dm.slaves, ["sda3"]);
    // Mounted through /dev/mapper/vg-home.
    assert_eq!(dm.mount_points, [PathBuf::from("/home")]);
    assert!(dm.is_virtual());
    let md = get(&devs, "md127");
    assert_eq!(
        md.kind,
        DeviceKind::Raid {
            level: Some("raid1".into()),
            state: Some("readonly".into()),
            raid_disks: Some(2),
            degraded: Some(1),
            uuid: Some("3a8f05e4-9c1f-5c4e-0e2d-b1b7e3b9c0aa".into()),
        }
    );
    // Assembled read-only, as Lifeboat's init does: not writable until `mdadm --readwrite`.
    assert!(md.is_read_only_array());
    assert!(!get(&devs, "sda").is_read_only_array());
    // Found by its UUID in blkid's form or mdadm's.
    for spec in [
        "md-uuid:3a8f05e4-9c1f-5c4e-0e2d-b1b7e3b9c0aa",
        "md-uuid:3A8F05E4:9C1F5C4E:0E2DB1B7:E3B9C0AA",
    ] {
        assert_eq!(
            disk::find(&devs, spec).map(|d| d.name.as_str()).ok(),
            Some("md127"),
            "{spec}"
        );
    }
    assert!(disk::find(&devs, "md-uuid:00000000-0000-0000-0000-000000000000").is_err());
}

#[test]
fn disk_under_a_root_file_system_on_lvm_is_boot_medium() {
    let tree = standard_tree();
    tree.mountinfo("31 1 253:0 / / rw - ext4 /dev/mapper/vg-home rw\n");
    let devs = list(&tree);
    assert!(get(&devs, "dm-0").is_boot_medium);
    assert!(get(&devs, "sda").is_boot_medium);
    assert!(!get(&devs, "nvme0n1").is_boot_medium);
    assert_eq!(
        get(&devs, "sda").in_use_reasons()[0],
        UseReason::BootMedium {
            device: "sda".into()
        }
    );
}

#[test]
fn boot_device_file_written_by_init_marks_its_disk() {
    let tree = standard_tree();
    tree.mountinfo("1 1 0:2 / / rw - rootfs rootfs rw\n");
    tree.write("run/lifeboat/boot-device", "/dev/vda\n");
    let devs = list(&tree);
    let boot: Vec<&str> = devs
        .iter()
        .filter(|d| d.is_boot_medium)
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(boot, ["vda"]);
    tree.write("run/lifeboat/boot-device", "sdb1");
    let devs = list(&tree);
    let boot: Vec<&str> = devs
        .iter()
        .filter(|d| d.is_boot_medium)
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(boot, ["sdb"]);
}

#[test]
fn whole_disk_file_system_and_whole_disk_swap_are_reported() {
    let tree = standard_tree();
    tree.mountinfo("40 1 254:0 / /data rw - xfs /dev/vda rw\n");
    tree.swaps(&[("/dev/sdc", "partition")]);
    let devs = list(&tree);
    assert_eq!(get(&devs, "vda").mount_points, [PathBuf::from("/data")]);
    assert_eq!(
        get(&devs, "vda").in_use().as_deref(),
        Some("vda is mounted at /data")
    );
    assert!(get(&devs, "sdc").swap);
    assert!(!get(&devs, "sda").partitions[1].swap);
}

#[test]
fn missing_or_odd_attributes_become_none_without_failing_discovery() {
    let tree = standard_tree();
    let base = "sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda";
    tree.write(&format!("{base}/size"), "not a number\n");
    tree.write(&format!("{base}/queue/logical_block_size"), "");
    tree.write(&format!("{base}/queue/rotational"), b"\xff\xfe");
    tree.write(&format!("{base}/sda1/start"), "");
    tree.write(&format!("{base}/dev"), "8\n");
    std::fs::remove_file(
        tree.path("sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/vpd_pg80"),
    )
    .unwrap();
    let devs = list(&tree);
    let sda = get(&devs, "sda");
    assert_eq!(sda.size, 0);
    assert_eq!(sda.logical_sector_size, 512);
    assert_eq!(sda.rotational, None);
    assert_eq!(sda.serial, None);
    assert_eq!(sda.dev, None);
    assert_eq!(sda.partitions[0].start, None);
    // Partitions keep their own device numbers, so their mounts are still seen.
    assert_eq!(sda.partitions[0].mount_points, [PathBuf::from("/boot/efi")]);
}

#[test]
fn hidden_devices_are_left_out() {
    let tree = standard_tree();
    tree.block(
        "devices/virtual/nvme-subsystem/nvme-subsys0/nvme0c0n1",
        "259:9",
        100,
        None,
    )
    .attr("hidden", "1\n");
    assert!(!list(&tree).iter().any(|d| d.name == "nvme0c0n1"));
}

#[test]
fn unreadable_block_list_or_mount_table_fails_discovery() {
    let tree = standard_tree();
    std::fs::remove_file(tree.path("proc/self/mountinfo")).unwrap();
    let err = discover(&tree.root, &DiscoverOptions::default()).unwrap_err();
    assert!(matches!(err, DiscoverError::MountTable { .. }));
    assert!(err.to_string().starts_with("cannot read the mount table "));
    let empty = tempfile::tempdir().unwrap();
    let err = discover(&SysRoot::under(empty.path()), &DiscoverOptions::default()).unwrap_err();
    assert!(matches!(err, DiscoverError::ListDevices { .. }), "{err}");
}

#[test]
fn missing_swap_table_means_no_swap() {
    let tree = standard_tree();
    std::fs::remove_file(tree.path("proc/swaps")).unwrap();
    let devs = list(&tree);
    assert!(!get(&devs, "sda").partitions[1].swap);
}

#[test]
fn find_accepts_paths_names_serials_and_models() {
    let tree = standard_tree();
    let devs = list(&tree);
    assert_eq!(find(&devs, "/dev/sda").unwrap().name, "sda");
    assert_eq!(find(&devs, "nvme0n1").unwrap().name, "nvme0n1");
    assert_eq!(
        find(&devs, tree.root.dev.join("vda").to_str().unwrap())
            .unwrap()
            .name,
        "vda"
    );
    assert_eq!(find(&devs, "serial:S3Z9NB0K123456X").unwrap().name, "sda");
    assert_eq!(
        find(&devs, "serial:s4ewnx0r123456").unwrap().name,
        "nvme0n1"
    );
    assert_eq!(
        find(&devs, "model:Samsung SSD 970 EVO Plus 1TB")
            .unwrap()
            .name,
        "nvme0n1"
    );
    assert_eq!(
        find(&devs, "model:SEAGATE ST4000NM0023").unwrap().name,
        "sde"
    );
}

#[test]
fn find_explains_ambiguous_missing_and_partition_specs() {
    let tree = standard_tree();
    let devs = list(&tree);
    assert_eq!(
        find(&devs, "model:qemu harddisk").unwrap_err(),
        FindError::Ambiguous {
            spec: "model:qemu harddisk".into(),
            candidates: vec!["sdc".into(), "sdd".into()]
        }
    );
    let err = find(&devs, "model:qemu harddisk").unwrap_err();
    assert_eq!(
        err.to_string(),
        "model:qemu harddisk is ambiguous: it matches sdc, sdd"
    );
    assert_eq!(
        find(&devs, "serial:NOPE").unwrap_err(),
        FindError::NotFound {
            spec: "serial:NOPE".into()
        }
    );
    assert_eq!(
        find(&devs, "/dev/sdz").unwrap_err().to_string(),
        "no disk matches /dev/sdz"
    );
    assert_eq!(
        find(&devs, "serial:").unwrap_err(),
        FindError::Empty {
            spec: "serial:".into()
        }
    );
    assert_eq!(
        find(&devs, "/dev/sda1").unwrap_err(),
        FindError::IsPartition {
            spec: "/dev/sda1".into(),
            disk: "sda".into()
        }
    );
}

#[test]
fn find_partition_returns_partition_and_its_disk() {
    let tree = standard_tree();
    let devs = list(&tree);
    let (disk, part) = find_partition(&devs, "/dev/nvme0n1p2").unwrap();
    assert_eq!(
        (disk.name.as_str(), part.name.as_str()),
        ("nvme0n1", "nvme0n1p2")
    );
    assert_eq!(find_partition(&devs, "sda3").unwrap().1.number, Some(3));
    assert_eq!(
        find_partition(&devs, "sda").unwrap_err(),
        FindError::IsDisk { spec: "sda".into() }
    );
    assert!(matches!(
        find_partition(&devs, "sda9"),
        Err(FindError::NotFound { .. })
    ));
}

#[test]
fn json_output_names_fields_plainly() {
    let tree = standard_tree();
    let opts = DiscoverOptions {
        include_virtual: true,
        ..Default::default()
    };
    let devs = discover(&tree.root, &opts).unwrap();
    let json = serde_json::to_value(&devs).unwrap();
    let sda = json
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "sda")
        .unwrap();
    assert_eq!(sda["transport"], "sata");
    assert_eq!(sda["kind"]["type"], "disk");
    assert_eq!(sda["size"], 976_773_168u64 * 512);
    assert_eq!(sda["dev"]["major"], 8);
    assert_eq!(sda["partitions"][0]["mount_points"][0], "/boot/efi");
    let loop0 = json
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "loop0")
        .unwrap();
    assert_eq!(loop0["kind"]["backing_file"], "/srv/images/disk one.img");
    let reasons = serde_json::to_value(get(&devs, "sda").in_use_reasons()).unwrap();
    assert_eq!(reasons[0]["reason"], "mounted");
    assert_eq!(reasons[0]["mount_point"], "/boot/efi");
}

#[test]
fn sys_root_under_places_the_four_trees() {
    let root = SysRoot::under("/x");
    assert_eq!(root.sys, Path::new("/x/sys"));
    assert_eq!(root.run, Path::new("/x/run"));
    assert_eq!(SysRoot::default().proc, Path::new("/proc"));
}

#[test]
fn bang_in_kernel_names_becomes_a_directory_in_the_node_path() {
    let tree = standard_tree();
    tree.block(
        "devices/pci0000:00/0000:00:05.0/cciss0/c0d0/block/cciss!c0d0",
        "104:0",
        2048,
        None,
    );
    let devs = list(&tree);
    assert_eq!(
        get(&devs, "cciss!c0d0").path,
        tree.root.dev.join("cciss/c0d0")
    );
}
