//! Kernel uevents from the `NETLINK_KOBJECT_UEVENT` socket: parsing (pure) and the socket.

use std::os::fd::{AsRawFd, OwnedFd};

/// The fields of a kernel uevent init cares about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Uevent {
    pub action: String,
    pub devpath: String,
    pub subsystem: String,
    pub modalias: Option<String>,
    pub devname: Option<String>,
    pub devtype: Option<String>,
}

/// Parses one kernel uevent message (`action@devpath\0KEY=VALUE\0...`). Messages from udev
/// (`libudev` magic) and malformed ones give `None`.
pub fn parse(msg: &[u8]) -> Option<Uevent> {
    let mut parts = msg.split(|&b| b == 0).filter(|p| !p.is_empty());
    let header = std::str::from_utf8(parts.next()?).ok()?;
    let (action, devpath) = header.split_once('@')?;
    let mut ev = Uevent {
        action: action.to_string(),
        devpath: devpath.to_string(),
        ..Default::default()
    };
    for part in parts {
        let Ok(kv) = std::str::from_utf8(part) else {
            continue;
        };
        let Some((k, v)) = kv.split_once('=') else {
            continue;
        };
        match k {
            "ACTION" => ev.action = v.to_string(),
            "DEVPATH" => ev.devpath = v.to_string(),
            "SUBSYSTEM" => ev.subsystem = v.to_string(),
            "MODALIAS" => ev.modalias = Some(v.to_string()),
            "DEVNAME" => ev.devname = Some(v.to_string()),
            "DEVTYPE" => ev.devtype = Some(v.to_string()),
            _ => {}
        }
    }
    Some(ev)
}

/// A non-blocking uevent socket bound to the kernel's multicast group.
#[derive(Debug)]
pub struct UeventSocket {
    fd: OwnedFd,
}

impl UeventSocket {
    pub fn open() -> nix::Result<Self> {
        use nix::sys::socket::{
            bind, setsockopt, socket, sockopt, AddressFamily, NetlinkAddr, SockFlag, SockProtocol,
            SockType,
        };
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::NetlinkKObjectUEvent,
        )?;
        // A burst of events at coldplug time must not overflow the default buffer.
        let _ = setsockopt(&fd, sockopt::RcvBuf, &(4 << 20));
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 1))?;
        Ok(UeventSocket { fd })
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Every event waiting on the socket (does not block).
    pub fn drain(&self) -> Vec<Uevent> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 16384];
        loop {
            match nix::sys::socket::recv(
                self.fd.as_raw_fd(),
                &mut buf,
                nix::sys::socket::MsgFlags::empty(),
            ) {
                Ok(0) => break,
                Ok(n) => {
                    if let Some(ev) = buf.get(..n).and_then(parse) {
                        out.push(ev);
                    }
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_event_with_modalias_is_parsed() {
        let msg = b"add@/devices/pci0000:00/0000:00:04.0/usb1/1-1/1-1:1.0\0ACTION=add\0DEVPATH=/devices/pci0000:00/0000:00:04.0/usb1/1-1/1-1:1.0\0SUBSYSTEM=usb\0DEVTYPE=usb_interface\0MODALIAS=usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00\0SEQNUM=1234\0";
        let ev = parse(msg).unwrap();
        assert_eq!(ev.action, "add");
        assert_eq!(ev.subsystem, "usb");
        assert_eq!(ev.devtype.as_deref(), Some("usb_interface"));
        assert_eq!(
            ev.modalias.as_deref(),
            Some("usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00")
        );
    }

    #[test]
    fn block_event_carries_devname() {
        let ev = parse(b"add@/devices/virtual/block/loop0\0ACTION=add\0SUBSYSTEM=block\0DEVNAME=loop0\0DEVTYPE=disk\0").unwrap();
        assert_eq!(ev.devname.as_deref(), Some("loop0"));
        assert_eq!(ev.modalias, None);
    }

    #[test]
    fn udev_and_garbage_messages_are_rejected() {
        assert_eq!(parse(b"libudev\0\xfe\xed\xca\xfe"), None);
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"\xff\xff@x\0"), None);
        // Garbage fields after a valid header are ignored, not fatal.
        let ev = parse(b"remove@/x\0\xff=\x01\0nokey\0").unwrap();
        assert_eq!(ev.action, "remove");
    }
}
