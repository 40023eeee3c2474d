//! S3 as pidrop speaks it (Garage on a LAN first; MinIO, Ceph RGW, B2, R2 and AWS speak the
//! same API): a bucket's objects put, read (whole or a range), listed, deleted; multipart
//! uploads whose parts are streamed as they arrive; presigned GETs; the bucket's lifecycle rule
//! that removes the leftovers of crashed multipart uploads, added beside the bucket's own rules.
//! Signing is ours (`sigv4.rs`), and so is the HTTP/1.1 client side (`http.rs`).
//!
//! A Pi has no real-time clock, and S3 refuses requests signed more than 15 minutes off: the
//! bucket signs with the server's clock, learnt from the `Date` of its answers (the first at
//! start, and again whenever a request is refused while the clocks disagree).

use std::io::{self, Write};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod connect;
pub mod endpoint;
pub mod http;
pub mod sigv4;
pub mod xml;

pub use connect::connect;
use http::{Reply, Sending, SMALL_BODY};
use sigv4::{uri_encode, Credentials, Scope, Signable, EMPTY_SHA256, UNSIGNED};

/// A local clock this far from the server's is worth a warning in the log (seconds).
const SKEW_WARNING: i64 = 60;
/// The lifecycle rule pidrop adds to a bucket (its ID).
pub const ABORT_RULE_ID: &str = "pidrop-abort-incomplete-multipart";

/// Why an S3 request failed.
#[derive(Debug)]
pub enum S3Error {
    /// The connection: refused, reset, timed out.
    Io(io::Error),
    /// The server said no: its status, S3 error code and message.
    Status {
        status: u16,
        code: String,
        message: String,
    },
    /// An answer pidrop cannot read.
    Protocol(String),
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            S3Error::Io(e) => write!(f, "S3 connection failed: {e}"),
            S3Error::Status {
                status,
                code,
                message,
            } => write!(f, "S3 answered {status} {code}: {message}"),
            S3Error::Protocol(why) => write!(f, "S3 answer not understood: {why}"),
        }
    }
}

impl std::error::Error for S3Error {}

impl From<io::Error> for S3Error {
    fn from(e: io::Error) -> Self {
        S3Error::Io(e)
    }
}

