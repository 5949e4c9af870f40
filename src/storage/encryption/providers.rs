//! The providers of an `EncryptionConfiguration` and the bytes they write, as upstream's value
//! transformers (`k8s.io/apiserver/pkg/storage/value/encrypt/{aes,secretbox,identity}`) write them, so
//! a store written by rkube can be read by a kube-apiserver with the same keys and the other way round.
//!
//! A stored value is `k8s:enc:<provider>:v1:<key name>:` followed by the provider's bytes:
//! - `aescbc`: a random 16-byte IV, then AES-CBC with PKCS#7 padding;
//! - `aesgcm`: a random 12-byte nonce, then AES-GCM sealed with the storage key (`/registry/...`) as
//!   authenticated data, so a value copied to another key does not decrypt;
//! - `secretbox`: a random 24-byte nonce, then NaCl's secretbox (XSalsa20-Poly1305, tag first).
//!
//! `identity` writes the value unchanged, without a prefix.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};
use ring::rand::{SecureRandom, SystemRandom};

/// What every encrypted value starts with; identity refuses to read such a value, so a config that
/// lists identity first still reaches the provider that can decrypt it.
const ENCRYPTED: &[u8] = b"k8s:enc:";

type Aes192Gcm = AesGcm<aes::Aes192, aes_gcm::aead::consts::U12>;

/// One provider with one key (a provider with several keys is several of these, in order).
pub enum Cipher {
    Identity,
    AesCbc(AesKey),
    AesGcm(GcmKey),
    Secretbox(Box<crypto_secretbox::XSalsa20Poly1305>),
}

/// An AES key of one of the three sizes upstream accepts (16, 24, 32 bytes).
pub enum AesKey {
    K128([u8; 16]),
    K192([u8; 24]),
    K256([u8; 32]),
}

pub enum GcmKey {
    K128(Box<Aes128Gcm>),
    K192(Box<Aes192Gcm>),
    K256(Box<Aes256Gcm>),
}

impl Cipher {
    /// A cipher for `provider` (`aescbc`, `aesgcm`, `secretbox`) from the key's bytes, whose length
    /// the config's validation has checked.
    pub fn new(provider: &str, secret: &[u8]) -> Result<Cipher, String> {
        let bad = || format!("{provider}: a key of {} bytes", secret.len());
        Ok(match provider {
            "aescbc" => Cipher::AesCbc(match secret.len() {
                16 => AesKey::K128(secret.try_into().map_err(|_| bad())?),
                24 => AesKey::K192(secret.try_into().map_err(|_| bad())?),
                32 => AesKey::K256(secret.try_into().map_err(|_| bad())?),
                _ => return Err(bad()),
            }),
            "aesgcm" => Cipher::AesGcm(match secret.len() {
                16 => GcmKey::K128(Box::new(
                    Aes128Gcm::new_from_slice(secret).map_err(|_| bad())?,
                )),
                24 => GcmKey::K192(Box::new(
                    Aes192Gcm::new_from_slice(secret).map_err(|_| bad())?,
                )),
                32 => GcmKey::K256(Box::new(
                    Aes256Gcm::new_from_slice(secret).map_err(|_| bad())?,
                )),
                _ => return Err(bad()),
            }),
            "secretbox" => Cipher::Secretbox(Box::new(
                crypto_secretbox::XSalsa20Poly1305::new_from_slice(secret).map_err(|_| bad())?,
            )),
            _ => return Err(format!("unknown provider {provider}")),
        })
    }

