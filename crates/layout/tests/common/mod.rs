//! Helpers shared by the layout tests: a `BlockIo` over an image file, fixtures made by sgdisk
//! and sfdisk, and parsers for their output.
#![allow(dead_code)]

use anyhow::{Context, Result};
use disk::BlockIo;
use qemu_tests::fixture;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A disk image file seen through `BlockIo` with a chosen logical sector size.
#[derive(Debug)]
pub struct FileIo {
    file: File,
    path: PathBuf,
    sector: u32,
}

impl FileIo {
    pub fn open(path: &Path, sector: u32) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(FileIo {
            file,
            path: path.to_path_buf(),
            sector,
        })
    }
}

impl BlockIo for FileIo {
    fn len(&self) -> u64 {
        self.file.metadata().map(|m| m.len()).unwrap_or(0)
    }
    fn logical_sector_size(&self) -> u32 {
        self.sector
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > self.len())
        {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end",
            ));
        }
        self.file.read_exact_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > self.len())
        {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "write past the end",
            ));
        }
        self.file.write_all_at(buf, offset)
    }
    fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

pub const MIB: u64 = 1 << 20;

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

/// A 64 MiB GPT disk made by sgdisk: partitions 1 (EFI, 1 MiB at 2048, attribute bit 0),
/// 3 (Linux filesystem "root", attribute bits 60 and 63, 8 MiB), 4 (Microsoft basic data
/// "Données", 4 MiB) — entry 2 left empty.
pub fn sgdisk_gpt(dir: &Path, name: &str, size: u64) -> Result<PathBuf> {
    let img = dir.join(name);
    fixture::sparse_file(&img, size)?;
    fixture::run(
        "sgdisk",
        &[
            "-o",
            "-n",
            "1:2048:+1M",
            "-t",
            "1:ef00",
            "-c",
            "1:EFI system",
            "-A",
            "1:set:0",
            "-n",
            "3:0:+8M",
            "-t",
            "3:8300",
            "-c",
            "3:root",
            "-A",
            "3:set:60",
            "-A",
            "3:set:63",
            "-n",
            "4:0:+4M",
            "-t",
            "4:0700",
            "-c",
            "4:Données",
            p(&img),
        ],
    )?;
    Ok(img)
}

/// A 64 MiB MBR disk made by sfdisk: 1 (Linux, bootable, 4 MiB at 1 MiB), 2 (FAT32 LBA, 4 MiB),
/// 3 extended over the rest, with logicals 5 (Linux, 4 MiB), 6 (swap, 2 MiB), 7 (Linux, 8 MiB).
pub fn sfdisk_mbr(dir: &Path, name: &str) -> Result<PathBuf> {
    let img = dir.join(name);
    fixture::sparse_file(&img, 64 * MIB)?;
    let script = "label: dos\nlabel-id: 0x12345678\n\
        start=2048, size=8192, type=83, bootable\n\
        size=8192, type=c\n\
        type=5\n\
        size=8192, type=83\n\
        size=4096, type=82\n\
        size=16384, type=83\n";
    sfdisk_script(&img, script, &[])?;
    Ok(img)
}

/// Runs `sfdisk [extra] img` with `script` on stdin.
pub fn sfdisk_script(img: &Path, script: &str, extra: &[&str]) -> Result<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let tool = fixture::require("sfdisk")?;
    let mut child = Command::new(tool)
        .args(["--no-reread", "--no-tell-kernel", "-q"])
        .args(extra)
        .arg(img)
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "sfdisk failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `sfdisk --json img` parsed.
pub fn sfdisk_json(img: &Path, extra: &[&str]) -> Result<serde_json::Value> {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    args.push(p(img));
    let out = fixture::run("sfdisk", &args)?;
    Ok(serde_json::from_str(&out)?)
}

/// The value after `key` on the line starting with `key` in sgdisk output.
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(key))
        .map(str::trim)
}

/// First whitespace-separated word of a field.
pub fn first_word<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    field(text, key).and_then(|v| v.split_whitespace().next())
}

