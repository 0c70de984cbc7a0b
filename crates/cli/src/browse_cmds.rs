//! `lifeboat ls` and `lifeboat extract`: browse a file system inside an image, a disk image, a
//! disk or a partition, and copy files out without restoring anything. The work is
//! `engine::extract`'s; this module picks the source from the arguments and prints. File names,
//! link targets, labels and messages that quote them come from the file system: the text output
//! prints them through `disk::text::printable`, `--json` leaves them to serde.

use std::path::Path;

use anyhow::{Context, Result};
use disk::text::printable;
use engine::extract::{ExtractError, ExtractRequest, Opened, Source};
use fs::browse::{Entry, EntryKind, Timestamp};

/// The file system named by the arguments: `IMAGE`, `--part N` and `--lv VG/LV`.
fn find_source(path: &Path, part: Option<u32>, lv: Option<&str>) -> Result<Source> {
    match Source::find_lv(path, part, lv) {
        Err(e @ ExtractError::SeveralFileSystems { .. }) => {
            Err(anyhow::anyhow!("{e}: pick one with --part N"))
        }
        Err(e @ ExtractError::SeveralLvs { .. }) => {
            Err(anyhow::anyhow!("{e}: pick one with --lv VG/LV"))
        }
        r => Ok(r?),
    }
}

fn open_source(path: &Path, part: Option<u32>, lv: Option<&str>) -> Result<Opened> {
    let source = find_source(path, part, lv)?;
    engine::extract::open(&source).with_context(|| format!("opening {}", source.title()))
}

/// `ls -l` style permission string.
fn mode_string(e: &Entry) -> String {
    let kind = match e.kind {
        EntryKind::Dir => 'd',
        EntryKind::Symlink => 'l',
        EntryKind::File => '-',
        EntryKind::Other => '?',
    };
    let mode = e.mode.unwrap_or(match e.kind {
        EntryKind::Dir => 0o755,
        EntryKind::Symlink => 0o777,
        _ => 0o644,
    });
    let mut s = String::from(kind);
    for shift in [6u32, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// `YYYY-MM-DD HH:MM` (UTC) of a timestamp.
fn time_string(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "-".repeat(16), engine::extract::date_text)
}

fn entry_line(e: &Entry) -> String {
    let owner = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
    let mut line = format!(
        "{} {:>5} {:>5} {:>13} {} {}",
        mode_string(e),
        owner(e.uid),
        owner(e.gid),
        e.size,
        time_string(e.mtime),
        printable(&e.name)
    );
    if let Some(t) = &e.link_target {
        line.push_str(" -> ");
        line.push_str(&printable(t));
    }
    line.push('\n');
    line
}

/// `lifeboat ls IMAGE [PATH]`.
pub fn ls(image: &Path, path: &str, part: Option<u32>, lv: Option<&str>, json: bool) -> Result<u8> {
    let mut src = open_source(image, part, lv)?;
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let md = src.browser.metadata(&path)?;
    let entries = if md.kind == EntryKind::Dir {
        src.browser.read_dir(&path)?
    } else {
        vec![md]
    };
    if json {
        let v = serde_json::json!({
            "fs": src.browser.fs_name(),
            "label": src.browser.label(),
            "path": path,
            "entries": entries,
        });
        crate::emit(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
    } else {
        let text: String = entries.iter().map(entry_line).collect();
        crate::emit(&text)?;
    }
    Ok(0)
}

/// `lifeboat extract IMAGE PATH... --to DIR`.
pub fn extract(
    image: &Path,
    paths: &[String],
    to: &Path,
    part: Option<u32>,
    lv: Option<&str>,
    overwrite: bool,
    json: bool,
) -> Result<u8> {
    let req = ExtractRequest {
        source: find_source(image, part, lv)?,
        paths: paths.to_vec(),
        dest: to.to_path_buf(),
        overwrite,
    };
    // JSON output is one document: no progress lines in it.
    let printer = if json {
        None
    } else {
        crate::jobs::progress_printer(false)
    };
    let cancel = crate::jobs::cancel_on_ctrl_c();
    let report = engine::extract::extract(&req, printer.as_deref(), &cancel)
        .with_context(|| format!("extracting from {}", req.source.title()))?;
    if json {
        let failed: Vec<_> = report
            .failed
            .iter()
            .map(|(path, error)| serde_json::json!({ "path": path, "error": error }))
            .collect();
        let renamed: Vec<_> = report
            .renamed
            .iter()
            .map(|(path, to)| serde_json::json!({ "path": path, "saved_as": to.to_string_lossy() }))
            .collect();
        let v = serde_json::json!({
            "extracted_files": report.files,
            "extracted_dirs": report.dirs,
            "extracted_symlinks": report.symlinks,
            "extracted_bytes": report.bytes,
            "failed": failed,
            "renamed": renamed,
            "notes": report.notes,
            "cancelled": report.cancelled,
            "image_unreadable": report.image_unreadable,
            "image_bytes_read": report.image_bytes_read,
            "seconds": report.seconds,
        });
        crate::emit(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
    } else {
        let mut text = format!(
            "extracted {} files ({} bytes), {} folders, {} symlinks into {}\n",
            report.files,
            report.bytes,
            report.dirs,
            report.symlinks,
            to.display()
        );
        for n in &report.notes {
            text.push_str(&format!("note: {}\n", printable(n)));
        }
        for (path, error) in &report.failed {
            text.push_str(&format!(
                "failed: {}: {}\n",
                printable(path),
                printable(&crate::stores::name_urls(error))
            ));
        }
        if report
            .failed
            .iter()
            .any(|(_, e)| e.ends_with("exists: kept"))
        {
            text.push_str("note: --overwrite replaces objects that exist\n");
        }
        crate::emit(&text)?;
    }
    if report.cancelled {
        eprintln!("lifeboat: cancelled: what was extracted so far is kept");
        return Ok(crate::exit::FAILURE);
    }
    if let Some(why) = &report.image_unreadable {
        // The share holding the image is gone: the extract stopped (not every object is in
        // the failed list: those not reached were never tried).
        eprintln!(
            "lifeboat: error: {}; the extract stopped: what was extracted so far is kept",
            printable(&crate::stores::name_urls(why))
        );
        return Ok(crate::exit::FAILURE);
    }
    if report.failed.is_empty() {
        Ok(0)
    } else {
        eprintln!(
            "lifeboat: {} of the requested objects failed",
            report.failed.len()
        );
        Ok(crate::exit::FAILURE)
    }
}
