//! HTTPS image stores and network failures in QEMU (issue #17), against nginx on the host's
//! loopback with certificates made by openssl at test time (`qemu_tests::https`), reached from
//! the guest as 10.0.2.2 through QEMU's user-mode network. One VM runs every scenario in turn:
//!
//! - the kernel command line `lifeboat.job=https://10.0.2.2:PORT/job.toml` with
//!   `lifeboat.job_cert=SHA256:…` (the server's certificate is self-signed, pinned): the job
//!   restores the image beside it onto the blank disk, hash-equal;
//! - `lifeboat restore https://…` with `--ca-file` (the test CA on a FAT drive), hash-equal;
//!   without it the certificate is refused with its fingerprint;
//! - an unknown host name (https:// and nfs://) says "cannot resolve" within seconds;
//! - the link set down with the QEMU monitor (`set_link`) before a command: "the link is down",
//!   at once; and during a restore: warnings within seconds, then the restore stops and
//!   declares the target incomplete.
//!
//! Needs the Debian packages nginx, openssl, dosfstools and mtools (`cargo xtask deps`).

use anyhow::{Context, Result};
use qemu_tests::e2e::{
    dev_by_serial, host_lifeboat_run, lifeboat_shell_with, sh, sh_status, JOB, QUICK,
};
use qemu_tests::fixture::{noise, path, run, scratch, sha256, sparse_file, write_into};
use qemu_tests::https::{Listen, Nginx, Pki};
use qemu_tests::vm::{Disk, Image, Interface, Vm, VmBuilder};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DISK_MIB: u64 = 48;

/// A GPT disk with one ext4 partition of incompressible files (so the image is large enough
/// for a restore to take a while).
fn source_disk(dir: &Path) -> Result<PathBuf> {
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree)?;
    for i in 0..7u64 {
        std::fs::write(tree.join(format!("noise{i}.bin")), noise(i + 1, 4 << 20))?;
    }
    std::fs::write(tree.join("letter.txt"), b"dear tls\n")?;
    let disk = dir.join("source.img");
    sparse_file(&disk, DISK_MIB << 20)?;
    run("sgdisk", &["-n1:1M:0", "-c1:data", path(&disk)?])?;
    let part = dir.join("part.img");
    run(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-L",
            "DATA",
            "-d",
            path(&tree)?,
            path(&part)?,
            &format!("{}M", DISK_MIB - 2),
        ],
    )?;
    write_into(&disk, 1 << 20, &part)?;
    std::fs::remove_file(&part)?;
    Ok(disk)
}

/// A FAT drive with the test CA's certificate.
fn config_drive(dir: &Path, ca: &Path) -> Result<PathBuf> {
    let img = dir.join("cfg.img");
    let _ = std::fs::remove_file(&img);
    run("mkfs.vfat", &["-C", "-n", "TLSCFG", path(&img)?, "2048"])?;
    run("mcopy", &["-i", path(&img)?, path(ca)?, "::/ca.pem"])?;
    Ok(img)
}

/// Runs `cmd` in the guest with its output in a log; returns the exit code and the output.
fn guest(vm: &mut Vm, cmd: &str) -> Result<(i32, String)> {
    let (code, _) = sh_status(vm, &format!("{cmd} </dev/null >/tmp/out.log 2>&1"), JOB)?;
    let text = sh(vm, "cat /tmp/out.log", QUICK)?;
    Ok((code, text))
}

