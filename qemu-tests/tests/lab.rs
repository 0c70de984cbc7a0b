//! A whole lab at once (issue 19), in QEMU (TCG) on a virtual LAN this test makes and deletes
//! (`qemu_tests::lab`: a network namespace with a bridge and tap devices, dnsmasq for DHCP,
//! proxy-DHCP and TFTP, busybox httpd; nothing reaches a real interface):
//!
//! - five PCs with no boot medium PXE-boot Lifeboat on a LAN that already has a DHCP server (a
//!   plain dnsmasq in its own namespace giving a fixed address per MAC): SeaBIOS → the NIC's
//!   iPXE → the site's DHCP server for the address and a second dnsmasq as proxy-DHCP for the
//!   boot (a PXE menu entry per PC, one script for the sender, one for the receivers, over its
//!   TFTP) → kernel and initramfs over HTTP; the proxy gives no address;
//! - the sender boots to a shell, mounts its store drive (an ext4 drive holding an image of the
//!   test suite's MBR/BIOS system disk, made on the host by the same `lifeboat`) and runs
//!   `lifeboat serve pc.lbi --clients 4`;
//! - four receivers boot with `lifeboat.job=http://…/receive.toml lifeboat.after=poweroff`: a
//!   `receive` job onto the disk whose model is `LABPC-SSD`, verified, then power off;
//! - the fourth receiver's QEMU is killed once its disk is being written: the other three
//!   complete and power off, each disk hash-equal to a plain `lifeboat restore` of the image on
//!   the host; the killed one has no partition table; the sender reports three done and the
//!   fourth (by its address) dropped;
//! - one restored disk then boots alone (SeaBIOS, the system disk's marker).
//!
//! Needs qemu-system-x86, ipxe-qemu, dnsmasq-base, busybox-static and iproute2 (`cargo xtask
//! deps`), and root (network namespaces, tap devices). Run with `cargo xtask qemu-test --test lab`.

use anyhow::{bail, Context, Result};
use qemu_tests::e2e::{
    boots_alone, dev_by_serial, ext4_drive, host_lifeboat_run, job_status, report, sh, JOB,
};
use qemu_tests::fixture::{path, scratch, sha256, sparse_file};
use qemu_tests::lab::{self, Dhcp, Lan, DISK_MODEL, SERVER};
use qemu_tests::system_disk::{self, MBR_DISK_BYTES};
use qemu_tests::vm::{Disk, Firmware, Image, Interface, Vm};
use std::path::Path;
use std::time::{Duration, Instant};

/// RAM of each PC: the initramfs unpacked plus the receiver's stream window.
const RAM_MIB: u32 = 512;
/// The killed receiver dies once this much of its disk is written (mid-session).
const KILL_AFTER: u64 = 4 << 20;
const SENDER_ARGS: &str = "lifeboat.serial=shell";

fn receiver_args() -> String {
    format!("lifeboat.job=http://{SERVER}/receive.toml lifeboat.after=poweroff")
}

/// True when sector 0 of `disk` ends with the MBR signature.
fn has_mbr(disk: &Path) -> Result<bool> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(disk)?;
    let mut sig = [0u8; 2];
    f.read_exact_at(&mut sig, 510)?;
    Ok(sig == [0x55, 0xaa])
}

