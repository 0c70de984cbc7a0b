//! One module per screen, each with its state, key handling, the worker answers it takes, its
//! drawing, title and help line side by side. [`crate::app`] only routes to them.
//!
//! - [`disks`]: the disk tree (main screen), mount and unmount;
//! - [`menu`]: the actions menu and the reboot/power-off question;
//! - [`log`]: the Log screen;
//! - [`transfer`]: Clone disk, Copy partition, and the restores from the target on;
//! - [`restore`]: a restore's first steps (image, what to restore);
//! - [`backup`]: back up a disk or partition to a new image;
//! - [`verify`]: verify an image;
//! - [`files`]: browse the files of an image or a live partition;
//! - [`mount_image`]: mount a partition of an image read-only (`lifeboat mount`);
//! - [`extract`]: copy the chosen files into a folder;
//! - [`receive`]: receive an image a sender streams by multicast (issue 19);
//! - [`send`]: send an image to several PCs at once by multicast (issue 19).

pub mod backup;
pub mod disks;
pub mod extract;
pub mod files;
pub mod log;
pub mod menu;
pub mod mount_image;
pub mod receive;
pub mod restore;
pub mod send;
pub mod transfer;
pub mod verify;
