//! The main screen: the disk tree (disks and their partitions, with SMART and in-use flags), the
//! selected row's details, and the keys that act on the selection (menu, hotkeys, mount,
//! unmount). Discovery and SMART answers land here; each carries the id of its request and
//! only the latest one counts.

use crate::inventory::{identity_text, model_column, part_rows, table_text, whole_fs_row};
use crate::inventory::{DiskEntry, PartRow, Row, SmartHealth};
use crate::model::{Effect, Key, Model, RequestId, Screen};
use crate::screens::menu::{self, MenuItem};
use crate::widgets::{bad_style, fit, good_style, nav, path_text, selected_style, warn_style};
use disk::text::printable;
use engine::units::human;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph, Wrap};
use ratatui::Frame;
use std::path::{Path, PathBuf};

/// Where Lifeboat mounts partitions; it unmounts only what is mounted below it.
pub const MOUNT_BASE: &str = "/run/lifeboat/mnt";

/// The help line.
pub const HELP: &str =
    " ↑↓ move  Enter menu  a back up  e restore  f files  c clone  m mount  q quit";

/// The discovery `id` answered: the new disk list (the cursor stays on the same disk or
/// partition), and SMART questions for disks that are new. An answer to an earlier discovery is
/// dropped.
pub fn on_scanned(
    model: &mut Model,
    id: RequestId,
    result: Result<Vec<DiskEntry>, String>,
) -> Vec<Effect> {
    if model.scanning != Some(id) {
        log::debug!("discovery {id} dropped: a newer one is under way");
        return Vec::new();
    }
    model.scanning = None;
    let disks = match result {
        Ok(d) => d,
        Err(e) => {
            model.scan_error = Some(e);
            return Vec::new();
        }
    };
    model.scan_error = None;
    let selected = model.selected().and_then(|r| model.row_key(r));
    let before: Vec<(PathBuf, String)> = model
        .disks
        .iter()
        .map(|e| (e.device.path.clone(), e.device.identity()))
        .collect();
    model.disks = disks;
    let rows = model.rows();
    model.cursor = selected
        .and_then(|key| {
            rows.iter()
                .position(|r| model.row_key(*r).as_ref() == Some(&key))
        })
        .unwrap_or_else(|| model.cursor.min(rows.len().saturating_sub(1)));
    // SMART for disks that are new (or another disk behind the same name).
    model
        .smart
        .retain(|path, _| model.disks.iter().any(|e| &e.device.path == path));
    let mut asks = Vec::new();
    for e in &model.disks {
        let key = (e.device.path.clone(), e.device.identity());
        if !before.contains(&key) {
            model.smart.remove(&e.device.path);
            if model.smart_tool && !e.device.is_virtual() && e.device.size > 0 {
                asks.push(e.device.path.clone());
            }
        }
    }
    let mut effects = Vec::new();
    for path in asks {
        let id = model.request();
        model.smart_asked.insert(path.clone(), id);
        effects.push(Effect::Smart { id, path });
    }
    effects
}

/// The SMART question `id` about `path` answered; dropped when a newer question was asked.
pub fn on_smart(model: &mut Model, id: RequestId, path: PathBuf, health: SmartHealth) {
    if model.smart_asked.get(&path) == Some(&id) {
        model.smart_asked.remove(&path);
        model.smart.insert(path, health);
    }
}

/// Keys of the disk tree.
pub fn key(model: &mut Model, key: Key) -> (Screen, Vec<Effect>) {
    let rows = model.rows().len();
    if let Some(c) = nav(model.cursor, rows, key) {
        model.cursor = c;
        return (Screen::Main, Vec::new());
    }
    match key {
        Key::Enter => (Screen::Menu { cursor: 0 }, Vec::new()),
        Key::Esc => {
            model.status = None;
            (Screen::Main, Vec::new())
        }
        Key::Char(c) => match MenuItem::all().into_iter().find(|i| i.hotkey() == c) {
            Some(item) => menu::activate(model, item),
            None => (Screen::Main, Vec::new()),
        },
        _ => (Screen::Main, Vec::new()),
    }
}

