//! The machine's own network addresses, from the kernel (`getifaddrs`): for the TUI header and
//! for telling "no network" apart from "server gone".

use std::net::IpAddr;

/// One address of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub interface: String,
    pub addr: IpAddr,
    pub prefix: u8,
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.interface, self.addr, self.prefix)
    }
}

/// True for addresses that reach other machines (not loopback, not IPv6 link-local).
pub fn routable(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_unspecified(),
        IpAddr::V6(v6) => {
            !v6.is_loopback() && !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80
        }
    }
}

/// The routable addresses of every interface, IPv4 first.
pub fn addresses() -> Vec<Address> {
    let Ok(list) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut v = Vec::new();
    for ifa in list {
        let Some(sa) = ifa.address else { continue };
        let mask = ifa.netmask;
        let (addr, prefix) = if let Some(s) = sa.as_sockaddr_in() {
            let p = mask
                .and_then(|m| m.as_sockaddr_in().map(|m| m.ip().to_bits().count_ones()))
                .unwrap_or(32);
            (IpAddr::V4(s.ip()), p)
        } else if let Some(s) = sa.as_sockaddr_in6() {
            let p = mask
                .and_then(|m| m.as_sockaddr_in6().map(|m| m.ip().to_bits().count_ones()))
                .unwrap_or(128);
            (IpAddr::V6(s.ip()), p)
        } else {
            continue;
        };
        if routable(&addr) {
            v.push(Address {
                interface: ifa.interface_name,
                addr,
                prefix: u8::try_from(prefix).unwrap_or(0),
            });
        }
    }
    v.sort_by_key(|a| (a.addr.is_ipv6(), a.interface.clone()));
    v
}

/// Whether any interface has a routable address.
pub fn has_address() -> bool {
    !addresses().is_empty()
}

/// Whether the kernel says the link of `interface` has no carrier (`/sys/class/net/IF/carrier`
/// reads 0: cable unplugged, switch port off, a VM's link set down).
pub fn carrier_lost(interface: &str) -> bool {
    if interface.is_empty() || interface.contains('/') || interface.starts_with('.') {
        return false;
    }
    std::fs::read_to_string(format!("/sys/class/net/{interface}/carrier"))
        .is_ok_and(|c| c.trim() == "0")
}

/// The interfaces of `addrs` when every one of them has lost its carrier, else `None`.
pub fn all_links_down(addrs: &[Address]) -> Option<Vec<String>> {
    let mut names: Vec<String> = addrs.iter().map(|a| a.interface.clone()).collect();
    names.sort();
    names.dedup();
    (!names.is_empty() && names.iter().all(|n| carrier_lost(n))).then_some(names)
}

/// `" (the link is down on eth0)"` when every interface with an address has lost its carrier,
/// else empty: appended to "no answer" messages so the cause is named.
pub fn link_note() -> String {
    match all_links_down(&addresses()) {
        Some(names) => format!(" (the link is down on {})", names.join(", ")),
        None => String::new(),
    }
}

/// The name servers of `/etc/resolv.conf` (written by the DHCP client or `lifeboat.net=`).
pub fn name_servers(resolv_conf: &str) -> Vec<String> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter(|rest| rest.starts_with([' ', '\t']))
        .map(|rest| rest.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `" (name server 10.0.2.3)"`, or `" (no name server: none in /etc/resolv.conf)"`, appended
/// to a failed name lookup.
pub fn resolver_note() -> String {
    let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    match name_servers(&conf).as_slice() {
        [] => " (no name server: none in /etc/resolv.conf)".to_string(),
        [one] => format!(" (name server {one})"),
        many => format!(" (name servers {})", many.join(", ")),
    }
}

/// One line for a screen header: `eth0 10.0.2.15/24`, `eth0 10.0.2.15/24 +1`, or `no network`.
pub fn summary(addrs: &[Address]) -> String {
    match addrs {
        [] => "no network".to_string(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} +{}", rest.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_link_local_do_not_count_as_network() {
        assert!(!routable(&"127.0.0.1".parse().unwrap()));
        assert!(!routable(&"::1".parse().unwrap()));
        assert!(!routable(&"fe80::1".parse().unwrap()));
        assert!(routable(&"10.0.2.15".parse().unwrap()));
        assert!(routable(&"fd00::5".parse().unwrap()));
    }

    #[test]
    fn name_servers_come_from_resolv_conf_lines() {
        let conf = "# by udhcpc\nsearch lan\nnameserver 10.0.2.3\nnameserver\tfd00::3\nnameservers 1.1.1.1\n";
        assert_eq!(name_servers(conf), ["10.0.2.3", "fd00::3"]);
        assert!(name_servers("").is_empty());
        assert!(
            !carrier_lost("../../etc"),
            "never reads outside /sys/class/net"
        );
        assert_eq!(all_links_down(&[]), None);
    }

    #[test]
    fn the_summary_names_the_first_address_and_counts_the_rest() {
        let a = |i: &str, ip: &str| Address {
            interface: i.into(),
            addr: ip.parse().unwrap(),
            prefix: 24,
        };
        assert_eq!(summary(&[]), "no network");
        assert_eq!(summary(&[a("eth0", "10.0.2.15")]), "eth0 10.0.2.15/24");
        assert_eq!(
            summary(&[a("eth0", "10.0.2.15"), a("eth1", "192.168.0.2")]),
            "eth0 10.0.2.15/24 +1"
        );
        // This machine's own list parses (whatever it holds) and never lists loopback.
        assert!(addresses().iter().all(|x| routable(&x.addr)));
    }
}
