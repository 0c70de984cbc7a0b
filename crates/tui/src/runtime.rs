//! The thin runtime: owns the terminal (raw mode, alternate screen), reads keys, runs effects on
//! worker threads and feeds their results back to `update` through one channel. Every answer
//! and progress message is sent with the id of the effect it answers; the runtime itself never
//! decides what is stale (the screens do), except that a cancel reaches only the job it names.

use crate::app::{animated, update, view};
use crate::jobs;
use crate::model::{Effect, Key, Model, Msg, RequestId};
use crate::screens::disks::MOUNT_BASE;
use crate::system;
use crate::{EXIT_POWEROFF, EXIT_QUIT, EXIT_REBOOT};
use anyhow::{Context, Result};
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use crossterm::{cursor, execute};
use disk::SysRoot;
use engine::Cancel;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use std::io::{self, Stdout};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the `/sys/block` listing is compared (a cheap check for hot-plugged disks).
const WATCH_EVERY: Duration = Duration::from_secs(2);
const TICK_EVERY: Duration = Duration::from_millis(250);
const POLL: Duration = Duration::from_millis(100);

/// Puts the terminal back: cooked mode, main screen, visible cursor. Safe to call twice.
fn restore_terminal() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
}

/// The terminal in raw mode on the alternate screen; restored when dropped.
struct Screen {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Screen {
    fn enter() -> Result<Self> {
        terminal::enable_raw_mode().context("switching the terminal to raw mode")?;
        execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)
            .context("entering the alternate screen")?;
        let ((cols, rows), how) = crate::termsize::ensure();
        log::info!("terminal size {cols}x{rows} ({how})");
        let terminal = Terminal::new(CrosstermBackend::new(io::stdout()))
            .context("setting up the terminal")?;
        Ok(Screen { terminal })
    }

    /// Gives the terminal to another program (the shell).
    fn suspend(&mut self) {
        restore_terminal();
    }

    fn resume(&mut self) -> Result<()> {
        terminal::enable_raw_mode().context("switching the terminal to raw mode")?;
        execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)
            .context("entering the alternate screen")?;
        self.terminal.clear().context("clearing the terminal")?;
        Ok(())
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Restores the terminal before a panic is reported, so the message is readable and the console
/// usable.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        log::error!("panic: {info}");
        previous(info);
    }));
}

