//! Passwords: argon2id (RustCrypto `argon2`), with a cost calibrated on the machine that sets
//! the password, salts from the OS, and verification that is a denial-of-service lever no more:
//! at most `MAX_VERIFYING` at once (a Pi has one to four slow cores), and an unknown user costs
//! the same as a wrong password (a dummy hash is verified instead).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::gate::Gate;

/// Verifications at once, at most.
const MAX_VERIFYING: usize = 2;
/// The starting cost (OWASP's argon2id minimum): 19 MiB, 2 passes, 1 lane.
pub const DEFAULT_COST: Cost = Cost {
    m_kib: 19_456,
    t: 2,
};
/// Calibration aims at this much time per verification on the machine that runs it.
pub const TARGET: Duration = Duration::from_millis(300);

/// argon2id's memory (KiB) and passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    pub m_kib: u32,
    pub t: u32,
}

fn argon(cost: Cost) -> Option<Argon2<'static>> {
    let params = Params::new(cost.m_kib, cost.t, 1, None).ok()?;
    Some(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The PHC string of `password` at `cost`, with 16 random bytes of salt.
pub fn hash(password: &str, cost: Cost) -> Result<String, String> {
    let salt_bytes = crate::storage::random_bytes::<16>().map_err(|e| e.to_string())?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| e.to_string())?;
    let a = argon(cost).ok_or("invalid argon2 cost")?;
    a.hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches `phc` (at the cost written in it). Waits for a free slot.
pub fn verify(password: &str, phc: &str) -> bool {
    let _pass = VERIFYING.enter(MAX_VERIFYING);
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Verifies against a hash no password matches, so an unknown name costs what a known one does.
pub fn verify_nobody(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY
        .get_or_init(|| hash("no account has this password", DEFAULT_COST).unwrap_or_default());
    let _ = verify(password, phc);
}

/// The cost for this machine: the default if one hash takes at most `TARGET`, else memory
/// halved (not below 8 MiB) until it does; a fast machine gets more passes, up to `TARGET`.
pub fn calibrate() -> Cost {
    let time = |cost: Cost| {
        let started = Instant::now();
        let _ = hash("calibration", cost);
        started.elapsed()
    };
    let mut cost = DEFAULT_COST;
    let mut took = time(cost);
    while took > TARGET && cost.m_kib > 8 * 1024 {
        cost.m_kib /= 2;
        took = time(cost);
    }
    while took * (cost.t + 1) / cost.t < TARGET && cost.t < 8 {
        cost.t += 1;
        took = time(cost);
    }
    cost
}

/// Verifications running at once.
static VERIFYING: Gate = Gate::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let cost = Cost { m_kib: 1024, t: 1 };
        let phc = hash("correct horse", cost).expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{phc}");
        assert!(verify("correct horse", &phc));
        assert!(!verify("correct hors", &phc));
        assert!(!verify("correct horse", "not a hash"));
        assert_ne!(hash("correct horse", cost).expect("hash"), phc, "salted");
    }
}
