//! `--store s3` at start: the credentials (a file, systemd's credential, or the environment —
//! never the command line, never logged), the endpoint waited for, writing proved, the
//! lifecycle rule in place.

use std::time::Duration;

use super::sigv4::Credentials;
use super::{Bucket, S3Error};

/// The bucket `--store s3` names, ready: credentials read (a file, systemd's credential, or
/// `PIDROP_S3_ACCESS_KEY_ID`/`PIDROP_S3_SECRET_ACCESS_KEY` — never the command line), the
/// endpoint waited for (30 s at most), writing proved with a probe object, and the lifecycle
/// rule for crashed multipart uploads in place. The error says why not.
pub fn connect(cfg: &crate::config::S3Config) -> Result<Bucket, String> {
    let creds = credentials(cfg)?;
    let ca = cfg.ca.as_deref();
    let b = Bucket::new(&cfg.endpoint, &cfg.bucket, &cfg.region, creds, ca)
        .map_err(|e| e.to_string())?;
    let until = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match b.check() {
            Ok(()) => break,
            // Not there yet (a refused connection, …) is waited for; a certificate that does not
            // verify (InvalidData) will not get better.
            Err(S3Error::Io(e))
                if e.kind() != std::io::ErrorKind::InvalidData
                    && std::time::Instant::now() < until =>
            {
                log::info!("waiting for the S3 endpoint {}: {e}", cfg.endpoint);
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => return Err(format!("bucket {} at {}: {e}", cfg.bucket, cfg.endpoint)),
        }
    }
    let probe = format!("{}.pidrop/probe", cfg.prefix);
    b.put_object(&probe, b"", &[])
        .and_then(|()| b.delete_object(&probe))
        .map_err(|e| format!("the key may not write to bucket {}: {e}", cfg.bucket))?;
    if let Err(e) = b.ensure_abort_rule(7) {
        log::warn!("cannot set the rule that removes crashed multipart uploads: {e}");
    }
    Ok(b)
}

fn credentials(cfg: &crate::config::S3Config) -> Result<Credentials, String> {
    let file = cfg.credentials.clone().or_else(|| {
        let p = std::path::PathBuf::from(std::env::var_os("CREDENTIALS_DIRECTORY")?).join("s3");
        p.exists().then_some(p)
    });
    let (key, secret) = match file {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let field = |name: &str| {
                text.lines().find_map(|l| {
                    let (k, v) = l.split_once('=')?;
                    (k.trim() == name).then(|| v.trim().to_string())
                })
            };
            (field("access_key_id"), field("secret_access_key"))
        }
        None => (
            std::env::var("PIDROP_S3_ACCESS_KEY_ID").ok(),
            std::env::var("PIDROP_S3_SECRET_ACCESS_KEY").ok(),
        ),
    };
    match (key, secret) {
        (Some(access_key), Some(secret_key)) if !access_key.is_empty() && !secret_key.is_empty() => {
            Ok(Credentials {
                access_key,
                secret_key,
            })
        }
        _ => Err("no S3 credentials: set PIDROP_S3_ACCESS_KEY_ID and PIDROP_S3_SECRET_ACCESS_KEY, or --s3-credentials FILE with access_key_id = … and secret_access_key = …".into()),
    }
}
