//! Network image stores in QEMU (issue #17), against real servers the test starts on the host's
//! loopback with private configurations in a scratch folder and free high ports: Samba's `smbd`
//! (a user with a password), NFS-Ganesha (NFS v4 — v3 would need the host's rpcbind on port 111),
//! OpenSSH's `sshd` (a test key) and busybox `httpd` (range requests) behind a counting relay.
//! The guest reaches them through QEMU's user-mode network as 10.0.2.2 (DHCP from QEMU, on a
//! virtio-net card); nothing else is contacted. One VM runs every scenario in turn:
//!
//! - DHCP gives the guest an address, recorded by the udhcpc script;
//! - a disk is backed up to SMB, NFS and SFTP and restored from each, and from HTTP, onto a
//!   blank disk: the restored disk is hash-equal to the source;
//! - one file extracted from the image over HTTP fetches a fraction of the image (counted);
//! - a wrong SMB password is reported as such;
//! - smbd killed in the middle of a backup: the backup fails within a minute and the file left
//!   on the share is reported incomplete by `lifeboat verify`.
//!
//! Needs the Debian packages samba, nfs-ganesha, nfs-ganesha-vfs, openssh-server,
//! openssh-client, busybox-static and dosfstools/mtools (`cargo xtask deps`).

use anyhow::{bail, Context, Result};
use qemu_tests::e2e::{
    dev_by_serial, host_lifeboat_run, lifeboat_shell, report, sh, sh_status, JOB, QUICK,
};
use qemu_tests::fixture::{file_tree, noise, path, require, run, sha256, sparse_file, write_into};
use qemu_tests::vm::{Disk, Image, Interface, Vm, VmBuilder};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SMB_PASSWORD: &str = "Lifeboat,test 1";
const DISK_MIB: u64 = 72;

