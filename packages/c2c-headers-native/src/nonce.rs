//! CSP nonces: 16 bytes from the operating system's CSPRNG, standard base64 with padding.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Bytes of randomness in a nonce (128 bits).
pub const NONCE_BYTES: usize = 16;

/// A fresh nonce (24 characters), or the operating system's error.
///
/// # Errors
///
/// The operating system gives no random bytes.
pub fn new_nonce() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; NONCE_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_is_24_characters_of_standard_base64() {
        let nonce = new_nonce().unwrap();
        assert_eq!(nonce.len(), 24);
        assert!(nonce.ends_with("=="));
        let decoded = STANDARD.decode(&nonce).unwrap();
        assert_eq!(decoded.len(), NONCE_BYTES);
    }

    #[test]
    fn nonces_differ() {
        let nonces: std::collections::HashSet<String> =
            (0..64).map(|_| new_nonce().unwrap()).collect();
        assert_eq!(nonces.len(), 64);
    }
}
