//! The drives that can hold images, offered at the image picker's top folder: each attached
//! partition (or disk holding one file system) with a file system Lifeboat mounts, not mounted,
//! not in use, not the boot medium and not on a disk the job reads or writes. Choosing one
//! mounts it under [`crate::model::Model::image_root`] and opens its folder; the drives the
//! pickers mounted are unmounted when the user is back on the disk list (the job ended or they
//! left).

use crate::inventory::{part_rows, whole_fs_row, PartRow};
use crate::model::{Effect, Model};
use crate::screens::disks::usage_bar;
use engine::units::human;
use std::path::PathBuf;

/// A drive that can be mounted to hold images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drive {
    /// The partition's (or disk's) device node.
    pub node: PathBuf,
    /// Kernel name (`sdb1`): the folder it is mounted on.
    pub name: String,
    pub fs: fs::FsKind,
    /// File system and label, as the disk list shows them.
    pub fs_text: String,
    pub size: u64,
    /// Used and free bytes, when the scan could read them.
    pub usage: Option<(u64, u64)>,
}

impl Drive {
    /// One row of the picker: `sdb1  exfat "STICK"  29.8 GiB ██░░░ 20.1 GiB free`.
    pub fn line(&self) -> String {
        let free = match self.usage {
            Some((used, free)) => format!("{} {:>9} free", usage_bar(used, free), human(free)),
            None => "free space unknown".to_string(),
        };
        format!(
            "  {} {} {:>9}  {free}",
            super::fit(&self.name, 9),
            super::fit(&self.fs_text, 20),
            human(self.size)
        )
    }
}

fn drive_of(p: &PartRow) -> Option<Drive> {
    let f = p.fs.as_ref()?;
    if !crate::system::mountable(f.kind) || p.in_use().is_some() {
        return None;
    }
    facts(p)
}

/// A partition's facts as a drive, mounted or not.
fn facts(p: &PartRow) -> Option<Drive> {
    let f = p.fs.as_ref()?;
    Some(Drive {
        node: p.node.clone()?,
        name: p.name.clone(),
        fs: f.kind,
        fs_text: p.fs_text(),
        size: p.size,
        usage: p.usage(),
    })
}

/// The drives that can be mounted to hold images, leaving out the disks in `exclude` (the job's
/// source or target) and the boot medium.
pub fn drives(model: &Model, exclude: &[PathBuf]) -> Vec<Drive> {
    let mut out = Vec::new();
    for e in &model.disks {
        let d = &e.device;
        if d.is_boot_medium || exclude.contains(&d.path) {
            continue;
        }
        out.extend(whole_fs_row(e).as_ref().and_then(drive_of));
        out.extend(part_rows(e).iter().filter_map(drive_of));
    }
    out
}

/// The drive mounted on `dir` (a folder of the picker's top folder), when the disk list knows
/// it: the top folder shows mounted folders as the drives they are.
pub fn mounted_on(model: &Model, dir: &std::path::Path) -> Option<Drive> {
    model.disks.iter().find_map(|e| {
        whole_fs_row(e)
            .into_iter()
            .chain(part_rows(e))
            .find(|p| p.mount_points.iter().any(|m| m == dir))
            .and_then(|p| facts(&p))
    })
}

/// Mounts `drive` for a picker: the effect, and the folder it will be mounted on (kept in
/// [`Model::auto_mounting`] until the mount answers).
pub fn mount(model: &mut Model, drive: &Drive) -> Effect {
    let id = model.request();
    // Where `system::mount` mounts it.
    let dir = model
        .image_root
        .join(crate::system::mount_dir_name(&drive.name));
    model.auto_mounting = Some((id, dir));
    model.status = Some(format!("mounting {}…", drive.name));
    Effect::Mount {
        id,
        node: drive.node.clone(),
        name: drive.name.clone(),
        fs: drive.fs,
    }
}

/// The unmounts of the drives the pickers mounted, once the user is back on the disk list.
pub fn release(model: &mut Model) -> Vec<Effect> {
    let points = std::mem::take(&mut model.auto_mounted);
    points
        .into_iter()
        .map(|mount_point| {
            log::info!(
                "unmounting {}: the job ended or was left",
                mount_point.display()
            );
            Effect::Unmount {
                id: model.request(),
                mount_point,
            }
        })
        .collect()
}