#[test]
fn https_stores_restore_with_trust_and_network_failures_are_loud() -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let dir = scratch("network-tls")?;
    let disk = source_disk(&dir)?;
    let want = sha256(&disk)?;
    let www = dir.join("www");
    std::fs::create_dir_all(&www)?;
    let (code, out) = host_lifeboat_run(&["backup", path(&disk)?, path(&www.join("pc.lbi"))?])?;
    anyhow::ensure!(code == 0, "host backup: {out}");
    let image_len = std::fs::metadata(www.join("pc.lbi"))?.len();
    std::fs::write(
        www.join("job.toml"),
        "[[step]]\naction = \"restore\"\nimage = \"pc.lbi\"\ntarget = \"serial:TGT1\"\n",
    )?;
    let pki = Pki::make(&dir.join("pki"))?;
    let mut nginx = Nginx::start(
        &www,
        &[
            Listen::Tls {
                cert: pki.server.clone(),
                tls12_only: false,
            },
            Listen::Tls {
                cert: pki.self_signed.clone(),
                tls12_only: false,
            },
        ],
        &dir.join("nginx"),
    )?;
    let (good, own) = (nginx.ports[0], nginx.ports[1]);
    let pin = format!("SHA256:{}", Pki::fingerprint(&pki.self_signed.0)?);
    let cfg = config_drive(&dir, &pki.ca)?;
    let target = dir.join("target.img");
    sparse_file(&target, DISK_MIB << 20)?;

    let b = VmBuilder::new("network-tls")
        .memory_mib(1024)
        .nic("user,id=n0,model=virtio-net-pci")
        .disk(Disk::new(&target, Interface::Virtio).serial("TGT1"))
        .disk(Disk::new(&cfg, Interface::Virtio).serial("CFG1"));
    let mut vm = lifeboat_shell_with(
        b,
        &img,
        &format!("lifeboat.job=https://10.0.2.2:{own}/job.toml lifeboat.job_cert={pin}"),
    )?;

    // The unattended job from the pinned self-signed server restores the disk.
    let report = sh(
        &mut vm,
        "for i in $(seq 600); do grep -q 'step 1:' /run/lifeboat/job-report.txt 2>/dev/null && break; sleep 1; done; cat /run/lifeboat/job-report.txt",
        Duration::from_secs(700),
    )?;
    assert!(report.contains("-- step 1: OK --"), "{report}");
    let tgt = dev_by_serial(&mut vm, "TGT1")?;
    let sum = sh(&mut vm, &format!("sha256sum {tgt}"), QUICK)?;
    assert!(sum.contains(&want), "the job's restore differs: {sum}");
    eprintln!(
        "job from lifeboat.job=https://… restored the disk ({:.0} s since start)",
        t0.elapsed().as_secs_f64()
    );
    let cfg_dev = dev_by_serial(&mut vm, "CFG1")?;
    sh(
        &mut vm,
        &format!("dd if=/dev/zero of={tgt} bs=1M 2>/dev/null; sync; mkdir -p /mnt/cfg && mount -t vfat -o ro {cfg_dev} /mnt/cfg"),
        QUICK,
    )?;

    // The CA-signed server: refused without the CA, restored with --ca-file.
    let url = format!("https://10.0.2.2:{good}/pc.lbi");
    let (code, out) = guest(&mut vm, &format!("lifeboat verify {url}"))?;
    let good_fp = format!("SHA256:{}", Pki::fingerprint(&pki.server.0)?);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("is not trusted") && out.contains(&good_fp),
        "{out}"
    );
    let t = Instant::now();
    let (code, out) = guest(
        &mut vm,
        &format!("lifeboat --ca-file /mnt/cfg/ca.pem restore {url} serial:TGT1 --yes"),
    )?;
    assert_eq!(code, 0, "{out}");
    let sum = sh(&mut vm, &format!("sha256sum {tgt}"), QUICK)?;
    assert!(sum.contains(&want), "the --ca-file restore differs: {sum}");
    eprintln!(
        "restore of a {image_len}-byte image from https:// with --ca-file: {:.0} s, hash-equal",
        t.elapsed().as_secs_f64()
    );

    // Unknown host names.
    for bad in [
        "https://no-such-host.invalid/pc.lbi",
        "nfs://no-such-host.invalid/images/pc.lbi",
    ] {
        let t = Instant::now();
        let (code, out) = guest(&mut vm, &format!("lifeboat verify {bad}"))?;
        let took = t.elapsed();
        assert_ne!(code, 0, "{out}");
        assert!(out.contains("cannot resolve no-such-host.invalid"), "{out}");
        eprintln!("{bad}: {:.1} s: {}", took.as_secs_f64(), out.trim());
        assert!(took < Duration::from_secs(30), "{took:?}");
    }

    // The link down before a command: said at once.
    let info = vm.monitor("info network")?;
    assert!(info.contains("n0"), "{info}");
    vm.monitor("set_link n0 off")?;
    sh(
        &mut vm,
        "for i in $(seq 20); do [ \"$(cat /sys/class/net/eth0/carrier)\" = 0 ] && break; sleep 0.5; done",
        QUICK,
    )?;
    let t = Instant::now();
    let (code, out) = guest(
        &mut vm,
        &format!("lifeboat --ca-file /mnt/cfg/ca.pem verify {url}"),
    )?;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("the link is down on eth0"), "{out}");
    eprintln!(
        "link down: {:.1} s: {}",
        t.elapsed().as_secs_f64(),
        out.trim()
    );
    vm.monitor("set_link n0 on")?;
    sh(
        &mut vm,
        "for i in $(seq 20); do [ \"$(cat /sys/class/net/eth0/carrier)\" = 1 ] && break; sleep 0.5; done",
        QUICK,
    )?;

    // The link down during a restore: warnings within seconds, then "incomplete".
    sh(
        &mut vm,
        &format!("dd if=/dev/zero of={tgt} bs=1M 2>/dev/null; sync"),
        QUICK,
    )?;
    let logged = nginx.requests().len();
    sh(
        &mut vm,
        &format!(
            "(lifeboat --ca-file /mnt/cfg/ca.pem restore {url} serial:TGT1 --yes </dev/null >/tmp/cut.log 2>&1; echo EXIT=$? >>/tmp/cut.log) & true"
        ),
        QUICK,
    )?;
    let t = Instant::now();
    while nginx.requests().len() < logged + 12 {
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(300),
            "the restore never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    vm.monitor("set_link n0 off")?;
    let down = Instant::now();
    let mut warned = None;
    let log = loop {
        let log = sh(&mut vm, "cat /tmp/cut.log", QUICK)?;
        if warned.is_none() && log.contains("retrying in") {
            warned = Some(down.elapsed());
        }
        if log.contains("EXIT=") {
            break log;
        }
        anyhow::ensure!(
            down.elapsed() < Duration::from_secs(240),
            "the restore still runs {:?} after the link went down:\n{log}",
            down.elapsed()
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    let stopped = down.elapsed();
    let warned = warned.context("no warning before the restore ended")?;
    eprintln!(
        "link down mid-restore: first warning after {:.0} s, stopped after {:.0} s:\n{log}",
        warned.as_secs_f64(),
        stopped.as_secs_f64()
    );
    assert!(log.contains("EXIT=1"), "{log}");
    assert!(log.contains("the target is incomplete"), "{log}");
    assert!(
        warned < Duration::from_secs(30),
        "first warning {warned:?} after the link went down"
    );
    assert!(stopped < Duration::from_secs(120), "{stopped:?}");
    vm.monitor("set_link n0 on")?;

    nginx.stop();
    drop(vm);
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("network_tls: {:.0} s", t0.elapsed().as_secs_f64());
    Ok(())
}
