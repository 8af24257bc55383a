//! The emulated tenant's signing key: ES256 (P-256), generated per sandbox, published
//! as a JWKS so clients verify access tokens exactly as they would against Auth0.

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Serialize, de::DeserializeOwned};

pub struct Signer {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    x: String,
    y: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).finish()
    }
}

impl Signer {
    /// A fresh P-256 key. `None` only if the crypto library cannot generate one.
    pub fn generate() -> Option<Signer> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).ok()?;
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).ok()?;
        let public = pair.public_key().as_ref();
        // Uncompressed SEC1 point: 0x04 || X (32) || Y (32).
        if public.len() != 65 || public[0] != 4 {
            return None;
        }
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let x = b64.encode(&public[1..33]);
        let y = b64.encode(&public[33..65]);
        let decoding = DecodingKey::from_ec_components(&x, &y).ok()?;
        let kid = super::super::state::random_token("sbx-key-");
        Some(Signer {
            kid,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            decoding,
            x,
            y,
        })
    }

    pub fn sign<T: Serialize>(&self, claims: &T) -> Option<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&header, claims, &self.encoding).ok()
    }

    /// Verifies the signature and expiry (against `now_s`, the sandbox clock); the
    /// caller checks `aud`/`iss`.
    pub fn verify<T: DeserializeOwned>(&self, token: &str, now_s: i64) -> Option<T> {
        let mut v = Validation::new(Algorithm::ES256);
        v.validate_exp = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &self.decoding, &v).ok()?;
        let exp = data.claims.get("exp").and_then(|e| e.as_i64())?;
        if exp <= now_s {
            return None;
        }
        serde_json::from_value(data.claims).ok()
    }

    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({
            "keys": [{
                "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig",
                "kid": self.kid, "x": self.x, "y": self.y,
            }]
        })
    }
}