/// Kills receiver `vm` once `disk` holds [`KILL_AFTER`] bytes; returns how long that took.
fn kill_mid_session(vm: Vm, disk: &Path) -> Result<Duration> {
    let t = Instant::now();
    while lab::written(disk) < KILL_AFTER {
        if t.elapsed() > JOB {
            bail!("the fourth receiver never started writing its disk");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(vm);
    Ok(t.elapsed())
}

#[test]
fn pxe_booted_lab_receives_one_multicast_three_disks_equal_a_restore_the_killed_one_is_dropped(
) -> Result<()> {
    let t0 = Instant::now();
    let img = Image::find()?;
    let rom = Path::new("/usr/lib/ipxe/qemu/efi-virtio.rom");
    if !rom.is_file() {
        bail!("{} is missing: install ipxe-qemu", rom.display());
    }
    let sys = system_disk::mbr_bios(&img.vmlinuz)?;
    let dir = scratch("lab")?;
    let (www, tftp) = lab::roots(&dir, &img)?;
    let store = dir.join("store");
    std::fs::create_dir_all(&store)?;
    let image = store.join("pc.lbi");
    let (code, out) = host_lifeboat_run(&["backup", path(&sys.path)?, path(&image)?])?;
    assert_eq!(code, 0, "host backup of the system disk:\n{out}");
    // What every receiver's disk must be: a plain restore of the same image.
    let plain = dir.join("plain.img");
    sparse_file(&plain, MBR_DISK_BYTES)?;
    let (code, out) = host_lifeboat_run(&["restore", path(&image)?, path(&plain)?, "--yes"])?;
    assert_eq!(code, 0, "host restore of the image:\n{out}");
    let want = sha256(&plain)?;
    std::fs::remove_file(&plain)?;
    let store_mib = (std::fs::metadata(&image)?.len() >> 20) + 48;
    let store_drive = ext4_drive(&dir, "store.img", store_mib, "LABSTORE", Some(&store))?;

    std::fs::write(
        www.join("receive.toml"),
        format!(
            "[[step]]\naction = \"receive\"\ntarget = \"model:{DISK_MODEL}\"\nverify = true\n\
             interface = \"eth0\"\ntimeout = 60\n"
        ),
    )?;
    std::fs::write(tftp.join("sender.ipxe"), lab::ipxe_script(SENDER_ARGS))?;
    std::fs::write(
        tftp.join("receive.ipxe"),
        lab::ipxe_script(&receiver_args()),
    )?;
    let mut lan = Lan::new(5, &dir)?;
    lan.start_httpd(&www)?;
    // The site's DHCP server keeps giving the addresses; dnsmasq only answers boot requests.
    lan.start_site_dhcp()?;
    lan.start_dnsmasq(Dhcp::Proxy, &tftp, &[(0, "sender.ipxe")], "receive.ipxe")?;

    // PC 0 sends; PCs 1–4 receive onto a blank disk each (SeaBIOS finds nothing to boot there
    // and goes to the network).
    let disks: Vec<_> = (1..=4).map(|i| dir.join(format!("pc{i}.img"))).collect();
    let mut receivers = Vec::new();
    for (i, d) in (1..=4).zip(&disks) {
        sparse_file(d, MBR_DISK_BYTES)?;
        receivers.push(
            lan.vm(&format!("lab-pc{i}"), i)
                .memory_mib(RAM_MIB)
                .disk(
                    Disk::new(d, Interface::Ahci)
                        .serial(&format!("LABPC{i}"))
                        .model(DISK_MODEL),
                )
                .start()?,
        );
    }
    let mut sender = lan
        .vm("lab-sender", 0)
        .memory_mib(RAM_MIB)
        .disk(Disk::new(&store_drive, Interface::Virtio).serial("LABSTORE"))
        .start()?;
    lab::network_shell(&mut sender, SENDER_ARGS)?;
    let dev = dev_by_serial(&mut sender, "LABSTORE")?;
    sh(
        &mut sender,
        &format!("mount -t ext4 -o ro {dev} /mnt"),
        Duration::from_secs(60),
    )?;
    let fourth = receivers.pop().context("four receivers")?;
    let fourth_disk = disks[3].clone();
    let killer = std::thread::spawn(move || kill_mid_session(fourth, &fourth_disk));
    let session = Instant::now();
    let (serve_code, served) = job_status(
        &mut sender,
        "lifeboat serve /mnt/pc.lbi --clients 4 --interface eth0 --retries-until-drop 30 --json",
        "/tmp/serve.log",
    )?;
    let killed_after = killer
        .join()
        .map_err(|_| anyhow::anyhow!("the killer thread panicked"))??;
    eprintln!(
        "lab: the session took {:.0} s; the fourth receiver was killed {:.0} s after the sender started",
        session.elapsed().as_secs_f64(),
        killed_after.as_secs_f64()
    );
    for (i, mut vm) in receivers.into_iter().enumerate() {
        vm.wait_exit(JOB)
            .with_context(|| format!("receiver {} did not power off", i + 1))?;
        let out = String::from_utf8_lossy(&vm.output_from(0)).into_owned();
        assert!(
            out.contains(&format!(
                "Command line: {} {}",
                lab::CMDLINE,
                receiver_args()
            )),
            "receiver {} did not boot through iPXE with the receive job",
            i + 1
        );
        assert!(
            out.contains("unattended job finished: exit code 0"),
            "receiver {}'s job failed:\n{}",
            i + 1,
            &out[out.len().saturating_sub(6000)..]
        );
    }
    drop(sender);
    let (proxy, dhcp) = (lan.dnsmasq_log(), lan.site_dhcp_log());
    drop(lan);

    for (i, d) in disks.iter().take(3).enumerate() {
        assert_eq!(
            sha256(d)?,
            want,
            "receiver {}'s disk differs from a plain restore of the image",
            i + 1
        );
    }
    assert!(
        !has_mbr(&disks[3])?,
        "the killed receiver's disk has a partition table"
    );
    // Each PC got its address from the site's DHCP server, and its script from the proxy
    // dnsmasq, which gave no address.
    for i in 0..5u32 {
        let ip = format!("{}.{}", lab::NET, 10 + i);
        assert!(
            dhcp.contains(&format!("DHCPACK(eth0) {ip}")),
            "{ip}:\n{dhcp}"
        );
    }
    assert!(proxy.contains("PXE(br0)"), "{proxy}");
    assert!(
        !proxy.contains("DHCPACK"),
        "the proxy gave an address:\n{proxy}"
    );
    for (script, want) in [("sender.ipxe", 1), ("receive.ipxe", 4)] {
        let sent = proxy
            .lines()
            .filter(|l| l.contains("sent") && l.contains(script))
            .count();
        assert!(
            sent >= want,
            "{script} sent {sent} times over TFTP:\n{proxy}"
        );
    }

    // The sender: three done, the fourth dropped, the session reported failed.
    assert_ne!(serve_code, 0, "{served}");
    let line = served
        .lines()
        .find(|l| l.contains("\"event\":\"done\""))
        .with_context(|| format!("no result line from lifeboat serve:\n{served}"))?;
    let v: serde_json::Value = serde_json::from_str(line.trim())
        .with_context(|| format!("lifeboat serve's result: {line}"))?;
    let state = |addr: &str| -> Option<String> {
        v["receivers"].as_array()?.iter().find_map(|r| {
            (r["address"].as_str()? == addr).then(|| r["state"].as_str().unwrap_or("").to_string())
        })
    };
    for i in 1..=3 {
        let ip = format!("{}.{}", lab::NET, 10 + i);
        assert_eq!(state(&ip).as_deref(), Some("done"), "{ip}: {served}");
    }
    let ip4 = format!("{}.14", lab::NET);
    assert_eq!(state(&ip4).as_deref(), Some("dropped"), "{served}");
    assert_eq!(v["result"], "failed", "{served}");

    let booted = // (on virtio: QEMU refuses a read-only SATA disk, and the check only needs SeaBIOS to
    // find the disk's boot code)
    boots_alone("lab-restored", &disks[0], Interface::Virtio, Firmware::Bios)?;
    eprintln!(
        "lab: a restored disk booted alone in {:.0} s",
        booted.as_secs_f64()
    );
    report("lab", t0);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
