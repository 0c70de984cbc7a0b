//! What the runtime asks of the system besides jobs: mounting a drive to hold images, SMART
//! health from `smartctl`.

use crate::model::SmartHealth;
use fs::FsKind;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a mount or unmount failed.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    #[error("creating the mount point {dir}: {source}")]
    MountPoint {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Mount(#[from] disk::mount::MountError),
}

/// True for file systems Lifeboat can mount (`disk::mount`, the helper init uses too).
pub fn mountable(kind: FsKind) -> bool {
    disk::mount::mountable(kind.name())
}

/// A directory name made of `name`'s safe characters (`sdb1`, `nvme0n1p2`).
pub fn mount_dir_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "disk".to_string()
    } else {
        clean
    }
}

/// Mounts `node` (file system `kind`) at `base/<name>` through `disk::mount`; returns the mount
/// point. Read-write, so images can be written there; optical media read-only.
pub fn mount(node: &Path, name: &str, kind: FsKind, base: &Path) -> Result<PathBuf, SystemError> {
    if !mountable(kind) {
        return Err(disk::mount::MountError::NotMountable {
            device: node.to_path_buf(),
            fstype: kind.name().to_string(),
        }
        .into());
    }
    let dir = base.join(mount_dir_name(name));
    std::fs::create_dir_all(&dir).map_err(|source| SystemError::MountPoint {
        dir: dir.clone(),
        source,
    })?;
    match disk::mount::mount(node, &dir, kind.name(), disk::mount::Access::ReadWrite) {
        Ok(()) => Ok(dir),
        Err(e) => {
            // Leave no empty mount point behind.
            let _ = std::fs::remove_dir(&dir);
            Err(e.into())
        }
    }
}

/// Unmounts `dir` and removes the empty mount point.
pub fn unmount(dir: &Path) -> Result<(), SystemError> {
    disk::mount::unmount(dir)?;
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

/// Opens a network store for the image picker under `base` (its top folder): the handle (which
/// closes the store when dropped), the folder to browse — the location's folder, or the one
/// that holds its image file (HTTP) — and that folder's URL. An SFTP host key not accepted yet,
/// or an HTTPS certificate no trusted CA signed, comes back as its fingerprints, for the user
/// to compare and accept. An HTTPS CA file that cannot be used is said before the server is
/// contacted.
pub fn open_store(
    location: &store::Location,
    access: &store::Access,
    base: &Path,
) -> Result<(store::Opened, PathBuf, String), crate::widgets::network::StoreRefusal> {
    use crate::widgets::network::StoreRefusal;
    if let (store::Scheme::Https, Some(ca)) = (location.scheme, &access.ca_file) {
        if let Err(source) = store::tls::Trust::new(Some(ca), None) {
            let e = store::StoreError::Trust {
                url: location.to_string(),
                source,
            };
            log::warn!("{e}");
            return Err(StoreRefusal::Failed(e.to_string()));
        }
    }
    match store::open(location, access, store::Purpose::Read, base) {
        Ok(opened) => {
            let path = opened.path();
            let mut folder_url = location.clone();
            folder_url.options.clear();
            let folder = if path.is_dir() {
                path.to_path_buf()
            } else if path.exists() {
                folder_url.path = location.dir().to_string();
                path.parent().unwrap_or(base).to_path_buf()
            } else {
                let e = format!("{location}: no such file or folder on the server");
                log::warn!("{e}");
                return Err(StoreRefusal::Failed(e));
            };
            log::info!("{location} is open at {}", folder.display());
            Ok((opened, folder, folder_url.to_string()))
        }
        Err(store::StoreError::HostKeyNotPinned { fingerprints, .. }) => {
            Err(StoreRefusal::HostKey(fingerprints))
        }
        Err(store::StoreError::CertUntrusted { fingerprint, .. }) => {
            Err(StoreRefusal::HostKey(vec![fingerprint]))
        }
        Err(e) => {
            log::warn!("{e}");
            Err(StoreRefusal::Failed(e.to_string()))
        }
    }
}

/// Finds `tool` in `$PATH` (and the usual sbin directories, which a non-root PATH may lack).
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    disk::mount::find_program(tool)
}

/// Parses the JSON of `smartctl -H -j`.
pub fn parse_smart(json: &[u8]) -> SmartHealth {
    let value: serde_json::Value = match serde_json::from_slice(json) {
        Ok(v) => v,
        Err(e) => return SmartHealth::Unavailable(format!("unreadable smartctl output: {e}")),
    };
    match value
        .get("smart_status")
        .and_then(|s| s.get("passed"))
        .and_then(serde_json::Value::as_bool)
    {
        Some(true) => SmartHealth::Passed,
        Some(false) => SmartHealth::Failed,
        None => {
            let message = value
                .get("smartctl")
                .and_then(|s| s.get("messages"))
                .and_then(|m| m.get(0))
                .and_then(|m| m.get("string"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or("the disk reports no SMART health");
            SmartHealth::Unavailable(message.to_string())
        }
    }
}

/// Runs `smartctl -H -j DEV` (the exit status is a bit mask that is non-zero for many
/// harmless reasons, so only the JSON counts).
pub fn smart_health(smartctl: &Path, dev: &Path) -> SmartHealth {
    match Command::new(smartctl).arg("-H").arg("-j").arg(dev).output() {
        Ok(out) => {
            let h = parse_smart(&out.stdout);
            log::info!("SMART health of {}: {h:?}", dev.display());
            h
        }
        Err(e) => SmartHealth::Unavailable(format!("running {}: {e}", smartctl.display())),
    }
}

/// How the machine booted, for the main screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootMode {
    /// Legacy BIOS (no EFI variables in `/sys/firmware/efi`).
    Bios,
    /// UEFI, with Secure Boot on or off; `None` when the variable cannot be read.
    Uefi { secure_boot: Option<bool> },
}

impl BootMode {
    /// `UEFI, Secure Boot on`, `legacy BIOS boot`.
    pub fn text(self) -> &'static str {
        match self {
            BootMode::Bios => "legacy BIOS boot",
            BootMode::Uefi {
                secure_boot: Some(true),
            } => "UEFI, Secure Boot on",
            BootMode::Uefi {
                secure_boot: Some(false),
            } => "UEFI, Secure Boot off",
            BootMode::Uefi { secure_boot: None } => "UEFI, Secure Boot unknown",
        }
    }
}