/// The names in `/sys/block` with their sizes, sorted: a disk plugged in or removed, a card
/// inserted, a loop device attached all change it.
fn block_listing(root: &SysRoot) -> Vec<String> {
    let dir = root.sys.join("block");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let size =
                        std::fs::read_to_string(dir.join(&name).join("size")).unwrap_or_default();
                    format!("{name}:{}", size.trim())
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A crossterm key as the UI's [`Key`]; Ctrl-C acts as Esc.
pub fn decode(k: KeyEvent) -> Option<Key> {
    if k.modifiers.contains(KeyModifiers::CONTROL) {
        return match k.code {
            KeyCode::Char('c') | KeyCode::Char('[') => Some(Key::Esc),
            _ => None,
        };
    }
    Some(match k.code {
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Tab => Key::Tab,
        KeyCode::BackTab => Key::BackTab,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Char(c) => Key::Char(c),
        _ => return None,
    })
}

/// The progress sink of the job `id`: each report goes to `update` with the job's id.
fn progress_sink(tx: &Sender<Msg>, id: RequestId) -> impl Fn(&engine::Progress) {
    let tx = tx.clone();
    move |p: &engine::Progress| {
        let _ = tx.send(Msg::Progress {
            id,
            progress: p.clone(),
        });
    }
}

/// Stops the job `id` when it is the one `running`; a cancel for a job that already ended (and
/// was followed by another) reaches nothing.
fn cancel_job(running: Option<&(RequestId, Cancel)>, id: RequestId) {
    match running {
        Some((job, c)) if *job == id => {
            log::warn!("cancel of job {id} requested by the user");
            c.cancel();
        }
        _ => log::debug!("cancel of job {id} ignored: it is not running"),
    }
}

enum Flow {
    Continue,
    Exit(u8),
}

struct Runtime {
    tx: Sender<Msg>,
    root: SysRoot,
    smartctl: Option<PathBuf>,
    /// The running job's id and its cancel switch.
    cancel: Option<(RequestId, Cancel)>,
    /// The image browser's top folder.
    image_root: PathBuf,
    /// The network stores open, by the folder the picker browses (dropping one closes it).
    stores: Arc<std::sync::Mutex<std::collections::BTreeMap<PathBuf, store::Opened>>>,
}

impl Runtime {
    fn spawn(&self, name: &str, work: impl FnOnce(Sender<Msg>) + Send + 'static) {
        let tx = self.tx.clone();
        if let Err(e) = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || work(tx))
        {
            log::error!("starting the {name} thread: {e}");
        }
    }

    /// A new cancel switch for the job `id`, which replaces the previous job's.
    fn cancel_for(&mut self, id: RequestId) -> Cancel {
        let cancel = Cancel::new();
        self.cancel = Some((id, cancel.clone()));
        cancel
    }

    fn run_effect(&mut self, effect: Effect, screen: &mut Screen) -> Result<Flow> {
        match effect {
            Effect::Rescan {
                id,
                include_virtual,
            } => {
                let root = self.root.clone();
                self.spawn("scan", move |tx| {
                    let result = jobs::scan(&root, include_virtual);
                    let _ = tx.send(Msg::Scanned { id, result });
                });
            }
            Effect::Smart { id, path } => {
                if let Some(tool) = self.smartctl.clone() {
                    self.spawn("smart", move |tx| {
                        let health = system::smart_health(&tool, &path);
                        let _ = tx.send(Msg::Smart { id, path, health });
                    });
                }
            }
            Effect::Plan { id, request: req } => {
                let root = self.root.clone();
                self.spawn("plan", move |tx| {
                    let result = jobs::plan(&root, &req).map(Arc::new).map_err(|e| {
                        log::warn!(
                            "{} to {} refused: {e}",
                            req.action.title(),
                            req.target.path.display()
                        );
                        e.to_string()
                    });
                    let _ = tx.send(Msg::Planned { id, result });
                });
            }
            Effect::Start {
                id,
                confirmed,
                policy,
            } => {
                jobs::use_policy(policy);
                let cancel = self.cancel_for(id);
                self.spawn("job", move |tx| {
                    let sink = progress_sink(&tx, id);
                    let outcome = jobs::execute(&confirmed, &sink, &cancel);
                    let _ = tx.send(Msg::JobDone { id, outcome });
                });
            }
            Effect::PlanReceive { id, disk, options } => {
                let root = self.root.clone();
                self.spawn("plan-receive", move |tx| {
                    let result = jobs::plan_receive(&root, &disk, options).map(Arc::new);
                    let _ = tx.send(Msg::ReceivePlanned { id, result });
                });
            }
            Effect::StartReceive { id, confirmed } => {
                let cancel = self.cancel_for(id);
                self.spawn("receive", move |tx| {
                    let sink = progress_sink(&tx, id);
                    let planned = tx.clone();
                    let on_plan = move |plan: &engine::job::Plan| {
                        let _ = planned.send(Msg::ReceiveStream {
                            id,
                            plan: plan.lines(),
                        });
                    };
                    let opts = engine::cast::udp::ReceiverOptions::default();
                    let received = jobs::receive(&confirmed, opts, &on_plan, &sink, &cancel);
                    let _ = tx.send(Msg::Received {
                        id,
                        received: Box::new(received),
                    });
                });
            }
            Effect::Send {
                id,
                image,
                name,
                options,
                policy,
            } => {
                jobs::use_policy(policy);
                let cancel = self.cancel_for(id);
                self.spawn("send", move |tx| {
                    let news = std::sync::Mutex::new(tx.clone());
                    let events: Arc<dyn Fn(engine::cast::udp::SendEvent) + Send + Sync> =
                        Arc::new(move |event| {
                            if let Ok(t) = news.lock() {
                                let _ = t.send(Msg::SendEvent { id, event });
                            }
                        });
                    let result = jobs::send(&image, &name, &options, events, &cancel).map(Box::new);
                    let _ = tx.send(Msg::Sent { id, result });
                });
            }
            Effect::ListImages { id, dir } => {
                let top = self.image_root.clone();
                self.spawn("list", move |tx| {
                    let result = jobs::list_images(&top, &dir);
                    let _ = tx.send(Msg::Listed { id, result });
                });
            }
            Effect::UnlockImage { id, path, password } => {
                self.spawn("unlock", move |tx| {
                    let result = jobs::unlock(&path, password);
                    let _ = tx.send(Msg::Unlocked { id, result });
                });
            }
            Effect::VerifyImage { id, image, policy } => {
                jobs::use_policy(policy);
                let cancel = self.cancel_for(id);
                self.spawn("verify", move |tx| {
                    let sink = progress_sink(&tx, id);
                    let threads = std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(2);
                    let result = jobs::verify_image(&image, threads, &sink, &cancel);
                    let _ = tx.send(Msg::Verified { id, result });
                });
            }
            Effect::PlanBackup { id, request: req } => {
                let root = self.root.clone();
                self.spawn("plan-backup", move |tx| {
                    let result = jobs::plan_backup(&root, &req).map(Arc::new).map_err(|e| {
                        log::warn!(
                            "backup of {} to {} refused: {e}",
                            req.source.disk.display(),
                            req.dir.display()
                        );
                        e
                    });
                    let _ = tx.send(Msg::BackupPlanned { id, result });
                });
            }
            Effect::StartBackup { id, job, settings } => {
                let cancel = self.cancel_for(id);
                let root = self.root.clone();
                self.spawn("backup", move |tx| {
                    let sink = progress_sink(&tx, id);
                    let outcome = jobs::execute_backup(&root, &job, &settings, &sink, &cancel);
                    let _ = tx.send(Msg::BackupDone { id, outcome });
                });
            }
            Effect::ListFiles {
                id,
                source,
                dir,
                listing,
            } => {
                self.spawn("files", move |tx| {
                    let (fs, result) = crate::extract::list(&source, &dir, &listing);
                    if let Err(e) = &result {
                        log::warn!("{}: {dir}: {e}", source.title());
                    }
                    let _ = tx.send(Msg::FilesListed { id, fs, result });
                });
            }
            Effect::ListLvs { id, source } => {
                self.spawn("lvs", move |tx| {
                    let result =
                        engine::extract::logical_volumes(&source).map_err(|e| e.to_string());
                    if let Err(e) = &result {
                        log::warn!("{}: {e}", source.title());
                    }
                    let _ = tx.send(Msg::LvsListed { id, result });
                });
            }
            Effect::CheckExtract { id, request } => {
                self.spawn("check-extract", move |tx| {
                    let existing = crate::extract::existing(&request);
                    let _ = tx.send(Msg::ExtractChecked { id, existing });
                });
            }
            Effect::Extract {
                id,
                request,
                policy,
            } => {
                jobs::use_policy(policy);
                let cancel = self.cancel_for(id);
                self.spawn("extract", move |tx| {
                    let sink = progress_sink(&tx, id);
                    let result = crate::extract::extract(&request, &sink, &cancel);
                    let _ = tx.send(Msg::Extracted { id, result });
                });
            }
            Effect::CancelJob { id } => cancel_job(self.cancel.as_ref(), id),
            Effect::Mount { id, node, name, fs } => {
                self.spawn("mount", move |tx| {
                    let r = system::mount(&node, &name, fs, Path::new(MOUNT_BASE))
                        .map(|dir| format!("{} is mounted at {}", node.display(), dir.display()))
                        .map_err(|e| {
                            log::error!("{e}");
                            e.to_string()
                        });
                    let _ = tx.send(Msg::SystemDone { id, result: r });
                });
            }
            Effect::MountImage {
                id,
                image,
                part,
                dir,
            } => {
                self.spawn("mount image", move |tx| {
                    let r = crate::screens::mount_image::run_mount(&image, part, &dir);
                    let _ = tx.send(Msg::SystemDone { id, result: r });
                });
            }
            Effect::OpenStore {
                id,
                location,
                access,
                keep,
                store_retry,
            } => {
                let base = self.image_root.clone();
                let stores = self.stores.clone();
                self.spawn("store", move |tx| {
                    let result = system::open_store(&location, &access, &base).map(
                        |(opened, folder, folder_url)| {
                            if keep {
                                if let Ok(mut s) = stores.lock() {
                                    s.insert(folder.clone(), opened);
                                }
                            } else {
                                // A test: closed again at once.
                                drop(opened);
                            }
                            crate::widgets::network::StoreOpen {
                                folder,
                                url: location.to_string(),
                                folder_url,
                                read_only: location.read_only(),
                                kept: keep,
                                store_retry,
                            }
                        },
                    );
                    let _ = tx.send(Msg::StoreOpened { id, result });
                });
            }
            Effect::LoadLocations { id, files } => {
                self.spawn("locations", move |tx| {
                    let mut saved = Vec::new();
                    let mut errors = Vec::new();
                    for file in files {
                        match store::saved::load(&file) {
                            Ok(s) => saved.extend(s.into_iter().map(|s| (file.clone(), s))),
                            Err(e) => {
                                log::warn!("{e}");
                                errors.push(e.to_string());
                            }
                        }
                    }
                    let _ = tx.send(Msg::LocationsLoaded { id, saved, errors });
                });
            }
            Effect::SaveLocation { id, file, saved } => {
                self.spawn("save location", move |tx| {
                    let result = store::saved::add(&file, saved.clone())
                        .map(|_| (file.clone(), saved))
                        .map_err(|e| {
                            log::error!("{e}");
                            e.to_string()
                        });
                    let _ = tx.send(Msg::LocationSaved { id, result });
                });
            }
            Effect::CloseStore { folder } => {
                let opened = self.stores.lock().ok().and_then(|mut s| s.remove(&folder));
                if let Some(opened) = opened {
                    self.spawn("close store", move |_| {
                        if let Err(e) = opened.close() {
                            log::error!("{e}");
                        }
                    });
                }
            }
            Effect::Unmount { id, mount_point } => {
                self.spawn("unmount", move |tx| {
                    let r = system::unmount(&mount_point)
                        .map(|()| format!("{} is unmounted", mount_point.display()))
                        .map_err(|e| {
                            log::error!("{e}");
                            e.to_string()
                        });
                    let _ = tx.send(Msg::SystemDone { id, result: r });
                });
            }
            Effect::Shell { id } => {
                let shell = std::env::var_os("SHELL")
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("/bin/sh"));
                log::info!("starting {}", shell.display());
                screen.suspend();
                let status = std::process::Command::new(&shell).status();
                screen.resume()?;
                let r = match status {
                    Ok(_) => Ok("back from the shell".to_string()),
                    Err(e) => Err(format!("starting {}: {e}", shell.display())),
                };
                let _ = self.tx.send(Msg::SystemDone { id, result: r });
            }
            Effect::Reboot => {
                log::info!("reboot requested: exiting with {EXIT_REBOOT}");
                return Ok(Flow::Exit(EXIT_REBOOT));
            }
            Effect::PowerOff => {
                log::info!("power off requested: exiting with {EXIT_POWEROFF}");
                return Ok(Flow::Exit(EXIT_POWEROFF));
            }
            Effect::Quit => return Ok(Flow::Exit(EXIT_QUIT)),
        }
        Ok(Flow::Continue)
    }
}

