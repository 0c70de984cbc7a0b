//! A fake `/sys`, `/proc`, `/dev` and `/run` in a temporary directory, with the shapes the real
//! kernel uses (block devices under `devices/...`, `/sys/block/NAME` and `device` as relative
//! symlinks, partitions as subdirectories).

#![allow(dead_code, clippy::unwrap_used)]

use disk::SysRoot;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

pub struct FakeTree {
    pub dir: tempfile::TempDir,
    pub root: SysRoot,
}

impl FakeTree {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::under(dir.path());
        for d in [&root.sys, &root.proc, &root.dev, &root.run] {
            fs::create_dir_all(d).unwrap();
        }
        fs::create_dir_all(root.sys.join("block")).unwrap();
        fs::create_dir_all(root.sys.join("bus/pci/drivers/ahci")).unwrap();
        fs::create_dir_all(root.sys.join("bus/pci/drivers/ata_piix")).unwrap();
        let tree = FakeTree { dir, root };
        tree.mountinfo("22 27 0:21 / /proc rw,relatime - proc proc rw\n");
        tree.swaps(&[]);
        tree
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes `content` to `rel` (relative to the tree), creating parents.
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    pub fn mkdir(&self, rel: &str) {
        fs::create_dir_all(self.path(rel)).unwrap();
    }

    /// Creates the symlink `rel` pointing to `target` (taken literally, usually relative).
    pub fn symlink(&self, target: &str, rel: &str) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, p).unwrap();
    }

    /// A block device at `sys/<devpath>` (which ends in `block/NAME`), linked from
    /// `sys/block/NAME`, with `dev`, `size` (512-byte units) and the usual queue attributes.
    /// `device_rel` is the relative target of the `device` link, if the device has one.
    pub fn block(
        &self,
        devpath: &str,
        dev: &str,
        size_512: u64,
        device_rel: Option<&str>,
    ) -> Dev<'_> {
        let name = Path::new(devpath)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let base = format!("sys/{devpath}");
        self.mkdir(&base);
        self.symlink(&format!("../{devpath}"), &format!("sys/block/{name}"));
        if let Some(target) = device_rel {
            self.symlink(target, &format!("{base}/device"));
            fs::create_dir_all(self.path(&base).join(target)).unwrap();
        }
        let d = Dev {
            tree: self,
            base,
            name,
        };
        d.attr("dev", format!("{dev}\n"));
        d.attr("size", format!("{size_512}\n"));
        d.attr("queue/logical_block_size", "512\n");
        d.attr("queue/physical_block_size", "512\n");
        d.attr("queue/rotational", "0\n");
        d.attr("queue/discard_max_bytes", "0\n");
        d.attr("removable", "0\n");
        d.attr("ro", "0\n");
        d.mkdir("holders");
        d.mkdir("slaves");
        d
    }

    pub fn mountinfo(&self, text: &str) {
        self.write("proc/self/mountinfo", text);
    }

    /// `/proc/swaps` with a header and one line per `(path, type)`.
    pub fn swaps(&self, entries: &[(&str, &str)]) {
        let mut text = String::from("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n");
        for (path, kind) in entries {
            text.push_str(&format!("{path:<40}{kind}\t8388604\t\t0\t\t-2\n"));
        }
        self.write("proc/swaps", text);
    }
}

pub struct Dev<'a> {
    tree: &'a FakeTree,
    /// `sys/devices/.../block/NAME`, relative to the tree.
    pub base: String,
    pub name: String,
}

impl Dev<'_> {
    pub fn attr(&self, rel: &str, content: impl AsRef<[u8]>) -> &Self {
        self.tree.write(&format!("{}/{rel}", self.base), content);
        self
    }

    pub fn mkdir(&self, rel: &str) -> &Self {
        self.tree.mkdir(&format!("{}/{rel}", self.base));
        self
    }

    /// The directory of the device's `device` link target, relative to the tree.
    pub fn device_dir(&self) -> String {
        let link = self.tree.path(&format!("{}/device", self.base));
        let target = fs::read_link(&link).unwrap();
        let abs = fs::canonicalize(link.parent().unwrap().join(target)).unwrap_or_else(|_| {
            panic!(
                "device link of {} must point to an existing directory",
                self.name
            )
        });
        abs.strip_prefix(fs::canonicalize(self.tree.dir.path()).unwrap())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    }

    /// A partition subdirectory: `partition`, `start` and `size` (512-byte units), `dev`.
    pub fn partition(
        &self,
        name: &str,
        number: u32,
        start_512: u64,
        size_512: u64,
        dev: &str,
    ) -> &Self {
        self.attr(&format!("{name}/partition"), format!("{number}\n"));
        self.attr(&format!("{name}/start"), format!("{start_512}\n"));
        self.attr(&format!("{name}/size"), format!("{size_512}\n"));
        self.attr(&format!("{name}/dev"), format!("{dev}\n"));
        self.mkdir(&format!("{name}/holders"));
        self
    }
}

