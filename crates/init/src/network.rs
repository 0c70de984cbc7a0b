//! Network bring-up as data: which interfaces are wired Ethernet links, and the commands that
//! configure one for the `lifeboat.net=` setting. Init executes the commands (busybox `ip` and
//! `udhcpc`); everything here is pure and tested without a network.
//!
//! DHCP runs busybox `udhcpc` in the foreground on every wired link (init reaps it; it renews its
//! lease for as long as Lifeboat runs and keeps asking while the cable is out). Its event script,
//! [`UDHCPC_SCRIPT`] (kept in `initramfs/rootfs/`), sets the address, the default route and
//! `/etc/resolv.conf`, and records the lease under [`NET_DIR`]. A static address goes to the first
//! wired interface that has a link (else the first one).

use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;

/// The udhcpc event script in the initramfs.
pub const UDHCPC_SCRIPT: &str = "/usr/share/udhcpc/default.script";
/// Per-interface state: `<iface>.lease` (`ADDR/PREFIX`), `<iface>.resolv`, `<iface>.log`.
pub const NET_DIR: &str = "/run/lifeboat/net";
/// The resolver configuration musl's `getaddrinfo` reads.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Modules of the kernel's network-file-system clients the image stores use (SMB, NFS v4 and
/// v3), loaded with their soft dependencies once the network is configured: nothing else would
/// load them (no udev, and the `lifeboat` binary does not load modules).
/// The ciphers and hashes SMB 3 allocates at negotiation (gcm(aes), ccm(aes), cmac(aes),
/// sha512) come first: the kernel's own request for them would need a modprobe that reads
/// templates' dependencies, and a missing one fails the mount with ENOENT.
pub const STORE_MODULES: &[&str] = &[
    "aesni_intel",
    "ghash_clmulni_intel",
    "ctr",
    "ghash_generic",
    "gcm",
    "ccm",
    "cmac",
    "sha512_generic",
    "ecb",
    "cifs",
    "nfsv4",
    "nfsv3",
];

/// `lifeboat.net=`: how wired links get their address.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NetConfig {
    /// DHCP on every wired link (the default).
    #[default]
    Dhcp,
    /// A fixed address on the first wired link.
    Static(StaticNet),
    /// No network configuration at all (`lifeboat.net=off`).
    Off,
}

/// `ADDR/PREFIX,GATEWAY,DNS` (gateway and DNS may be empty or left out; several DNS servers are
/// separated by `+`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticNet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
}

impl fmt::Display for NetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetConfig::Dhcp => write!(f, "dhcp"),
            NetConfig::Off => write!(f, "off"),
            NetConfig::Static(s) => {
                write!(f, "{}/{}", s.addr, s.prefix)?;
                if let Some(g) = s.gateway {
                    write!(f, " gateway {g}")?;
                }
                for d in &s.dns {
                    write!(f, " dns {d}")?;
                }
                Ok(())
            }
        }
    }
}

/// Parses the value of `lifeboat.net=`.
pub fn parse(value: &str) -> Result<NetConfig, String> {
    match value {
        "dhcp" => return Ok(NetConfig::Dhcp),
        "off" | "none" => return Ok(NetConfig::Off),
        _ => {}
    }
    let mut parts = value.split(',');
    let cidr = parts.next().unwrap_or_default();
    let (addr, prefix) = cidr
        .split_once('/')
        .ok_or_else(|| format!("{cidr:?} is not ADDR/PREFIX"))?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IPv4 address"))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| (1..=32).contains(p))
        .ok_or_else(|| format!("{prefix:?} is not a prefix length from 1 to 32"))?;
    let gateway = match parts.next().filter(|g| !g.is_empty()) {
        Some(g) => Some(
            g.parse()
                .map_err(|_| format!("gateway {g:?} is not an IPv4 address"))?,
        ),
        None => None,
    };
    let mut dns = Vec::new();
    if let Some(list) = parts.next() {
        for d in list.split('+').filter(|d| !d.is_empty()) {
            dns.push(
                d.parse()
                    .map_err(|_| format!("DNS server {d:?} is not an IPv4 address"))?,
            );
        }
    }
    if parts.next().is_some() {
        return Err("expected at most ADDR/PREFIX,GATEWAY,DNS".into());
    }
    Ok(NetConfig::Static(StaticNet {
        addr,
        prefix,
        gateway,
        dns,
    }))
}

