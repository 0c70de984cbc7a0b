//! Host tests (as root: they mount FUSE files and bind loop devices).

use super::*;
use disk::{FaultyDisk, MemDisk};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(2654435761).to_le_bytes()[1])
        .collect()
}

fn mounted(file: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let want = file.to_str().expect("utf-8 path");
    table.lines().any(|l| l.split(' ').nth(4) == Some(want))
}

fn served(io: Arc<dyn BlockIo>) -> (tempfile::TempDir, PathBuf, Background) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("dev");
    std::fs::write(&file, b"").expect("mount point");
    let bg = mount(io, &file, "test device")
        .expect("mount (needs root and /dev/fuse)")
        .spawn()
        .expect("spawn");
    (dir, file, bg)
}

#[test]
fn the_served_file_holds_the_devices_bytes_read_only_and_unmounts_on_stop() {
    // An odd length: the last read is short.
    let data = pattern(3 * 1024 * 1024 + 1000);
    let (_dir, file, bg) = served(Arc::new(MemDisk::from_vec(data.clone(), 512)));
    assert!(mounted(&file));
    let meta = std::fs::metadata(&file).expect("stat");
    assert_eq!(meta.len(), data.len() as u64);
    assert_eq!(meta.mode() & 0o7777, 0o400);
    assert!(meta.is_file());
    let mut got = Vec::new();
    std::fs::File::open(&file)
        .expect("open")
        .read_to_end(&mut got)
        .expect("read");
    assert!(got == data, "the served bytes differ");
    let err = std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .expect_err("opening for writing must fail");
    assert_eq!(err.raw_os_error(), Some(nix::libc::EROFS), "{err}");
    bg.stop().expect("stop");
    assert!(!mounted(&file));
}

#[test]
fn a_failing_read_gives_eio_for_that_range_and_the_rest_stays_readable() {
    let data = pattern(2 * 1024 * 1024);
    // Sectors 2048..2056 (1 MiB..1 MiB + 4 KiB) cannot be read.
    let faulty = FaultyDisk::new(MemDisk::from_vec(data.clone(), 512)).with_bad_sectors(2048..2056);
    let (_dir, file, bg) = served(Arc::new(faulty));
    let mut f = std::fs::File::open(&file).expect("open");
    let mut buf = vec![0u8; 4096];
    f.seek(SeekFrom::Start(1024 * 1024)).expect("seek");
    let err = f.read_exact(&mut buf).expect_err("the bad range must fail");
    assert_eq!(err.raw_os_error(), Some(nix::libc::EIO), "{err}");
    f.seek(SeekFrom::Start(0)).expect("seek");
    f.read_exact(&mut buf)
        .expect("the first sectors still read");
    assert_eq!(buf[..], data[..4096]);
    f.seek(SeekFrom::Start(1536 * 1024)).expect("seek");
    f.read_exact(&mut buf).expect("a later range still reads");
    assert_eq!(buf[..], data[1536 * 1024..1536 * 1024 + 4096]);
    drop(f);
    bg.stop().expect("stop");
}

#[test]
fn a_read_only_loop_device_over_the_served_file_reads_the_bytes_and_refuses_writes() {
    let data = pattern(4 * 1024 * 1024);
    let (_dir, file, bg) = served(Arc::new(MemDisk::from_vec(data.clone(), 512)));
    let held = disk::loopdev::attach_read_only(&file, 512).expect("loop device");
    let dev = held.path().to_path_buf();
    assert_eq!(
        disk::loopdev::backing_file(&dev).as_deref(),
        Some(file.as_path())
    );
    let name = dev
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .to_string();
    let ro = std::fs::read_to_string(format!("/sys/block/{name}/ro")).expect("ro flag");
    assert_eq!(ro.trim(), "1", "the loop device must be read-only");
    let mut got = Vec::new();
    std::fs::File::open(&dev)
        .expect("open loop")
        .read_to_end(&mut got)
        .expect("read loop");
    assert!(got == data, "the loop device's bytes differ");
    // The kernel may let the device be opened for writing, but never writes to it.
    let err = std::fs::OpenOptions::new()
        .write(true)
        .open(&dev)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, &[0u8; 4096]).and_then(|()| f.sync_all())
        })
        .expect_err("writing to the loop device must fail");
    assert!(
        matches!(
            err.raw_os_error(),
            Some(nix::libc::EROFS | nix::libc::EPERM | nix::libc::EACCES)
        ),
        "{err}"
    );
    // Held by the loop device, the served file cannot be unmounted.
    let busy = unmount(&file).expect_err("busy");
    assert!(busy.to_string().contains("EBUSY"), "{busy}");
    disk::loopdev::detach(&dev).expect("detach");
    drop(held);
    let mut gone = false;
    for _ in 0..100 {
        if disk::loopdev::backing_file(&dev).is_none() {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gone, "{} still bound", dev.display());
    bg.stop().expect("stop");
    assert!(!mounted(&file));
}