impl S3Error {
    pub fn status(&self) -> Option<u16> {
        match self {
            S3Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, S3Error>;

/// One object of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub size: u64,
    /// When it was written (seconds since the Unix epoch, the server's clock).
    pub modified: u64,
}

/// One page of a listing, and the token of the next.
#[derive(Debug)]
pub struct Listing {
    pub objects: Vec<Object>,
    pub next: Option<String>,
}

/// A bucket on an S3 endpoint, path-style (`http://host:port/bucket/key`).
pub struct Bucket {
    endpoint: endpoint::Endpoint,
    bucket: String,
    region: String,
    creds: Credentials,
    /// Seconds to add to the local clock to have the server's.
    offset: AtomicI64,
}

fn now_secs() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// `20150830T123600Z` of a Unix time.
fn amz_date(secs: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    crate::time::rfc3339(t).replace(['-', ':'], "")
}

impl Bucket {
    /// A bucket at `endpoint` (`http://host[:port]`; `https://` in the `s3-tls` build, its
    /// certificate checked against `ca` or the system's bundle).
    pub fn new(
        endpoint: &str,
        bucket: &str,
        region: &str,
        creds: Credentials,
        ca: Option<&std::path::Path>,
    ) -> Result<Bucket> {
        Ok(Bucket {
            endpoint: endpoint::Endpoint::parse(endpoint, ca).map_err(S3Error::Protocol)?,
            bucket: bucket.to_string(),
            region: region.to_string(),
            creds,
            offset: AtomicI64::new(0),
        })
    }

    /// Signs with a clock `secs` off the local one (the server's, as learnt; tests set a skew).
    pub fn set_clock_offset(&self, secs: i64) {
        self.offset.store(secs, Ordering::Relaxed);
    }

    pub fn clock_offset(&self) -> i64 {
        self.offset.load(Ordering::Relaxed)
    }

    /// The server's time now, as far as its answers have told (seconds since the epoch).
    pub fn server_now(&self) -> u64 {
        u64::try_from(now_secs() + self.clock_offset()).unwrap_or(0)
    }

    /// Learns the server's clock from an answer's `Date`; true if it moved the offset.
    fn learn_clock(&self, reply: &Reply) -> bool {
        let Some(server) = reply.header("date").and_then(crate::time::parse_http_date) else {
            return false;
        };
        let offset = i64::try_from(server).unwrap_or(0) - now_secs();
        let before = self.offset.swap(offset, Ordering::Relaxed);
        if offset.abs() > SKEW_WARNING && (offset - before).abs() > SKEW_WARNING {
            log::warn!(
                "the local clock is {offset} s off the S3 server's; signing with the server's"
            );
        }
        (offset - before).abs() > SKEW_WARNING
    }

    fn path(&self, key: &str) -> String {
        if key.is_empty() {
            format!("/{}", self.bucket)
        } else {
            format!("/{}/{}", self.bucket, uri_encode(key, true))
        }
    }

    /// Sends a signed request head; the caller writes `len` bytes of body.
    fn start(
        &self,
        method: &str,
        key: &str,
        query: &[(String, String)],
        headers: &[(String, String)],
        len: u64,
        payload_hash: &str,
    ) -> Result<Sending> {
        let date = amz_date(now_secs() + self.clock_offset());
        let mut all: Vec<(String, String)> = headers.to_vec();
        all.push(("host".into(), self.endpoint.authority.clone()));
        all.push(("x-amz-date".into(), date.clone()));
        all.push(("x-amz-content-sha256".into(), payload_hash.into()));
        let path = self.path(key);
        let r = Signable {
            method,
            path: &path,
            query,
            headers: &all,
            payload_hash,
        };
        let scope = Scope {
            region: &self.region,
            service: "s3",
        };
        let auth = sigv4::authorization(&self.creds, scope, &date, &r);
        let q: Vec<String> = query
            .iter()
            .map(|(k, v)| match v.is_empty() {
                true => uri_encode(k, false),
                false => format!("{}={}", uri_encode(k, false), uri_encode(v, false)),
            })
            .collect();
        let target = if q.is_empty() {
            path
        } else {
            format!("{path}?{}", q.join("&"))
        };
        let mut head = format!("{method} {target} HTTP/1.1\r\nAuthorization: {auth}");
        for (k, v) in &all {
            head.push_str(&format!("\r\n{k}: {v}"));
        }
        if len > 0 || matches!(method, "PUT" | "POST") {
            head.push_str(&format!("\r\nContent-Length: {len}"));
        }
        Ok(http::send(&self.endpoint, &head, len)?)
    }

    /// A request with a small body (signed with its hash); a refusal while the clocks
    /// disagree is tried once more with the server's clock.
    fn call(
        &self,
        method: &str,
        key: &str,
        query: &[(String, String)],
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Reply> {
        let hash = if body.is_empty() {
            EMPTY_SHA256.to_string()
        } else {
            crate::storage::sha256_hex(body)
        };
        let mut tries = 0;
        loop {
            let mut s = self.start(method, key, query, headers, body.len() as u64, &hash)?;
            s.write_all(body)?;
            let reply = s.finish()?;
            tries += 1;
            // AWS says 403 RequestTimeTooSkewed, Garage 400 "Date is too old": either way,
            // when the server's clock is far from the one signed with, sign again with it.
            if matches!(reply.status, 400 | 403) && tries == 1 && self.learn_clock(&reply) {
                continue;
            }
            self.learn_clock(&reply);
            return checked(reply);
        }
    }

    /// Whether the bucket is there and the key may read it (`HeadBucket`); learns the clock.
    pub fn check(&self) -> Result<()> {
        self.call("HEAD", "", &[], &[], b"").map(|_| ())
    }

    pub fn put_object(&self, key: &str, body: &[u8], headers: &[(String, String)]) -> Result<()> {
        self.call("PUT", key, &[], headers, body).map(|_| ())
    }

    /// Starts a PUT of `len` bytes the caller writes as they come (`UNSIGNED-PAYLOAD`: not
    /// hashed first); `finish_put` reads the answer.
    pub fn put_stream(&self, key: &str, len: u64, headers: &[(String, String)]) -> Result<Sending> {
        self.start("PUT", key, &[], headers, len, UNSIGNED)
    }

    pub fn finish_put(&self, put: Sending) -> Result<()> {
        checked(put.finish()?).map(|_| ())
    }

    /// An object, or a range of it (`first..=last`); the reply's body streams it.
    pub fn get_object(&self, key: &str, range: Option<(u64, u64)>) -> Result<Reply> {
        let headers: Vec<(String, String)> = range
            .map(|(a, b)| vec![("range".to_string(), format!("bytes={a}-{b}"))])
            .unwrap_or_default();
        self.call("GET", key, &[], &headers, b"")
    }

    /// An object's headers (`x-amz-meta-*`, size, type); `None` if there is none.
    pub fn head_object(&self, key: &str) -> Result<Option<Vec<(String, String)>>> {
        match self.call("HEAD", key, &[], &[], b"") {
            Ok(r) => Ok(Some(r.headers)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn delete_object(&self, key: &str) -> Result<()> {
        self.call("DELETE", key, &[], &[], b"").map(|_| ())
    }

    /// A page of the keys under `prefix` (`ListObjectsV2`), after `token`.
    pub fn list(&self, prefix: &str, token: Option<&str>) -> Result<Listing> {
        let mut q = vec![
            ("list-type".to_string(), "2".to_string()),
            ("prefix".to_string(), prefix.to_string()),
        ];
        if let Some(t) = token {
            q.push(("continuation-token".to_string(), t.to_string()));
        }
        let xml = self.xml("GET", "", &q, &[], b"")?;
        let objects = xml::elements(&xml, "Contents")
            .iter()
            .map(|c| {
                let key = xml::text(c, "Key").unwrap_or_default();
                let size = xml::text(c, "Size")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let modified = xml::text(c, "LastModified")
                    .and_then(|t| crate::time::parse_rfc3339(&t))
                    .unwrap_or(0);
                Object {
                    key,
                    size,
                    modified,
                }
            })
            .collect();
        let truncated = xml::text(&xml, "IsTruncated").as_deref() == Some("true");
        let next = xml::text(&xml, "NextContinuationToken").filter(|_| truncated);
        Ok(Listing { objects, next })
    }

    /// A request whose answer is an XML document.
    fn xml(
        &self,
        method: &str,
        key: &str,
        query: &[(String, String)],
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<String> {
        let mut r = self.call(method, key, query, headers, body)?;
        let bytes = r.read_all(16 * SMALL_BODY)?;
        String::from_utf8(bytes).map_err(|_| S3Error::Protocol("XML that is not UTF-8".into()))
    }

    /// Starts a multipart upload of `key` (with `headers`: type, `x-amz-meta-*`): its id.
    pub fn create_multipart(&self, key: &str, headers: &[(String, String)]) -> Result<String> {
        let xml = self.xml(
            "POST",
            key,
            &[("uploads".into(), String::new())],
            headers,
            b"",
        )?;
        xml::text(&xml, "UploadId").ok_or_else(|| S3Error::Protocol("no UploadId".into()))
    }

    /// Starts part `n` (from 1) of `len` bytes: the caller writes them as they arrive (the
    /// payload is not hashed first: `UNSIGNED-PAYLOAD`), then `finish_part`.
    pub fn upload_part(&self, key: &str, id: &str, n: u32, len: u64) -> Result<Sending> {
        let q = [
            ("partNumber".to_string(), n.to_string()),
            ("uploadId".to_string(), id.to_string()),
        ];
        self.start("PUT", key, &q, &[], len, UNSIGNED)
    }

    /// The part's ETag, once its body is written.
    pub fn finish_part(&self, part: Sending) -> Result<String> {
        let reply = checked(part.finish()?)?;
        reply
            .header("etag")
            .map(str::to_string)
            .ok_or_else(|| S3Error::Protocol("a part without an ETag".into()))
    }

    /// Makes the object of a multipart upload out of its parts (`(number, ETag)`, in order).
    pub fn complete_multipart(&self, key: &str, id: &str, parts: &[(u32, String)]) -> Result<()> {
        let mut body = String::from("<CompleteMultipartUpload>");
        for (n, etag) in parts {
            body.push_str(&format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag></Part>",
                xml::escape(etag)
            ));
        }
        body.push_str("</CompleteMultipartUpload>");
        let xml = self.xml(
            "POST",
            key,
            &[("uploadId".into(), id.into())],
            &[],
            body.as_bytes(),
        )?;
        // S3 may answer 200 with an error inside, when the completion failed late.
        match xml::text(&xml, "Code") {
            Some(code) => Err(S3Error::Status {
                status: 200,
                message: xml::text(&xml, "Message").unwrap_or_default(),
                code,
            }),
            None => Ok(()),
        }
    }

    pub fn abort_multipart(&self, key: &str, id: &str) -> Result<()> {
        self.call("DELETE", key, &[("uploadId".into(), id.into())], &[], b"")
            .map(|_| ())
    }

    /// Unfinished multipart uploads under `prefix`: (key, upload id).
    pub fn multipart_uploads(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let q = [
            ("uploads".to_string(), String::new()),
            ("prefix".to_string(), prefix.to_string()),
        ];
        let xml = self.xml("GET", "", &q, &[], b"")?;
        Ok(xml::elements(&xml, "Upload")
            .iter()
            .filter_map(|u| Some((xml::text(u, "Key")?, xml::text(u, "UploadId")?)))
            .collect())
    }

    /// A URL that GETs `key` without credentials for `expires` seconds (`extra`: e.g.
    /// `response-content-disposition`), signed with the server's clock.
    pub fn presign_get(&self, key: &str, expires: u64, extra: &[(String, String)]) -> String {
        let date = amz_date(now_secs() + self.clock_offset());
        let scope = Scope {
            region: &self.region,
            service: "s3",
        };
        let path = self.path(key);
        let get = sigv4::Presign {
            method: "GET",
            host: &self.endpoint.authority,
            path: &path,
            extra,
            expires,
        };
        let q = sigv4::presign(&self.creds, scope, &date, &get);
        format!(
            "{}://{}{path}?{q}",
            self.endpoint.scheme, self.endpoint.authority
        )
    }

    /// A browser's upload of exactly `size` bytes of `content_type` to `key`, valid for
    /// `expires` seconds of the server's clock: the URL to POST the form to, and the fields
    /// that go before the file.
    pub fn presign_post(
        &self,
        key: &str,
        size: u64,
        content_type: &str,
        expires: u64,
    ) -> (String, Vec<(String, String)>) {
        let now = now_secs() + self.clock_offset();
        let until = UNIX_EPOCH + Duration::from_secs(u64::try_from(now).unwrap_or(0) + expires);
        let scope = Scope {
            region: &self.region,
            service: "s3",
        };
        let policy = sigv4::PostPolicy {
            bucket: &self.bucket,
            key,
            content_type,
            size,
            expiration: &crate::time::rfc3339(until),
        };
        let fields = sigv4::post_policy(&self.creds, scope, &amz_date(now), &policy);
        let url = format!(
            "{}://{}/{}",
            self.endpoint.scheme,
            self.endpoint.authority,
            uri_encode(&self.bucket, false)
        );
        (url, fields)
    }

    /// Copies `from` to `to` inside the bucket with new headers (type, `x-amz-meta-*`): the
    /// object's description replaced, its bytes not sent again.
    pub fn copy_object(&self, from: &str, to: &str, headers: &[(String, String)]) -> Result<()> {
        let mut all = headers.to_vec();
        all.push(("x-amz-copy-source".into(), self.path(from)));
        all.push(("x-amz-metadata-directive".into(), "REPLACE".into()));
        let mut reply = self.call("PUT", to, &[], &all, b"")?;
        // S3 may answer 200 and put the error in the body.
        let body = reply.read_all(SMALL_BODY)?;
        match String::from_utf8_lossy(&body).contains("<Error>") {
            true => Err(S3Error::Protocol(format!(
                "copy to {to} failed: {}",
                String::from_utf8_lossy(&body)
            ))),
            false => Ok(()),
        }
    }

    /// Makes sure the bucket aborts multipart uploads left unfinished for `days` (a crash's
    /// leftovers): pidrop's rule is added to the bucket's own rules, never replacing them (one
    /// of pidrop's with other days — an older version's — is brought up to date). Returns
    /// whether it had to write the rules.
    pub fn ensure_abort_rule(&self, days: u32) -> Result<bool> {
        let existing = self.lifecycle()?;
        let rules = xml::elements(&existing, "Rule");
        let ours = |r: &str| xml::text(r, "ID").as_deref() == Some(ABORT_RULE_ID);
        let current = |r: &str| {
            xml::text(r, "DaysAfterInitiation").and_then(|d| d.trim().parse().ok()) == Some(days)
        };
        if rules.iter().any(|r| ours(r) && current(r)) {
            return Ok(false);
        }
        // The bucket's own rules stay; an older one of ours (other days) is replaced.
        let mut body = String::from(
            "<LifecycleConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
        );
        for r in rules.iter().filter(|r| !ours(r)) {
            body.push_str(&format!("<Rule>{r}</Rule>"));
        }
        body.push_str(&format!(
            "<Rule><ID>{ABORT_RULE_ID}</ID><Status>Enabled</Status><Filter><Prefix></Prefix></Filter><AbortIncompleteMultipartUpload><DaysAfterInitiation>{days}</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule></LifecycleConfiguration>"
        ));
        self.put_lifecycle(&body)?;
        Ok(true)
    }

    /// The bucket's lifecycle configuration (XML); empty when it has none.
    pub fn lifecycle(&self) -> Result<String> {
        let q = [("lifecycle".to_string(), String::new())];
        match self.xml("GET", "", &q, &[], b"") {
            Ok(xml) => Ok(xml),
            Err(e) if e.status() == Some(404) => Ok(String::new()),
            Err(e) => Err(e),
        }
    }

    /// Replaces the bucket's lifecycle configuration (all its rules) with `xml`.
    pub fn put_lifecycle(&self, xml: &str) -> Result<()> {
        use md5::Digest;
        let q = [("lifecycle".to_string(), String::new())];
        let md5 = crate::tus::headers::encode_base64(&md5::Md5::digest(xml.as_bytes()));
        self.call(
            "PUT",
            "",
            &q,
            &[("content-md5".into(), md5)],
            xml.as_bytes(),
        )?;
        Ok(())
    }
}

/// An answer with a status of 300 or more as an error (its S3 code and message).
fn checked(mut reply: Reply) -> Result<Reply> {
    if (200..300).contains(&reply.status) {
        return Ok(reply);
    }
    let status = reply.status;
    let body = reply.read_all(SMALL_BODY).unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    Err(S3Error::Status {
        status,
        code: xml::text(&text, "Code").unwrap_or_else(|| "NoBody".into()),
        message: xml::text(&text, "Message").unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_and_endpoints() {
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        assert!(Bucket::new("http://", "b", "r", creds(), None).is_err());
        let b =
            Bucket::new("http://127.0.0.1:3900/", "b", "garage", creds(), None).expect("endpoint");
        assert_eq!(b.path("a b/ü.png"), "/b/a%20b/%C3%BC.png");
    }

    fn creds() -> Credentials {
        Credentials {
            access_key: "k".into(),
            secret_key: "s".into(),
        }
    }
}
