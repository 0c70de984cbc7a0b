//! A virtual LAN for the lab scenario (issue 19, `tests/lab.rs`, `cargo xtask bench --lab`): a
//! network namespace made here holding a bridge with one tap device per PC, a dnsmasq on the
//! bridge (DHCP with a fixed address per PC, TFTP, iPXE scripts chosen per PC) and busybox
//! `httpd` (kernel, initramfs, job files, images). QEMU runs inside the namespace
//! ([`VmBuilder::netns`]), so no frame reaches a real interface. Everything is killed and the
//! namespace deleted when the [`Lan`] is dropped.
//!
//! Every PC boots from the network: SeaBIOS finds no boot sector on its disks and runs the
//! NIC's option ROM (QEMU's iPXE), whose DHCP request carries option 175; dnsmasq answers it
//! with the name of an iPXE script on its TFTP server, and the script fetches Lifeboat's kernel
//! and initramfs over HTTP.

use crate::e2e::{sh, wait_shell, BOOT, JOB, QUICK};
use crate::fixture::{path, require};
use crate::vm::{Image, Vm, VmBuilder};
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The LAN's /24 (inside the namespace only).
pub const NET: &str = "10.231.19";
/// The server's address on the bridge: DHCP, TFTP and HTTP.
pub const SERVER: &str = "10.231.19.1";
/// The model every lab PC's disk reports: the receive job's target rule.
pub const DISK_MODEL: &str = "LABPC-SSD";

/// One PC's place on the LAN: its tap device, MAC and the address dnsmasq gives it.
#[derive(Debug, Clone)]
pub struct Pc {
    pub tap: String,
    pub mac: String,
    pub ip: String,
}