/// A server process the test started; killed on drop.
struct Server {
    name: &'static str,
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_listening(name: &str, port: u16, child: &mut Child, log: &Path) -> Result<()> {
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait()? {
            bail!(
                "{name} exited ({status}) before listening on {port}; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if t.elapsed() > Duration::from_secs(20) {
            bail!("{name} does not listen on 127.0.0.1:{port}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn spawn(name: &'static str, cmd: &mut Command, port: u16, log: &Path) -> Result<Server> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log)?)
        .stderr(std::fs::File::create(log.with_extension("err"))?)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    wait_listening(name, port, &mut child, &log.with_extension("err"))?;
    Ok(Server { name, child, port })
}

/// smbd serving `share` as `images` to the user root (password [`SMB_PASSWORD`]).
fn start_smbd(dir: &Path, share: &Path) -> Result<Server> {
    let smbd = require("smbd")?;
    let port = free_port()?;
    let d = dir.join("smb");
    for sub in [
        "private", "lock", "state", "cache", "run", "ncalrpc", "bind-dns",
    ] {
        std::fs::create_dir_all(d.join(sub))?;
    }
    let conf = d.join("smb.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\n server role = standalone server\n smb ports = {port}\n interfaces = lo\n \
             bind interfaces only = yes\n private dir = {0}/private\n lock directory = {0}/lock\n \
             state directory = {0}/state\n cache directory = {0}/cache\n pid directory = {0}/run\n \
             ncalrpc dir = {0}/ncalrpc\n binddns dir = {0}/bind-dns\n log file = {0}/smbd.log\n \
             passdb backend = tdbsam:{0}/private/passdb.tdb\n map to guest = never\n \
             log level = 2\n load printers = no\n printing = bsd\n printcap name = /dev/null\n disable spoolss = yes\n\
             [images]\n path = {1}\n read only = no\n force user = root\n",
            d.display(),
            share.display()
        ),
    )?;
    let mut pw = Command::new(require("smbpasswd")?)
        .args(["-c", path(&conf)?, "-s", "-a", "root"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    pw.stdin
        .take()
        .context("smbpasswd stdin")?
        .write_all(format!("{SMB_PASSWORD}\n{SMB_PASSWORD}\n").as_bytes())?;
    anyhow::ensure!(pw.wait()?.success(), "smbpasswd -a root failed");
    spawn(
        "smbd",
        Command::new(smbd).args([
            "--foreground",
            "--no-process-group",
            "--debug-stdout",
            &format!("--configfile={}", path(&conf)?),
        ]),
        port,
        &d.join("smbd.out"),
    )
}

/// NFS-Ganesha exporting `export` as `/images` (NFS v4 over TCP).
fn start_ganesha(dir: &Path, export: &Path) -> Result<Server> {
    let g = require("ganesha.nfsd")?;
    let port = free_port()?;
    let d = dir.join("nfs");
    std::fs::create_dir_all(d.join("recovery"))?;
    let conf = d.join("ganesha.conf");
    std::fs::write(
        &conf,
        format!(
            "NFS_CORE_PARAM {{ NFS_Port = {port}; Bind_addr = 127.0.0.1; Protocols = 4; \
             Enable_UDP = false; Enable_NLM = false; Enable_RQUOTA = false; }}\n\
             NFSV4 {{ Graceless = true; RecoveryBackend = fs; RecoveryRoot = {0}/recovery; }}\n\
             EXPORT {{ Export_Id = 1; Path = {1}; Pseudo = /images; Access_Type = RW; \
             Squash = No_Root_Squash; Protocols = 4; Transports = TCP; SecType = sys; \
             FSAL {{ Name = VFS; }} }}\n",
            d.display(),
            export.display()
        ),
    )?;
    spawn(
        "ganesha.nfsd",
        Command::new(g).args([
            "-F",
            "-f",
            path(&conf)?,
            "-L",
            path(&d.join("ganesha.log"))?,
            "-p",
            path(&d.join("ganesha.pid"))?,
            "-N",
            "NIV_EVENT",
        ]),
        port,
        &d.join("ganesha.out"),
    )
}

/// sshd accepting root with the key `client_key.pub`; returns it and its host key fingerprint.
fn start_sshd(dir: &Path) -> Result<(Server, String)> {
    let sshd = Path::new("/usr/sbin/sshd");
    anyhow::ensure!(
        sshd.exists(),
        "/usr/sbin/sshd missing: install openssh-server"
    );
    let d = dir.join("ssh");
    std::fs::create_dir_all(&d)?;
    for k in ["host_key", "client_key"] {
        run(
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-N", "", "-f", path(&d.join(k))?],
        )?;
    }
    std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys"))?;
    std::fs::create_dir_all("/run/sshd")?;
    let port = free_port()?;
    let conf = d.join("sshd_config");
    std::fs::write(
        &conf,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {0}/host_key\nPidFile {0}/sshd.pid\n\
             AuthorizedKeysFile {0}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
             Subsystem sftp internal-sftp\n",
            d.display()
        ),
    )?;
    let fp = run(
        "ssh-keygen",
        &["-l", "-E", "sha256", "-f", path(&d.join("host_key.pub"))?],
    )?;
    let fp = fp
        .split_whitespace()
        .nth(1)
        .context("ssh-keygen -l output")?
        .to_string();
    let server = spawn(
        "sshd",
        Command::new(sshd).args(["-D", "-e", "-f", path(&conf)?]),
        port,
        &d.join("sshd.out"),
    )?;
    Ok((server, fp))
}

/// busybox httpd serving `root`, behind a relay that counts the bytes sent to the client.
fn start_httpd(dir: &Path, root: &Path) -> Result<(Server, u16, Arc<AtomicU64>)> {
    let port = free_port()?;
    let server = spawn(
        "httpd",
        Command::new(require("busybox")?).args([
            "httpd",
            "-f",
            "-p",
            &format!("127.0.0.1:{port}"),
            "-h",
            path(root)?,
        ]),
        port,
        &dir.join("httpd.out"),
    )?;
    let relay = TcpListener::bind("127.0.0.1:0")?;
    let relay_port = relay.local_addr()?.port();
    let served = Arc::new(AtomicU64::new(0));
    let counter = served.clone();
    std::thread::spawn(move || {
        for client in relay.incoming().flatten() {
            let Ok(upstream) = TcpStream::connect(("127.0.0.1", port)) else {
                continue;
            };
            let counter = counter.clone();
            let (mut c_read, mut u_write) = (client.try_clone().ok(), upstream.try_clone().ok());
            std::thread::spawn(move || {
                if let (Some(c), Some(u)) = (c_read.as_mut(), u_write.as_mut()) {
                    let _ = std::io::copy(c, u);
                    let _ = u.shutdown(std::net::Shutdown::Write);
                }
            });
            std::thread::spawn(move || {
                let (mut u, mut c) = (upstream, client);
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n) = u.read(&mut buf) {
                    if n == 0 || c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    counter.fetch_add(n as u64, Ordering::SeqCst);
                }
                let _ = c.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    Ok((server, relay_port, served))
}

/// A GPT disk with one ext4 partition holding a small tree, incompressible files and the file
/// `/docs/letter.txt` that the HTTP extract reads.
fn source_disk(dir: &Path) -> Result<(PathBuf, String)> {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("docs"))?;
    std::fs::create_dir_all(tree.join("bulk"))?;
    file_tree(&tree.join("small"), 40)?;
    for i in 0..12u64 {
        std::fs::write(
            tree.join(format!("bulk/noise{i}.bin")),
            noise(i + 1, 4 << 20),
        )?;
    }
    let letter = noise(99, 200 << 10);
    std::fs::write(tree.join("docs/letter.txt"), &letter)?;
    let disk = dir.join("source.img");
    sparse_file(&disk, DISK_MIB << 20)?;
    run("sgdisk", &["-n1:1M:0", "-c1:data", path(&disk)?])?;
    let part = dir.join("part.img");
    let size = format!("{}M", DISK_MIB - 2);
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
            &size,
        ],
    )?;
    write_into(&disk, 1 << 20, &part)?;
    std::fs::remove_file(&part)?;
    let letter_file = dir.join("letter.txt");
    std::fs::write(&letter_file, &letter)?;
    Ok((disk, sha256(&letter_file)?))
}

/// A FAT drive with the SSH client key and the SMB passwords (right and wrong).
fn config_drive(dir: &Path, key: &Path) -> Result<PathBuf> {
    let files = dir.join("cfg");
    std::fs::create_dir_all(&files)?;
    std::fs::write(files.join("smb.pw"), format!("{SMB_PASSWORD}\n"))?;
    std::fs::write(files.join("bad.pw"), "not the password\n")?;
    std::fs::copy(key, files.join("id"))?;
    let img = dir.join("cfg.img");
    let _ = std::fs::remove_file(&img);
    run("mkfs.vfat", &["-C", "-n", "NETCFG", path(&img)?, "4096"])?;
    for f in ["smb.pw", "bad.pw", "id"] {
        run(
            "mcopy",
            &["-i", path(&img)?, path(&files.join(f))?, &format!("::/{f}")],
        )?;
    }
    Ok(img)
}

/// Runs `cmd` in the guest with its output in a log; returns the exit code and the output.
fn lifeboat(vm: &mut Vm, cmd: &str) -> Result<(i32, String)> {
    let (code, _) = sh_status(vm, &format!("{cmd} </dev/null >/tmp/out.log 2>&1"), JOB)?;
    let text = sh(vm, "cat /tmp/out.log", QUICK)?;
    Ok((code, text))
}

fn lifeboat_ok(vm: &mut Vm, cmd: &str) -> Result<String> {
    let (code, text) = lifeboat(vm, cmd)?;
    if code != 0 {
        let kernel = sh(vm, "dmesg | grep -iE 'cifs|nfs|fuse' | tail -n 20", QUICK)?;
        bail!("`{cmd}` exited {code} in the VM:\n{text}\nkernel log:\n{kernel}");
    }
    Ok(text)
}

/// Restores `url` onto the blank target and checks it is the source, byte for byte; blanks it
/// again.
fn restore_and_compare(vm: &mut Vm, flags: &str, url: &str, tgt: &str, want: &str) -> Result<()> {
    let t = Instant::now();
    lifeboat_ok(
        vm,
        &format!("lifeboat {flags} restore {url} serial:TGT1 --yes"),
    )?;
    let sum = sh(vm, &format!("sha256sum {tgt}"), QUICK)?;
    assert!(
        sum.contains(want),
        "the disk restored from {url} differs from the source ({want}):\n{sum}"
    );
    eprintln!(
        "restore from {url}: {:.0} s, hash-equal",
        t.elapsed().as_secs_f64()
    );
    sh(
        vm,
        &format!("dd if=/dev/zero of={tgt} bs=1M 2>/dev/null; sync"),
        QUICK,
    )?;
    Ok(())
}

#[test]
fn network_stores_back_up_restore_extract_and_fail_loudly() -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let dir = qemu_tests::fixture::scratch("network")?;
    let (disk, letter_sum) = source_disk(&dir)?;
    let want = sha256(&disk)?;
    let target = dir.join("target.img");
    sparse_file(&target, DISK_MIB << 20)?;
    let (smb_share, nfs_export, sftp_dir) =
        (dir.join("share"), dir.join("export"), dir.join("sftp"));
    for d in [&smb_share, &nfs_export, &sftp_dir] {
        std::fs::create_dir_all(d)?;
    }
    let mut smbd = start_smbd(&dir, &smb_share)?;
    let nfs = start_ganesha(&dir, &nfs_export)?;
    let (sshd, host_key) = start_sshd(&dir)?;
    let (_httpd, http_port, served) = start_httpd(&dir, &smb_share)?;
    let cfg = config_drive(&dir, &dir.join("ssh/client_key"))?;

    let b = VmBuilder::new("network")
        .memory_mib(1024)
        .nic("user,model=virtio-net-pci")
        .disk(Disk::new(&disk, Interface::Virtio).serial("SRC1"))
        .disk(Disk::new(&target, Interface::Virtio).serial("TGT1"))
        .disk(Disk::new(&cfg, Interface::Virtio).serial("CFG1"));
    let mut vm = lifeboat_shell(b, &img)?;

    // DHCP: the udhcpc script records the lease QEMU's server gave.
    let lease = sh(
        &mut vm,
        "for i in $(seq 90); do cat /run/lifeboat/net/*.lease 2>/dev/null && break; sleep 1; done",
        Duration::from_secs(120),
    )?;
    assert!(lease.contains("10.0.2.15/24"), "no DHCP lease: {lease}");
    let resolv = sh(&mut vm, "cat /etc/resolv.conf", QUICK)?;
    assert!(resolv.contains("nameserver 10.0.2.3"), "{resolv}");

    let cfg_dev = dev_by_serial(&mut vm, "CFG1")?;
    let tgt = dev_by_serial(&mut vm, "TGT1")?;
    sh(
        &mut vm,
        &format!("mkdir -p /mnt/cfg && mount -t vfat -o ro {cfg_dev} /mnt/cfg && cp /mnt/cfg/id /tmp/id && chmod 600 /tmp/id"),
        QUICK,
    )?;

    // SMB: back up, restore, hash-equal.
    let smb = format!("smb://root@10.0.2.2:{}/images", smbd.port);
    let smb_flags = "--store-password-file /mnt/cfg/smb.pw";
    let t = Instant::now();
    lifeboat_ok(
        &mut vm,
        &format!("lifeboat {smb_flags} backup serial:SRC1 {smb}/pcs/smb.lbi"),
    )?;
    eprintln!("backup to SMB: {:.0} s", t.elapsed().as_secs_f64());
    let smb_image = smb_share.join("pcs/smb.lbi");
    let (code, out) = host_lifeboat_run(&["verify", path(&smb_image)?])?;
    assert_eq!(code, 0, "host verify of the image on the SMB share:\n{out}");
    restore_and_compare(
        &mut vm,
        smb_flags,
        &format!("{smb}/pcs/smb.lbi"),
        &tgt,
        &want,
    )?;

    // NFS v4.
    let nfs_url = format!("nfs://10.0.2.2:{}/images/nfs.lbi", nfs.port);
    let t = Instant::now();
    lifeboat_ok(&mut vm, &format!("lifeboat backup serial:SRC1 {nfs_url}"))?;
    eprintln!("backup to NFS: {:.0} s", t.elapsed().as_secs_f64());
    assert!(
        nfs_export.join("nfs.lbi").is_file(),
        "no image in the NFS export"
    );
    restore_and_compare(&mut vm, "", &nfs_url, &tgt, &want)?;

    // SFTP with the pinned host key; an unpinned one is refused with its fingerprint.
    let sftp_url = format!(
        "sftp://root@10.0.2.2:{}{}/sftp.lbi",
        sshd.port,
        sftp_dir.display()
    );
    let (code, out) = lifeboat(
        &mut vm,
        &format!("lifeboat --identity-file /tmp/id backup serial:SRC1 {sftp_url}"),
    )?;
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("not pinned") && out.contains(&host_key),
        "{out}"
    );
    let sftp_flags = format!("--identity-file /tmp/id --host-key {host_key}");
    let t = Instant::now();
    lifeboat_ok(
        &mut vm,
        &format!("lifeboat {sftp_flags} backup serial:SRC1 {sftp_url}"),
    )?;
    eprintln!("backup to SFTP: {:.0} s", t.elapsed().as_secs_f64());
    restore_and_compare(&mut vm, &sftp_flags, &sftp_url, &tgt, &want)?;

    // HTTP (the SMB share's folder served read-only): restore, then one file by range requests.
    let http_url = format!("http://10.0.2.2:{http_port}/pcs/smb.lbi");
    restore_and_compare(&mut vm, "", &http_url, &tgt, &want)?;
    let before = served.load(Ordering::SeqCst);
    lifeboat_ok(
        &mut vm,
        &format!("lifeboat extract {http_url} /docs/letter.txt --to /tmp/got"),
    )?;
    let fetched = served.load(Ordering::SeqCst) - before;
    let got = sh(&mut vm, "sha256sum /tmp/got/letter.txt", QUICK)?;
    assert!(got.contains(&letter_sum), "extracted letter differs: {got}");
    let image_len = std::fs::metadata(&smb_image)?.len();
    eprintln!(
        "extract of one 200 KiB file over HTTP: {fetched} bytes served of a {image_len}-byte image"
    );
    // The image's chunks are 4 MiB of incompressible data here: the file's own chunk, the
    // chunks of the inode table and folder it needs, the index; not the other eight or more.
    assert!(
        fetched * 2 < image_len,
        "extracting one file fetched {fetched} of {image_len} bytes"
    );

    // Benchmark: the backup to NFS against a plain `cp` of a file of the image's size onto the
    // same export in the same VM (BENCHMARKS.md); busybox mount takes the kernel's text options.
    let uptime = |vm: &mut Vm| -> Result<f64> {
        let t = sh(vm, "cut -d' ' -f1 /proc/uptime", QUICK)?;
        t.lines()
            .filter_map(|l| l.trim().parse::<f64>().ok())
            .next_back()
            .context("reading /proc/uptime")
    };
    let t1 = uptime(&mut vm)?;
    lifeboat_ok(
        &mut vm,
        &format!(
            "lifeboat backup serial:SRC1 nfs://10.0.2.2:{}/images/bench.lbi",
            nfs.port
        ),
    )?;
    let backup_s = uptime(&mut vm)? - t1;
    let bench_len = std::fs::metadata(nfs_export.join("bench.lbi"))?.len();
    sh(
        &mut vm,
        &format!(
            "dd if=/dev/urandom of=/tmp/blob bs=65536 count={} 2>/dev/null && mkdir -p /mnt/b && \
             mount -t nfs4 10.0.2.2:/images /mnt/b -o addr=10.0.2.2,clientaddr=10.0.2.15,port={},proto=tcp,vers=4",
            bench_len.div_ceil(65536),
            nfs.port
        ),
        QUICK,
    )?;
    let t2 = uptime(&mut vm)?;
    sh(&mut vm, "cp /tmp/blob /mnt/b/blob && sync", QUICK)?;
    let cp_s = uptime(&mut vm)? - t2;
    sh(&mut vm, "umount /mnt/b && rm /tmp/blob", QUICK)?;
    let mbps = |bytes: u64, s: f64| bytes as f64 / 1e6 / s.max(0.01);
    eprintln!(
        "benchmark NFS: backup wrote {bench_len} bytes in {backup_s:.1} s ({:.1} MB/s); cp of as many bytes {cp_s:.1} s ({:.1} MB/s); ratio {:.2}",
        mbps(bench_len, backup_s),
        mbps(bench_len, cp_s),
        mbps(bench_len, backup_s) / mbps(bench_len, cp_s)
    );

    // A wrong SMB password.
    let t = Instant::now();
    let (code, out) = lifeboat(
        &mut vm,
        &format!("lifeboat --store-password-file /mnt/cfg/bad.pw info {smb}/pcs/smb.lbi"),
    )?;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("wrong user name or password"), "{out}");
    assert!(
        !out.contains("not the password"),
        "the password is not echoed: {out}"
    );
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());

    // smbd killed in the middle of a backup (the source read at 1 MB/s so it lasts).
    let r = vm.monitor("block_set_io_throttle d0 0 1048576 0 0 0 0")?;
    assert!(!r.to_lowercase().contains("error"), "throttle: {r}");
    sh(
        &mut vm,
        &format!("(lifeboat {smb_flags} backup serial:SRC1 {smb}/cut.lbi </dev/null >/tmp/cut.log 2>&1; echo EXIT=$? >>/tmp/cut.log) & true"),
        QUICK,
    )?;
    let cut = smb_share.join("cut.lbi");
    let t = Instant::now();
    while std::fs::metadata(&cut).map(|m| m.len()).unwrap_or(0) < 2 << 20 {
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(300),
            "the backup to cut never grew"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    smbd.child.kill()?;
    smbd.child.wait()?;
    let killed = Instant::now();
    let log = loop {
        let log = sh(&mut vm, "cat /tmp/cut.log", QUICK)?;
        if log.contains("EXIT=") {
            break log;
        }
        anyhow::ensure!(
            killed.elapsed() < Duration::from_secs(240),
            "the backup still runs {} s after smbd was killed:\n{log}",
            killed.elapsed().as_secs()
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    eprintln!(
        "backup cut by the server's death ended {:.0} s later:\n{log}",
        killed.elapsed().as_secs_f64()
    );
    assert!(!log.contains("EXIT=0"), "{log}");
    // The write that found the server gone is named, and the image is said to be partial (the
    // engine could not remove it either: the share is gone).
    assert!(log.contains("Host is down"), "{log}");
    assert!(
        log.contains("partial image") || log.contains("incomplete"),
        "{log}"
    );
    assert!(
        killed.elapsed() < Duration::from_secs(60),
        "the backup went on for {} s after its server died",
        killed.elapsed().as_secs()
    );
    let (code, out) = host_lifeboat_run(&["verify", path(&cut)?])?;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("incomplete image"), "{out}");
    eprintln!("servers: {}, {}, {}", smbd.name, nfs.name, sshd.name);
    report("network stores", t0);
    Ok(())
}
