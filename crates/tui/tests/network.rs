//! "Network location" in the image picker (issue 17): the form, Test and Connect as effects,
//! the SFTP host key shown and accepted, the store browsed like a drive and closed on the disk
//! list, HTTP stores refused as a backup destination — `update` without a terminal, the screens
//! at 80×25 — and the worker's `open_store` against a real busybox httpd on loopback serving an
//! image made by the backup engine.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use qemu_tests::https::{Listen, Nginx, Pki};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;
use tui::model::Screen;
use tui::model::{BrowseEntry, Browser};
use tui::screens::transfer::Step;
use tui::widgets::image_picker::{pick_folder, Folder};
use tui::widgets::network::{
    name_urls, read_policy, Field, NetForm, OpenStore, StoreOpen, StoreRefusal,
};
use tui::{Effect, Key, Model, Msg, RequestId};

fn root() -> PathBuf {
    PathBuf::from("/run/lifeboat/mnt")
}

/// The picker of the job whose key is `job` (`i` verify, `e` restore) at the top folder (one
/// drive folder listed), the cursor on "Network location" and the form opened with Enter.
fn form_of(job: char) -> Model {
    let mut m = model();
    keys(&mut m, &[Key::Char(job)]);
    let e = answer(&mut m, picker_id, |id| Msg::Listed {
        id,
        result: Ok(vec![BrowseEntry::Dir(root().join("sdb1"))]),
    });
    assert!(e.is_empty());
    keys(&mut m, &[Key::End]);
    let shown = render(&m).join("\n");
    assert!(shown.contains("Network location..."), "{shown}");
    assert!(shown.contains("Enter opens a share"), "{shown}");
    let e = keys(&mut m, &[Key::Enter]);
    let file = root().join("sdb1").join(store::saved::FILE_NAME);
    assert!(
        matches!(e.as_slice(), [Effect::LoadLocations { files, .. }] if *files == vec![file.clone()]),
        "{e:?}"
    );
    assert!(m.screen.browser().unwrap().network.is_some());
    m
}

/// Verify's form with the saved locations read from the drive.
fn form_with(saved: Vec<store::saved::Saved>) -> Model {
    form_of_with('i', saved)
}

/// [`form_of`] with the saved locations read from the drive.
fn form_of_with(job: char, saved: Vec<store::saved::Saved>) -> Model {
    let mut m = form_of(job);
    let file = root().join("sdb1").join(store::saved::FILE_NAME);
    answer(&mut m, load_id, |id| Msg::LocationsLoaded {
        id,
        saved: saved.into_iter().map(|s| (file.clone(), s)).collect(),
        errors: Vec::new(),
    });
    m
}

/// An open store on `folder` named `url` (its folder's URL too), waiting the default time.
fn open_store(folder: &std::path::Path, read_only: bool, url: &str) -> OpenStore {
    OpenStore {
        folder: folder.to_path_buf(),
        read_only,
        url: url.into(),
        folder_url: url.into(),
        store_retry: None,
    }
}

fn load_id(m: &Model) -> RequestId {
    m.screen
        .browser()
        .and_then(|b| b.network.as_ref())
        .and_then(|f| f.files_request)
        .expect("locations being read or saved")
}

fn open_id(m: &Model) -> RequestId {
    m.screen
        .browser()
        .and_then(|b| b.network.as_ref())
        .and_then(|f| f.request)
        .expect("a store being opened")
        .0
}

#[test]
fn connect_opens_an_smb_store_with_the_typed_password_browses_it_and_closes_it_on_the_disk_list() {
    let mut m = form_with(Vec::new());
    let shown = render(&m).join("\n");
    assert!(shown.contains("Network location"), "{shown}");
    assert!(shown.contains("[SMB]"), "{shown}");
    keys(&mut m, &[Key::Down]);
    typed(&mut m, "nas.local");
    keys(&mut m, &[Key::Down]);
    typed(&mut m, "backups/pc 1");
    keys(&mut m, &[Key::Down]);
    typed(&mut m, "WG;anna");
    keys(&mut m, &[Key::Down]);
    typed(&mut m, "s3cr3t");
    let shown = render(&m).join("\n");
    assert!(shown.contains("******"), "{shown}");
    assert!(!shown.contains("s3cr3t"), "the password is never drawn");
    assert!(
        shown.contains("URL: smb://WG;anna@nas.local/backups/pc%201"),
        "{shown}"
    );
    // Down three times: the wait, Test, then Connect.
    let e = keys(&mut m, &[Key::Down, Key::Down, Key::Down, Key::Enter]);
    let [Effect::OpenStore {
        location,
        access,
        keep,
        ..
    }] = e.as_slice()
    else {
        panic!("{e:?}")
    };
    assert!(*keep);
    assert_eq!(
        location.to_string(),
        "smb://WG;anna@nas.local/backups/pc%201"
    );
    assert_eq!(location.domain.as_deref(), Some("WG"));
    assert_eq!(access.password.as_ref().unwrap().expose(), "s3cr3t");
    assert!(
        !format!("{e:?}").contains("s3cr3t"),
        "effects never print it"
    );
    assert!(render(&m).join("\n").contains("Connecting"));
    // Keys wait while it connects.
    assert!(keys(&mut m, &[Key::Enter]).is_empty());
    let folder = root().join("smb-1-0/backups/pc 1");
    let e = answer(&mut m, open_id, |id| Msg::StoreOpened {
        id,
        result: Ok(StoreOpen {
            folder: folder.clone(),
            url: "smb://WG;anna@nas.local/backups/pc%201".into(),
            folder_url: "smb://WG;anna@nas.local/backups/pc%201".into(),
            read_only: false,
            kept: true,
            store_retry: None,
        }),
    });
    assert!(
        matches!(e.as_slice(), [Effect::ListImages { dir, .. }] if *dir == folder),
        "{e:?}"
    );
    let b = m.screen.browser().unwrap();
    assert_eq!(b.dir, folder);
    assert!(b.network.is_none());
    assert_eq!(m.stores.len(), 1);
    // The picker names the folder by its URL, not where the share is mounted.
    let shown = render(&m).join("\n");
    assert!(
        shown.contains("smb://WG;anna@nas.local/backups/pc%201"),
        "{shown}"
    );
    assert!(!shown.contains("smb-1-0"), "{shown}");
    // Back on the disk list, the store is closed.
    let e = keys(&mut m, &[Key::Esc]);
    assert!(
        e.iter()
            .any(|e| matches!(e, Effect::CloseStore { folder: f } if *f == folder)),
        "{e:?}"
    );
    assert!(m.stores.is_empty());
}

