//! Kernel modules: `modules.alias` matching (fnmatch-style globs), `modules.dep` resolution and
//! loading through a [`Kernel`] seam (the real one calls `finit_module(2)`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Matches `text` against a shell glob: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`/`[^x]`; other bytes
/// match themselves. Never panics, runs in O(len(pattern) * len(text)).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0usize, 0usize);
    // Where to resume after the last `*`: (pattern index after the star, text index).
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let step = match p.get(pi) {
            Some(b'*') => {
                star = Some((pi + 1, ti));
                pi += 1;
                continue;
            }
            Some(b'?') => Some(pi + 1),
            Some(b'[') => match class_match(p, pi, t[ti]) {
                Some((true, next)) => Some(next),
                Some((false, _)) => None,
                // An unterminated `[` matches a literal `[`.
                None => (t[ti] == b'[').then_some(pi + 1),
            },
            Some(&c) => (c == t[ti]).then_some(pi + 1),
            None => None,
        };
        match step {
            Some(next) => {
                pi = next;
                ti += 1;
            }
            None => match star {
                Some((sp, st)) => {
                    pi = sp;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

/// Matches byte `c` against the class starting at `p[start] == b'['`. Returns (matched, index
/// after `]`), or `None` when the class is not terminated.
fn class_match(p: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|&h| h != b']') {
            let hi = *p.get(i + 2)?;
            if lo <= c && c <= hi {
                matched = true;
            }
            i += 3;
        } else {
            if lo == c {
                matched = true;
            }
            i += 1;
        }
    }
}

/// Module names compare with `-` and `_` as the same character; this is the canonical form.
pub fn canonical_name(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name of a path in `modules.dep` (`kernel/fs/ext4/ext4.ko.xz` → `ext4`).
pub fn name_of_path(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    canonical_name(stem)
}

/// `modules.alias`: (pattern, module) pairs in file order.
#[derive(Debug, Default, Clone)]
pub struct AliasTable {
    entries: Vec<(String, String)>,
}

impl AliasTable {
    /// Parses `alias PATTERN MODULE` lines; comments and malformed lines are skipped.
    pub fn parse(text: &str) -> Self {
        let entries = text
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                match (w.next(), w.next(), w.next()) {
                    (Some("alias"), Some(pat), Some(module)) => {
                        Some((pat.to_string(), canonical_name(module)))
                    }
                    _ => None,
                }
            })
            .collect();
        AliasTable { entries }
    }

    /// Every module whose pattern matches `modalias`, without duplicates, in file order.
    pub fn lookup(&self, modalias: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (pat, module) in &self.entries {
            if glob_match(pat, modalias) && !out.contains(module) {
                out.push(module.clone());
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `modules.dep`: for each module, its file and the files of everything it needs.
#[derive(Debug, Default, Clone)]
pub struct DepTable {
    /// module name → (relative path, dependency paths in modules.dep order).
    modules: HashMap<String, (String, Vec<String>)>,
}

impl DepTable {
    /// Parses `path: dep dep ...` lines.
    pub fn parse(text: &str) -> Self {
        let mut modules = HashMap::new();
        for line in text.lines() {
            let Some((path, deps)) = line.split_once(':') else {
                continue;
            };
            let path = path.trim();
            if path.is_empty() {
                continue;
            }
            let deps = deps.split_whitespace().map(str::to_string).collect();
            modules.insert(name_of_path(path), (path.to_string(), deps));
        }
        DepTable { modules }
    }

    /// The files to load for `module`, dependencies first (the reverse of modules.dep order, as
    /// modprobe does). `None` when the module is unknown.
    pub fn load_order(&self, module: &str) -> Option<Vec<(String, String)>> {
        let (path, deps) = self.modules.get(&canonical_name(module))?;
        let mut order: Vec<(String, String)> = deps
            .iter()
            .rev()
            .map(|d| (name_of_path(d), d.clone()))
            .collect();
        order.push((canonical_name(module), path.clone()));
        Some(order)
    }

    pub fn contains(&self, module: &str) -> bool {
        self.modules.contains_key(&canonical_name(module))
    }
}

/// Why a module did not load.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("module {module} is not in modules.dep of {dir}")]
    Unknown { module: String, dir: PathBuf },
    #[error("cannot open module file {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("kernel refused module {path}: {errno}")]
    Refused {
        path: PathBuf,
        errno: nix::errno::Errno,
    },
}

/// The system calls module loading needs; tests replace it.
pub trait Kernel {
    /// Loads the module file at `path`. `EEXIST` means it is already loaded.
    fn load(&mut self, path: &Path) -> Result<(), ModuleError>;
    /// True when `name` (canonical) is loaded or built in.
    fn is_loaded(&self, name: &str) -> bool;
}

/// The running kernel: `finit_module(2)` and `/sys/module`.
#[derive(Debug, Default)]
pub struct RealKernel;

impl Kernel for RealKernel {
    fn load(&mut self, path: &Path) -> Result<(), ModuleError> {
        let file = std::fs::File::open(path).map_err(|source| ModuleError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        match nix::kmod::finit_module(&file, c"", nix::kmod::ModuleInitFlags::empty()) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(()),
            Err(errno) => Err(ModuleError::Refused {
                path: path.to_path_buf(),
                errno,
            }),
        }
    }

    fn is_loaded(&self, name: &str) -> bool {
        Path::new("/sys/module")
            .join(name)
            .join("initstate")
            .exists()
    }
}

/// What one request to load a module did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// Files newly loaded (dependencies first).
    New(Vec<String>),
    /// Already loaded or built in: nothing to do.
    Already,
}

/// Loads modules from one modules directory, remembering what it loaded and what failed so each
/// module is tried once.
#[derive(Debug)]
pub struct Loader<K: Kernel> {
    dir: PathBuf,
    aliases: AliasTable,
    deps: DepTable,
    builtin: HashSet<String>,
    /// module → modules or aliases to load before it (`softdep M pre: ...` of modules.softdep).
    softdeps: HashMap<String, Vec<String>>,
    visiting: HashSet<String>,
    done: HashSet<String>,
    failed: HashSet<String>,
    kernel: K,
}

impl<K: Kernel> Loader<K> {
    /// A loader over the tables of `dir` (`/lib/modules/$(uname -r)`), given as text.
    pub fn new(
        dir: PathBuf,
        alias_text: &str,
        dep_text: &str,
        builtin_text: &str,
        kernel: K,
    ) -> Self {
        Loader {
            dir,
            aliases: AliasTable::parse(alias_text),
            deps: DepTable::parse(dep_text),
            builtin: builtin_text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(name_of_path)
                .collect(),
            softdeps: HashMap::new(),
            visiting: HashSet::new(),
            done: HashSet::new(),
            failed: HashSet::new(),
            kernel,
        }
    }

    /// Reads the tables from `dir`. Missing files give empty tables (a kernel with everything
    /// built in); the returned messages say which were missing.
    pub fn open(dir: &Path, kernel: K) -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        let mut read = |name: &str| {
            std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| {
                problems.push(format!("cannot read {}: {e}", dir.join(name).display()));
                String::new()
            })
        };
        let alias = read("modules.alias");
        let dep = read("modules.dep");
        let builtin = read("modules.builtin");
        // Optional: most modules have no soft dependencies.
        let softdep = std::fs::read_to_string(dir.join("modules.softdep")).unwrap_or_default();
        (
            Loader::new(dir.to_path_buf(), &alias, &dep, &builtin, kernel).with_softdeps(&softdep),
            problems,
        )
    }

    pub fn aliases(&self) -> &AliasTable {
        &self.aliases
    }

    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    /// Loads `module` and its dependencies. A failing dependency is reported and the module
    /// itself is still tried (the kernel says what is missing).
    /// Adds the `pre:` soft dependencies of `modules.softdep` (`softdep ext4 pre: crypto-crc32c`):
    /// modules or aliases loaded, when available, before the module that names them.
    pub fn with_softdeps(mut self, text: &str) -> Self {
        for line in text.lines() {
            let mut w = line.split_whitespace();
            if w.next() != Some("softdep") {
                continue;
            }
            let Some(module) = w.next() else { continue };
            let mut pre = false;
            for word in w {
                match word {
                    "pre:" => pre = true,
                    "post:" => pre = false,
                    dep if pre => self
                        .softdeps
                        .entry(canonical_name(module))
                        .or_default()
                        .push(dep.to_string()),
                    _ => {}
                }
            }
        }
        self
    }

    /// Loads the soft dependencies of `name`; failures are ignored (they are optional).
    fn load_soft(&mut self, name: &str, new: &mut Vec<String>) {
        let Some(pre) = self.softdeps.get(name).cloned() else {
            return;
        };
        for want in pre {
            let candidates = if self.deps.contains(&want) {
                vec![canonical_name(&want)]
            } else {
                self.aliases.lookup(&want)
            };
            for c in candidates {
                if let Ok(Loaded::New(v)) = self.load(&c) {
                    new.extend(v);
                }
            }
        }
    }

    pub fn load(&mut self, module: &str) -> Result<Loaded, ModuleError> {
        let name = canonical_name(module);
        if self.builtin.contains(&name) || self.done.contains(&name) || self.kernel.is_loaded(&name)
        {
            self.done.insert(name);
            return Ok(Loaded::Already);
        }
        // A module already being loaded further up (a soft-dependency cycle) is left to that call.
        if self.visiting.contains(&name) {
            return Ok(Loaded::New(Vec::new()));
        }
        let Some(order) = self.deps.load_order(&name) else {
            return Err(ModuleError::Unknown {
                module: name,
                dir: self.dir.clone(),
            });
        };
        self.visiting.insert(name.clone());
        let mut new = Vec::new();
        let mut last_err = None;
        for (dep_name, rel) in order {
            if dep_name != name && self.visiting.contains(&dep_name) {
                continue;
            }
            if self.done.contains(&dep_name) || self.builtin.contains(&dep_name) {
                continue;
            }
            if self.failed.contains(&dep_name) && dep_name != name {
                continue;
            }
            if self.kernel.is_loaded(&dep_name) {
                self.done.insert(dep_name);
                continue;
            }
            let outer = dep_name != name;
            if outer {
                self.visiting.insert(dep_name.clone());
            }
            self.load_soft(&dep_name, &mut new);
            if outer {
                self.visiting.remove(&dep_name);
            }
            match self.kernel.load(&self.dir.join(&rel)) {
                Ok(()) => {
                    self.done.insert(dep_name.clone());
                    new.push(dep_name);
                }
                Err(e) => {
                    self.failed.insert(dep_name);
                    last_err = Some(e);
                }
            }
        }
        self.visiting.remove(&name);
        match last_err {
            Some(e) if !self.done.contains(&name) => Err(e),
            _ => Ok(Loaded::New(new)),
        }
    }

    /// Loads every module matching `modalias`. Returns (module, result) per candidate; modules
    /// that failed before are not retried.
    pub fn load_for_alias(&mut self, modalias: &str) -> Vec<(String, Result<Loaded, ModuleError>)> {
        let candidates = self.aliases.lookup(modalias);
        let mut out = Vec::new();
        for m in candidates {
            if self.failed.contains(&m) {
                continue;
            }
            let r = self.load(&m);
            if r.is_err() {
                self.failed.insert(m.clone());
            }
            out.push((m, r));
        }
        out
    }
}