/// Runs the UI until the user quits, reboots or powers off; returns the exit code.
pub fn run_ui(mut model: Model, root: SysRoot, smartctl: Option<PathBuf>) -> Result<u8> {
    install_panic_hook();
    let mut screen = Screen::enter()?;
    let (tx, rx) = mpsc::channel::<Msg>();
    let mut rt = Runtime {
        tx,
        root: root.clone(),
        smartctl,
        cancel: None,
        image_root: model.image_root.clone(),
        stores: Default::default(),
    };
    let mut listing = block_listing(&root);
    let mut last_tick = Instant::now();
    let mut last_watch = Instant::now();
    let mut pending: Vec<Effect> = model.rescan();
    // Draw only when something may have changed: an idle screen sends nothing, which matters on
    // a 115200-baud serial console (every frame costs escape sequences even without changes).
    let mut dirty = true;
    loop {
        for effect in pending.drain(..) {
            if let Flow::Exit(code) = rt.run_effect(effect, &mut screen)? {
                return Ok(code);
            }
        }
        if dirty {
            screen
                .terminal
                .draw(|f| view(&model, f))
                .context("drawing the screen")?;
            dirty = false;
        }
        let mut msgs = Vec::new();
        if event::poll(POLL).context("reading the keyboard")? {
            match event::read().context("reading the keyboard")? {
                Event::Key(k) if k.kind != KeyEventKind::Release => {
                    if let Some(key) = decode(k) {
                        msgs.push(Msg::Key(key));
                    }
                }
                // The next draw lays the screen out for the new size.
                Event::Resize(..) => {
                    let _ = screen.terminal.autoresize();
                    dirty = true;
                }
                _ => {}
            }
        }
        while let Ok(m) = rx.try_recv() {
            msgs.push(m);
        }
        if last_tick.elapsed() >= TICK_EVERY {
            last_tick = Instant::now();
            msgs.push(Msg::Tick);
        }
        if last_watch.elapsed() >= WATCH_EVERY {
            last_watch = Instant::now();
            let net = store::net::summary(&store::net::addresses());
            if model.network.as_deref() != Some(net.as_str()) {
                log::info!("network: {net}");
                msgs.push(Msg::Network(net));
            }
            let now = block_listing(&root);
            if now != listing {
                log::info!("block devices changed: {}", now.join(" "));
                listing = now;
                msgs.push(Msg::BlockListChanged);
            }
        }
        for m in msgs {
            // A tick only changes the spinner.
            if !matches!(m, Msg::Tick) || animated(&model) {
                dirty = true;
            }
            pending.extend(update(&mut model, m));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_decode_and_ctrl_c_acts_as_escape() {
        let k = |code, m| KeyEvent::new(code, m);
        assert_eq!(
            decode(k(KeyCode::Char('j'), KeyModifiers::NONE)),
            Some(Key::Char('j'))
        );
        assert_eq!(
            decode(k(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Key::Esc)
        );
        assert_eq!(decode(k(KeyCode::F(5), KeyModifiers::NONE)), None);
        assert_eq!(
            decode(k(KeyCode::PageDown, KeyModifiers::NONE)),
            Some(Key::PageDown)
        );
    }

    #[test]
    fn a_cancel_reaches_only_the_job_it_names() {
        let mut model = Model::new(false, false, Default::default(), None);
        let (old, new) = (model.request(), model.request());
        let running = (new, Cancel::new());
        cancel_job(Some(&running), old);
        assert!(!running.1.is_cancelled(), "a cancel for an ended job");
        cancel_job(None, new);
        cancel_job(Some(&running), new);
        assert!(running.1.is_cancelled());
    }

    #[test]
    fn progress_reports_carry_the_job_id() {
        let mut model = Model::new(false, false, Default::default(), None);
        let id = model.request();
        let (tx, rx) = mpsc::channel();
        let sink = progress_sink(&tx, id);
        sink(&engine::Progress {
            phase: "copying".into(),
            done: 1,
            total: 2,
            bytes_per_sec: 0.0,
            eta_secs: None,
            elapsed_secs: 0.0,
            bad_bytes: 0,
            finished: false,
        });
        match rx.try_recv() {
            Ok(Msg::Progress { id: got, progress }) => {
                assert_eq!(got, id);
                assert_eq!(progress.done, 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn block_listing_is_sorted_names_and_sizes_of_sys_block() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::under(dir.path());
        std::fs::create_dir_all(root.sys.join("block/sdb")).unwrap();
        std::fs::create_dir_all(root.sys.join("block/sda")).unwrap();
        std::fs::write(root.sys.join("block/sda/size"), "1024\n").unwrap();
        assert_eq!(block_listing(&root), vec!["sda:1024", "sdb:"]);
        // A medium inserted (or a loop device attached) changes the listing.
        std::fs::write(root.sys.join("block/sdb/size"), "2048\n").unwrap();
        assert_eq!(block_listing(&root), vec!["sda:1024", "sdb:2048"]);
    }
}
