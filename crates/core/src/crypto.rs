//! Secrets: random tokens stored only as hashes, credentials encrypted at rest with
//! AES-256-GCM bound to their row, and HMAC tags that make cursors tamper-evident.

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::{constant_time, digest, hmac};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// Length in bytes of the master key.
pub const MASTER_KEY_LEN: usize = 32;

/// Fills a buffer with cryptographically secure random bytes.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The system RNG only fails if the OS has no entropy source at all; nothing can run then.
    SystemRandom::new()
        .fill(&mut buf)
        .expect("the operating system's random number generator failed");
    buf
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A new secret token: the prefix, then 43 base62 characters (over 256 bits of entropy).
pub fn new_token(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 44);
    out.push_str(prefix);
    out.push('_');
    // Rejection sampling keeps every character uniformly likely.
    while out.len() < prefix.len() + 1 + 43 {
        for b in random_bytes::<64>() {
            if b < 248 && out.len() < prefix.len() + 1 + 43 {
                out.push(BASE62[usize::from(b % 62)] as char);
            }
        }
    }
    out
}

/// SHA-256 of a token, hex-encoded. Tokens carry 256 random bits, so a fast hash is enough and
/// lets the database look them up by index.
pub fn token_hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// SHA-256 of arbitrary bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

/// SHA-256 of arbitrary bytes, hex-encoded.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha256(bytes))
}

/// SHA-256 of several byte strings joined by NUL, as lowercase hex, without copying them.
pub fn sha256_hex_joined(parts: &[&[u8]]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            ctx.update(&[0]);
        }
        ctx.update(part);
    }
    hex(ctx.finish().as_ref())
}

/// The visible start of a token (`ibk_Zp3c`), safe to show and log.
pub fn token_prefix(token: &str) -> String {
    token.chars().take(8).collect()
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

/// Errors of the secret-handling primitives. They never carry secret material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The master key is not 32 bytes of base64.
    #[error("the master key must be 32 bytes, base64-encoded")]
    BadMasterKey,
    /// A stored ciphertext could not be decrypted (wrong key, wrong row, or altered).
    #[error("stored secret could not be decrypted")]
    Decrypt,
    /// Encryption failed.
    #[error("secret could not be encrypted")]
    Encrypt,
}

/// The keys derived from the master key.
pub struct Keys {
    cipher: RandomizedNonceKey,
    cursor: hmac::Key,
    forms: hmac::Key,
    key_id: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Derives the encryption and signing keys from the 32-byte master key.
    pub fn from_master(master: &[u8]) -> Result<Self, CryptoError> {
        if master.len() != MASTER_KEY_LEN {
            return Err(CryptoError::BadMasterKey);
        }
        // Separate keys per purpose, so a cursor tag can never help attack a ciphertext.
        let derive = |label: &[u8]| {
            let k = hmac::Key::new(hmac::HMAC_SHA256, master);
            hmac::sign(&k, label)
        };
        let enc = derive(b"ironbridge/v1/credentials");
        let cursor = derive(b"ironbridge/v1/cursor");
        let forms = derive(b"ironbridge/v1/forms");
        let id = derive(b"ironbridge/v1/key-id");
        let cipher = RandomizedNonceKey::new(&AES_256_GCM, enc.as_ref())
            .map_err(|_| CryptoError::BadMasterKey)?;
        Ok(Keys {
            cipher,
            cursor: hmac::Key::new(hmac::HMAC_SHA256, cursor.as_ref()),
            forms: hmac::Key::new(hmac::HMAC_SHA256, forms.as_ref()),
            key_id: hex(&id.as_ref()[..4]),
        })
    }

