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

/// A read-only base that counts its reads.
struct CountingBase {
    inner: disk::MemDisk,
    reads: std::sync::atomic::AtomicU64,
}

impl BlockIo for CountingBase {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn logical_sector_size(&self) -> u32 {
        512
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, _buf: &[u8], _offset: u64) -> std::io::Result<()> {
        panic!("the base of an overlay was written")
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn describe(&self) -> String {
        "counting base".into()
    }
}

#[test]
fn the_overlay_reads_untouched_runs_in_one_base_read_and_whole_block_writes_read_nothing() {
    let bytes = pattern(4 << 20);
    let base = CountingBase {
        inner: MemDisk::from_vec(bytes.clone(), 512),
        reads: Default::default(),
    };
    let head = MemDisk::new(1 << 20, 512);
    let ov = Overlay::new(&head, &base, OverlayLimits::default()).expect("overlay");
    // Whole blocks written (a 1 MiB write as the kernel sends them): no base read.
    ov.write_at(&vec![7u8; 1 << 20], 2 << 20).expect("write");
    assert_eq!(base.reads.load(Ordering::Relaxed), 0);
    // A partial block needs its base copy once.
    ov.write_at(&[9u8; 100], (3 << 20) + 10)
        .expect("partial write");
    assert_eq!(base.reads.load(Ordering::Relaxed), 1);
    // 1 MiB of untouched tail: one base read.
    let mut got = vec![0u8; 1 << 20];
    ov.read_at(&mut got, 1 << 20).expect("read");
    assert_eq!(got, bytes[1 << 20..2 << 20]);
    assert_eq!(base.reads.load(Ordering::Relaxed), 2);
    // Across written and untouched ranges: the written bytes, then the base's in one read.
    let mut got = vec![0u8; 1 << 20];
    ov.read_at(&mut got, (3 << 20) - 4096).expect("read across");
    assert_eq!(got[..4096], vec![7u8; 4096][..]);
    assert_eq!(got[4096..4106], bytes[(3 << 20)..(3 << 20) + 10]);
    assert_eq!(got[4106..4206], vec![9u8; 100][..]);
    assert_eq!(got[8192..], bytes[(3 << 20) + 4096..(4 << 20) - 4096]);
    assert_eq!(base.reads.load(Ordering::Relaxed), 3);
}

#[test]
fn the_overlay_reads_back_what_random_writes_left_in_memory_and_spill_file() {
    // A model: the base's bytes with every write applied. Odd sizes and offsets, a device
    // length that ends inside a block, memory for 8 blocks then a spill file.
    let len = (3 << 20) + 1234;
    let bytes = pattern(len);
    let base = MemDisk::from_vec(bytes.clone(), 512).read_only();
    let head = MemDisk::new(300_000, 512);
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = OverlayLimits {
        memory: 8 * 4096,
        spill_dir: Some(dir.path().to_path_buf()),
        spill: 64 << 20,
    };
    let ov = Overlay::new(&head, &base, limits).expect("overlay");
    // The head is the (blank) target, the rest the base.
    let mut model = bytes.clone();
    model[..300_000].fill(0);
    let mut x: u64 = 88172645463325252;
    let mut next = |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    for round in 0..400u32 {
        let at = next(len as u64) as usize;
        let n = (next(70_000) as usize + 1).min(len - at);
        if next(2) == 0 {
            let data: Vec<u8> = (0..n).map(|i| (i as u32 ^ round) as u8).collect();
            ov.write_at(&data, at as u64).expect("write");
            model[at..at + n].copy_from_slice(&data);
        } else {
            let mut got = vec![0u8; n];
            ov.read_at(&mut got, at as u64).expect("read");
            assert!(got == model[at..at + n], "round {round}: {n} bytes at {at}");
        }
    }
    let mut all = vec![0u8; len];
    ov.read_at(&mut all, 0).expect("read all");
    assert!(all == model, "the whole device");
    assert!(ov.spilled_bytes() > 0, "the test reached the spill file");
    assert_eq!(base.to_vec(), bytes, "the base is never written");
}

#[test]
fn small_writes_through_the_served_file_reach_the_device_as_large_requests() {
    let disk = Arc::new(MemDisk::new(8 << 20, 512));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rw");
    std::fs::write(&file, b"").expect("mount point");
    let bg = mount_writable(disk.clone(), &file, "coalescing test")
        .expect("mount")
        .spawn()
        .expect("spawn");
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&file)
            .expect("open");
        // 4 MiB in 1024 writes of 4 KiB, as ntfsresize writes clusters: 1 MiB requests.
        for i in 0..1024u64 {
            f.write_all_at(&[(i % 251) as u8 + 1; 4096], (1 << 20) + i * 4096)
                .expect("write");
        }
        f.sync_all().expect("fsync");
        // 4 MiB read in 4 KiB pieces.
        let mut buf = [0u8; 4096];
        for i in 0..1024u64 {
            f.read_exact_at(&mut buf, (4 << 20) + i * 4096)
                .expect("read");
        }
    }
    let dev = mount_device_number(&file).expect("the served file in the mount table");
    let ra = std::fs::read_to_string(format!("/sys/class/bdi/{dev}/read_ahead_kb"))
        .expect("read_ahead_kb");
    assert_eq!(ra.trim(), READ_AHEAD_KB.to_string(), "read-ahead raised");
    let (writes, write_bytes) = bg.counters().writes();
    let (reads, _) = bg.counters().reads();
    bg.stop().expect("stop");
    assert_eq!(write_bytes, 4 << 20, "every byte written once");
    assert!(
        writes <= 16,
        "{writes} write requests for 1024 writes of 4 KiB"
    );
    assert!(reads <= 32, "{reads} read requests for 1024 reads of 4 KiB");
    let got = disk.to_vec();
    for i in 0..1024usize {
        let at = (1 << 20) + i * 4096;
        assert_eq!(got[at], (i % 251) as u8 + 1, "write {i}");
        assert_eq!(got[at + 4095], (i % 251) as u8 + 1, "write {i}");
    }
}

