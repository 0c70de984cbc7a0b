//! What Lifeboat's init (PID 1) and the `lifeboat` binary agree on, defined once: where init
//! records the medium Lifeboat booted from (read by discovery, so that medium is never written),
//! and the exit codes by which `lifeboat` talks back to init. It lives here because `disk` is the
//! lowest crate both binaries build on.

/// Where init writes the kernel name of the boot medium (`sr0`, `sdb`), one line.
pub const BOOT_DEVICE_FILE: &str = "/run/lifeboat/boot-device";
/// [`BOOT_DEVICE_FILE`] relative to the runtime folder (`/run`), for a `SysRoot` in tests.
pub const BOOT_DEVICE_IN_RUN: &str = "lifeboat/boot-device";

/// The UI exits with this code to ask init to sync, unmount and power the machine off.
pub const EXIT_POWEROFF: u8 = 100;
/// The UI exits with this code to ask init to sync, unmount and reboot.
pub const EXIT_REBOOT: u8 = 101;
/// `lifeboat run JOB` exits with this code when the job never started (the job file could not be
/// read or is not a valid job file; also every usage error): init then does not follow
/// `lifeboat.after`, it shows the UI.
pub const EXIT_NOT_STARTED: u8 = 2;