    /// Parses a base64 master key (standard alphabet, padding optional).
    pub fn decode_master(text: &str) -> Result<Vec<u8>, CryptoError> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .map_err(|_| CryptoError::BadMasterKey)?;
        if bytes.len() != MASTER_KEY_LEN {
            return Err(CryptoError::BadMasterKey);
        }
        Ok(bytes)
    }

    /// A fresh master key, base64-encoded.
    pub fn generate_master() -> String {
        STANDARD.encode(random_bytes::<MASTER_KEY_LEN>())
    }

    /// Encrypts `plaintext` bound to `context` (e.g. `connections:conn_…:credentials`), so the
    /// ciphertext cannot be moved to another row. Format: `v1.<key id>.<base64 nonce+ct+tag>`.
    pub fn encrypt(&self, context: &str, plaintext: &[u8]) -> Result<String, CryptoError> {
        let mut buf = plaintext.to_vec();
        let nonce = self
            .cipher
            .seal_in_place_append_tag(Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| CryptoError::Encrypt)?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&buf);
        Ok(format!(
            "v1.{}.{}",
            self.key_id,
            URL_SAFE_NO_PAD.encode(out)
        ))
    }

    /// Decrypts what [`Keys::encrypt`] produced for the same `context`.
    pub fn decrypt(&self, context: &str, stored: &str) -> Result<Vec<u8>, CryptoError> {
        let mut parts = stored.splitn(3, '.');
        let (Some("v1"), Some(_key_id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(CryptoError::Decrypt);
        };
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| CryptoError::Decrypt)?;
        if raw.len() < NONCE_LEN {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Decrypt)?;
        let mut buf = ct.to_vec();
        let plain = self
            .cipher
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| CryptoError::Decrypt)?;
        Ok(plain.to_vec())
    }

    /// An HMAC-SHA256 tag over `data` with the cursor key.
    pub fn sign_cursor(&self, data: &[u8]) -> Vec<u8> {
        hmac::sign(&self.cursor, data).as_ref().to_vec()
    }

    /// The anti-forgery token of the HTML forms bound to `binding` (a Link token's id, a
    /// dashboard session's id): base64url HMAC-SHA256 with its own key, so it can neither be
    /// made without the master key nor replayed for another Link or session.
    pub fn form_token(&self, binding: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.forms, binding.as_bytes()).as_ref())
    }

    /// Checks a form's anti-forgery token in constant time.
    pub fn verify_form_token(&self, binding: &str, token: &str) -> bool {
        let expected = self.form_token(binding);
        constant_time::verify_slices_are_equal(expected.as_bytes(), token.as_bytes()).is_ok()
    }

    /// Checks a cursor tag in constant time.
    pub fn verify_cursor(&self, data: &[u8], tag: &[u8]) -> bool {
        let expected = self.sign_cursor(data);
        constant_time::verify_slices_are_equal(&expected, tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_hashes_equal_the_hash_of_the_joined_text() {
        assert_eq!(
            sha256_hex_joined(&[b"ab", b"c"]),
            sha256_hex("ab\u{0}c".as_bytes())
        );
        assert_ne!(
            sha256_hex_joined(&[b"ab", b"c"]),
            sha256_hex_joined(&[b"a", b"bc"])
        );
    }

    fn keys() -> Keys {
        Keys::from_master(&[7u8; 32]).unwrap()
    }

    #[test]
    fn tokens_are_prefixed_long_and_distinct() {
        let a = new_token("ibk");
        let b = new_token("ibk");
        assert!(a.starts_with("ibk_"));
        assert_eq!(a.len(), 4 + 43);
        assert_ne!(a, b);
        assert!(a[4..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), token_hash(&b));
    }

    #[test]
    fn ciphertexts_are_bound_to_their_context() {
        let k = keys();
        let ct = k
            .encrypt("connections:conn_a:credentials", b"hunter2")
            .unwrap();
        assert!(!ct.contains("hunter2"));
        assert_eq!(
            k.decrypt("connections:conn_a:credentials", &ct).unwrap(),
            b"hunter2"
        );
        assert!(k.decrypt("connections:conn_b:credentials", &ct).is_err());
        // A fresh nonce each time: equal plaintexts give different ciphertexts.
        assert_ne!(
            ct,
            k.encrypt("connections:conn_a:credentials", b"hunter2")
                .unwrap()
        );
        let other = Keys::from_master(&[8u8; 32]).unwrap();
        assert!(
            other
                .decrypt("connections:conn_a:credentials", &ct)
                .is_err()
        );
        let mut tampered = ct.clone();
        tampered.pop();
        tampered.push(if ct.ends_with('A') { 'B' } else { 'A' });
        assert!(
            k.decrypt("connections:conn_a:credentials", &tampered)
                .is_err()
        );
    }

    #[test]
    fn master_keys_must_be_32_bytes() {
        assert!(Keys::decode_master(&Keys::generate_master()).is_ok());
        assert!(Keys::decode_master("c2hvcnQ=").is_err());
        assert!(Keys::decode_master("not base64!").is_err());
    }

    #[test]
    fn cursor_tags_verify_only_unchanged_data() {
        let k = keys();
        let tag = k.sign_cursor(b"abc");
        assert!(k.verify_cursor(b"abc", &tag));
        assert!(!k.verify_cursor(b"abd", &tag));
    }
}
