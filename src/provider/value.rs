//! The redacting container for secret material: the only type that may hold a fetched value.
//! It never prints its bytes (Debug/Display say how long it is, nothing more) and wipes them on drop.

use zeroize::Zeroizing;

/// Bytes of a secret value. Cloning copies the bytes into another zeroizing buffer.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }

    pub fn from_str_value(s: &str) -> Self {
        SecretBytes::new(s.as_bytes().to_vec())
    }

    /// Borrow the value. Callers must not log, format or store what they get outside a `SecretBytes`.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The value as UTF-8 text, if it is text.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretBytes {
    fn from(s: String) -> Self {
        SecretBytes::new(s.into_bytes())
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(v: Vec<u8>) -> Self {
        SecretBytes::new(v)
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes(<redacted {} bytes>)", self.0.len())
    }
}

impl std::fmt::Display for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let canary = SecretBytes::from_str_value("CANARY-7f3a-do-not-print");
        let printed = format!("{canary:?} {canary} {:#?}", vec![canary.clone()]);
        assert!(!printed.contains("CANARY"), "{printed}");
        assert!(printed.contains("24 bytes"));
    }
}
