//! Passwords of encrypted images, for the whole process: the one place every image reader of the
//! engine (restore, verify, info, ls, extract, mount, clone from an image) gets its password.
//!
//! A front end asks the user (a no-echo prompt, a masked TUI field, a job file's
//! `password_file`) and calls [`remember`] for that image; everything in the engine then opens
//! images through [`open_image`]. Passwords are held as [`image::Passphrase`] (wiped when
//! dropped, `Debug` prints `***`), keyed by the image's canonical path, and are never written to
//! logs, reports or files. [`needs_password`] tells a front end whether to ask at all.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use image::{ImageReader, Passphrase};

static KEYRING: Mutex<Vec<(PathBuf, Passphrase)>> = Mutex::new(Vec::new());

fn key(image: &Path) -> PathBuf {
    std::fs::canonicalize(image).unwrap_or_else(|_| image.to_path_buf())
}

/// Remembers `password` for the image whose first volume is `image` (replacing an earlier one).
pub fn remember(image: &Path, password: Passphrase) {
    let k = key(image);
    let mut ring = KEYRING.lock().unwrap_or_else(|p| p.into_inner());
    ring.retain(|(p, _)| *p != k);
    ring.push((k, password));
}

/// Forgets the password of `image`.
pub fn forget(image: &Path) {
    let k = key(image);
    let mut ring = KEYRING.lock().unwrap_or_else(|p| p.into_inner());
    ring.retain(|(p, _)| *p != k);
}

/// The password remembered for `image`.
pub fn password_for(image: &Path) -> Option<Passphrase> {
    let k = key(image);
    let ring = KEYRING.lock().unwrap_or_else(|p| p.into_inner());
    ring.iter().find(|(p, _)| *p == k).map(|(_, pw)| pw.clone())
}

/// Whether `image` is an encrypted image for which no password is remembered (the front end
/// should ask). False for anything that is not an image (the reader reports that later).
pub fn needs_password(image: &Path) -> bool {
    image::is_encrypted(image).unwrap_or(false) && password_for(image).is_none()
}

/// Opens the image at `image` with its remembered password, if any. An encrypted image without
/// one is `image::Error::PasswordRequired`; a wrong one `image::Error::WrongPassword`.
pub fn open_image(image: &Path) -> Result<ImageReader, image::Error> {
    ImageReader::open_with(image, password_for(image).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_password_is_found_by_any_spelling_of_the_path() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let f = dir.path().join("x.lbi");
        std::fs::write(&f, b"x").unwrap_or_else(|e| panic!("{e}"));
        remember(&f, Passphrase::new(b"pw".to_vec()));
        let other = dir.path().join(".").join("x.lbi");
        assert_eq!(
            password_for(&other).map(|p| p.expose().to_vec()),
            Some(b"pw".to_vec())
        );
        assert_eq!(format!("{:?}", password_for(&f)), "Some(Passphrase(***))");
        forget(&other);
        assert!(password_for(&f).is_none());
    }
}