/// Every `modalias` file under `root` (normally `/sys/devices`), read, without following
/// symlinks. Unreadable entries are skipped.
pub fn find_modaliases(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() && e.file_name() == "modalias" {
                if let Ok(s) = std::fs::read_to_string(e.path()) {
                    let s = s.trim();
                    if !s.is_empty() && !out.iter().any(|x: &String| x == s) {
                        out.push(s.to_string());
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_stars_questions_and_classes() {
        assert!(glob_match(
            "pci:v00008086d*sv*sd*bc01sc06i01*",
            "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01"
        ));
        assert!(!glob_match(
            "pci:v00008086d*sv*sd*bc01sc06i01*",
            "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i00"
        ));
        assert!(glob_match(
            "virtio:d00000002v*",
            "virtio:d00000002v00001AF4"
        ));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match(
            "acpi*:PNP0C0[0-9A-F]:*",
            "acpi:PNP0C0A:PNP0C0A:"
        ));
        assert!(!glob_match("acpi*:PNP0C0[0-9A-F]:*", "acpi:PNP0C0G:"));
        assert!(glob_match("x[!ab]y", "xcy"));
        assert!(!glob_match("x[^ab]y", "xay"));
        assert!(glob_match("x[]]y", "x]y"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("", "a"));
        assert!(glob_match("a[b", "a[b"), "unterminated class is a literal");
        assert!(glob_match("**a**b**", "xxaxxbxx"));
    }

    #[test]
    fn glob_never_panics_on_odd_patterns() {
        let pats = [
            "[", "[!", "[a-", "[a-]", "*[", "?*[]", "[]", "[!]]", "\\", "*?*?*",
        ];
        let texts = ["", "a", "[", "]", "-", "a-]", "zzzz"];
        for p in pats {
            for t in texts {
                let _ = glob_match(p, t);
            }
        }
        assert!(glob_match("[a-]", "-"));
    }

    const DEP: &str = "\
kernel/drivers/ata/ahci.ko: kernel/drivers/ata/libahci.ko kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/ata/libahci.ko: kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/ata/libata.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_mod.ko: kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_common.ko:
kernel/drivers/usb/storage/usb-storage.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/fs/broken.ko:
";
    const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias pci:v*d*sv*sd*bc01sc06i01* ahci
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* usb_storage
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* usb-storage
alias fs-broken broken
garbage line
";

    #[derive(Debug, Default)]
    struct FakeKernel {
        loaded: Vec<String>,
        preloaded: Vec<String>,
        refuse: Vec<String>,
    }

    impl Kernel for FakeKernel {
        fn load(&mut self, path: &Path) -> Result<(), ModuleError> {
            let name = name_of_path(&path.to_string_lossy());
            if self.refuse.contains(&name) {
                return Err(ModuleError::Refused {
                    path: path.to_path_buf(),
                    errno: nix::errno::Errno::ENOEXEC,
                });
            }
            self.loaded.push(name);
            Ok(())
        }
        fn is_loaded(&self, name: &str) -> bool {
            self.preloaded.iter().any(|p| p == name) || self.loaded.iter().any(|p| p == name)
        }
    }

    fn loader(k: FakeKernel) -> Loader<FakeKernel> {
        Loader::new(
            PathBuf::from("/lib/modules/test"),
            ALIAS,
            DEP,
            "kernel/drivers/usb/core/usbcore.ko\n",
            k,
        )
    }

    #[test]
    fn dependencies_load_before_the_module_and_only_once() {
        let mut l = loader(FakeKernel::default());
        let r = l.load("ahci").unwrap();
        assert_eq!(
            r,
            Loaded::New(vec![
                "scsi_common".into(),
                "scsi_mod".into(),
                "libata".into(),
                "libahci".into(),
                "ahci".into()
            ])
        );
        assert_eq!(l.load("ahci").unwrap(), Loaded::Already);
        let r = l.load("usb-storage").unwrap();
        assert_eq!(r, Loaded::New(vec!["usb_storage".into()]));
        assert_eq!(l.kernel().loaded.len(), 6);
    }

    #[test]
    fn already_loaded_and_builtin_modules_are_skipped() {
        let mut l = loader(FakeKernel {
            preloaded: vec!["scsi_mod".into(), "scsi_common".into()],
            ..Default::default()
        });
        assert_eq!(l.load("usbcore").unwrap(), Loaded::Already);
        assert_eq!(
            l.load("libata").unwrap(),
            Loaded::New(vec!["libata".into()])
        );
    }

    #[test]
    fn modalias_lookup_finds_modules_once_with_dash_and_underscore_merged() {
        let l = loader(FakeKernel::default());
        assert_eq!(l.aliases().len(), 4);
        assert_eq!(
            l.aliases()
                .lookup("usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00"),
            vec!["usb_storage".to_string()]
        );
        assert_eq!(
            l.aliases()
                .lookup("pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01"),
            vec!["ahci".to_string()]
        );
        assert!(l
            .aliases()
            .lookup("pci:v00008086d00002922sv00001AF4sd00001100bc03sc00i00")
            .is_empty());
    }

    #[test]
    fn refused_and_unknown_modules_are_errors_and_not_retried() {
        let mut l = loader(FakeKernel {
            refuse: vec!["broken".into()],
            ..Default::default()
        });
        assert!(matches!(l.load("nosuch"), Err(ModuleError::Unknown { .. })));
        let r = l.load_for_alias("fs-broken");
        assert_eq!(r.len(), 1);
        assert!(matches!(r[0].1, Err(ModuleError::Refused { .. })));
        assert!(
            l.load_for_alias("fs-broken").is_empty(),
            "a failed module is not retried"
        );
    }

    #[test]
    fn failing_dependency_still_tries_the_module() {
        let mut l = loader(FakeKernel {
            refuse: vec!["libahci".into()],
            ..Default::default()
        });
        let r = l.load("ahci");
        assert!(r.is_ok(), "{r:?}");
        assert!(l.kernel().loaded.contains(&"ahci".to_string()));
        assert!(!l.kernel().loaded.contains(&"libahci".to_string()));
    }

    #[test]
    fn modaliases_are_found_in_a_sysfs_like_tree_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("pci0000:00/0000:00:01.0");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::write(a.join("modalias"), "pci:v1\n").unwrap();
        let b = dir.path().join("pci0000:00/0000:00:02.0/virtio0");
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("modalias"), "virtio:d1\n").unwrap();
        std::os::unix::fs::symlink(dir.path(), b.join("loop")).unwrap();
        let mut found = find_modaliases(dir.path());
        found.sort();
        assert_eq!(found, vec!["pci:v1".to_string(), "virtio:d1".to_string()]);
    }

    #[test]
    fn soft_dependencies_load_first_by_module_or_alias_and_never_loop() {
        let dep = format!("{DEP}kernel/crypto/crc32c_generic.ko:\nkernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko\nkernel/fs/jbd2/jbd2.ko:\n");
        let alias = format!("{ALIAS}alias crypto-crc32c crc32c_generic\n");
        let mut l = Loader::new(PathBuf::from("/m"), &alias, &dep, "", FakeKernel::default())
            .with_softdeps("# comment\nsoftdep ext4 pre: crypto-crc32c post: nosuch\nsoftdep jbd2 pre: crypto-crc32c\nsoftdep crc32c_generic pre: ext4\n");
        let r = l.load("ext4").unwrap();
        assert_eq!(
            r,
            Loaded::New(vec!["crc32c_generic".into(), "jbd2".into(), "ext4".into()])
        );
        assert_eq!(l.kernel().loaded, vec!["crc32c_generic", "jbd2", "ext4"]);
    }
}
