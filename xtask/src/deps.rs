//! Installs what the build and the tests need on a Debian/Ubuntu machine, or says exactly what is
//! missing when it cannot (not root and no sudo).

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

/// (a file that proves the package is installed, the Debian package).
const PACKAGES: &[(&str, &str)] = &[
    ("/usr/sbin/sgdisk", "gdisk"),
    ("/usr/sbin/sfdisk", "fdisk"),
    ("/usr/sbin/mke2fs", "e2fsprogs"),
    ("/usr/sbin/mkfs.vfat", "dosfstools"),
    ("/usr/sbin/mkfs.exfat", "exfatprogs"),
    ("/usr/sbin/mkntfs", "ntfs-3g"),
    ("/usr/sbin/mount.exfat-fuse", "exfat-fuse"),
    ("/usr/bin/setfattr", "attr"),
    ("/usr/bin/pgrep", "procps"),
    ("/usr/bin/mcopy", "mtools"),
    ("/usr/sbin/mkfs.btrfs", "btrfs-progs"),
    ("/usr/sbin/mkfs.xfs", "xfsprogs"),
    // shrinking restore/clone (issue 15): XFS is copied by xfsdump | xfsrestore; the tests set
    // ACLs with setfacl
    ("/usr/sbin/xfsdump", "xfsdump"),
    ("/usr/bin/setfacl", "acl"),
    ("/usr/sbin/cryptsetup", "cryptsetup-bin"),
    ("/usr/sbin/pvcreate", "lvm2"),
    ("/usr/bin/genisoimage", "genisoimage"),
    ("/usr/bin/musl-gcc", "musl-tools"),
    ("/usr/bin/zstd", "zstd"),
    ("/usr/sbin/partclone.ext4", "partclone"),
    ("/usr/sbin/fsarchiver", "fsarchiver"),
    ("/usr/bin/time", "time"),
    ("/usr/bin/tmux", "tmux"),
    // the bootable image and QEMU (xtask image, run, qemu-test)
    ("/usr/bin/qemu-system-x86_64", "qemu-system-x86"),
    ("/usr/share/OVMF/OVMF_CODE_4M.fd", "ovmf"),
    ("/usr/lib/grub/i386-pc/boot.img", "grub-pc-bin"),
    ("/usr/lib/grub/x86_64-efi/linux.mod", "grub-efi-amd64-bin"),
    ("/usr/bin/grub-mkrescue", "grub-common"),
    ("/usr/bin/xorriso", "xorriso"),
    ("/usr/bin/sbverify", "sbsigntool"),
    ("/bin/busybox", "busybox-static"),
    ("/usr/bin/cpio", "cpio"),
    ("/usr/sbin/depmod", "kmod"),
    ("/usr/sbin/smartctl", "smartmontools"),
    // network stores: sshfs and the OpenSSH client go into the image; the servers the QEMU
    // network tests start on loopback (smbd, sshd, ganesha.nfsd)
    ("/usr/bin/sshfs", "sshfs"),
    ("/usr/bin/ssh-keyscan", "openssh-client"),
    ("/usr/sbin/smbd", "samba"),
    ("/usr/sbin/sshd", "openssh-server"),
    ("/usr/bin/ganesha.nfsd", "nfs-ganesha"),
    (
        "/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so",
        "nfs-ganesha-vfs",
    ),
    // NFS v3 in the network test: ganesha registers its MOUNT protocol with rpcbind
    ("/usr/sbin/rpcbind", "rpcbind"),
    // multicast (issue 19): `lifeboat serve`/`receive` run udpcast; the cli test builds its LAN
    // in network namespaces with ip
    ("/usr/bin/udp-sender", "udpcast"),
    ("/usr/sbin/ip", "iproute2"),
    // the lab scenario and `bench --lab` (issue 19): DHCP + TFTP on the test's namespace LAN,
    // QEMU's iPXE option ROMs for the network boot
    ("/usr/sbin/dnsmasq", "dnsmasq-base"),
    ("/usr/lib/ipxe/qemu/efi-virtio.rom", "ipxe-qemu"),
    // https:// stores (issue 17): the tests make certificates with openssl and serve images
    // with nginx on loopback
    ("/usr/bin/openssl", "openssl"),
    ("/usr/sbin/nginx", "nginx"),
];

const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

pub fn install() -> Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(probe, _)| !Path::new(probe).exists())
        .map(|(_, pkg)| *pkg)
        .collect();
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    musl_target()?;
    Ok(())
}

fn is_root() -> bool {
    // SAFETY-free check: the effective uid is in /proc/self/status.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

pub fn apt_install(pkgs: &[&str]) -> Result<()> {
    let prefix: Vec<&str> = if is_root() {
        vec![]
    } else if Command::new("sudo")
        .arg("-n")
        .arg("true")
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
    {
        vec!["sudo", "-n"]
    } else {
        bail!(
            "missing Debian packages: {}\ninstall them with: sudo apt-get install -y --no-install-recommends {}",
            pkgs.join(" "),
            pkgs.join(" ")
        );
    };
    eprintln!("xtask: installing {}", pkgs.join(" "));
    let mut update = Command::new(prefix.first().copied().unwrap_or("apt-get"));
    if prefix.is_empty() {
        update.args(["update", "-qq"]);
    } else {
        update.args(&prefix[1..]).args(["apt-get", "update", "-qq"]);
    }
    crate::run(&mut update).context("apt-get update")?;
    let mut inst = Command::new(prefix.first().copied().unwrap_or("apt-get"));
    if !prefix.is_empty() {
        inst.args(&prefix[1..]).arg("apt-get");
    }
    inst.args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(pkgs)
        .env("DEBIAN_FRONTEND", "noninteractive");
    crate::run(&mut inst).context("apt-get install")
}

fn musl_target() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match out {
        Ok(o)
            if String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == MUSL_TARGET) =>
        {
            Ok(())
        }
        Ok(_) => crate::run(Command::new("rustup").args(["target", "add", MUSL_TARGET])),
        Err(_) => bail!(
            "rustup not found: install it (https://rustup.rs) to get the {MUSL_TARGET} target"
        ),
    }
}
