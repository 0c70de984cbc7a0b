//! Changing the passwords of an encrypted image: only the key block of volume 1 is rewritten,
//! never a chunk. Crash-safe in two synced steps: the new slot is written into a free slot first,
//! then (when replacing) the old slot is cleared; a crash in between leaves both passwords valid.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::crypt::{
    unlock_slots, wrap_key, KdfParams, KeyBlock, Passphrase, UnlockError, KEY_BLOCK_LEN,
    KEY_BLOCK_OFFSET,
};
use crate::error::{Error, Result};
use crate::format::{rd_u16, VolumeHeader, FORMAT_MAJOR, VOLUME_HEADER_LEN, VOLUME_MAGIC};

/// What [`change_password`] does with the slot the current password opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotChange {
    /// The new password replaces the current one.
    Replace,
    /// The new password is added in a free slot; the current one keeps working.
    Add,
}

/// What [`change_password`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordChange {
    /// The slot the current password opened.
    pub old_slot: usize,
    /// The slot now holding the new password.
    pub new_slot: usize,
    /// Slots in use afterwards.
    pub slots_used: usize,
}

fn io_err(name: &str, op: &'static str, e: std::io::Error) -> Error {
    Error::Io {
        op,
        path: name.to_string(),
        source: e,
    }
}

/// Opens the key block of the encrypted image at `path` with `current` and writes `new` into a
/// free key slot, clearing the current slot for [`SlotChange::Replace`]. The chunks, metadata and
/// the data key are unchanged.
pub fn change_password(
    path: &Path,
    current: &Passphrase,
    new: &Passphrase,
    change: SlotChange,
    kdf: KdfParams,
) -> Result<PasswordChange> {
    let name = path.display().to_string();
    let corrupt = |what: &'static str, detail: String| Error::Corrupt {
        path: name.clone(),
        what,
        detail,
    };
    kdf.check()
        .map_err(|d| Error::InvalidOptions(format!("key derivation: {d}")))?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io_err(&name, "opening", e))?;
    let meta = file.metadata().map_err(|e| io_err(&name, "reading", e))?;
    if !meta.is_file() {
        return Err(Error::NotAVolumeFile {
            path: name,
            what: "not a file",
        });
    }
    let mut head = [0u8; VOLUME_HEADER_LEN];
    if meta.len() < (VOLUME_HEADER_LEN + KEY_BLOCK_LEN) as u64 {
        return Err(Error::NotAnImage { path: name });
    }
    file.read_exact_at(&mut head, 0)
        .map_err(|e| io_err(&name, "reading", e))?;
    if head[..8] != VOLUME_MAGIC {
        return Err(Error::NotAnImage { path: name });
    }
    let h = VolumeHeader::decode(&head).map_err(|d| corrupt("volume header", d))?;
    let major = rd_u16(&head, 8);
    if major > FORMAT_MAJOR {
        return Err(Error::NewerFormat { path: name, major });
    }
    if h.volume != 1 {
        return Err(Error::WrongVolume {
            path: name,
            found: h.volume,
            expected: 1,
        });
    }
    if !h.encrypted() {
        return Err(Error::Encryption {
            path: name,
            detail: "the image is not encrypted; it has no password to change".into(),
        });
    }
    let mut raw = [0u8; KEY_BLOCK_LEN];
    file.read_exact_at(&mut raw, KEY_BLOCK_OFFSET)
        .map_err(|e| io_err(&name, "reading", e))?;
    let mut block = KeyBlock::decode(&raw).map_err(|d| corrupt("key block", d))?;
    let (key, old_slot) = unlock_slots(&block, &h.uuid, current).map_err(|e| match e {
        UnlockError::WrongPassword => Error::WrongPassword { path: name.clone() },
        UnlockError::Refused(d) => corrupt("key block", d),
    })?;
    let Some(new_slot) = block.slots.iter().position(Option::is_none) else {
        return Err(Error::Encryption {
            path: name,
            detail: format!(
                "all {} key slots are in use; replace a password instead of adding one",
                block.slots.len()
            ),
        });
    };
    let slot = wrap_key(&key, &h.uuid, new_slot, new, kdf).map_err(|detail| Error::Encryption {
        path: name.clone(),
        detail,
    })?;
    let write = |block: &KeyBlock| -> Result<()> {
        file.write_all_at(&block.encode(), KEY_BLOCK_OFFSET)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::write(&name, "writing", e))
    };
    if let Some(s) = block.slots.get_mut(new_slot) {
        *s = Some(slot);
    }
    write(&block)?;
    if change == SlotChange::Replace {
        if let Some(s) = block.slots.get_mut(old_slot) {
            *s = None;
        }
        write(&block)?;
    }
    log::info!(
        "{name}: password {} (key slot {old_slot} -> {new_slot})",
        match change {
            SlotChange::Replace => "replaced",
            SlotChange::Add => "added",
        }
    );
    Ok(PasswordChange {
        old_slot,
        new_slot,
        slots_used: block.used(),
    })
}