    /// The provider's bytes for `plain` stored at `key` (without the `k8s:enc:...:` prefix).
    pub fn encrypt(&self, plain: &[u8], key: &str) -> Result<Vec<u8>, String> {
        match self {
            Cipher::Identity => Ok(plain.to_vec()),
            Cipher::AesCbc(k) => {
                let iv: [u8; 16] = random()?;
                let sealed = match k {
                    AesKey::K128(k) => cbc::Encryptor::<aes::Aes128>::new(k.into(), &iv.into())
                        .encrypt_padded_vec_mut::<Pkcs7>(plain),
                    AesKey::K192(k) => cbc::Encryptor::<aes::Aes192>::new(k.into(), &iv.into())
                        .encrypt_padded_vec_mut::<Pkcs7>(plain),
                    AesKey::K256(k) => cbc::Encryptor::<aes::Aes256>::new(k.into(), &iv.into())
                        .encrypt_padded_vec_mut::<Pkcs7>(plain),
                };
                Ok([iv.as_slice(), &sealed].concat())
            }
            Cipher::AesGcm(k) => {
                let nonce: [u8; 12] = random()?;
                let payload = Payload {
                    msg: plain,
                    aad: key.as_bytes(),
                };
                let sealed = match k {
                    GcmKey::K128(c) => c.encrypt(&nonce.into(), payload),
                    GcmKey::K192(c) => c.encrypt(&nonce.into(), payload),
                    GcmKey::K256(c) => c.encrypt(&nonce.into(), payload),
                }
                .map_err(|_| "failed to encrypt with AES-GCM".to_string())?;
                Ok([nonce.as_slice(), &sealed].concat())
            }
            Cipher::Secretbox(c) => {
                let nonce: [u8; 24] = random()?;
                let sealed = c
                    .encrypt(&nonce.into(), plain)
                    .map_err(|_| "failed to encrypt with secretbox".to_string())?;
                Ok([nonce.as_slice(), &sealed].concat())
            }
        }
    }

    /// The value in `data` (the provider's bytes, prefix removed) stored at `key`; errors in
    /// upstream's words.
    pub fn decrypt(&self, data: &[u8], key: &str) -> Result<Vec<u8>, String> {
        const SHORT: &str = "the stored data was shorter than the required size";
        match self {
            Cipher::Identity => {
                if data.starts_with(ENCRYPTED) {
                    return Err("identity transformer tried to read encrypted data".into());
                }
                Ok(data.to_vec())
            }
            Cipher::AesCbc(k) => {
                if data.len() < 16 {
                    return Err(SHORT.into());
                }
                let (iv, body) = data.split_at(16);
                if body.len() % 16 != 0 {
                    return Err("the stored data is not a multiple of the block size".into());
                }
                let iv: [u8; 16] = iv.try_into().map_err(|_| SHORT.to_string())?;
                match k {
                    AesKey::K128(k) => cbc::Decryptor::<aes::Aes128>::new(k.into(), &iv.into())
                        .decrypt_padded_vec_mut::<Pkcs7>(body),
                    AesKey::K192(k) => cbc::Decryptor::<aes::Aes192>::new(k.into(), &iv.into())
                        .decrypt_padded_vec_mut::<Pkcs7>(body),
                    AesKey::K256(k) => cbc::Decryptor::<aes::Aes256>::new(k.into(), &iv.into())
                        .decrypt_padded_vec_mut::<Pkcs7>(body),
                }
                .map_err(|_| "invalid padding on input".to_string())
            }
            Cipher::AesGcm(k) => {
                if data.len() < 12 {
                    return Err(SHORT.into());
                }
                let (nonce, body) = data.split_at(12);
                let payload = Payload {
                    msg: body,
                    aad: key.as_bytes(),
                };
                let nonce = aes_gcm::Nonce::from_slice(nonce);
                match k {
                    GcmKey::K128(c) => c.decrypt(nonce, payload),
                    GcmKey::K192(c) => c.decrypt(nonce, payload),
                    GcmKey::K256(c) => c.decrypt(nonce, payload),
                }
                .map_err(|_| "cipher: message authentication failed".to_string())
            }
            Cipher::Secretbox(c) => {
                if data.len() < 24 {
                    return Err(SHORT.into());
                }
                let (nonce, body) = data.split_at(24);
                c.decrypt(crypto_secretbox::Nonce::from_slice(nonce), body)
                    .map_err(|_| "output array too small".to_string())
            }
        }
    }
}

/// Fresh bytes from the system's CSPRNG (IVs and nonces; upstream reads crypto/rand).
fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut b = [0u8; N];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| "unable to read sufficient random bytes".to_string())?;
    Ok(b)
}

/// The transformers of one resource list, in the config's order: the first writes, every one whose
/// prefix matches is tried on read (upstream's `prefixTransformers`).
pub struct Transformers {
    entries: Vec<(Vec<u8>, Cipher)>,
}

