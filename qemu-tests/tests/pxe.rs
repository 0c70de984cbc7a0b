//! PXE boot in QEMU (issue #17): a machine with a blank disk and no boot medium boots Lifeboat
//! from the network and restores itself unattended, then boots alone from the restored disk.
//!
//! - QEMU's user-mode network answers DHCP with a boot file on its built-in TFTP server
//!   (`tftp=DIR,bootfile=boot.ipxe`); SeaBIOS finds nothing to boot on the blank disk and runs
//!   the NIC's option ROM, QEMU's iPXE (Debian `ipxe-qemu`), which fetches that iPXE script;
//! - the script fetches Lifeboat's kernel and initramfs over HTTP from busybox `httpd` on the
//!   host's loopback (seen by the guest as 10.0.2.2) and boots them with
//!   `lifeboat.job=http://10.0.2.2:PORT/job.toml lifeboat.after=poweroff`;
//! - the job restores `http://10.0.2.2:PORT/pc.lbi` (made on the host by the same `lifeboat`
//!   from the cached MBR/BIOS system disk) onto the blank disk and powers off;
//! - the host finds the disk hash-equal to the system disk, and the disk then boots alone
//!   (SeaBIOS, the fixture's marker line).
//!
//! Needs qemu-system-x86, ipxe-qemu and busybox-static (`cargo xtask deps`).

use anyhow::{bail, Context, Result};
use qemu_tests::e2e::{boots_alone, host_lifeboat_run, report, BOOT, JOB};
use qemu_tests::fixture::{path, require, scratch, sha256, sparse_file};
use qemu_tests::system_disk;
use qemu_tests::vm::{Disk, Firmware, Image, Interface, VmBuilder};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// busybox httpd on the host's loopback; killed on drop.
struct Httpd(Child);

impl Drop for Httpd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_httpd(root: &std::path::Path) -> Result<(Httpd, u16)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(require("busybox")?)
        .args(["httpd", "-f", "-p", &format!("127.0.0.1:{port}"), "-h"])
        .arg(root)
        .stdin(Stdio::null())
        .spawn()
        .context("starting busybox httpd")?;
    let mut server = Httpd(child);
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = server.0.try_wait()? {
            bail!("busybox httpd exited at once: {status}");
        }
        if t.elapsed() > Duration::from_secs(10) {
            bail!("busybox httpd did not listen on 127.0.0.1:{port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((server, port))
}

#[test]
fn pxe_booted_lifeboat_restores_the_machine_from_http_and_it_then_boots_alone() -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let rom = std::path::Path::new("/usr/lib/ipxe/qemu/efi-virtio.rom");
    if !rom.is_file() {
        bail!("{} is missing: install ipxe-qemu", rom.display());
    }
    let sys = system_disk::mbr_bios(&img.vmlinuz)?;
    let dir = scratch("pxe")?;
    let (www, tftp) = (dir.join("www"), dir.join("tftp"));
    std::fs::create_dir_all(&www)?;
    std::fs::create_dir_all(&tftp)?;
    std::fs::copy(&img.vmlinuz, www.join("vmlinuz"))?;
    std::fs::copy(&img.initramfs, www.join("initramfs.img"))?;
    let (code, out) = host_lifeboat_run(&["backup", path(&sys.path)?, path(&www.join("pc.lbi"))?])?;
    assert_eq!(code, 0, "host backup of the system disk:\n{out}");
    let (_httpd, port) = start_httpd(&www)?;
    let base = format!("http://10.0.2.2:{port}");
    std::fs::write(
        www.join("job.toml"),
        format!(
            "[[step]]\naction = \"restore\"\nimage = \"{base}/pc.lbi\"\ntarget = \"serial:TGT1\"\n\
             verify = true\n"
        ),
    )?;
    std::fs::write(
        tftp.join("boot.ipxe"),
        format!(
            "#!ipxe\n\
             echo lifeboat-pxe: chain-loaded over TFTP\n\
             kernel {base}/vmlinuz console=ttyS0,115200 lifeboat.job={base}/job.toml lifeboat.after=poweroff\n\
             initrd {base}/initramfs.img\n\
             boot\n"
        ),
    )?;
    let size = std::fs::metadata(&sys.path)?.len();
    let target = dir.join("blank.img");
    sparse_file(&target, size)?;

    let mut vm = VmBuilder::new("pxe")
        .memory_mib(1024)
        .nic(&format!(
            "user,model=virtio-net-pci,tftp={},bootfile=boot.ipxe",
            path(&tftp)?
        ))
        .disk(Disk::new(&target, Interface::Virtio).serial("TGT1"))
        .start()?;
    // No -kernel, no boot medium: the kernel runs with the command line of the iPXE script
    // that QEMU's TFTP server handed out, so it came through iPXE from the HTTP server.
    vm.expect("Linux version", BOOT)?;
    vm.expect(
        &format!(
            "Command line: console=ttyS0,115200 lifeboat.job={base}/job.toml lifeboat.after=poweroff"
        ),
        BOOT,
    )?;
    vm.expect("lifeboat-net: eth0: bound 10.0.2.15/24", BOOT)?;
    vm.expect(&format!("job {base}/job.toml started"), BOOT)?;
    let finished = vm.expect("unattended job finished: ", JOB)?;
    vm.wait_exit(Duration::from_secs(120))?;
    let out = vm.output_from(0);
    drop(vm);
    assert!(
        String::from_utf8_lossy(&out).contains("unattended job finished: exit code 0"),
        "the job did not succeed ({finished}):\n{}",
        String::from_utf8_lossy(&out[out.len().saturating_sub(6000)..])
    );
    assert_eq!(
        sha256(&target)?,
        sha256(&sys.path)?,
        "the restored disk differs from the system disk"
    );
    let booted = boots_alone("pxe-restored", &target, Interface::Virtio, Firmware::Bios)?;
    eprintln!(
        "the restored disk booted alone in {:.0} s",
        booted.as_secs_f64()
    );
    report("pxe", t0);
    Ok(())
}
