//! The file browser's worker code: list a folder or search by name in a file system inside an
//! image or on a live partition (read-only), and copy files out into a folder through
//! `engine::extract`. These functions block; they never touch the terminal. Existing files are
//! only replaced when the request says so (the user confirmed it).

use crate::model::{ExtractReport, ExtractRequest, FileItem, FileSource, Listing};
use engine::extract::join;
use engine::{Cancel, ProgressSink};
use fs::browse::{Browser, EntryKind};
use std::path::{Path, PathBuf};

/// The file a source reads: the image, or the node a live file system or an LVM volume is on.
pub fn source_file(source: &FileSource) -> &Path {
    match source {
        FileSource::Image { path, .. } => path,
        FileSource::Live { node, .. } => node,
        FileSource::Lv { pv, .. } => source_file(pv),
    }
}

/// Most results a search returns.
pub const SEARCH_LIMIT: usize = 500;
/// Most objects a search looks at before it gives up.
const SEARCH_VISITS: usize = 200_000;

/// Opens the file system of `source`, read-only.
pub fn open(source: &FileSource) -> Result<Box<dyn Browser>, String> {
    engine::extract::open(source)
        .map(|o| o.browser)
        .map_err(|e| e.to_string())
}

/// Folders first, then by name.
fn sort(items: &mut [FileItem]) {
    items.sort_by(|a, b| {
        b.is_dir()
            .cmp(&a.is_dir())
            .then_with(|| a.path.cmp(&b.path))
    });
}

/// Lists `dir` (or, for a search, everything below `dir` whose name holds the pattern, case
/// blind, up to [`SEARCH_LIMIT`] results). Returns the items and the file system's name.
pub fn list(
    source: &FileSource,
    dir: &str,
    listing: &Listing,
) -> (Option<String>, Result<Vec<FileItem>, String>) {
    let mut b = match open(source) {
        Ok(b) => b,
        Err(e) => return (None, Err(e)),
    };
    let fs_name = match b.label() {
        Some(l) if !l.trim().is_empty() => format!("{} \"{}\"", b.fs_name(), l.trim()),
        _ => b.fs_name().to_string(),
    };
    let result = match listing {
        Listing::Dir => b.read_dir(dir).map_err(|e| e.to_string()).map(|entries| {
            let mut items: Vec<FileItem> = entries
                .into_iter()
                .map(|entry| FileItem {
                    path: join(dir, &entry.name),
                    entry,
                })
                .collect();
            sort(&mut items);
            items
        }),
        Listing::Search(pattern) => search(b.as_mut(), dir, pattern),
    };
    (Some(fs_name), result)
}

fn search(b: &mut dyn Browser, dir: &str, pattern: &str) -> Result<Vec<FileItem>, String> {
    let needle = pattern.to_lowercase();
    let mut found = Vec::new();
    let mut stack = vec![dir.to_string()];
    let mut visits = 0usize;
    while let Some(d) = stack.pop() {
        let entries = match b.read_dir(&d) {
            Ok(e) => e,
            // The top folder must read; damaged folders below are passed over.
            Err(e) if d == dir => return Err(e.to_string()),
            Err(e) => {
                log::warn!("search: {e}");
                continue;
            }
        };
        for entry in entries {
            visits += 1;
            let path = join(&d, &entry.name);
            if entry.kind == EntryKind::Dir {
                stack.push(path.clone());
            }
            if entry.name.to_lowercase().contains(&needle) {
                found.push(FileItem { path, entry });
                if found.len() >= SEARCH_LIMIT {
                    sort(&mut found);
                    return Ok(found);
                }
            }
        }
        if visits >= SEARCH_VISITS {
            log::warn!("search for {pattern:?} stopped after {visits} objects");
            break;
        }
    }
    sort(&mut found);
    Ok(found)
}

/// The destinations of `req` that exist already (files, folders or links).
pub fn existing(req: &ExtractRequest) -> Vec<PathBuf> {
    req.existing()
}

/// Copies the request's paths into its destination folder (see [`engine::extract::extract`]):
/// `Err` only when nothing could start.
pub fn extract(
    req: &ExtractRequest,
    sink: &ProgressSink,
    cancel: &Cancel,
) -> Result<ExtractReport, String> {
    engine::extract::extract(req, Some(sink), cancel).map_err(|e| e.to_string())
}
