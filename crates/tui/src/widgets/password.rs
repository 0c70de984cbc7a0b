//! A masked password field (encrypted images): what is typed is kept in a buffer that is wiped
//! when dropped and is only ever drawn as `*`s; `Debug` never shows it. The image picker uses it
//! to unlock an encrypted image, the backup options to set a new image's password (typed twice).

use crate::model::Key;
use zeroize::Zeroizing;

/// Longest password the field takes (bytes).
pub const MAX_PASSWORD: usize = 1024;

/// A password being typed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PasswordField {
    typed: Zeroizing<String>,
}

impl std::fmt::Debug for PasswordField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordField(***)")
    }
}

impl PasswordField {
    /// Applies a key: a printable character is added, Backspace removes the last one. Returns
    /// false for keys the field does not take (Enter, Esc, arrows: the caller's).
    pub fn key(&mut self, key: Key) -> bool {
        match key {
            Key::Char(c) if !c.is_control() => {
                if self.typed.len() + c.len_utf8() <= MAX_PASSWORD {
                    self.typed.push(c);
                }
                true
            }
            Key::Backspace => {
                self.typed.pop();
                true
            }
            _ => false,
        }
    }

    /// Nothing typed yet.
    pub fn is_empty(&self) -> bool {
        self.typed.is_empty()
    }

    /// One `*` per character typed.
    pub fn masked(&self) -> String {
        "*".repeat(self.typed.chars().count())
    }

    /// The password, for a network store (`store` wipes it when dropped).
    pub fn secret(&self) -> store::Secret {
        store::Secret::new(self.typed.to_string())
    }

    /// The password, for the engine (the field is wiped when dropped).
    pub fn passphrase(&self) -> image::Passphrase {
        image::Passphrase::new(self.typed.as_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_is_masked_edited_by_keys_and_never_debug_printed() {
        let mut f = PasswordField::default();
        for c in "sécret".chars() {
            assert!(f.key(Key::Char(c)));
        }
        assert!(f.key(Key::Backspace));
        assert!(!f.key(Key::Enter));
        assert_eq!(f.masked(), "*****");
        assert_eq!(f.passphrase().expose(), "sécre".as_bytes());
        assert_eq!(format!("{f:?}"), "PasswordField(***)");
    }
}