#[test]
fn sftp_host_key_is_shown_and_used_only_once_accepted() {
    let mut m = form_with(Vec::new());
    keys(&mut m, &[Key::Right, Key::Right]);
    assert!(render(&m).join("\n").contains("[SFTP]"));
    keys(&mut m, &[Key::Down]);
    typed(&mut m, "10.0.2.2:2222");
    keys(&mut m, &[Key::Down]);
    typed(&mut m, "/srv/images");
    let e = keys(
        &mut m,
        &[
            Key::Down,
            Key::Down,
            Key::Down,
            Key::Down,
            Key::Down,
            Key::Enter,
        ],
    );
    let [Effect::OpenStore {
        access, location, ..
    }] = e.as_slice()
    else {
        panic!("{e:?}")
    };
    assert_eq!(location.to_string(), "sftp://10.0.2.2:2222/srv/images");
    assert!(access.host_key.is_none());
    let fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
    let none = answer(&mut m, open_id, |id| Msg::StoreOpened {
        id,
        result: Err(StoreRefusal::HostKey(vec![fp.into()])),
    });
    assert!(none.is_empty());
    let shown = render(&m).join("\n");
    assert!(shown.contains(fp), "{shown}");
    assert!(shown.contains("Enter accepts it, Esc refuses"), "{shown}");
    assert!(
        shown.contains("Enter test/connect"),
        "the form's keys: {shown}"
    );
    // Refused: nothing is sent.
    assert!(keys(&mut m, &[Key::Esc]).is_empty());
    assert!(render(&m).join("\n").contains("not accepted"));
    // Asked again and accepted: the same connect with the key pinned.
    let e = keys(&mut m, &[Key::Enter]);
    assert!(
        matches!(e.as_slice(), [Effect::OpenStore { access, .. }] if access.host_key.is_none())
    );
    answer(&mut m, open_id, |id| Msg::StoreOpened {
        id,
        result: Err(StoreRefusal::HostKey(vec![fp.into()])),
    });
    let e = keys(&mut m, &[Key::Enter]);
    assert!(
        matches!(e.as_slice(), [Effect::OpenStore { access, keep: true, .. }] if access.host_key.as_deref() == Some(fp)),
        "{e:?}"
    );
    // A different host forgets the accepted key.
    answer(&mut m, open_id, |id| Msg::StoreOpened {
        id,
        result: Err(StoreRefusal::Failed(
            "sftp://10.0.2.2:2222/srv/images: permission denied: x".into(),
        )),
    });
    assert!(render(&m).join("\n").contains("permission denied"));
    keys(
        &mut m,
        &[
            Key::Up,
            Key::Up,
            Key::Up,
            Key::Up,
            Key::Up,
            Key::Up,
            Key::Backspace,
        ],
    );
    let f = m.screen.browser().unwrap().network.as_ref().unwrap();
    assert_eq!(f.host, "10.0.2.2:222");
    assert!(f.host_key.is_none());
}

