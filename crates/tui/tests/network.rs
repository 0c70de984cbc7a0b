//! "Network location" in the image picker (issue 17): the form, Test and Connect as effects,
//! the SFTP host key shown and accepted, the store browsed like a drive and closed on the disk
//! list, HTTP stores refused as a backup destination — `update` without a terminal, the screens
//! at 80×25 — and the worker's `open_store` against a real busybox httpd on loopback serving an
//! image made by the backup engine.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;
use tui::model::{BrowseEntry, Browser};
use tui::widgets::image_picker::{pick_folder, Folder};
use tui::widgets::network::{StoreOpen, StoreRefusal};
use tui::{Effect, Key, Model, Msg, RequestId};

fn root() -> PathBuf {
    PathBuf::from("/run/lifeboat/mnt")
}

/// Verify's picker at the top folder (one drive folder listed), the cursor on "Network
/// location" and the form opened with Enter.
fn form() -> Model {
    let mut m = model();
    keys(&mut m, &[Key::Char('i')]);
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

/// The form with the saved locations read from the drive.
fn form_with(saved: Vec<store::saved::Saved>) -> Model {
    let mut m = form();
    let file = root().join("sdb1").join(store::saved::FILE_NAME);
    answer(&mut m, load_id, |id| Msg::LocationsLoaded {
        id,
        saved: saved.into_iter().map(|s| (file.clone(), s)).collect(),
        errors: Vec::new(),
    });
    m
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
    // Down twice: Test, then Connect.
    let e = keys(&mut m, &[Key::Down, Key::Down, Key::Enter]);
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
            read_only: false,
            kept: true,
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
        &[Key::Down, Key::Down, Key::Down, Key::Down, Key::Enter],
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
        &[Key::Up, Key::Up, Key::Up, Key::Up, Key::Up, Key::Backspace],
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
            read_only: true,
            kept: false,
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
        .push((folder.clone(), true, "http://10.0.2.2/x.lbi".into()));
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
    m.stores.push((smb.clone(), false, "smb://nas/s".into()));
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
        .map(|(_, folder)| {
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
    };
    let smb = store::saved::Saved {
        location: store::Location::parse("smb://OFFICE;anna@nas.local/images").unwrap(),
        host_key: None,
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
    let e = keys(&mut m, &[Key::Down, Key::Down, Key::Enter]);
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
    let (opened, folder) = tui::system::open_store(&loc, &pinned, base.path()).unwrap();
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
    let e = keys(&mut m, &[Key::Down, Key::Down, Key::Enter]);
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
