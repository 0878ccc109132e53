//! Random bytes from the operating system (ring's `SystemRandom`), and their hex form: tokens,
//! signing keys, session ids, request-id prefixes. One place, so that every secret the server
//! makes comes from the same source and a failing source is one error type.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};

/// The operating system's random source failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomUnavailable;

/// Fills `buf` from the OS random source.
///
/// # Errors
/// [`RandomUnavailable`] when the source fails.
pub fn fill(buf: &mut [u8]) -> Result<(), RandomUnavailable> {
    SystemRandom::new().fill(buf).map_err(|_| RandomUnavailable)
}

/// `N` random bytes.
///
/// # Errors
/// [`RandomUnavailable`] when the source fails.
pub fn bytes<const N: usize>() -> Result<[u8; N], RandomUnavailable> {
    let mut b = [0u8; N];
    fill(&mut b)?;
    Ok(b)
}

/// `n` random bytes as `2n` lowercase hex digits.
///
/// # Errors
/// [`RandomUnavailable`] when the source fails.
pub fn hex(n: usize) -> Result<String, RandomUnavailable> {
    let mut b = vec![0u8; n];
    fill(&mut b)?;
    Ok(to_hex(&b))
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

impl fmt::Display for RandomUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the system random source failed")
    }
}

impl std::error::Error for RandomUnavailable {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_has_two_lowercase_digits_per_byte() {
        let h = hex(16).unwrap();
        assert_eq!(h.len(), 32);
        assert!(
            h.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert_eq!(to_hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    #[test]
    fn two_draws_differ() {
        assert_ne!(bytes::<16>().unwrap(), bytes::<16>().unwrap());
    }
}