#[test]
fn test_reports_without_keeping_the_store_and_errors_stay_on_the_form() {
    let mut m = form_with(Vec::new());
    keys(&mut m, &[Key::Left]);
    assert!(render(&m).join("\n").contains("[HTTP]"));
    // Test on an empty form: the missing host is said, nothing runs.
    let e = keys(&mut m, &[Key::Down, Key::Down, Key::Down, Key::Enter]);
    assert!(e.is_empty(), "{e:?}");
    assert!(render(&m).join("\n").contains("no host"));
    keys(&mut m, &[Key::Up, Key::Up]);
    typed(&mut m, "127.0.0.1:8080");
    keys(&mut m, &[Key::Down]);
    typed(&mut m, "pcs/x.lbi");
    let e = keys(&mut m, &[Key::Down, Key::Enter]);
    assert!(
        matches!(e.as_slice(), [Effect::OpenStore { keep: false, access, .. }] if access.password.is_none()),
        "{e:?}"
    );
    let e = answer(&mut m, open_id, |id| Msg::StoreOpened {
        id,
        result: Ok(StoreOpen {
            folder: root().join("http-1-0"),
            url: "http://127.0.0.1:8080/pcs/x.lbi".into(),
            folder_url: "http://127.0.0.1:8080/pcs".into(),
            read_only: true,
            kept: false,
            store_retry: None,
        }),
    });
    assert!(e.is_empty());
    assert!(m.stores.is_empty(), "a test keeps nothing open");
    let shown = render(&m).join("\n");
    assert!(shown.contains("answers and opens"), "{shown}");
    // Esc closes the form, the picker is still there.
    keys(&mut m, &[Key::Esc]);
    assert!(m.screen.browser().unwrap().network.is_none());
}

#[test]
fn a_folder_of_an_http_store_is_refused_as_a_backup_destination() {
    let mut m = model();
    let folder = m.image_root.join("http-9-0");
    m.stores
        .push(open_store(&folder, true, "http://10.0.2.2/x.lbi"));
    let b = Browser::listing(folder.clone(), m.request(), Vec::new());
    match pick_folder(&mut m, b, Key::Char('s'), "no") {
        Folder::Stay(b, effects) => {
            assert!(effects.is_empty());
            assert!(b.refused.unwrap().contains("read-only"));
        }
        other => panic!("{other:?}"),
    }
    // A writable store's folder is chosen.
    let smb = m.image_root.join("smb-9-0");
    m.stores.push(open_store(&smb, false, "smb://nas/s"));
    let b = Browser::listing(smb.clone(), m.request(), Vec::new());
    assert!(matches!(pick_folder(&mut m, b, Key::Char('s'), "no"), Folder::Chosen(d) if d == smb));
}

#[test]
fn open_store_serves_an_image_from_a_real_busybox_httpd_and_the_picker_lists_it() {
    let image = gpt_lbi();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut httpd = std::process::Command::new("busybox")
        .args(["httpd", "-f", "-p", &format!("127.0.0.1:{port}"), "-h"])
        .arg(image.parent().unwrap())
        .spawn()
        .expect("busybox (package busybox-static)");
    let t = std::time::Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "httpd did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let base = tempfile::tempdir().unwrap();
    let access = store::Access::default();
    let loc = store::Location::from_parts(
        store::Scheme::Http,
        &format!("127.0.0.1:{port}"),
        "disk.lbi",
        None,
    )
    .unwrap();
    let opened = tui::system::open_store(&loc, &access, base.path());
    let missing = store::Location::from_parts(
        store::Scheme::Http,
        &format!("127.0.0.1:{port}"),
        "nothing.lbi",
        None,
    )
    .unwrap();
    let not_found = tui::system::open_store(&missing, &access, base.path()).map(|_| ());
    let listed = opened
        .as_ref()
        .map(|(_, folder, _)| {
            (
                folder.clone(),
                tui::jobs::list_images(base.path(), folder),
                std::fs::read(folder.join("disk.lbi")).map(|b| b == std::fs::read(image).unwrap()),
            )
        })
        .map_err(Clone::clone);
    drop(opened);
    let _ = httpd.kill();
    let _ = httpd.wait();
    let (folder, entries, same) = listed.unwrap();
    assert!(folder.starts_with(base.path()));
    assert!(same.unwrap(), "the served file reads the same bytes");
    let entries = entries.unwrap();
    assert!(
        entries.iter().any(|e| matches!(e,
            BrowseEntry::Image { path, summary: Ok(s) } if path.ends_with("disk.lbi") && s.whole_disk)),
        "{entries:?}"
    );
    match not_found {
        Err(StoreRefusal::Failed(e)) => assert!(e.contains("not found"), "{e}"),
        other => panic!("{other:?}"),
    }
    // Dropping the store stopped serving and removed its folder.
    assert!(!folder.exists(), "{} is left behind", folder.display());
}