impl Transformers {
    /// `entries`: (prefix, cipher) in the config's order, each key of a provider in turn; identity's
    /// prefix is empty.
    pub fn new(entries: Vec<(Vec<u8>, Cipher)>) -> Transformers {
        Transformers { entries }
    }

    /// The bytes to store for `plain` at `key`: the first provider's prefix and output.
    pub fn to_storage(&self, plain: &[u8], key: &str) -> Result<Vec<u8>, String> {
        let Some((prefix, cipher)) = self.entries.first() else {
            return Ok(plain.to_vec());
        };
        let body = cipher.encrypt(plain, key)?;
        Ok([prefix.as_slice(), &body].concat())
    }

    /// The value stored as `data` at `key`, and whether it is stale: read with anything but the
    /// provider and key that writes now. A prefix whose key fails does not end the search (two keys
    /// of one provider share the provider's prefix only up to the key name, but identity's empty
    /// prefix matches everything).
    pub fn from_storage(&self, data: &[u8], key: &str) -> Result<(Vec<u8>, bool), String> {
        let mut errors = Vec::new();
        for (i, (prefix, cipher)) in self.entries.iter().enumerate() {
            let Some(body) = data.strip_prefix(prefix.as_slice()) else {
                continue;
            };
            match cipher.decrypt(body, key) {
                Ok(plain) => return Ok((plain, i != 0)),
                // Identity refusing encrypted data is expected while migrating away from encryption.
                Err(_) if prefix.is_empty() => {}
                Err(e) => errors.push(e),
            }
        }
        Err(match errors.len() {
            0 => "no matching prefix found".to_string(),
            1 => errors.remove(0),
            _ => format!("[{}]", errors.join(", ")),
        })
    }
}

