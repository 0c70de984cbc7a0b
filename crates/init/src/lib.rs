//! PID 1 of the Lifeboat initramfs (`lifeboat-init`): mounts the kernel file systems, loads the
//! kernel modules the hardware needs (coldplug from `/sys`, hotplug from netlink uevents), finds
//! the boot medium, starts `lifeboat` on tty1 and the serial consoles and a busybox shell on tty2,
//! restarts them when they exit, reaps orphans, and powers off or reboots cleanly.
//!
//! Early boot is data ([`steps::early_steps`]) that can be printed and tested; [`boot::run`] only
//! executes it. This crate must never exit, never abort on a panic (steps run under
//! `catch_unwind`), and must not touch disk contents: it only probes superblocks (`fs::probe`),
//! mounts the boot medium read-only and the volume of an unattended job (`disk::mount`), and
//! writes the job's report there. It depends on `disk` and `fs` only, never on `engine` or
//! `image`, to keep the static binary small.
//!
//! Power requests: when `lifeboat` exits with code **100** init powers off, with **101** it
//! reboots (after stopping all programs, `sync` and unmounting every real file system). Any other
//! exit restarts `lifeboat` after a short delay. Ctrl-Alt-Del is a clean reboot too (the kernel's
//! immediate hard reboot is disabled).
//!
//! Kernel command line options are listed in [`cmdline`].

pub mod boot;
pub mod cmdline;
pub mod console;
pub mod firmware;
pub mod job_volume;
pub mod logger;
pub mod md;
pub mod modules;
pub mod network;
pub mod steps;
pub mod uevent;
