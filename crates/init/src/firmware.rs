//! Which firmware booted us and whether UEFI Secure Boot is on, for the log and the TUI.
//!
//! On UEFI init mounts `efivarfs` read-only at [`EFIVARS_DIR`] (nothing in Lifeboat writes firmware
//! variables; a read-only mount keeps a stray write from bricking a PC), so the TUI can read
//! [`SECURE_BOOT_VAR`] there too. Under Secure Boot the kernel is locked down: it only loads signed
//! modules (Debian's are) and refuses `/dev/mem`, kexec of unsigned kernels and debugfs writes,
//! none of which Lifeboat uses.

use std::fmt;

/// Present only when the kernel was started by UEFI firmware.
pub const EFI_DIR: &str = "/sys/firmware/efi";
/// Where `efivarfs` is mounted.
pub const EFIVARS_DIR: &str = "/sys/firmware/efi/efivars";
/// The global `SecureBoot` variable (EFI_GLOBAL_VARIABLE GUID).
pub const SECURE_BOOT_VAR: &str = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// The firmware and its Secure Boot state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// Legacy BIOS (or CSM): no Secure Boot.
    Bios,
    /// UEFI; `secure_boot` is `None` when the variable could not be read.
    Uefi { secure_boot: Option<bool> },
}

impl Firmware {
    /// True only when UEFI says Secure Boot is enforced.
    pub fn secure_boot(self) -> bool {
        matches!(
            self,
            Firmware::Uefi {
                secure_boot: Some(true)
            }
        )
    }
}

impl fmt::Display for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Firmware::Bios => write!(f, "firmware: BIOS; secure boot: off"),
            Firmware::Uefi {
                secure_boot: Some(on),
            } => write!(
                f,
                "firmware: UEFI; secure boot: {}",
                if *on { "on" } else { "off" }
            ),
            Firmware::Uefi { secure_boot: None } => {
                write!(f, "firmware: UEFI; secure boot: unknown")
            }
        }
    }
}

/// The Secure Boot state from the contents of the `SecureBoot` variable file: efivarfs prefixes
/// the value with its 4-byte attributes; the value is one byte, 1 when Secure Boot is on.
pub fn secure_boot_from_var(bytes: &[u8]) -> Option<bool> {
    match bytes {
        [_, _, _, _, value] => Some(*value == 1),
        _ => None,
    }
}

/// Detects the firmware: `efi_dir_exists` is whether [`EFI_DIR`] exists, `var` the contents of
/// the `SecureBoot` variable file if it could be read.
pub fn detect(efi_dir_exists: bool, var: Option<&[u8]>) -> Firmware {
    if !efi_dir_exists {
        return Firmware::Bios;
    }
    Firmware::Uefi {
        secure_boot: var.and_then(secure_boot_from_var),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_value_follows_its_four_attribute_bytes() {
        assert_eq!(secure_boot_from_var(&[6, 0, 0, 0, 1]), Some(true));
        assert_eq!(secure_boot_from_var(&[6, 0, 0, 0, 0]), Some(false));
        assert_eq!(secure_boot_from_var(&[6, 0, 0, 0]), None);
        assert_eq!(secure_boot_from_var(&[]), None);
        assert_eq!(secure_boot_from_var(&[6, 0, 0, 0, 1, 0]), None);
    }

    #[test]
    fn bios_has_no_secure_boot_and_uefi_reports_the_variable() {
        assert_eq!(detect(false, Some(&[6, 0, 0, 0, 1])), Firmware::Bios);
        let on = detect(true, Some(&[6, 0, 0, 0, 1]));
        assert!(on.secure_boot());
        assert_eq!(on.to_string(), "firmware: UEFI; secure boot: on");
        let off = detect(true, Some(&[6, 0, 0, 0, 0]));
        assert!(!off.secure_boot());
        assert_eq!(off.to_string(), "firmware: UEFI; secure boot: off");
        assert_eq!(
            detect(true, None).to_string(),
            "firmware: UEFI; secure boot: unknown"
        );
        assert_eq!(
            Firmware::Bios.to_string(),
            "firmware: BIOS; secure boot: off"
        );
    }
}
