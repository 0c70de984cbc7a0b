//! Early boot as data: the list of steps PID 1 runs before it starts the UI. The list is built by
//! a pure function of the command line, can be printed (`lifeboat-init --plan`) and is tested
//! without booting anything.

use crate::cmdline::Cmdline;
use std::fmt;

/// Mount flags as plain data (mapped to `MsFlags` when executed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MountFlags {
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
}

/// One step of early boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Creates a directory (and parents) with `mode`.
    Mkdir { path: &'static str, mode: u32 },
    /// Mounts a kernel file system.
    Mount {
        source: &'static str,
        target: &'static str,
        fstype: &'static str,
        flags: MountFlags,
        data: &'static str,
    },
    /// Creates a symbolic link `link` → `target`.
    Symlink {
        target: &'static str,
        link: &'static str,
    },
    /// Writes a value into a file (a sysctl under /proc/sys).
    Write {
        path: &'static str,
        value: &'static str,
    },
    /// Starts the logger's file under /run/lifeboat and raises the level for `lifeboat.debug`.
    StartLog,
    /// Mounts `efivarfs` read-only when booted by UEFI and logs the firmware and whether Secure
    /// Boot is on (`secure boot: on`).
    Firmware,
    /// Opens the netlink uevent socket (before coldplug, so no event is missed).
    ListenUevents,
    /// Loads the named modules (file systems and input that no modalias asks for).
    LoadModules(Vec<&'static str>),
    /// Loads modules for every device already present (modalias files under /sys/devices).
    Coldplug,
    /// Waits until no new block device appeared for `quiet_ms`, at most `max_ms`.
    SettleDisks { quiet_ms: u64, max_ms: u64 },
    /// When md RAID members are present: loads the md driver and the levels' personalities and
    /// assembles every array read-only ([`crate::md`]).
    AssembleMd,
    /// Finds the Lifeboat medium by volume label, mounts it read-only and records its device.
    FindBootMedium { label: String },
    /// Brings up `lo` and configures every wired link present (later ones as they appear) for
    /// `lifeboat.net=` ([`crate::network`]).
    Network(crate::network::NetConfig),
}

const NOSUID_NODEV_NOEXEC: MountFlags = MountFlags {
    nosuid: true,
    nodev: true,
    noexec: true,
};
const NOSUID_NOEXEC: MountFlags = MountFlags {
    nosuid: true,
    nodev: false,
    noexec: true,
};
const NOSUID_NODEV: MountFlags = MountFlags {
    nosuid: true,
    nodev: true,
    noexec: false,
};

/// Modules loaded whatever the hardware: the file systems image destinations and the boot medium
/// use, and what hot-plugged keyboards need.
pub const ALWAYS_LOAD: &[&str] = &[
    "isofs",
    "vfat",
    "exfat",
    "ext4",
    "xfs",
    "btrfs",
    // `lifeboat mount`: the image served as a FUSE file (/dev/fuse), a loop device over it.
    "fuse",
    "loop",
    // vfat loads the kernel's default iocharset (Debian: ascii) at every mount and fails with
    // EINVAL when it is missing; the kernel cannot load it itself (no modprobe in the image).
    "nls_ascii",
    "nls_cp437",
    "nls_iso8859_1",
    "nls_utf8",
    "usbhid",
    "hid_generic",
    "sd_mod",
    "sr_mod",
    // Encrypted volumes unlocked read-only by `lifeboat backup --key-file` (cryptsetup has no
    // modprobe to call): device-mapper, dm-crypt, the zero target, and the ciphers' modes.
    "dm_mod",
    "dm_crypt",
    "dm_zero",
    "xts",
    "ecb",
    "essiv",
    "af_alg",
    "algif_skcipher",
];

/// The directory init keeps its state in (log, boot medium).
pub const RUN_DIR: &str = "/run/lifeboat";
/// Where the boot medium is mounted read-only.
pub const MEDIA_DIR: &str = "/run/lifeboat/media";
/// Holds the boot medium's device path (`/dev/sr0`), one line. The `disk` crate reads it to refuse
/// writing to the medium Lifeboat booted from.
pub use disk::boot::BOOT_DEVICE_FILE;
/// init's log file.
pub const LOG_FILE: &str = "/run/lifeboat/init.log";

/// The early boot plan for this command line.
pub fn early_steps(cmdline: &Cmdline) -> Vec<Step> {
    vec![
        Step::Mkdir {
            path: "/proc",
            mode: 0o555,
        },
        Step::Mount {
            source: "proc",
            target: "/proc",
            fstype: "proc",
            flags: NOSUID_NODEV_NOEXEC,
            data: "",
        },
        Step::Mkdir {
            path: "/sys",
            mode: 0o555,
        },
        Step::Mount {
            source: "sysfs",
            target: "/sys",
            fstype: "sysfs",
            flags: NOSUID_NODEV_NOEXEC,
            data: "",
        },
        Step::Mkdir {
            path: "/dev",
            mode: 0o755,
        },
        Step::Mount {
            source: "devtmpfs",
            target: "/dev",
            fstype: "devtmpfs",
            flags: NOSUID_NOEXEC,
            data: "mode=0755",
        },
        Step::Mkdir {
            path: "/dev/pts",
            mode: 0o755,
        },
        Step::Mount {
            source: "devpts",
            target: "/dev/pts",
            fstype: "devpts",
            flags: NOSUID_NOEXEC,
            data: "gid=5,mode=620,ptmxmode=666",
        },
        Step::Mkdir {
            path: "/dev/shm",
            mode: 0o1777,
        },
        Step::Mount {
            source: "tmpfs",
            target: "/dev/shm",
            fstype: "tmpfs",
            flags: NOSUID_NODEV,
            data: "mode=1777",
        },
        Step::Symlink {
            target: "/proc/self/fd",
            link: "/dev/fd",
        },
        Step::Symlink {
            target: "/proc/self/fd/0",
            link: "/dev/stdin",
        },
        Step::Symlink {
            target: "/proc/self/fd/1",
            link: "/dev/stdout",
        },
        Step::Symlink {
            target: "/proc/self/fd/2",
            link: "/dev/stderr",
        },
        Step::Mkdir {
            path: "/run",
            mode: 0o755,
        },
        Step::Mount {
            source: "tmpfs",
            target: "/run",
            fstype: "tmpfs",
            flags: NOSUID_NODEV,
            data: "mode=0755",
        },
        Step::Mkdir {
            path: "/tmp",
            mode: 0o1777,
        },
        Step::Mount {
            source: "tmpfs",
            target: "/tmp",
            fstype: "tmpfs",
            flags: NOSUID_NODEV,
            data: "mode=1777",
        },
        Step::Mkdir {
            path: RUN_DIR,
            mode: 0o755,
        },
        Step::Mkdir {
            path: "/mnt",
            mode: 0o755,
        },
        // /dev/kmsg drops lines beyond 10 per 5 s by default; init's log must not be cut.
        Step::Write {
            path: "/proc/sys/kernel/printk_devkmsg",
            value: "on\n",
        },
        Step::StartLog,
        Step::Firmware,
        Step::ListenUevents,
        Step::Coldplug,
        Step::LoadModules(ALWAYS_LOAD.to_vec()),
        Step::SettleDisks {
            quiet_ms: 1000,
            max_ms: 5000,
        },
        Step::AssembleMd,
        Step::FindBootMedium {
            label: cmdline.media_label.clone(),
        },
        Step::Network(cmdline.net.clone()),
    ]
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Mkdir { path, mode } => write!(f, "mkdir -m {mode:o} {path}"),
            Step::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => {
                let mut opts: Vec<&str> = Vec::new();
                if flags.nosuid {
                    opts.push("nosuid");
                }
                if flags.nodev {
                    opts.push("nodev");
                }
                if flags.noexec {
                    opts.push("noexec");
                }
                if !data.is_empty() {
                    opts.push(data);
                }
                write!(f, "mount -t {fstype} {source} {target}")?;
                if !opts.is_empty() {
                    write!(f, " -o {}", opts.join(","))?;
                }
                Ok(())
            }
            Step::Symlink { target, link } => write!(f, "ln -s {target} {link}"),
            Step::Write { path, value } => write!(f, "echo {} > {path}", value.trim_end()),
            Step::StartLog => write!(f, "log to /dev/kmsg and {LOG_FILE}"),
            Step::Firmware => write!(
                f,
                "on UEFI modprobe efivarfs; mount -t efivarfs efivarfs {} -o ro; log whether Secure Boot is on",
                crate::firmware::EFIVARS_DIR
            ),
            Step::ListenUevents => write!(f, "listen for uevents (NETLINK_KOBJECT_UEVENT)"),
            Step::LoadModules(m) => write!(f, "modprobe {}", m.join(" ")),
            Step::Coldplug => write!(
                f,
                "coldplug: load modules for every /sys/devices/**/modalias"
            ),
            Step::SettleDisks { quiet_ms, max_ms } => {
                write!(
                    f,
                    "wait for disks: {quiet_ms} ms without a new block device, at most {max_ms} ms"
                )
            }
            Step::AssembleMd => write!(
                f,
                "md RAID members present: modprobe md_mod and their levels; {} (never written)",
                crate::md::ASSEMBLE.join(" ")
            ),
            Step::FindBootMedium { label } => {
                write!(f, "find the medium labelled {label}, mount it at {MEDIA_DIR}, record it in {BOOT_DEVICE_FILE}")
            }
            Step::Network(crate::network::NetConfig::Off) => {
                write!(f, "network: ip link set lo up; no other interface (lifeboat.net=off)")
            }
            Step::Network(crate::network::NetConfig::Dhcp) => write!(
                f,
                "network: ip link set lo up; udhcpc -s {} on every wired link",
                crate::network::UDHCPC_SCRIPT
            ),
            Step::Network(n) => write!(
                f,
                "network: ip link set lo up; {n} on the first wired link with a carrier"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::parse;

    fn position(steps: &[Step], pred: impl Fn(&Step) -> bool) -> usize {
        steps.iter().position(pred).expect("step present")
    }

    #[test]
    fn kernel_filesystems_are_mounted_before_anything_uses_them() {
        let s = early_steps(&parse(""));
        let mount = |t: &'static str| {
            position(
                &s,
                move |x| matches!(x, Step::Mount { target, .. } if *target == t),
            )
        };
        let mkdir = |p: &'static str| {
            position(
                &s,
                move |x| matches!(x, Step::Mkdir { path, .. } if *path == p),
            )
        };
        assert!(mount("/proc") < mount("/sys"));
        assert!(mount("/dev") < mount("/dev/pts"));
        assert!(mkdir("/dev/pts") < mount("/dev/pts"));
        assert!(mount("/run") < mkdir(RUN_DIR));
        assert!(mkdir(RUN_DIR) < position(&s, |x| *x == Step::StartLog));
        let devkmsg = position(
            &s,
            |x| matches!(x, Step::Write { path, .. } if path.ends_with("printk_devkmsg")),
        );
        assert!(mount("/proc") < devkmsg && devkmsg < position(&s, |x| *x == Step::StartLog));
        for t in ["/proc", "/sys", "/dev", "/dev/pts", "/run", "/tmp"] {
            let _ = mount(t);
        }
    }

    #[test]
    fn uevents_are_heard_before_coldplug_and_disks_settle_before_the_medium_is_sought() {
        let s = early_steps(&parse("lifeboat.media=MYLABEL"));
        let listen = position(&s, |x| *x == Step::ListenUevents);
        let cold = position(&s, |x| *x == Step::Coldplug);
        let settle = position(&s, |x| matches!(x, Step::SettleDisks { .. }));
        let media = position(
            &s,
            |x| matches!(x, Step::FindBootMedium { label } if label == "MYLABEL"),
        );
        assert!(listen < cold && cold < settle && settle < media);
    }

    #[test]
    fn md_arrays_are_assembled_once_the_disks_settled() {
        let s = early_steps(&parse(""));
        let settle = position(&s, |x| matches!(x, Step::SettleDisks { .. }));
        let md = position(&s, |x| *x == Step::AssembleMd);
        assert!(settle < md);
        assert!(
            s[md]
                .to_string()
                .contains("mdadm --assemble --scan --readonly --run"),
            "{}",
            s[md]
        );
    }

    #[test]
    fn the_network_comes_up_after_coldplug_loaded_the_nic_drivers() {
        let s = early_steps(&parse("lifeboat.net=10.0.2.15/24,10.0.2.2,10.0.2.3"));
        let cold = position(&s, |x| *x == Step::Coldplug);
        let net = position(&s, |x| matches!(x, Step::Network(_)));
        assert!(cold < net);
        assert_eq!(
            s[net].to_string(),
            "network: ip link set lo up; 10.0.2.15/24 gateway 10.0.2.2 dns 10.0.2.3 on the first wired link with a carrier"
        );
        let d = early_steps(&parse(""));
        assert!(
            d.last().unwrap().to_string().contains("udhcpc"),
            "{}",
            d.last().unwrap()
        );
    }

    #[test]
    fn the_firmware_is_logged_once_the_log_and_sys_are_up() {
        let s = early_steps(&parse(""));
        let fw = position(&s, |x| *x == Step::Firmware);
        let sys = position(
            &s,
            |x| matches!(x, Step::Mount { target, .. } if *target == "/sys"),
        );
        assert!(sys < fw && position(&s, |x| *x == Step::StartLog) < fw);
        assert!(s[fw].to_string().contains("efivarfs"), "{}", s[fw]);
    }

    #[test]
    fn the_plan_prints_one_readable_line_per_step() {
        let s = early_steps(&parse(""));
        let text: Vec<String> = s.iter().map(|x| x.to_string()).collect();
        assert!(
            text.contains(&"mount -t proc proc /proc -o nosuid,nodev,noexec".to_string()),
            "{text:#?}"
        );
        assert!(text.contains(
            &"mount -t devpts devpts /dev/pts -o nosuid,noexec,gid=5,mode=620,ptmxmode=666"
                .to_string()
        ));
        assert!(text
            .iter()
            .any(|l| l.starts_with("modprobe isofs vfat exfat ext4")));
        assert!(text.iter().all(|l| !l.contains('\n')));
    }
}
