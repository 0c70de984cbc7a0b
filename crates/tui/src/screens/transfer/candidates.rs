//! What a transfer may read and write: the source and target lists with the reason each entry
//! is refused (the engine checks again before writing), and how sizes compare.

use super::job::Action;
use crate::inventory::{disk_endpoint, part_endpoint, part_rows, whole_fs_row, Candidate};
use crate::inventory::{DiskEntry, Endpoint};
use crate::model::Model;
use engine::units::human;
use engine::Content;
use std::path::PathBuf;

/// What a step of the wizard may pick from.
pub fn sources(model: &Model, action: Action) -> Vec<Candidate> {
    let mut out = Vec::new();
    for entry in &model.disks {
        if entry.device.size == 0 {
            continue;
        }
        match action {
            // Their source is an image, picked on the restore screens.
            Action::RestoreDisk | Action::RestorePartition => {}
            Action::CloneDisk => {
                let refusal = match &entry.report {
                    Err(e) => Some(format!("cannot be read: {e}")),
                    Ok(r) => match &r.content {
                        Content::Table { .. } => None,
                        Content::FileSystem { fs, .. } => Some(format!(
                            "holds a bare {} file system, no partition table: use Copy partition",
                            fs.kind.name()
                        )),
                        Content::Unknown => {
                            Some("holds no partition table Lifeboat knows".to_string())
                        }
                        Content::Unreadable { error } => {
                            Some(format!("its partition table cannot be read: {error}"))
                        }
                    },
                };
                out.push(Candidate {
                    endpoint: disk_endpoint(entry),
                    refusal,
                    note: entry
                        .device
                        .is_boot_medium
                        .then(|| "the boot medium: it can be read, not written".to_string()),
                });
            }
            Action::CopyPartition => {
                if let Some(row) = whole_fs_row(entry) {
                    let mut endpoint = part_endpoint(entry, &row);
                    endpoint.number = None;
                    endpoint.identity = entry.device.identity();
                    out.push(Candidate {
                        endpoint,
                        refusal: None,
                        note: Some("the whole disk holds one file system".to_string()),
                    });
                }
                for p in part_rows(entry) {
                    let refusal = (p.extended)
                        .then(|| "an extended partition only holds other partitions".to_string());
                    out.push(Candidate {
                        endpoint: part_endpoint(entry, &p),
                        refusal,
                        note: None,
                    });
                }
            }
        }
    }
    out
}

/// What the target step may pick from, each with the reason it is refused, if it is.
pub fn targets(model: &Model, action: Action, source: &Endpoint) -> Vec<Candidate> {
    let mut out = Vec::new();
    for entry in &model.disks {
        let d = &entry.device;
        if d.size == 0 {
            continue;
        }
        let protected = if d.is_boot_medium {
            Some(format!(
                "{} holds the running system or the medium Lifeboat booted from",
                d.name
            ))
        } else if d.read_only == Some(true) {
            Some(format!("{} is write-protected", d.name))
        } else {
            None
        };
        // A restore must not write the drive its image is read from.
        let home = if action.is_restore() {
            image_home(entry, &source.path)
        } else {
            None
        };
        match action {
            Action::CloneDisk | Action::RestoreDisk => {
                let endpoint = disk_endpoint(entry);
                let (refusal, note) = if endpoint.path == source.path {
                    (Some("it is the source".to_string()), None)
                } else if let Some(h) = home {
                    (Some(h), None)
                } else if let Some(p) = protected {
                    (Some(p), None)
                } else if let Some(reason) = d.in_use() {
                    (Some(reason), None)
                } else {
                    size_verdict(source, endpoint.len, true)
                };
                out.push(Candidate {
                    endpoint,
                    refusal,
                    note,
                });
            }
            Action::CopyPartition | Action::RestorePartition => {
                for p in part_rows(entry) {
                    let endpoint = part_endpoint(entry, &p);
                    let (refusal, note) = if endpoint.path == source.path
                        && endpoint.offset == source.offset
                    {
                        (Some("it is the source".to_string()), None)
                    } else if let Some(h) = home.clone() {
                        (Some(h), None)
                    } else if let Some(r) = protected.clone() {
                        (Some(r), None)
                    } else if p.extended {
                        (
                            Some("an extended partition only holds other partitions".to_string()),
                            None,
                        )
                    } else if let Some(reason) = p.in_use() {
                        (Some(reason), None)
                    } else if p.node.is_none() && d.in_use().is_some() {
                        // Without its own node the partition is written through the disk, and
                        // the kernel refuses an exclusive open of a disk that is in use.
                        (d.in_use(), None)
                    } else {
                        size_verdict(source, endpoint.len, false)
                    };
                    out.push(Candidate {
                        endpoint,
                        refusal,
                        note,
                    });
                }
            }
        }
    }
    out
}