/// True for a physical (or virtual-hardware) Ethernet interface under `class_net`
/// (`/sys/class/net`): it has a `device` link, ARP type 1, and is not a wireless one.
pub fn is_wired(class_net: &Path, name: &str) -> bool {
    let dir = class_net.join(name);
    let ether = std::fs::read_to_string(dir.join("type")).is_ok_and(|t| t.trim() == "1");
    ether
        && dir.join("device").exists()
        && !dir.join("wireless").exists()
        && !dir.join("phy80211").exists()
}

/// The wired interfaces under `class_net`, sorted by name.
pub fn wired_interfaces(class_net: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(class_net)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| is_wired(class_net, n))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Whether the interface reports a link (`carrier` is 1); `None` while it is down or unknown.
pub fn carrier(class_net: &Path, name: &str) -> Option<bool> {
    std::fs::read_to_string(class_net.join(name).join("carrier"))
        .ok()
        .map(|c| c.trim() == "1")
}

/// A program to run: its arguments, and whether init waits for it (`ip`) or leaves it running
/// (`udhcpc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub argv: Vec<String>,
    pub wait: bool,
}

fn ip(args: &[&str]) -> Command {
    Command {
        argv: std::iter::once("ip")
            .chain(args.iter().copied())
            .map(str::to_string)
            .collect(),
        wait: true,
    }
}