#[test]
fn saved_locations_fill_the_form_and_save_writes_no_password() {
    let fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
    let sftp = store::saved::Saved {
        location: store::Location::parse("sftp://backup@10.0.0.5:2222/srv/images").unwrap(),
        host_key: Some(fp.into()),
        ca_file: None,
        store_retry: None,
    };
    let smb = store::saved::Saved {
        location: store::Location::parse("smb://OFFICE;anna@nas.local/images").unwrap(),
        host_key: None,
        ca_file: None,
        store_retry: None,
    };
    let mut m = form_with(vec![sftp, smb]);
    let shown = render(&m).join("\n");
    assert!(shown.contains("2 saved"), "{shown}");
    // ← on the first row wraps to the last saved location.
    keys(&mut m, &[Key::Left]);
    let f = m.screen.browser().unwrap().network.as_ref().unwrap();
    assert_eq!(
        (f.host.as_str(), f.path.as_str(), f.user.as_str()),
        ("nas.local", "images", "OFFICE;anna")
    );
    keys(&mut m, &[Key::Right]);
    let f = m.screen.browser().unwrap().network.as_ref().unwrap();
    assert_eq!(f.host, "10.0.0.5:2222");
    assert_eq!(f.host_key.as_deref(), Some(fp));
    let shown = render(&m).join("\n");
    assert!(
        shown.contains("< sftp://backup@10.0.0.5:2222/srv/images >  1 of 2"),
        "{shown}"
    );
    assert!(shown.contains("[SFTP]"), "{shown}");
    // The saved key is used without asking again.
    keys(
        &mut m,
        &[Key::Down, Key::Down, Key::Down, Key::Down, Key::Down],
    );
    typed(&mut m, "pw");
    let e = keys(&mut m, &[Key::Down, Key::Down, Key::Down, Key::Enter]);
    assert!(
        matches!(e.as_slice(), [Effect::OpenStore { access, .. }] if access.host_key.as_deref() == Some(fp)),
        "{e:?}"
    );
    answer(&mut m, open_id, |id| Msg::StoreOpened {
        id,
        result: Err(StoreRefusal::Failed(
            "x: wrong user name or password".into(),
        )),
    });
    // Save: the same file, the location and key, no password anywhere.
    let e = keys(&mut m, &[Key::Down, Key::Enter]);
    let [Effect::SaveLocation { file, saved, .. }] = e.as_slice() else {
        panic!("{e:?}")
    };
    assert_eq!(*file, root().join("sdb1").join(store::saved::FILE_NAME));
    assert_eq!(
        saved.location.to_string(),
        "sftp://backup@10.0.0.5:2222/srv/images"
    );
    assert_eq!(saved.host_key.as_deref(), Some(fp));
    assert!(!store::saved::render(std::slice::from_ref(saved)).contains("pw\""));
    let (file, saved) = (file.clone(), saved.clone());
    answer(&mut m, load_id, |id| Msg::LocationSaved {
        id,
        result: Ok((file, saved)),
    });
    let shown = render(&m).join("\n");
    assert!(shown.contains("without the password"), "{shown}");
    assert_eq!(
        m.screen
            .browser()
            .unwrap()
            .network
            .as_ref()
            .unwrap()
            .saved
            .len(),
        2
    );
}

#[test]
fn saving_without_a_mounted_drive_says_so() {
    let mut m = model();
    keys(&mut m, &[Key::Char('i')]);
    answer(&mut m, picker_id, |id| Msg::Listed {
        id,
        result: Ok(Vec::new()),
    });
    keys(&mut m, &[Key::End]);
    let e = keys(&mut m, &[Key::Enter]);
    assert!(
        matches!(e.as_slice(), [Effect::LoadLocations { files, .. }] if files.is_empty()),
        "{e:?}"
    );
    answer(&mut m, load_id, |id| Msg::LocationsLoaded {
        id,
        saved: Vec::new(),
        errors: vec!["/x/lifeboat-locations.toml: location 1: bad".into()],
    });
    assert!(render(&m).join("\n").contains("location 1: bad"));
    keys(&mut m, &[Key::Down]);
    typed(&mut m, "nas");
    keys(&mut m, &[Key::Down]);
    typed(&mut m, "share");
    let e = keys(&mut m, &[Key::End, Key::Enter]);
    assert!(e.is_empty(), "{e:?}");
    assert!(render(&m)
        .join("\n")
        .contains("no drive is mounted to save it on"));
}