#[test]
fn a_write_the_device_refuses_fails_the_serving_even_when_the_kernel_sent_it_late() {
    // An overlay that holds two blocks: the third block written fails on the device, which the
    // writer may only see at fsync (write-back cache); the serving reports it.
    let base = MemDisk::from_vec(pattern(1 << 20), 512).read_only();
    let head = MemDisk::new(0, 512);
    let limits = OverlayLimits {
        memory: 2 * 4096,
        spill_dir: None,
        spill: 0,
    };
    let ov = Overlay::new(&head, &base, limits).expect("overlay");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rw");
    std::fs::write(&file, b"").expect("mount point");
    let out = serve_scoped(&ov, &file, "full overlay", true, |p| {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(p)
            .expect("open");
        let _ = f.write_all_at(&[1u8; 3 * 4096], 0);
        f.sync_all().is_err()
    });
    match out {
        Err(VdevError::WritesFailed { count, first, .. }) => {
            assert!(count >= 1);
            assert!(first.contains("full"), "{first}");
        }
        other => panic!("expected WritesFailed, got {other:?}"),
    }
    assert!(!mounted(&file));
}

#[test]
fn stopping_ends_the_server_even_when_another_mount_namespace_holds_a_copy_of_the_mount() {
    let disk = Arc::new(MemDisk::new(1 << 20, 512));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rw");
    std::fs::write(&file, b"").expect("mount point");
    let bg = mount_writable(disk.clone(), &file, "namespace test")
        .expect("mount")
        .spawn()
        .expect("spawn");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .and_then(|f| {
            use std::os::unix::fs::FileExt;
            f.write_all_at(b"kept", 4096)
        })
        .expect("write");
    // A process in a new mount namespace (as a sandboxed service makes one) copies the mount.
    let mut holder = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sleep", "60"])
        .spawn()
        .expect("unshare (util-linux)");
    std::thread::sleep(Duration::from_millis(500));
    let started = std::time::Instant::now();
    let stopped = bg.stop();
    let took = started.elapsed();
    let _ = holder.kill();
    let _ = holder.wait();
    stopped.expect("stop");
    assert!(took < Duration::from_secs(15), "stopping took {took:?}");
    assert!(!mounted(&file));
    assert_eq!(&disk.to_vec()[4096..4100], b"kept");
}
