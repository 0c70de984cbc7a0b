//! Test support shared by every crate: fixtures made by the real tools (sgdisk, sfdisk, mkfs.*,
//! mcopy, ntfscp) as plain image files, and the QEMU end-to-end harness.
//!
//! Fixtures are never hand-written bytes when a real tool can make them. A missing tool is a loud
//! error naming the Debian package that provides it (`cargo xtask deps` installs them all); tests
//! never skip.

pub mod bitlocker;
pub mod demo;
pub mod e2e;
pub mod fixture;
pub mod fuzz_replay;
pub mod https;
pub mod lab;
pub mod screen;
pub mod system_disk;
pub mod vm;