/// The prefix a provider's key writes: `k8s:enc:aescbc:v1:key1:`.
pub fn prefix(provider: &str, key_name: &str) -> Vec<u8> {
    format!("k8s:enc:{provider}:v1:{key_name}:").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(specs: &[(&str, &str, &[u8])]) -> Transformers {
        Transformers::new(
            specs
                .iter()
                .map(|(p, name, secret)| match *p {
                    "identity" => (Vec::new(), Cipher::Identity),
                    _ => (prefix(p, name), Cipher::new(p, secret).unwrap()),
                })
                .collect(),
        )
    }

    #[test]
    fn every_provider_round_trips_and_writes_its_prefix() {
        for (p, len) in [
            ("aescbc", 16),
            ("aescbc", 24),
            ("aescbc", 32),
            ("aesgcm", 16),
            ("aesgcm", 24),
            ("aesgcm", 32),
            ("secretbox", 32),
        ] {
            let secret = vec![7u8; len];
            let t = chain(&[(p, "k1", &secret)]);
            let plain = br#"{"kind":"Secret","data":{"a":"aGVsbG8="}}"#;
            let stored = t.to_storage(plain, "/registry/secrets/ns/s").unwrap();
            let want = format!("k8s:enc:{p}:v1:k1:");
            assert!(stored.starts_with(want.as_bytes()), "{p}/{len}");
            assert!(!stored.windows(8).any(|w| w == b"aGVsbG8="), "{p}/{len}");
            // Two writes of one value differ (random IV / nonce).
            assert_ne!(
                stored,
                t.to_storage(plain, "/registry/secrets/ns/s").unwrap()
            );
            assert_eq!(
                t.from_storage(&stored, "/registry/secrets/ns/s").unwrap(),
                (plain.to_vec(), false),
                "{p}/{len}"
            );
        }
    }

    #[test]
    fn aescbc_is_upstreams_layout() {
        // IV then AES-CBC/PKCS#7: the block after the IV decrypts with the IV as CBC's chaining
        // value, which is what a kube-apiserver (and `openssl enc -aes-256-cbc`) reads.
        let key = [1u8; 32];
        let t = chain(&[("aescbc", "k", &key)]);
        let stored = t.to_storage(b"hello", "/k").unwrap();
        let body = &stored[prefix("aescbc", "k").len()..];
        assert_eq!(body.len(), 32, "16-byte IV + one padded block");
        let iv: [u8; 16] = body[..16].try_into().unwrap();
        let plain = cbc::Decryptor::<aes::Aes256>::new(&key.into(), &iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(&body[16..])
            .unwrap();
        assert_eq!(plain, b"hello");
    }

    #[test]
    fn secretbox_matches_nacl() {
        // NaCl's published crypto_secretbox vector (its tests/secretbox.c, the 131-byte message):
        // the output is the Poly1305 tag, then the cipher text, as Go's secretbox.Seal writes it.
        let key = hex("1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389");
        let nonce = hex("69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37");
        let m = hex(concat!(
            "be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffce5ecbaaf33bd751a1ac728d45e6c6129",
            "6cdc3c01233561f41db66cce314adb310e3be8250c46f06dceea3a7fa1348057e2f6556ad6b1318a024a838f21af1fde",
            "048977eb48f59ffd4924ca1c60902e52f0a089bc76897040e082f937763848645e0705"
        ));
        let c = Cipher::new("secretbox", &key).unwrap();
        let Cipher::Secretbox(sb) = &c else {
            unreachable!()
        };
        let sealed = sb
            .encrypt(crypto_secretbox::Nonce::from_slice(&nonce), m.as_slice())
            .unwrap();
        assert_eq!(
            &sealed[..16],
            hex("f3ffc7703f9400e52a7dfb4b3d3305d9").as_slice()
        );
        assert_eq!(&sealed[16..24], hex("8e993b9f48681273").as_slice());
        // What rkube stores (nonce, then that) decrypts back.
        let stored = [nonce.as_slice(), &sealed].concat();
        assert_eq!(c.decrypt(&stored, "/any").unwrap(), m);
    }

    #[test]
    fn aesgcm_binds_the_value_to_its_key() {
        let t = chain(&[("aesgcm", "k", &[3u8; 32])]);
        let stored = t.to_storage(b"v", "/registry/secrets/a/b").unwrap();
        assert!(t.from_storage(&stored, "/registry/secrets/a/b").is_ok());
        assert_eq!(
            t.from_storage(&stored, "/registry/secrets/a/c")
                .unwrap_err(),
            "cipher: message authentication failed"
        );
    }

    #[test]
    fn rotation_reads_old_keys_as_stale_and_identity_migrates() {
        let old = chain(&[("aescbc", "key1", &[1u8; 32])]);
        let stored = old.to_storage(b"v", "/k").unwrap();
        // key2 now writes, key1 still reads: stale, so an update rewrites with key2.
        let rotated = chain(&[
            ("aescbc", "key2", &[2u8; 32]),
            ("aescbc", "key1", &[1u8; 32]),
        ]);
        assert_eq!(
            rotated.from_storage(&stored, "/k").unwrap(),
            (b"v".to_vec(), true)
        );
        assert!(rotated
            .to_storage(b"v", "/k")
            .unwrap()
            .starts_with(b"k8s:enc:aescbc:v1:key2:"));
        // Decrypting migration: identity first reads plain values fresh and encrypted ones stale.
        let migrating = chain(&[("identity", "", b""), ("aescbc", "key1", &[1u8; 32])]);
        assert_eq!(
            migrating.from_storage(&stored, "/k").unwrap(),
            (b"v".to_vec(), true)
        );
        assert_eq!(
            migrating.from_storage(b"{}", "/k").unwrap(),
            (b"{}".to_vec(), false)
        );
        assert_eq!(migrating.to_storage(b"{}", "/k").unwrap(), b"{}");
        // Without the key the value is unreadable, in upstream's words.
        let lost = chain(&[("aescbc", "key2", &[2u8; 32])]);
        assert_eq!(
            lost.from_storage(&stored, "/k").unwrap_err(),
            "no matching prefix found"
        );
        let wrong = chain(&[("aescbc", "key1", &[9u8; 32])]);
        assert!(wrong.from_storage(&stored, "/k").is_err());
        // Plain data under an encrypting config without identity is refused too.
        assert_eq!(
            old.from_storage(b"{}", "/k").unwrap_err(),
            "no matching prefix found"
        );
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