#[test]
fn an_https_certificate_no_ca_signed_is_shown_accepted_and_then_used() {
    // The worker's side against a real nginx with a self-signed certificate.
    let dir = tempfile::tempdir().unwrap();
    let pki = qemu_tests::https::Pki::make(&dir.path().join("pki")).unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("disk.lbi"), b"not an image, but served").unwrap();
    let nginx = qemu_tests::https::Nginx::start(
        &www,
        &[qemu_tests::https::Listen::Tls {
            cert: pki.self_signed.clone(),
            tls12_only: false,
        }],
        &dir.path().join("nginx"),
    )
    .unwrap();
    let loc =
        store::Location::parse(&format!("https://127.0.0.1:{}/disk.lbi", nginx.ports[0])).unwrap();
    let base = tempfile::tempdir().unwrap();
    let fp = format!(
        "SHA256:{}",
        qemu_tests::https::Pki::fingerprint(&pki.self_signed.0).unwrap()
    );
    let refused = tui::system::open_store(&loc, &store::Access::default(), base.path());
    match &refused {
        Err(StoreRefusal::HostKey(fps)) => assert_eq!(*fps, vec![fp.clone()]),
        other => panic!("{other:?}"),
    }
    let pinned = store::Access {
        host_key: Some(fp.clone()),
        ..store::Access::default()
    };
    let (opened, folder, _) = tui::system::open_store(&loc, &pinned, base.path()).unwrap();
    assert_eq!(
        std::fs::read(folder.join("disk.lbi")).unwrap(),
        b"not an image, but served"
    );
    drop(opened);

    // The form: HTTPS is a kind; the fingerprint is shown with how to compare it, and the
    // connect after Enter carries it.
    let mut m = form_with(Vec::new());
    keys(&mut m, &[Key::Left, Key::Left]);
    assert!(render(&m).join("\n").contains("[HTTPS]"));
    keys(&mut m, &[Key::Down]);
    typed(&mut m, &format!("127.0.0.1:{}", nginx.ports[0]));
    keys(&mut m, &[Key::Down]);
    typed(&mut m, "disk.lbi");
    let e = keys(&mut m, &[Key::Down, Key::Down, Key::Down, Key::Enter]);
    let [Effect::OpenStore {
        location, access, ..
    }] = e.as_slice()
    else {
        panic!("{e:?}")
    };
    assert_eq!(*location, loc);
    assert!(access.host_key.is_none());
    answer(&mut m, open_id, |id| Msg::StoreOpened {
        id,
        result: refused.map(|_| unreachable!()),
    });
    let shown = render(&m).join("\n");
    assert!(shown.contains("signed by no trusted CA"), "{shown}");
    assert!(
        shown.contains("openssl x509 -noout -fingerprint"),
        "{shown}"
    );
    assert!(shown.contains(&fp[..40]), "{shown}");
    let e = keys(&mut m, &[Key::Enter]);
    assert!(
        matches!(e.as_slice(), [Effect::OpenStore { access, keep: true, .. }] if access.host_key.as_deref() == Some(fp.as_str())),
        "{e:?}"
    );
}

/// What `m` draws on a wide terminal: long messages stay on one row.
fn wide(m: &Model) -> String {
    screen(m, 220, 50).join("\n")
}

fn net_form(m: &Model) -> &NetForm {
    m.screen.browser().unwrap().network.as_deref().unwrap()
}

/// A refusal that must be said in one line: its text.
fn one_line(r: Result<(store::Opened, PathBuf, String), StoreRefusal>) -> String {
    match r {
        Err(StoreRefusal::Failed(e)) => {
            assert!(!e.contains('\n'), "one line: {e}");
            e
        }
        Err(other) => panic!("{other:?}"),
        Ok((_, folder, _)) => panic!("opened at {}", folder.display()),
    }
}