/// The selected partition row (or a disk that holds a bare file system), with its disk.
pub fn selected_part(model: &Model) -> Option<(usize, PartRow)> {
    match model.selected()? {
        Row::Part(d, p) => {
            let entry = model.disks.get(d)?;
            part_rows(entry).get(p).cloned().map(|r| (d, r))
        }
        Row::Disk(d) => whole_fs_row(model.disks.get(d)?).map(|r| (d, r)),
    }
}

/// Mounts the selected partition under [`MOUNT_BASE`] (refused with the reason when it cannot be).
pub fn mount(model: &mut Model) -> Vec<Effect> {
    let Some((_, part)) = selected_part(model) else {
        model.status = Some("select a partition to mount".to_string());
        return Vec::new();
    };
    let refusal = if let Some(reason) = part.in_use() {
        Some(format!("cannot mount: {reason}"))
    } else if part.node.is_none() {
        Some(format!(
            "cannot mount {}: the kernel has no device node for it (rescan, or re-read the table)",
            part.name
        ))
    } else {
        match &part.fs {
            None => Some(format!("cannot mount {}: no known file system", part.name)),
            Some(f) if !crate::system::mountable(f.kind) => Some(format!(
                "cannot mount {}: {} is not a mountable file system",
                part.name,
                f.kind.name()
            )),
            Some(_) => None,
        }
    };
    if let Some(r) = refusal {
        model.status = Some(r);
        return Vec::new();
    }
    match (part.node, part.fs) {
        (Some(node), Some(fs)) => {
            model.status = Some(format!("mounting {}…", part.name));
            vec![Effect::Mount {
                id: model.request(),
                node,
                name: part.name,
                fs: fs.kind,
            }]
        }
        _ => Vec::new(),
    }
}

/// Unmounts the selected partition when Lifeboat mounted it.
pub fn unmount(model: &mut Model) -> Vec<Effect> {
    let Some((_, part)) = selected_part(model) else {
        model.status = Some("select a partition to unmount".to_string());
        return Vec::new();
    };
    let ours = part
        .mount_points
        .iter()
        .find(|m| m.starts_with(Path::new(MOUNT_BASE)));
    match (ours, part.mount_points.first()) {
        (Some(m), _) => {
            model.status = Some(format!("unmounting {}…", path_text(m)));
            vec![Effect::Unmount {
                id: model.request(),
                mount_point: m.clone(),
            }]
        }
        (None, Some(m)) => {
            model.status = Some(format!(
                "{} is mounted at {} by the system: Lifeboat only unmounts what it mounted under \
                 {MOUNT_BASE}",
                part.name,
                path_text(m)
            ));
            Vec::new()
        }
        (None, None) => {
            model.status = Some(format!("{} is not mounted", part.name));
            Vec::new()
        }
    }
}

/// The text of a SMART state for the disk tree.
pub fn smart_text(h: Option<&SmartHealth>) -> &'static str {
    match h {
        Some(SmartHealth::Passed) => "PASSED",
        Some(SmartHealth::Failed) => "FAILED",
        Some(SmartHealth::Unavailable(_)) => "n/a",
        None => "…",
    }
}

/// Widths of the model and serial columns of the disk rows: what the fixed columns (name,
/// transport, size, table; SMART and the BOOT / in use flags when any row shows them) leave of
/// the list's `inner` width. At 80 columns: model 16 to 20, serial 16; wider terminals give
/// up to 40 and 24.
fn id_widths(model: &Model, inner: u16) -> (usize, usize) {
    const FIXED: usize = 8 + 7 + 9 + 1 + 5 + 1;
    let smart = if model.smart_tool { 7 } else { 0 };
    let flags = model
        .disks
        .iter()
        .map(|e| match (e.device.is_boot_medium, e.device.in_use()) {
            (true, _) => 4,
            (false, Some(_)) => 6,
            (false, None) => 0,
        })
        .max()
        .unwrap_or(0);
    let room = usize::from(inner).saturating_sub(FIXED + smart + flags + 2);
    let serial = (room / 2).min(16).max(room.saturating_sub(40).min(24));
    ((room - serial).min(40), serial)
}