/// The machine most tests look at:
/// - `sda`: SATA SSD on AHCI, serial in `vpd_pg80`; `sda1` mounted at /boot/efi, `sda2` swap,
///   `sda3` held by `dm-0` (LVM, mounted at /home)
/// - `nvme0n1`: NVMe with 4096-byte logical sectors; `p1` holds `/`, `p2` is mounted at a path
///   with a space
/// - `sdb`: USB stick whose serial is on the USB device; `sdb1` is Lifeboat's boot medium
/// - `vda`: virtio disk with a `serial` file; `sdc`: PATA disk on ata_piix; `sdd`: SATA disk on
///   ata_piix (link speed says SATA); `sde`: SAS disk with a btrfs partition; `sr0`: DVD drive;
///   `mmcblk0`: SD card; `xvda`: a Xen disk with almost nothing in sysfs
/// - `loop0` (backing file with a space), `loop1` (detached), `zram0`, `dm-0`, `md127`
pub fn standard_tree() -> FakeTree {
    let t = FakeTree::new();

    // SATA on AHCI.
    t.symlink(
        "../../../bus/pci/drivers/ahci",
        "sys/devices/pci0000:00/0000:00:1f.2/driver",
    );
    let sda = t.block(
        "devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda",
        "8:0",
        976_773_168,
        Some("../../../0:0:0:0"),
    );
    let mut vpd = vec![0x00, 0x80, 0x00, 0x14];
    vpd.extend_from_slice(b"     S3Z9NB0K123456X");
    sda.attr("device/vpd_pg80", vpd)
        .attr("device/model", "Samsung SSD 860 \n")
        .attr("device/vendor", "ATA     \n")
        .attr("device/wwid", "naa.5002538e40a1b2c3\n")
        .attr("queue/discard_max_bytes", "2147450880\n")
        .partition("sda1", 1, 2048, 1_048_576, "8:1")
        .partition("sda2", 2, 1_050_624, 16_777_216, "8:2")
        .partition("sda3", 3, 17_827_840, 958_943_232, "8:3")
        .mkdir("sda3/holders/dm-0");

    // NVMe, 4K logical sectors.
    let nvme = t.block(
        "devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1",
        "259:0",
        1_953_525_168,
        Some("../../nvme0"),
    );
    nvme.attr("device/serial", "S4EWNX0R123456      \n")
        .attr("device/model", "Samsung SSD 970 EVO Plus 1TB            \n")
        .attr("wwid", "eui.0025385b71b0a1c2\n")
        .attr("queue/logical_block_size", "4096\n")
        .attr("queue/physical_block_size", "4096\n")
        .attr("queue/discard_max_bytes", "2199023255040\n")
        .partition("nvme0n1p1", 1, 2048, 209_715_200, "259:1")
        .partition("nvme0n1p2", 2, 209_717_248, 1_743_807_920, "259:2");

    // USB stick: serial on the USB device two levels up.
    let usb = "devices/pci0000:00/0000:00:14.0/usb2/2-1";
    t.write(&format!("sys/{usb}/serial"), "AA00000000012345\n");
    t.write(&format!("sys/{usb}/idVendor"), "058f\n");
    t.write(&format!("sys/{usb}/manufacturer"), "Generic\n");
    t.write(&format!("sys/{usb}/product"), b"Mass \xffStorage\n");
    let sdb = t.block(
        &format!("{usb}/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb"),
        "8:16",
        30_031_872,
        Some("../../../6:0:0:0"),
    );
    // Bridges often return an empty serial page.
    sdb.attr(
        "device/vpd_pg80",
        [0x00, 0x80, 0x00, 0x04, b' ', b' ', 0, 0],
    )
    .attr("device/model", "Flash Disk      \n")
    .attr("device/vendor", "Generic \n")
    .attr("removable", "1\n")
    .attr("queue/rotational", "1\n")
    .partition("sdb1", 1, 2048, 30_029_824, "8:17");

    // virtio-blk.
    let vda = t.block(
        "devices/pci0000:00/0000:00:02.0/virtio1/block/vda",
        "254:0",
        41_943_040,
        Some("../../../virtio1"),
    );
    vda.attr("serial", "QM00001\n")
        .attr("device/vendor", "0x1af4\n");

    // PATA disk on ata_piix; SATA disk on ata_piix whose link reports a SATA speed.
    t.symlink(
        "../../../bus/pci/drivers/ata_piix",
        "sys/devices/pci0000:00/0000:00:01.1/driver",
    );
    t.write(
        "sys/devices/pci0000:00/0000:00:01.1/ata2/link2/ata_link/link2/sata_spd",
        "<unknown>\n",
    );
    t.write(
        "sys/devices/pci0000:00/0000:00:01.1/ata3/link3/ata_link/link3/sata_spd",
        "3.0 Gbps\n",
    );
    t.block(
        "devices/pci0000:00/0000:00:01.1/ata2/host1/target1:0:0/1:0:0:0/block/sdc",
        "8:32",
        2_097_152,
        Some("../../../1:0:0:0"),
    )
    .attr("device/model", "QEMU HARDDISK   \n")
    .attr("device/vendor", "ATA     \n")
    .attr("queue/rotational", "1\n");
    t.block(
        "devices/pci0000:00/0000:00:01.1/ata3/host2/target2:0:0/2:0:0:0/block/sdd",
        "8:48",
        2_097_152,
        Some("../../../2:0:0:0"),
    )
    .attr("device/model", "QEMU HARDDISK   \n")
    .attr("device/vendor", "ATA     \n");

    // SAS disk with a btrfs partition (mounted with an anonymous 0:N device number).
    let mut vpd = vec![0x00, 0x80, 0x00, 0x08];
    vpd.extend_from_slice(b"ZC1234AB");
    t.block(
        "devices/pci0000:00/0000:00:03.0/0000:02:00.0/host3/port-3:0/end_device-3:0/target3:0:0/3:0:0:0/block/sde",
        "8:64",
        7_814_037_168,
        Some("../../../3:0:0:0"),
    )
    .attr("device/vpd_pg80", vpd)
    .attr("device/model", "ST4000NM0023    \n")
    .attr("device/vendor", "SEAGATE \n")
    .attr("queue/physical_block_size", "4096\n")
    .attr("queue/rotational", "1\n")
    .partition("sde1", 1, 2048, 7_814_033_072, "8:65");

    // DVD drive.
    t.block(
        "devices/pci0000:00/0000:00:1f.2/ata4/host4/target4:0:0/4:0:0:0/block/sr0",
        "11:0",
        0,
        Some("../../../4:0:0:0"),
    )
    .attr("device/type", "5\n")
    .attr("device/model", "DVD-RW DRU-870S \n")
    .attr("removable", "1\n");

    // SD card.
    t.block(
        "devices/platform/soc/fe340000.mmc/mmc_host/mmc0/mmc0:0001/block/mmcblk0",
        "179:0",
        124_735_488,
        Some("../../../mmc0:0001"),
    )
    .attr("device/name", "SD64G\n")
    .attr("device/serial", "0x12345678\n");

    // Xen disk: almost nothing, and an odd `ro`.
    let xvda = t.block("devices/vbd-51712/block/xvda", "202:0", 20_971_520, None);
    xvda.attr("ro", "garbage\n");
    for f in [
        "removable",
        "queue/rotational",
        "queue/discard_max_bytes",
        "queue/physical_block_size",
    ] {
        fs::remove_file(t.path(&format!("{}/{f}", xvda.base))).unwrap();
    }

    // Virtual devices.
    t.block("devices/virtual/block/loop0", "7:0", 16_384, None)
        .attr("loop/backing_file", "/srv/images/disk one.img\n");
    t.block("devices/virtual/block/loop1", "7:1", 0, None);
    t.block("devices/virtual/block/zram0", "252:0", 8_388_608, None);
    t.block("devices/virtual/block/dm-0", "253:0", 958_943_232, None)
        .attr("dm/name", "vg-home\n")
        .attr("dm/uuid", "LVM-Hq3bEh2bVw\n")
        .mkdir("slaves/sda3");
    t.block("devices/virtual/block/md127", "9:127", 0, None)
        .attr("md/level", "raid1\n")
        .attr("md/array_state", "readonly\n")
        .attr("md/raid_disks", "2\n")
        .attr("md/degraded", "1\n")
        .attr("md/uuid", "3a8f05e4-9c1f-5c4e-0e2d-b1b7e3b9c0aa\n");

    // Device nodes: plain files stand in for nodes; /dev/mapper and by-uuid links resolve.
    for n in ["sda", "sda1", "sda2", "sda3", "dm-0", "nvme0n1p1"] {
        t.write(&format!("dev/{n}"), "");
    }
    t.symlink("../dm-0", "dev/mapper/vg-home");
    t.symlink("../../sda2", "dev/disk/by-uuid/5e1f-swap");

    t.mountinfo(concat!(
        "22 27 0:21 / /proc rw,relatime - proc proc rw\n",
        "27 1 259:1 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p1 rw\n",
        "30 27 8:1 / /boot/efi rw,relatime shared:5 - vfat /dev/sda1 rw\n",
        "31 27 253:0 / /home rw - ext4 /dev/mapper/vg-home rw\n",
        "32 27 259:2 / /mnt/my\\040data rw - ext4 /dev/nvme0n1p2 rw\n",
        "33 27 8:17 / /run/lifeboat/media ro - vfat /dev/sdb1 ro\n",
        "34 27 0:45 /@data /srv rw - btrfs /dev/sde1 rw,subvol=/@data\n",
        "35 27 0:46 / /tmp rw - tmpfs tmpfs rw\n",
    ));
    t.swaps(&[
        ("/dev/disk/by-uuid/5e1f-swap", "partition"),
        ("/swapfile", "file"),
    ]);
    t
}