/// The EFI global variable that says whether Secure Boot is enforced.
const SECURE_BOOT_VAR: &str = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// Reads the boot mode from `<sys>/firmware/efi`: no such folder means a BIOS boot; else the
/// `SecureBoot` variable holds 4 attribute bytes, then 1 data byte (1 = on).
pub fn boot_mode(root: &disk::SysRoot) -> BootMode {
    let efi = root.sys.join("firmware/efi");
    if !efi.is_dir() {
        return BootMode::Bios;
    }
    let var = efi.join("efivars").join(SECURE_BOOT_VAR);
    let secure_boot = match std::fs::read(&var) {
        Ok(bytes) => bytes.get(4).map(|b| *b == 1),
        Err(e) => {
            log::info!("reading {}: {e}", var.display());
            None
        }
    };
    BootMode::Uefi { secure_boot }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smart_json_passed_failed_and_missing() {
        assert_eq!(
            parse_smart(br#"{"smart_status":{"passed":true}}"#),
            SmartHealth::Passed
        );
        assert_eq!(
            parse_smart(br#"{"smart_status":{"passed":false}}"#),
            SmartHealth::Failed
        );
        assert_eq!(
            parse_smart(
                br#"{"smartctl":{"messages":[{"string":"/dev/vda: Unable to detect device type","severity":"error"}]}}"#
            ),
            SmartHealth::Unavailable("/dev/vda: Unable to detect device type".into())
        );
        assert!(matches!(
            parse_smart(b"garbage"),
            SmartHealth::Unavailable(_)
        ));
    }

    #[test]
    fn swap_and_containers_are_not_mountable() {
        assert!(!mountable(FsKind::Swap));
        assert!(!mountable(FsKind::CryptoLuks));
        assert!(mountable(FsKind::Exfat));
        assert!(mountable(FsKind::Ntfs));
    }

    #[test]
    fn mount_dir_names_are_plain() {
        assert_eq!(mount_dir_name("sdb1"), "sdb1");
        assert_eq!(mount_dir_name("../etc"), "___etc");
        assert_eq!(mount_dir_name("loop0 #1"), "loop0__1");
        assert_eq!(mount_dir_name(""), "disk");
    }

    #[test]
    fn mount_refuses_swap_without_touching_the_system() {
        let dir = tempfile::tempdir().unwrap();
        let err = mount(Path::new("/dev/null"), "x", FsKind::Swap, dir.path()).unwrap_err();
        assert!(err.to_string().contains("swap cannot be mounted"), "{err}");
        assert!(!dir.path().join("x").exists());
    }

    #[test]
    fn mounting_and_unmounting_a_real_ext4_image_through_a_loop_device() {
        // Needs root and loop devices; this machine's tests run as root.
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("fs.img");
        qemu_tests::fixture::mkfs(qemu_tests::fixture::Mkfs::Ext4, &img, 8 << 20, "HOLD", &[])
            .unwrap();
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&img)
            .output()
            .unwrap();
        assert!(out.status.success(), "losetup: {out:?}");
        let node = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
        let base = dir.path().join("mnt");
        let result = mount(&node, "hold", FsKind::Ext4, &base);
        let mounted = match &result {
            Ok(mp) => {
                let listed = std::fs::read_to_string("/proc/self/mounts").unwrap();
                let ok = listed.contains(&mp.display().to_string());
                std::fs::write(mp.join("probe.txt"), b"ok").unwrap();
                unmount(mp).unwrap();
                ok
            }
            Err(_) => false,
        };
        let _ = Command::new("losetup").arg("-d").arg(&node).status();
        assert!(mounted, "{result:?}");
        assert!(!base.join("hold").exists(), "the mount point is removed");
    }

    #[test]
    fn boot_mode_reads_the_secure_boot_variable_or_says_bios() {
        let dir = tempfile::tempdir().unwrap();
        let root = disk::SysRoot::under(dir.path());
        assert_eq!(boot_mode(&root), BootMode::Bios);
        let vars = root.sys.join("firmware/efi/efivars");
        std::fs::create_dir_all(&vars).unwrap();
        assert_eq!(boot_mode(&root), BootMode::Uefi { secure_boot: None });
        std::fs::write(vars.join(SECURE_BOOT_VAR), [6, 0, 0, 0, 1]).unwrap();
        assert_eq!(
            boot_mode(&root),
            BootMode::Uefi {
                secure_boot: Some(true)
            }
        );
        assert_eq!(boot_mode(&root).text(), "UEFI, Secure Boot on");
        std::fs::write(vars.join(SECURE_BOOT_VAR), [6, 0, 0, 0, 0]).unwrap();
        assert_eq!(boot_mode(&root).text(), "UEFI, Secure Boot off");
        // A short variable is not trusted either way.
        std::fs::write(vars.join(SECURE_BOOT_VAR), [6, 0, 0]).unwrap();
        assert_eq!(boot_mode(&root), BootMode::Uefi { secure_boot: None });
    }
}