/// The partition numbers listed by `sgdisk -p`.
pub fn sgdisk_numbers(img: &Path) -> Result<Vec<u32>> {
    let out = fixture::run("sgdisk", &["-p", p(img)])?;
    let mut nums = Vec::new();
    let mut in_table = false;
    for l in out.lines() {
        if l.trim_start().starts_with("Number") {
            in_table = true;
            continue;
        }
        if in_table {
            if let Some(n) = l.split_whitespace().next().and_then(|w| w.parse().ok()) {
                nums.push(n);
            }
        }
    }
    Ok(nums)
}

/// Runs interactive `fdisk args... img` with `keys` on stdin (fdisk's `-b 4096` makes 4K-sector
/// tables on image files; this sfdisk version lacks `--sector-size`).
pub fn fdisk_keys(img: &Path, args: &[&str], keys: &str) -> Result<()> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let tool = fixture::require("fdisk")?;
    let mut child = Command::new(tool)
        .args(args)
        .arg(img)
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(keys.as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "fdisk failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A 64 MiB GPT image with 4096-byte sectors made by `fdisk -b 4096`: partition 1 (EFI System,
/// LBA 256, 2048 sectors), partition 2 (Linux filesystem "root", 4096 sectors).
pub fn fdisk_gpt_4k(dir: &Path, name: &str) -> Result<PathBuf> {
    let img = dir.join(name);
    fixture::sparse_file(&img, 64 * MIB)?;
    fdisk_keys(
        &img,
        &["-b", "4096"],
        "g\nn\n1\n256\n+8M\nt\n1\nn\n2\n\n+16M\nx\nn\n2\nroot\nr\nw\n",
    )?;
    Ok(img)
}

/// `fdisk -b SECTOR -l` rows: (start, sectors, name, type GUID) per partition.
pub fn fdisk_rows(img: &Path, sector: u32) -> Result<Vec<(u64, u64, String, String)>> {
    let out = fixture::run(
        "fdisk",
        &[
            "-b",
            &sector.to_string(),
            "-l",
            "-o",
            "Device,Start,Sectors,Type-UUID,Name",
            p(img),
        ],
    )?;
    let mut rows = Vec::new();
    let mut in_table = false;
    for l in out.lines() {
        if l.starts_with("Device") {
            in_table = true;
            continue;
        }
        let w: Vec<&str> = l.split_whitespace().collect();
        if in_table && w.len() >= 4 {
            rows.push((
                w[1].parse()?,
                w[2].parse()?,
                w.get(4).copied().unwrap_or("").to_string(),
                w[3].to_string(),
            ));
        }
    }
    Ok(rows)
}

/// One partition as `sfdisk --json` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfdiskPart {
    pub number: u32,
    pub start: u64,
    pub size: u64,
    pub kind: String,
    pub bootable: bool,
}

/// The partitions `sfdisk --json` lists, numbered from their node names.
pub fn sfdisk_parts(img: &Path) -> Result<Vec<SfdiskPart>> {
    let json = sfdisk_json(img, &[])?;
    let node_prefix = p(img);
    let mut out = Vec::new();
    for j in json["partitiontable"]["partitions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let node = j["node"].as_str().unwrap_or_default();
        out.push(SfdiskPart {
            number: node.strip_prefix(node_prefix).unwrap_or(node).parse()?,
            start: j["start"].as_u64().unwrap_or(0),
            size: j["size"].as_u64().unwrap_or(0),
            kind: j["type"].as_str().unwrap_or_default().to_string(),
            bootable: j["bootable"].as_bool().unwrap_or(false),
        });
    }
    Ok(out)
}

/// The layout's partitions in `sfdisk --json` terms.
pub fn as_sfdisk(l: &layout::Layout) -> Vec<SfdiskPart> {
    l.partitions
        .iter()
        .map(|p| SfdiskPart {
            number: p.number,
            start: p.first_lba,
            size: p.sectors(),
            kind: match p.kind {
                layout::PartitionType::Mbr(b) => format!("{b:x}"),
                layout::PartitionType::Gpt(g) => g.to_string(),
            },
            bootable: p.bootable,
        })
        .collect()
}