/// The commands that bring `iface` up under `config`. `static_here` says whether this interface
/// takes the static address (only one does).
pub fn commands(config: &NetConfig, iface: &str, static_here: bool) -> Vec<Command> {
    let mut v = vec![ip(&["link", "set", "dev", iface, "up"])];
    match config {
        NetConfig::Off => return Vec::new(),
        NetConfig::Dhcp => v.push(Command {
            argv: [
                "udhcpc",
                "-f",
                "-R",
                "-i",
                iface,
                "-s",
                UDHCPC_SCRIPT,
                "-t",
                "4",
                "-T",
                "2",
                "-A",
                "5",
                "-x",
                "hostname:lifeboat",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            wait: false,
        }),
        NetConfig::Static(s) if static_here => {
            let cidr = format!("{}/{}", s.addr, s.prefix);
            v.push(ip(&["addr", "add", &cidr, "dev", iface]));
            if let Some(g) = s.gateway {
                v.push(ip(&[
                    "route",
                    "add",
                    "default",
                    "via",
                    &g.to_string(),
                    "dev",
                    iface,
                ]));
            }
        }
        NetConfig::Static(_) => {}
    }
    v
}

/// Which of `ifaces` takes a static address: the first with a link, else the first.
pub fn static_interface(ifaces: &[String], has_link: impl Fn(&str) -> bool) -> Option<&str> {
    ifaces
        .iter()
        .find(|i| has_link(i))
        .or(ifaces.first())
        .map(String::as_str)
}

/// The `resolv.conf` text for a static configuration (`None` without DNS servers).
pub fn resolv_conf(s: &StaticNet) -> Option<String> {
    if s.dns.is_empty() {
        return None;
    }
    Some(s.dns.iter().map(|d| format!("nameserver {d}\n")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_net_option_reads_dhcp_off_and_a_static_address() {
        assert_eq!(parse("dhcp"), Ok(NetConfig::Dhcp));
        assert_eq!(parse("off"), Ok(NetConfig::Off));
        let s = parse("192.168.1.50/24,192.168.1.1,192.168.1.2+9.9.9.9").unwrap();
        assert_eq!(
            s,
            NetConfig::Static(StaticNet {
                addr: Ipv4Addr::new(192, 168, 1, 50),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(192, 168, 1, 1)),
                dns: vec![Ipv4Addr::new(192, 168, 1, 2), Ipv4Addr::new(9, 9, 9, 9)],
            })
        );
        assert_eq!(
            s.to_string(),
            "192.168.1.50/24 gateway 192.168.1.1 dns 192.168.1.2 dns 9.9.9.9"
        );
        let bare = parse("10.0.0.9/8").unwrap();
        assert_eq!(bare.to_string(), "10.0.0.9/8");
        assert_eq!(parse("10.0.0.9/8,,").unwrap(), bare);
    }

    #[test]
    fn malformed_static_addresses_are_refused_with_the_reason() {
        for (v, why) in [
            ("10.0.0.9", "not ADDR/PREFIX"),
            ("10.0.0/24", "not an IPv4 address"),
            ("10.0.0.9/33", "prefix length"),
            ("10.0.0.9/0", "prefix length"),
            ("10.0.0.9/24,gw", "gateway"),
            ("10.0.0.9/24,10.0.0.1,dns", "DNS server"),
            ("10.0.0.9/24,10.0.0.1,10.0.0.2,extra", "at most"),
        ] {
            let e = parse(v).unwrap_err();
            assert!(e.contains(why), "{v}: {e}");
        }
    }

    #[test]
    fn dhcp_brings_the_link_up_and_leaves_udhcpc_running_with_our_script() {
        let c = commands(&NetConfig::Dhcp, "eth0", false);
        assert_eq!(c[0].argv, ["ip", "link", "set", "dev", "eth0", "up"]);
        assert!(c[0].wait);
        assert_eq!(c[1].argv[0], "udhcpc");
        assert!(!c[1].wait, "udhcpc keeps renewing its lease");
        let s = c[1].argv.join(" ");
        assert!(
            s.contains("-i eth0") && s.contains(UDHCPC_SCRIPT) && s.contains(" -f"),
            "{s}"
        );
        assert!(commands(&NetConfig::Off, "eth0", true).is_empty());
    }

    #[test]
    fn a_static_address_goes_to_one_interface_with_its_route() {
        let cfg = parse("10.1.2.3/16,10.1.0.1,10.1.0.2").unwrap();
        let c = commands(&cfg, "eth1", true);
        let lines: Vec<String> = c.iter().map(|c| c.argv.join(" ")).collect();
        assert_eq!(
            lines,
            [
                "ip link set dev eth1 up",
                "ip addr add 10.1.2.3/16 dev eth1",
                "ip route add default via 10.1.0.1 dev eth1"
            ]
        );
        assert_eq!(commands(&cfg, "eth0", false).len(), 1, "only brought up");
        let NetConfig::Static(s) = cfg else {
            unreachable!()
        };
        assert_eq!(resolv_conf(&s).unwrap(), "nameserver 10.1.0.2\n");
        let ifaces = vec!["eth0".to_string(), "eth1".to_string()];
        assert_eq!(static_interface(&ifaces, |i| i == "eth1"), Some("eth1"));
        assert_eq!(static_interface(&ifaces, |_| false), Some("eth0"));
        assert_eq!(static_interface(&[], |_| true), None);
    }

    #[test]
    fn only_wired_ethernet_devices_are_configured() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path();
        let make = |name: &str, ty: &str, device: bool, wireless: bool| {
            let d = net.join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("type"), format!("{ty}\n")).unwrap();
            if device {
                std::fs::create_dir_all(d.join("device")).unwrap();
            }
            if wireless {
                std::fs::create_dir_all(d.join("wireless")).unwrap();
            }
        };
        make("lo", "772", false, false);
        make("eth0", "1", true, false);
        make("enp3s0", "1", true, false);
        make("wlan0", "1", true, true);
        make("br0", "1", false, false);
        assert_eq!(wired_interfaces(net), ["enp3s0", "eth0"]);
        std::fs::write(net.join("eth0/carrier"), "1\n").unwrap();
        assert_eq!(carrier(net, "eth0"), Some(true));
        assert_eq!(carrier(net, "enp3s0"), None);
        assert!(wired_interfaces(&net.join("missing")).is_empty());
    }
}