#[test]
fn an_https_ca_file_is_typed_used_by_test_saved_and_its_failures_are_one_line() {
    // The worker's side against a real nginx whose certificate the test CA signed.
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::make(&dir.path().join("pki")).unwrap();
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("disk.lbi"), b"served by the lab server").unwrap();
    let nginx = Nginx::start(
        &www,
        &[Listen::Tls {
            cert: pki.server.clone(),
            tls12_only: false,
        }],
        &dir.path().join("nginx"),
    )
    .unwrap();
    let host = format!("127.0.0.1:{}", nginx.ports[0]);
    let loc = store::Location::parse(&format!("https://{host}/disk.lbi")).unwrap();
    let base = tempfile::tempdir().unwrap();
    let with_ca = |ca: &Path| store::Access {
        ca_file: Some(ca.to_path_buf()),
        ..store::Access::default()
    };
    // Without the CA the certificate is offered for comparison; with it, trusted at once.
    assert!(matches!(
        tui::system::open_store(&loc, &store::Access::default(), base.path()),
        Err(StoreRefusal::HostKey(_))
    ));
    let (opened, folder, folder_url) =
        tui::system::open_store(&loc, &with_ca(&pki.ca), base.path()).unwrap();
    assert_eq!(
        std::fs::read(folder.join("disk.lbi")).unwrap(),
        b"served by the lab server"
    );
    assert_eq!(folder_url, format!("https://{host}/"));
    drop(opened);
    // A missing file and a file that is no PEM certificate: one line naming the file, said
    // before any server is asked (here: a port nothing listens on).
    let nobody = store::Location::parse("https://127.0.0.1:1/disk.lbi").unwrap();
    let missing = dir.path().join("nope.pem");
    let e = one_line(tui::system::open_store(
        &nobody,
        &with_ca(&missing),
        base.path(),
    ));
    assert!(
        e.starts_with("https://127.0.0.1:1/disk.lbi: reading the CA file ")
            && e.contains("nope.pem")
            && e.contains("No such file"),
        "{e}"
    );
    let not_pem = dir.path().join("key.pem");
    std::fs::copy(&pki.server.1, &not_pem).unwrap();
    let e = one_line(tui::system::open_store(
        &nobody,
        &with_ca(&not_pem),
        base.path(),
    ));
    assert!(
        e.contains("key.pem") && e.contains("no certificate in it (expected PEM"),
        "{e}"
    );
    // A CA that did not sign it: still an unknown issuer, the fingerprint offered instead.
    let fp = format!("SHA256:{}", Pki::fingerprint(&pki.server.0).unwrap());
    let wrong_ca = tui::system::open_store(&loc, &with_ca(&pki.self_signed.0), base.path());
    match &wrong_ca {
        Err(StoreRefusal::HostKey(fps)) => assert_eq!(*fps, vec![fp.clone()]),
        other => panic!("{other:?}"),
    }

    // The form: only HTTPS has the CA file row.
    let mut m = form_with(Vec::new());
    assert!(!wide(&m).contains("CA file"), "{}", wide(&m));
    keys(&mut m, &[Key::Left, Key::Left]);
    let shown = wide(&m);
    assert!(shown.contains("[HTTPS]"), "{shown}");
    assert!(
        shown.contains("CA file      (empty: public CAs only; a PEM file on a drive"),
        "{shown}"
    );
    assert!(
        !shown.contains("Wait"),
        "HTTP(S) retries on its own: {shown}"
    );
    keys(&mut m, &[Key::Down]);
    typed(&mut m, &host);
    keys(&mut m, &[Key::Down]);
    typed(&mut m, "disk.lbi");
    keys(&mut m, &[Key::Down]);
    assert_eq!(net_form(&m).field(), Field::CaFile);
    typed(&mut m, "sdb1/certs/ca.pem");
    assert!(wide(&m).contains("CA file      sdb1/certs/ca.pem"));
    // Test uses it (relative to the picker's top folder, where the drives are).
    let ca = root().join("sdb1/certs/ca.pem");
    let e = keys(&mut m, &[Key::Down, Key::Enter]);
    let [Effect::OpenStore {
        access,
        keep: false,
        location,
        ..
    }] = e.as_slice()
    else {
        panic!("{e:?}")
    };
    assert_eq!(*location, loc);
    assert_eq!(access.ca_file.as_deref(), Some(ca.as_path()));
    answer(&mut m, open_id, |id| Msg::StoreOpened {
        id,
        result: wrong_ca.map(|_| unreachable!()),
    });
    let shown = wide(&m);
    assert!(
        shown.contains(&format!(
            "The server {host}'s certificate is signed neither by the CA file sdb1/certs/ca.pem \
             nor by a public CA. Its fingerprint:"
        )),
        "{shown}"
    );
    assert!(shown.contains(&fp), "{shown}");
    assert!(shown.contains("Check the CA file, or compare"), "{shown}");
    // Refused; tested again, the file is gone: its one line is on the form.
    keys(&mut m, &[Key::Esc]);
    let e = keys(&mut m, &[Key::Enter]);
    assert!(matches!(e.as_slice(), [Effect::OpenStore { .. }]), "{e:?}");
    let gone = format!(
        "https://{host}/disk.lbi: reading the CA file {}: No such file or directory (os error 2)",
        ca.display()
    );
    answer(&mut m, open_id, |id| Msg::StoreOpened {
        id,
        result: Err(StoreRefusal::Failed(gone.clone())),
    });
    assert!(wide(&m).contains(&format!(" {gone}")), "{}", wide(&m));
    // Saved with the location (no password, HTTPS has none anyway).
    let e = keys(&mut m, &[Key::End, Key::Enter]);
    let [Effect::SaveLocation { saved, .. }] = e.as_slice() else {
        panic!("{e:?}")
    };
    assert_eq!(saved.location, loc);
    assert_eq!(saved.ca_file.as_deref(), Some(ca.as_path()));
    // Read back from the drive, the form shows it as typed.
    let mut m = form_with(vec![saved.clone()]);
    keys(&mut m, &[Key::Right]);
    assert_eq!(net_form(&m).ca_file, "sdb1/certs/ca.pem");
    assert_eq!(net_form(&m).ca_path(), Some(ca));
}