/// The LAN; see the module's documentation.
#[derive(Debug)]
pub struct Lan {
    pub ns: String,
    dir: PathBuf,
    pcs: u32,
    servers: Vec<(&'static str, Child)>,
    /// The site DHCP server's namespace ([`Lan::start_site_dhcp`]).
    site: Option<String>,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new(require("ip")?)
        .args(args)
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Lan {
    /// Makes the namespace, the bridge (`SERVER/24`, multicast snooping off so udpcast's
    /// multicast reaches every port) and `pcs` tap devices on it; `dir` receives the servers'
    /// configuration and logs.
    pub fn new(pcs: u32, dir: &Path) -> Result<Lan> {
        require("ip")?;
        if !Path::new("/dev/net/tun").exists() {
            bail!("/dev/net/tun is missing: QEMU's tap devices need the tun module");
        }
        let ns = format!(
            "lblab{}x{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        ip(&["netns", "add", &ns])?;
        let lan = Lan {
            ns,
            dir: dir.to_path_buf(),
            pcs,
            servers: Vec::new(),
            site: None,
        };
        let n = lan.ns.as_str();
        ip(&["-n", n, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            n,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        ip(&[
            "-n",
            n,
            "addr",
            "add",
            &format!("{SERVER}/24"),
            "brd",
            "+",
            "dev",
            "br0",
        ])?;
        ip(&["-n", n, "link", "set", "br0", "up"])?;
        for i in 0..pcs {
            let tap = lan.pc(i).tap;
            ip(&["-n", n, "tuntap", "add", "dev", &tap, "mode", "tap"])?;
            ip(&["-n", n, "link", "set", &tap, "master", "br0", "up"])?;
        }
        Ok(lan)
    }

    /// PC `i`'s tap, MAC (`52:54:00:13:00:xx`) and address (`NET.(10+i)`).
    pub fn pc(&self, i: u32) -> Pc {
        pc(i)
    }

    /// A VM for PC `i`: QEMU in the namespace, a virtio-net card on PC `i`'s tap (its option
    /// ROM is QEMU's iPXE).
    pub fn vm(&self, name: &str, i: u32) -> VmBuilder {
        let pc = self.pc(i);
        VmBuilder::new(name).netns(&self.ns).nic(&format!(
            "tap,ifname={},script=no,downscript=no,model=virtio-net-pci,mac={}",
            pc.tap, pc.mac
        ))
    }

    fn spawn(&mut self, name: &'static str, argv: &[&str], log: &Path) -> Result<()> {
        let out = std::fs::File::create(log)?;
        let child = Command::new(require("ip")?)
            .args(["netns", "exec", &self.ns])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        self.servers.push((name, child));
        Ok(())
    }

    fn check_running(&mut self, name: &str, log: &Path) -> Result<()> {
        for (n, c) in &mut self.servers {
            if *n == name {
                if let Some(status) = c.try_wait()? {
                    bail!(
                        "{name} exited at once ({status}): {}",
                        std::fs::read_to_string(log).unwrap_or_default()
                    );
                }
            }
        }
        Ok(())
    }

    /// Starts busybox httpd on `SERVER:80` serving `www` (it answers range requests, which
    /// Lifeboat's HTTP store uses), and waits until it answers.
    pub fn start_httpd(&mut self, www: &Path) -> Result<()> {
        let busybox = require("busybox")?;
        let bb = path(&busybox)?.to_string();
        std::fs::write(www.join("lab-ready.txt"), "ok\n")?;
        let log = self.dir.join("httpd.log");
        self.spawn(
            "busybox httpd",
            &[
                &bb,
                "httpd",
                "-f",
                "-p",
                &format!("{SERVER}:80"),
                "-h",
                path(www)?,
            ],
            &log,
        )?;
        let t = Instant::now();
        loop {
            let ok = Command::new(require("ip")?)
                .args([
                    "netns",
                    "exec",
                    &self.ns,
                    &bb,
                    "wget",
                    "-q",
                    "-O",
                    "/dev/null",
                ])
                .arg(format!("http://{SERVER}/lab-ready.txt"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?
                .success();
            if ok {
                return Ok(());
            }
            self.check_running("busybox httpd", &log)?;
            if t.elapsed() > Duration::from_secs(10) {
                bail!("busybox httpd does not answer on {SERVER}:80");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts dnsmasq with [`dnsmasq_conf`] on the bridge and waits until it serves.
    pub fn start_dnsmasq(
        &mut self,
        mode: Dhcp,
        tftp: &Path,
        scripts: &[(u32, &str)],
        default_script: &str,
    ) -> Result<()> {
        let conf = self.dir.join("dnsmasq.conf");
        std::fs::write(
            &conf,
            dnsmasq_conf(mode, self.pcs, &self.dir, tftp, scripts, default_script)?,
        )?;
        let ns = self.ns.clone();
        self.run_dnsmasq("dnsmasq", &ns, &conf, "TFTP root is")
    }

    /// The site's own DHCP server, for [`Dhcp::Proxy`]: a plain dnsmasq (addresses, router; no
    /// boot options) at `NET.2` in a second namespace joined to the bridge by a veth pair,
    /// giving each PC its fixed address.
    pub fn start_site_dhcp(&mut self) -> Result<()> {
        let site = format!("{}d", self.ns);
        ip(&["netns", "add", &site])?;
        self.site = Some(site.clone());
        ip(&["-n", &site, "link", "set", "lo", "up"])?;
        ip(&[
            "-n", &self.ns, "link", "add", "site0", "type", "veth", "peer", "name", "eth0",
            "netns", &site,
        ])?;
        ip(&[
            "-n", &self.ns, "link", "set", "site0", "master", "br0", "up",
        ])?;
        ip(&[
            "-n",
            &site,
            "addr",
            "add",
            &format!("{NET}.2/24"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &site, "link", "set", "eth0", "up"])?;
        let conf = self.dir.join("site-dhcp.conf");
        std::fs::write(&conf, site_dhcp_conf(self.pcs, &self.dir)?)?;
        self.run_dnsmasq("site dhcp", &site, &conf, "DHCP, IP range")
    }

    /// Runs dnsmasq with `conf` in namespace `ns`, its log in `<dir>/<name>.log`, and waits
    /// until the log shows `ready`.
    fn run_dnsmasq(
        &mut self,
        name: &'static str,
        ns: &str,
        conf: &Path,
        ready: &str,
    ) -> Result<()> {
        let dnsmasq = require("dnsmasq")?;
        let file = name.replace(' ', "-");
        let log = self.dir.join(format!("{file}.log"));
        let pid = self.dir.join(format!("{file}.pid"));
        let out = std::fs::File::create(&log)?;
        let child = Command::new(require("ip")?)
            .args(["netns", "exec", ns, path(&dnsmasq)?])
            .args([
                "--keep-in-foreground".to_string(),
                "--log-facility=-".to_string(),
                format!("--conf-file={}", path(conf)?),
                format!("--pid-file={}", path(&pid)?),
            ])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        self.servers.push((name, child));
        let t = Instant::now();
        loop {
            self.check_running(name, &log)?;
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains(ready) {
                return Ok(());
            }
            if t.elapsed() > Duration::from_secs(10) {
                bail!("{name} did not start within 10 s:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// dnsmasq's log so far (DHCP and TFTP requests).
    pub fn dnsmasq_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dnsmasq.log")).unwrap_or_default()
    }

    /// The site DHCP server's log so far ([`Lan::start_site_dhcp`]).
    pub fn site_dhcp_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("site-dhcp.log")).unwrap_or_default()
    }
}

/// PC `i`'s tap, MAC (`52:54:00:13:00:xx`) and address (`NET.(10+i)`).
pub fn pc(i: u32) -> Pc {
    Pc {
        tap: format!("tap{i}"),
        mac: format!("52:54:00:13:00:{:02x}", 0x10 + i),
        ip: format!("{NET}.{}", 10 + i),
    }
}

/// dnsmasq's configuration for this LAN: TFTP from `tftp`, and for iPXE (option 175) the
/// script `scripts[i]` for the PCs named there, `default_script` for the others. No DNS
/// (port 0). [`Dhcp::Full`]: dnsmasq is the DHCP server, with a fixed address per PC.
/// [`Dhcp::Proxy`]: another server gives the addresses ([`Lan::start_site_dhcp`],
/// [`site_dhcp_conf`]) and dnsmasq answers PXE clients only, with a one-entry PXE menu per PC
/// that boots at once.
pub fn dnsmasq_conf(
    mode: Dhcp,
    pcs: u32,
    dir: &Path,
    tftp: &Path,
    scripts: &[(u32, &str)],
    default_script: &str,
) -> Result<String> {
    let mut c = String::new();
    writeln!(
        c,
        "interface=br0\nbind-interfaces\nport=0\nno-resolv\nno-hosts"
    )?;
    writeln!(c, "user=root\nlog-dhcp")?;
    writeln!(c, "dhcp-leasefile={}", path(&dir.join("dnsmasq.leases"))?)?;
    writeln!(c, "enable-tftp\ntftp-root={}", path(tftp)?)?;
    let mut others = String::new();
    match mode {
        Dhcp::Full => {
            writeln!(c, "dhcp-range={NET}.100,{NET}.199,255.255.255.0,1h")?;
            writeln!(c, "dhcp-option=option:router,{SERVER}")?;
            writeln!(c, "dhcp-match=set:ipxe,175")?;
            for i in 0..pcs {
                let pc = pc(i);
                writeln!(c, "dhcp-host={},set:pc{i},{}", pc.mac, pc.ip)?;
            }
            for (i, script) in scripts {
                writeln!(c, "dhcp-boot=tag:ipxe,tag:pc{i},{script}")?;
                write!(others, ",tag:!pc{i}")?;
            }
            writeln!(c, "dhcp-boot=tag:ipxe{others},{default_script}")?;
        }
        Dhcp::Proxy => {
            writeln!(c, "dhcp-range={NET}.0,proxy")?;
            for i in 0..pcs {
                writeln!(c, "dhcp-host={},set:pc{i}", pc(i).mac)?;
            }
            for (i, script) in scripts {
                writeln!(c, "pxe-service=tag:pc{i},x86PC,\"Lifeboat\",{script}")?;
                write!(others, "tag:!pc{i},")?;
            }
            writeln!(c, "pxe-service={others}x86PC,\"Lifeboat\",{default_script}")?;
        }
    }
    Ok(c)
}

/// The site DHCP server's configuration ([`Lan::start_site_dhcp`]): addresses and router only,
/// a fixed address per PC, no boot options.
pub fn site_dhcp_conf(pcs: u32, dir: &Path) -> Result<String> {
    let mut c = String::new();
    writeln!(
        c,
        "interface=eth0\nbind-interfaces\nport=0\nno-resolv\nno-hosts\nuser=root\nlog-dhcp"
    )?;
    writeln!(c, "dhcp-leasefile={}", path(&dir.join("site-dhcp.leases"))?)?;
    writeln!(c, "dhcp-range={NET}.100,{NET}.199,255.255.255.0,1h")?;
    writeln!(c, "dhcp-option=option:router,{SERVER}")?;
    for i in 0..pcs {
        let pc = pc(i);
        writeln!(c, "dhcp-host={},{}", pc.mac, pc.ip)?;
    }
    Ok(c)
}

/// Who gives the PCs their addresses (see [`dnsmasq_conf`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dhcp {
    /// dnsmasq is the LAN's DHCP server.
    Full,
    /// dnsmasq is a proxy-DHCP server beside the site's own DHCP server.
    Proxy,
}

impl Drop for Lan {
    fn drop(&mut self) {
        for (_, c) in &mut self.servers {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in std::iter::once(&self.ns).chain(&self.site) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// The start of every lab PC's kernel command line: the serial console, and `no_timer_check`
/// (several TCG guests on two busy host cores can miss the kernel's IO-APIC timer check, which
/// then panics; real PCs do not need it).
pub const CMDLINE: &str = "console=ttyS0,115200 no_timer_check";

/// An iPXE script booting Lifeboat's kernel and initramfs from `SERVER` over HTTP with
/// [`CMDLINE`] and `args` on its command line.
pub fn ipxe_script(args: &str) -> String {
    format!(
        "#!ipxe\n\
         echo lifeboat-lab: script from dnsmasq's TFTP\n\
         kernel http://{SERVER}/vmlinuz {CMDLINE} {args}\n\
         initrd http://{SERVER}/initramfs.img\n\
         boot\n"
    )
}

/// The web root and TFTP root of a lab in `dir`: the kernel and initramfs under `www/`, the
/// scripts go under `tftp/`. Returns (www, tftp).
pub fn roots(dir: &Path, img: &Image) -> Result<(PathBuf, PathBuf)> {
    let (www, tftp) = (dir.join("www"), dir.join("tftp"));
    std::fs::create_dir_all(&www)?;
    std::fs::create_dir_all(&tftp)?;
    std::fs::copy(&img.vmlinuz, www.join("vmlinuz"))?;
    std::fs::copy(&img.initramfs, www.join("initramfs.img"))?;
    Ok((www, tftp))
}

/// Waits until PC `vm` booted Lifeboat through the network with exactly `args` after the
/// console on its kernel command line, then until its serial shell answers.
pub fn network_shell(vm: &mut Vm, args: &str) -> Result<()> {
    vm.expect(&format!("Command line: {CMDLINE} {args}"), BOOT)?;
    wait_shell(vm)
}

/// Allocated bytes of a (sparse) disk file: what a VM has written to it so far.
pub fn written(disk: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(disk)
        .map(|m| m.blocks() * 512)
        .unwrap_or(0)
}

/// Runs `cmd` in a VM's shell in the background (its output in `log`), remembering its pid.
pub fn background(vm: &mut Vm, cmd: &str, log: &str) -> Result<()> {
    sh(
        vm,
        &format!("{cmd} </dev/null >{log} 2>&1 & echo $! >{log}.pid"),
        QUICK,
    )?;
    Ok(())
}

/// Waits for the command [`background`] started with `log`; returns its exit code and output.
pub fn wait_background(vm: &mut Vm, log: &str) -> Result<(i32, String)> {
    let (code, _) = crate::e2e::sh_status(vm, &format!("wait $(cat {log}.pid)"), JOB)?;
    let text = sh(vm, &format!("cat {log}"), QUICK)?;
    Ok((code, text))
}

/// One line of the lab benchmark: `receivers` PCs served by sequential unicast restores from the
/// HTTP store and by one multicast session, each the faster of two runs (seconds).
#[derive(Debug, Clone)]
pub struct BenchRow {
    pub receivers: u32,
    pub unicast: f64,
    pub multicast: f64,
}

/// What [`bench`] measured and on what.
#[derive(Debug, Clone)]
pub struct BenchFigures {
    pub rows: Vec<BenchRow>,
    pub image_bytes: u64,
    pub disk_bytes: u64,
}

/// `cargo xtask bench --lab`: on the lab LAN, a sender and `max(counts)` receivers PXE-boot
/// Lifeboat to a shell (booting is not timed); then for each count N, N sequential `lifeboat
/// restore http://SERVER/pc.lbi` (the unicast fallback: busybox httpd on the LAN) and one
/// `lifeboat serve --clients N` with N `lifeboat receive` (the image on the sender's drive) are
/// timed, alternating, twice each, the faster kept. After every run each written disk must equal
/// a plain restore of the image made on the host.
pub fn bench(img: &Image, counts: &[u32]) -> Result<BenchFigures> {
    use crate::e2e::{dev_by_serial, ext4_drive, host_lifeboat_run, job};
    use crate::fixture::{scratch, sha256, sparse_file};
    use crate::system_disk::{mbr_bios, MBR_DISK_BYTES};
    use crate::vm::{Disk, Interface};
    let most = counts.iter().copied().max().unwrap_or(1);
    let sys = mbr_bios(&img.vmlinuz)?;
    let dir = scratch("lab-bench")?;
    let (www, tftp) = roots(&dir, img)?;
    let image = www.join("pc.lbi");
    let (code, out) = host_lifeboat_run(&["backup", path(&sys.path)?, path(&image)?])?;
    if code != 0 {
        bail!("host backup of the system disk:\n{out}");
    }
    let plain = dir.join("plain.img");
    sparse_file(&plain, MBR_DISK_BYTES)?;
    let (code, out) = host_lifeboat_run(&["restore", path(&image)?, path(&plain)?, "--yes"])?;
    if code != 0 {
        bail!("host restore of the image:\n{out}");
    }
    let want = sha256(&plain)?;
    std::fs::remove_file(&plain)?;
    let store = dir.join("store");
    std::fs::create_dir_all(&store)?;
    std::fs::copy(&image, store.join("pc.lbi"))?;
    let image_bytes = std::fs::metadata(&image)?.len();
    let store_drive = ext4_drive(
        &dir,
        "store.img",
        (image_bytes >> 20) + 48,
        "LABSTORE",
        Some(&store),
    )?;
    std::fs::write(
        tftp.join("shell.ipxe"),
        ipxe_script("lifeboat.serial=shell"),
    )?;
    let mut lan = Lan::new(most + 1, &dir)?;
    lan.start_httpd(&www)?;
    lan.start_dnsmasq(Dhcp::Full, &tftp, &[], "shell.ipxe")?;
    let mut sender = lan
        .vm("lab-bench-sender", 0)
        .memory_mib(512)
        .disk(Disk::new(&store_drive, Interface::Virtio).serial("LABSTORE"))
        .start()?;
    let mut pcs = Vec::new();
    let mut disks = Vec::new();
    for i in 1..=most {
        let d = dir.join(format!("pc{i}.img"));
        sparse_file(&d, MBR_DISK_BYTES)?;
        pcs.push(
            lan.vm(&format!("lab-bench-pc{i}"), i)
                .memory_mib(512)
                .disk(
                    Disk::new(&d, Interface::Ahci)
                        .serial(&format!("LABPC{i}"))
                        .model(DISK_MODEL),
                )
                .start()?,
        );
        disks.push(d);
    }
    network_shell(&mut sender, "lifeboat.serial=shell")?;
    for pc in &mut pcs {
        network_shell(pc, "lifeboat.serial=shell")?;
    }
    let dev = dev_by_serial(&mut sender, "LABSTORE")?;
    sh(
        &mut sender,
        &format!("mount -t ext4 -o ro {dev} /mnt"),
        QUICK,
    )?;
    let check = |n: usize, what: &str| -> Result<()> {
        for (i, d) in disks.iter().take(n).enumerate() {
            if sha256(d)? != want {
                bail!(
                    "{what}: PC {}'s disk differs from a plain restore of the image",
                    i + 1
                );
            }
        }
        Ok(())
    };
    let mut rows = Vec::new();
    for &n in counts {
        let n_us = usize::try_from(n)?;
        let (mut unicast, mut multicast) = (f64::MAX, f64::MAX);
        for _ in 0..2 {
            let t = Instant::now();
            for pc in pcs.iter_mut().take(n_us) {
                job(
                    pc,
                    &format!("lifeboat restore http://{SERVER}/pc.lbi model:{DISK_MODEL} --yes"),
                    "/tmp/unicast.log",
                )?;
            }
            unicast = unicast.min(t.elapsed().as_secs_f64());
            check(n_us, "unicast")?;
            for pc in pcs.iter_mut().take(n_us) {
                background(
                    pc,
                    &format!(
                        "lifeboat receive model:{DISK_MODEL} --yes --interface eth0 --timeout 60"
                    ),
                    "/tmp/receive.log",
                )?;
            }
            let t = Instant::now();
            job(
                &mut sender,
                &format!("lifeboat serve /mnt/pc.lbi --clients {n} --interface eth0"),
                "/tmp/serve.log",
            )?;
            for (i, pc) in pcs.iter_mut().take(n_us).enumerate() {
                let (code, out) = wait_background(pc, "/tmp/receive.log")?;
                if code != 0 {
                    bail!("PC {}: lifeboat receive exited {code}:\n{out}", i + 1);
                }
            }
            multicast = multicast.min(t.elapsed().as_secs_f64());
            check(n_us, "multicast")?;
            eprintln!(
                "bench: lab, {n} PC(s): unicast {unicast:.1} s, multicast {multicast:.1} s (best so far)"
            );
        }
        rows.push(BenchRow {
            receivers: n,
            unicast,
            multicast,
        });
    }
    drop(pcs);
    drop(sender);
    drop(lan);
    std::fs::remove_dir_all(&dir)?;
    Ok(BenchFigures {
        rows,
        image_bytes,
        disk_bytes: MBR_DISK_BYTES,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dnsmasq --test` on a configuration: dnsmasq's own syntax check.
    fn dnsmasq_accepts(name: &str, text: &str) {
        let dir = std::env::temp_dir().join(format!("lifeboat-lab-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let conf = dir.join(name);
        std::fs::write(&conf, text).unwrap_or_else(|e| panic!("{e}"));
        let dnsmasq = require("dnsmasq").unwrap_or_else(|e| panic!("{e}"));
        let out = Command::new(dnsmasq)
            .arg("--test")
            .arg(format!("--conf-file={}", conf.display()))
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = std::fs::remove_dir_all(&dir);
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success() && said.contains("syntax check OK"),
            "dnsmasq refuses {name}: {said}\n{text}"
        );
    }

    #[test]
    fn the_lab_dnsmasq_configurations_pass_dnsmasqs_syntax_check_and_name_each_pc() {
        let dir = Path::new("/nonexistent/lab");
        let tftp = Path::new("/nonexistent/tftp");
        let scripts = [(0, "sender.ipxe")];
        let full = dnsmasq_conf(Dhcp::Full, 3, dir, tftp, &scripts, "receive.ipxe")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            full.contains("dhcp-host=52:54:00:13:00:12,set:pc2,10.231.19.12\n"),
            "{full}"
        );
        assert!(
            full.contains("dhcp-boot=tag:ipxe,tag:pc0,sender.ipxe\n"),
            "{full}"
        );
        assert!(
            full.contains("dhcp-boot=tag:ipxe,tag:!pc0,receive.ipxe\n"),
            "{full}"
        );
        dnsmasq_accepts("full.conf", &full);
        let proxy = dnsmasq_conf(Dhcp::Proxy, 3, dir, tftp, &scripts, "receive.ipxe")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(proxy.contains("dhcp-range=10.231.19.0,proxy\n"), "{proxy}");
        assert!(
            !proxy.contains("10.231.19.12"),
            "the proxy names addresses:\n{proxy}"
        );
        assert!(
            proxy.contains("pxe-service=tag:!pc0,x86PC,\"Lifeboat\",receive.ipxe\n"),
            "{proxy}"
        );
        dnsmasq_accepts("proxy.conf", &proxy);
        let site = site_dhcp_conf(3, dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            site.contains("dhcp-host=52:54:00:13:00:11,10.231.19.11\n"),
            "{site}"
        );
        assert!(!site.contains("boot") && !site.contains("tftp"), "{site}");
        dnsmasq_accepts("site.conf", &site);
    }
}