/// Why a restore may not write `entry`: the image file lies on one of its mounted file systems.
pub fn image_home(entry: &DiskEntry, image: &std::path::Path) -> Option<String> {
    let d = &entry.device;
    let mounts = d.mount_points.iter().map(|m| (&d.name, m)).chain(
        d.partitions
            .iter()
            .flat_map(|p| p.mount_points.iter().map(move |m| (&p.name, m))),
    );
    // The deepest mount point holding the image is the one it lives on.
    let (name, m) = mounts
        .filter(|(_, m)| m.as_os_str() != "/" && image.starts_with(m))
        .max_by_key(|(_, m)| m.components().count())?;
    Some(format!(
        "the image is read from this drive ({name}, mounted at {}): it cannot be written \
         while the image is read",
        m.display()
    ))
}

/// Refusal or note for a target of `have` bytes: too small (with the shortfall), larger (the
/// grow option), smaller but fitting.
fn size_verdict(source: &Endpoint, have: u64, disk: bool) -> (Option<String>, Option<String>) {
    let need = source.needs;
    if have < need {
        let what = if disk {
            "the source's partitions need"
        } else {
            "the source partition needs"
        };
        return (
            Some(format!(
                "too small: {what} {}, it has {} ({} short)",
                human(need),
                human(have),
                human(need - have)
            )),
            None,
        );
    }
    let note = match have.cmp(&source.len) {
        std::cmp::Ordering::Greater if disk => Some(format!(
            "{} larger than the source: the last partition can grow (next screen)",
            human(have - source.len)
        )),
        std::cmp::Ordering::Greater => Some(format!(
            "{} larger than the source: the file system keeps its size",
            human(have - source.len)
        )),
        std::cmp::Ordering::Less => Some(format!(
            "{} smaller than the source: it fits, file systems shrink where needed (the plan \
             shows how)",
            human(source.len - have)
        )),
        std::cmp::Ordering::Equal => None,
    };
    (None, note)
}

/// The explanation of how source and target sizes compare, for the options screen.
pub fn size_explanation(action: Action, source: &Endpoint, target: &Endpoint) -> String {
    use std::cmp::Ordering;
    match (action, target.len.cmp(&source.len)) {
        (_, Ordering::Equal) => "The target is exactly as large as the source.".to_string(),
        (Action::CloneDisk, Ordering::Greater) => format!(
            "The target is {} larger than the source. Without \"grow\" the extra space stays \
             unallocated at the end of the disk; with it the last partition (and its ext2/3/4 or \
             NTFS file system) grows to fill the disk.",
            human(target.len - source.len)
        ),
        (Action::CloneDisk, Ordering::Less) => format!(
            "The target is {} smaller than the source. The partitions end at {} and still \
             fit; nothing is shrunk.",
            human(source.len - target.len),
            human(source.needs)
        ),
        (Action::CopyPartition, Ordering::Greater) => format!(
            "The target partition is {} larger than the source: the file system keeps its size \
             (grow it later with its own tool).",
            human(target.len - source.len)
        ),
        (Action::CopyPartition | Action::RestorePartition, Ordering::Less) => format!(
            "The target partition is {} smaller than the source.",
            human(source.len - target.len)
        ),
        (Action::RestoreDisk, Ordering::Greater) => format!(
            "The target is {} larger than the disk the image was made from. Without \"grow\" \
             the extra space stays unallocated at the end of the disk; with it the last \
             partition (and its ext2/3/4 or NTFS file system) grows to fill the disk.",
            human(target.len - source.len)
        ),
        (Action::RestoreDisk, Ordering::Less) => format!(
            "The target is {} smaller than the disk the image was made from. The partitions end \
             at {} and still fit; nothing is shrunk.",
            human(source.len - target.len),
            human(source.needs)
        ),
        (Action::RestorePartition, Ordering::Greater) => format!(
            "The target partition is {} larger than the imaged one: the file system keeps its \
             size (grow it later with its own tool).",
            human(target.len - source.len)
        ),
    }
}

/// The source list's cursor: on the disk or partition selected on the main screen.
pub fn preselect(model: &Model, action: Action) -> usize {
    let list = sources(model, action);
    let want: Option<(PathBuf, Option<u32>)> = model.selected().and_then(|r| model.row_key(r));
    let Some((disk, number)) = want else { return 0 };
    list.iter()
        .position(|c| {
            c.endpoint.disk == disk && (!action.picks_partitions() || c.endpoint.number == number)
        })
        .unwrap_or(0)
}