#[test]
fn the_overlay_writes_its_head_through_keeps_tail_writes_and_never_writes_the_base() {
    let base_bytes = pattern(1 << 20);
    let base = MemDisk::from_vec(base_bytes.clone(), 512).read_only();
    let head = MemDisk::new(600 * 1024, 512);
    let ov = Overlay::new(&head, &base, OverlayLimits::default()).expect("overlay");
    assert_eq!(ov.len(), 1 << 20);
    // The tail reads the base; the head reads the target.
    let mut got = vec![0u8; 4096];
    ov.read_at(&mut got, 700 * 1024).expect("read tail");
    assert_eq!(got, base_bytes[700 * 1024..704 * 1024]);
    // A write across the boundary: the head part lands on the target, the tail part in the
    // overlay (a partial block keeps the base's other bytes).
    let data = vec![0xABu8; 8192];
    let at = 600 * 1024 - 3000;
    ov.write_at(&data, at).expect("write");
    let mut back = vec![0u8; 8192];
    ov.read_at(&mut back, at).expect("read back");
    assert_eq!(back, data);
    assert_eq!(head.to_vec()[at as usize..], vec![0xABu8; 3000][..]);
    let mut after = vec![0u8; 100];
    ov.read_at(&mut after, at + 8192).expect("read after");
    assert_eq!(
        after,
        base_bytes[(at + 8192) as usize..(at + 8292) as usize]
    );
    assert_eq!(base.to_vec(), base_bytes, "the base is never written");
    assert_eq!(ov.overlay_bytes(), 2 * 4096);
}

#[test]
fn a_full_overlay_spills_to_a_file_then_fails_cleanly_with_storage_full() {
    let base = MemDisk::from_vec(pattern(1 << 20), 512).read_only();
    let head = MemDisk::new(0, 512);
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = OverlayLimits {
        memory: 2 * 4096,
        spill_dir: Some(dir.path().to_path_buf()),
        spill: 3 * 4096,
    };
    let ov = Overlay::new(&head, &base, limits).expect("overlay");
    for b in 0..5u64 {
        ov.write_at(&[b as u8 + 1; 4096], b * 4096).expect("fits");
    }
    assert_eq!(ov.spilled_bytes(), 3 * 4096);
    let err = ov.write_at(&[9u8; 10], 5 * 4096).expect_err("full");
    assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "{err}");
    for b in 0..5u64 {
        let mut got = vec![0u8; 4096];
        ov.read_at(&mut got, b * 4096).expect("read");
        assert_eq!(got, vec![b as u8 + 1; 4096], "block {b}");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        0,
        "the spill file has no name"
    );
}

#[test]
fn a_borrowed_device_served_read_write_takes_writes_and_is_unmounted_after_the_call() {
    let disk = MemDisk::new(2 << 20, 512);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rw");
    std::fs::write(&file, b"").expect("mount point");
    let seen = serve_scoped(&disk, &file, "rw test", true, |p| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(p)
            .expect("open for writing");
        f.seek(SeekFrom::Start(4096)).expect("seek");
        f.write_all(b"written through FUSE").expect("write");
        f.sync_all().expect("fsync");
        let grow = f.set_len(4 << 20);
        (mounted(p), grow.is_err())
    })
    .expect("serve");
    assert_eq!(
        seen,
        (true, true),
        "mounted during the call; the size cannot change"
    );
    assert!(!mounted(&file));
    assert_eq!(&disk.to_vec()[4096..4116], b"written through FUSE");
}