fn disk_line(model: &Model, entry: &DiskEntry, widths: (usize, usize)) -> Line<'static> {
    let d = &entry.device;
    let mut spans = vec![Span::raw(format!(
        "{:<8.8}{:<7.7}{:>9} {:<5.5} {} {} ",
        d.name,
        d.transport.to_string(),
        human(d.size),
        table_text(entry),
        fit(&model_column(d), widths.0),
        fit(&printable(d.serial.as_deref().unwrap_or("")), widths.1),
    ))];
    if model.smart_tool {
        let h = model.smart.get(&d.path);
        // Loop, RAM and mapped devices have no SMART: leave the column empty.
        let text = if d.is_virtual() { "" } else { smart_text(h) };
        let style = match h {
            Some(SmartHealth::Failed) => bad_style(),
            Some(SmartHealth::Passed) => good_style(),
            _ => Style::default(),
        };
        spans.push(Span::styled(format!("{text:<7}"), style));
    }
    if d.is_boot_medium {
        spans.push(Span::styled("BOOT ", warn_style()));
    } else if d.in_use().is_some() {
        spans.push(Span::styled("in use ", warn_style()));
    }
    Line::from(spans)
}

/// Cells of the usage bar of a partition row.
const BAR: usize = 5;

/// `███░░`: the used share of `used + free` in [`BAR`] cells (a used byte shows at least one).
pub fn usage_bar(used: u64, free: u64) -> String {
    let total = u128::from(used) + u128::from(free);
    let full = if total == 0 {
        0
    } else {
        let f = (u128::from(used) * BAR as u128).div_ceil(total);
        usize::try_from(f).unwrap_or(BAR).min(BAR)
    };
    format!("{}{}", "█".repeat(full), "░".repeat(BAR - full))
}

/// A partition row, 78 columns: name, file system and label, size, a usage bar with the free
/// space, and where it is mounted (or why it is in use).
fn part_line(p: &PartRow) -> Line<'static> {
    let mount = if let Some(m) = p.mount_points.first() {
        format!("on {}", path_text(m))
    } else if p.swap {
        "swap in use".to_string()
    } else if let Some(h) = p.holders.first() {
        format!("held by {h}")
    } else {
        String::new()
    };
    let usage = match p.usage() {
        Some((used, free)) => format!("{} {:>9} free", usage_bar(used, free), human(free)),
        None => String::new(),
    };
    Line::raw(format!(
        "  {} {} {:>9} {usage:<20}  {}",
        fit(&p.name, 9),
        fit(&p.fs_text(), 16),
        human(p.size),
        fit(&mount, 17).trim_end()
    ))
}

/// Draws the disk tree and the details of the selected row.
pub fn draw(model: &Model, frame: &mut Frame, area: Rect) {
    let [list_area, detail_area] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(7)]).areas(area);
    let rows = model.rows();
    let widths = id_widths(model, list_area.width.saturating_sub(2));
    let items: Vec<ListItem> = rows
        .iter()
        .filter_map(|r| match r {
            Row::Disk(d) => model
                .disks
                .get(*d)
                .map(|e| ListItem::new(disk_line(model, e, widths))),
            Row::Part(d, p) => model
                .disks
                .get(*d)
                .and_then(|e| part_rows(e).get(*p).map(|p| ListItem::new(part_line(p)))),
        })
        .collect();
    let title = if model.show_virtual {
        " Disks (with loop and RAM devices) "
    } else {
        " Disks "
    };
    let block = Block::default().borders(Borders::ALL).title(title);
    if items.is_empty() {
        let text = if model.scanning.is_some() {
            "Looking for disks..."
        } else {
            "No disks found. Plug one in (it appears by itself) or press r to rescan."
        };
        frame.render_widget(Paragraph::new(text).block(block), list_area);
    } else {
        let mut state = ListState::default().with_selected(Some(model.cursor.min(rows.len() - 1)));
        frame.render_stateful_widget(
            List::new(items)
                .block(block)
                .highlight_style(selected_style()),
            list_area,
            &mut state,
        );
    }
    let details = match model.selected() {
        Some(Row::Disk(d)) => model.disks.get(d).map(|e| disk_details(model, e)),
        Some(Row::Part(d, p)) => model
            .disks
            .get(d)
            .and_then(|e| part_rows(e).get(p).map(part_details)),
        None => None,
    }
    .unwrap_or_default();
    frame.render_widget(
        Paragraph::new(details)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(" Details ")),
        detail_area,
    );
}