#[test]
fn the_wait_for_a_vanished_server_is_set_per_location_saved_and_given_to_the_jobs_reading_it() {
    let mut m = form_of_with('e', Vec::new());
    keys(&mut m, &[Key::Down]);
    typed(&mut m, "nas");
    keys(&mut m, &[Key::Down]);
    typed(&mut m, "imgs/pcs");
    keys(&mut m, &[Key::Down, Key::Down, Key::Down]);
    assert_eq!(net_form(&m).field(), Field::Retry);
    assert!(
        wide(&m).contains("Wait         45 s (default) if the server vanishes during a restore"),
        "{}",
        wide(&m)
    );
    // Digits only; 0 is refused with the range.
    typed(&mut m, "x0");
    assert_eq!(net_form(&m).retry, "0");
    let e = keys(&mut m, &[Key::Down, Key::Enter]);
    assert!(e.is_empty(), "{e:?}");
    assert!(
        wide(&m).contains("wait for the server: 1 to 3600 seconds (empty: 45 s)"),
        "{}",
        wide(&m)
    );
    keys(&mut m, &[Key::Up, Key::Backspace]);
    typed(&mut m, "120");
    assert!(wide(&m).contains("Wait         120 s if the server vanishes during a restore"));
    let two_minutes = Some(Duration::from_secs(120));
    // Saved with the location.
    let e = keys(&mut m, &[Key::End, Key::Enter]);
    let [Effect::SaveLocation { file, saved, .. }] = e.as_slice() else {
        panic!("{e:?}")
    };
    assert_eq!(saved.store_retry, two_minutes);
    let (file, saved) = (file.clone(), saved.clone());
    answer(&mut m, load_id, |id| Msg::LocationSaved {
        id,
        result: Ok((file, saved.clone())),
    });
    // The cursor is still on Save, the saved location shown above; Connect carries the wait,
    // and the open store keeps it.
    assert_eq!(net_form(&m).field(), Field::Save);
    assert!(
        wide(&m).contains("< smb://nas/imgs/pcs >  1 of 1"),
        "{}",
        wide(&m)
    );
    let e = keys(&mut m, &[Key::Up, Key::Enter]);
    let [Effect::OpenStore {
        store_retry,
        keep: true,
        ..
    }] = e.as_slice()
    else {
        panic!("{e:?}")
    };
    assert_eq!(*store_retry, two_minutes);
    let share = tempfile::tempdir().unwrap();
    let folder = share.path().join("smb-7-0/pcs");
    std::fs::create_dir_all(&folder).unwrap();
    let image = folder.join("disk.lbi");
    std::fs::copy(gpt_lbi(), &image).unwrap();
    answer(&mut m, open_id, |id| Msg::StoreOpened {
        id,
        result: Ok(StoreOpen {
            folder: folder.clone(),
            url: "smb://nas/imgs/pcs".into(),
            folder_url: "smb://nas/imgs/pcs".into(),
            read_only: false,
            kept: true,
            store_retry: two_minutes,
        }),
    });
    assert_eq!(m.stores[0].store_retry, two_minutes);
    assert_eq!(read_policy(&m, &image).retry_for, Duration::from_secs(120));
    assert_eq!(
        read_policy(&m, &root().join("sdb1/disk.lbi")),
        disk::netfs::Policy::default(),
        "a drive's image: the default"
    );

    // The restore of an image there starts with that wait.
    let summary = tui::jobs::summarize(&image).unwrap();
    answer(&mut m, picker_id, |id| Msg::Listed {
        id,
        result: Ok(vec![
            BrowseEntry::Up,
            BrowseEntry::Image {
                path: image.clone(),
                summary: Ok(summary),
            },
        ]),
    });
    keys(&mut m, &[Key::Down, Key::Enter, Key::Enter]);
    let Screen::Wizard(w) = &m.screen else {
        panic!("{:?}", m.screen)
    };
    let list = tui::screens::transfer::targets(&m, w.action, w.source.as_ref().unwrap());
    let sdb = list
        .iter()
        .position(|c| c.endpoint.path == Path::new("/dev/sdb"))
        .unwrap();
    keys(&mut m, &[Key::Home]);
    for _ in 0..sdb {
        keys(&mut m, &[Key::Down]);
    }
    let e = keys(&mut m, &[Key::Enter, Key::Enter]);
    let [Effect::Plan { request, .. }] = e.as_slice() else {
        panic!("{e:?}")
    };
    assert_eq!(request.source.path, image);
    let plan = planned_with(request, &image);
    answer(&mut m, plan_id, |id| Msg::Planned {
        id,
        result: Ok(plan),
    });
    keys(&mut m, &[Key::Enter]);
    typed(&mut m, "yes");
    let e = keys(&mut m, &[Key::Enter]);
    let [Effect::Start { policy, .. }] = e.as_slice() else {
        panic!("{e:?}")
    };
    assert_eq!(policy.retry_for, Duration::from_secs(120));
    // The runtime makes it the policy of the job's network reads.
    tui::jobs::use_policy(*policy);
    assert_eq!(disk::netfs::policy().retry_for, Duration::from_secs(120));
    tui::jobs::use_policy(disk::netfs::Policy::default());

    // Verifying an image there waits as long.
    let (screen, e) = tui::screens::verify::VerifyScreen::running(&mut m, image.clone());
    m.screen = screen;
    assert!(
        matches!(e.as_slice(), [Effect::VerifyImage { policy, .. }] if policy.retry_for == Duration::from_secs(120)),
        "{e:?}"
    );
    assert!(
        wide(&m).contains("Verifying smb://nas/imgs/pcs/disk.lbi"),
        "{}",
        wide(&m)
    );
}