fn disk_details(model: &Model, e: &DiskEntry) -> Text<'static> {
    let d = &e.device;
    let mut lines = vec![Line::raw(identity_text(d))];
    let mut facts = format!(
        "{}  {}  sectors {}/{}",
        d.path.display(),
        d.transport,
        d.logical_sector_size,
        d.physical_sector_size
    );
    if d.removable == Some(true) {
        facts.push_str("  removable");
    }
    if d.rotational == Some(true) {
        facts.push_str("  spinning");
    }
    lines.push(Line::raw(facts));
    let content = match &e.report {
        Ok(r) => match &r.content {
            engine::Content::Table {
                table,
                id,
                partitions,
                warnings,
                ..
            } => {
                let mut s = format!("{table} table, id {id}, {} partitions", partitions.len());
                if let Some(w) = warnings.first() {
                    s.push_str(&format!("; {}", printable(w)));
                }
                s
            }
            engine::Content::FileSystem { fs, .. } => {
                format!("a bare {} file system, no partition table", fs.kind.name())
            }
            engine::Content::Unknown => "no partition table or file system found".to_string(),
            engine::Content::Unreadable { error } => {
                format!("unreadable table: {}", printable(error))
            }
        },
        Err(err) => format!("cannot be read: {}", printable(err)),
    };
    lines.push(Line::raw(content));
    if d.is_boot_medium {
        lines.push(Line::styled(
            "protected: it holds the running system or the medium Lifeboat booted from",
            warn_style(),
        ));
    } else if let Some(reason) = d.in_use() {
        lines.push(Line::styled(format!("in use: {reason}"), warn_style()));
    }
    if model.smart_tool {
        if let Some(SmartHealth::Unavailable(why)) = model.smart.get(&d.path) {
            lines.push(Line::raw(format!("SMART: {}", printable(why))));
        }
    }
    Text::from(lines)
}

fn part_details(p: &PartRow) -> Text<'static> {
    let node = p
        .node
        .as_ref()
        .map(|n| n.display().to_string())
        .unwrap_or_else(|| "no device node".to_string());
    let mut lines = vec![Line::raw(format!(
        "{node}  partition {}  starts at {}  {}",
        p.number,
        p.start,
        human(p.size)
    ))];
    if !p.type_name.is_empty() || !p.part_name.is_empty() {
        let mut s = format!("type {}", p.type_name);
        if !p.part_name.is_empty() {
            s.push_str(&format!("  name \"{}\"", printable(&p.part_name)));
        }
        lines.push(Line::raw(s));
    }
    if let Some(f) = &p.fs {
        let mut s = format!("file system {}", f.kind.name());
        if let Some(l) = &f.label {
            s.push_str(&format!("  label \"{}\"", printable(l)));
        }
        if let Some(u) = &f.uuid {
            s.push_str(&format!("  uuid {}", printable(u)));
        }
        lines.push(Line::raw(s));
        let mut s = match p.usage() {
            Some((used, free)) => format!(
                "{} used, {} free ({} bytes used)",
                human(used),
                human(free),
                used
            ),
            None => "used space unknown (not readable for this file system)".to_string(),
        };
        if let Some(st) = &f.state {
            s.push_str(&format!("; {st}"));
        }
        lines.push(Line::raw(s));
    }
    match p.in_use() {
        Some(r) => lines.push(Line::styled(r, warn_style())),
        None => lines.push(Line::raw("not mounted")),
    }
    Text::from(lines)
}