#[test]
fn a_restore_from_a_network_store_names_it_by_url_from_the_plan_to_the_result() {
    let share = tempfile::tempdir().unwrap();
    let folder = share.path().join("smb-7-0/pcs");
    std::fs::create_dir_all(&folder).unwrap();
    let image = folder.join("disk.lbi");
    std::fs::copy(gpt_lbi(), &image).unwrap();
    let local = folder.to_string_lossy().into_owned();
    let url = "smb://anna@nas/imgs/pcs/disk.lbi";
    let mut m = model();
    m.stores.push(OpenStore {
        folder: folder.clone(),
        read_only: false,
        url: "smb://anna@nas/imgs/pcs".into(),
        folder_url: "smb://anna@nas/imgs/pcs".into(),
        store_retry: None,
    });
    let summary = tui::jobs::summarize(&image).unwrap();
    m.screen = Screen::Restore(Box::new(tui::screens::restore::RestoreScreen::PickWhat {
        image: tui::model::ChosenImage {
            path: image.clone(),
            summary,
        },
        cursor: 0,
    }));
    keys(&mut m, &[Key::Enter]);
    let Screen::Wizard(w) = &m.screen else {
        panic!("{:?}", m.screen)
    };
    let list = tui::screens::transfer::targets(&m, w.action, w.source.as_ref().unwrap());
    let sdb = list
        .iter()
        .position(|c| c.endpoint.path == Path::new("/dev/sdb"))
        .unwrap();
    keys(&mut m, &[Key::Home]);
    for _ in 0..sdb {
        keys(&mut m, &[Key::Down]);
    }
    let e = keys(&mut m, &[Key::Enter, Key::Enter]);
    let [Effect::Plan { request, .. }] = e.as_slice() else {
        panic!("{e:?}")
    };
    let request = request.as_ref().clone();
    // A refusal naming the image.
    answer(&mut m, plan_id, |id| Msg::Planned {
        id,
        result: Err(format!(
            "{local}/disk.lbi: the image is read from this drive"
        )),
    });
    let shown = wide(&m);
    assert!(
        shown.contains(&format!("{url}: the image is read from this drive")),
        "{shown}"
    );
    assert!(!shown.contains(&local), "{shown}");
    keys(&mut m, &[Key::Enter, Key::Enter, Key::Enter]);
    // The engine's own plan.
    answer(&mut m, plan_id, |id| Msg::Planned {
        id,
        result: Ok(planned_with(&request, &image)),
    });
    assert!(matches!(&m.screen, Screen::Wizard(w) if matches!(w.step, Step::Plan { .. })));
    let shown = wide(&m);
    assert!(shown.contains(&format!("restore {url} to ")), "{shown}");
    assert!(!shown.contains(&local), "{shown}");
    keys(&mut m, &[Key::Enter]);
    let shown = wide(&m);
    assert!(
        shown.contains("It will be restored from image disk.lbi"),
        "{shown}"
    );
    assert!(!shown.contains(&local), "{shown}");
    typed(&mut m, "yes");
    keys(&mut m, &[Key::Enter]);
    // Running: the head and the engine's phase.
    answer(&mut m, job_id, |id| Msg::Progress {
        id,
        progress: engine::Progress {
            phase: format!("reading {local}/disk.lbi"),
            done: MIB,
            total: 8 * MIB,
            bytes_per_sec: 1e6,
            eta_secs: Some(7),
            elapsed_secs: 1.0,
            bad_bytes: 0,
            finished: false,
        },
    });
    let shown = wide(&m);
    assert!(shown.contains(&format!("{url} -> /dev/sdb")), "{shown}");
    assert!(shown.contains(&format!("reading {url}")), "{shown}");
    assert!(!shown.contains(&local), "{shown}");
    // The result: the engine's report and error, and the status line.
    let why = format!(
        "reading {local}/disk.lbi.002: Input/output error (os error 5); retried for 45 s, the server did not come back"
    );
    answer(&mut m, job_id, |id| Msg::JobDone {
        id,
        outcome: outcome(engine::job::Status::Failed, Some(&why)),
    });
    m.status = Some(format!("{local}/disk.lbi.002 could not be read"));
    let shown = wide(&m);
    assert!(shown.contains("Restore disk failed."), "{shown}");
    assert!(
        shown.contains(&format!("error: reading {url}.002: Input/output error")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("{url}.002 could not be read")),
        "{shown}"
    );
    assert!(!shown.contains(&local), "{shown}");
    assert!(!shown.contains("smb-7-0"), "{shown}");
}

#[test]
fn store_folders_are_named_by_url_only_where_their_name_ends() {
    let store = |folder: &str, url: &str| OpenStore {
        folder: PathBuf::from(folder),
        read_only: false,
        url: url.into(),
        folder_url: url.into(),
        store_retry: None,
    };
    let stores = vec![
        store("/run/lifeboat/mnt/smb-1-1", "smb://nas/a"),
        store("/run/lifeboat/mnt/http-1-2", "https://web/imgs/"),
    ];
    assert_eq!(
        name_urls(
            &stores,
            "/run/lifeboat/mnt/smb-1-1/x.lbi, /run/lifeboat/mnt/smb-1-10/y.lbi and /run/lifeboat/mnt/smb-1-1."
        ),
        "smb://nas/a/x.lbi, /run/lifeboat/mnt/smb-1-10/y.lbi and smb://nas/a."
    );
    assert_eq!(
        name_urls(
            &stores,
            "reading /run/lifeboat/mnt/http-1-2/x.lbi.002: gone"
        ),
        "reading https://web/imgs/x.lbi.002: gone"
    );
    assert_eq!(
        name_urls(&stores, "/run/lifeboat/mnt/smb-1-1.old/x"),
        "/run/lifeboat/mnt/smb-1-1.old/x"
    );
    assert_eq!(name_urls(&[], "/dev/sda"), "/dev/sda");
}
