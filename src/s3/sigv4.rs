//! AWS Signature Version 4, by hand on `sha2` and RustCrypto `hmac`: the `Authorization`
//! header of a request, and a presigned URL's query (a GET a browser follows without
//! credentials). Pure functions of the request, the credentials and the time, so they are
//! tested against AWS's published vectors (the SigV4 test suite, the S3 examples) and then
//! against Garage. Requests are signed with a time the caller chooses: a Pi without a
//! real-time clock signs with the S3 server's clock (`s3::Clock`).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::storage::hex;

type HmacSha256 = Hmac<Sha256>;

/// The SHA-256 of an empty body, as S3 wants it for bodiless requests.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// What a presigned request, or one that does not hash its body, puts for the payload.
pub const UNSIGNED: &str = "UNSIGNED-PAYLOAD";

/// An access key and its secret. `Debug` never shows the secret.
#[derive(Clone)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, secret hidden)", self.access_key)
    }
}

/// Where a signature is valid: a region and a service (`s3`).
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
}

/// One request to sign. `path` is the URI path as sent (already encoded: S3 keys are encoded
/// once, with `uri_encode(key, false)`); `query` and `headers` are raw values; `headers`
/// holds every header to sign, `host` and `x-amz-date` among them.
pub struct Signable<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, String)],
    pub payload_hash: &'a str,
}

/// RFC 3986 percent-encoding as SigV4 wants it: unreserved characters kept, everything else
/// `%XX` in upper case; `/` kept when `keep_slash` (paths).
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let unreserved = b.is_ascii_alphanumeric() || b"-._~".contains(&b);
        if unreserved || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The query sorted by encoded name, then value.
fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `name:value\n` lines (names lower-cased and sorted, values trimmed with inner runs of
/// spaces made one), and the signed header names joined with `;`.
fn canonical_headers(headers: &[(String, String)]) -> (String, String) {
    let mut hs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            let value = v.split_whitespace().collect::<Vec<_>>().join(" ");
            (k.to_ascii_lowercase(), value)
        })
        .collect();
    hs.sort();
    let lines: String = hs.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let names = hs.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>();
    (lines, names.join(";"))
}

/// The canonical request, and the signed header names.
pub fn canonical_request(r: &Signable<'_>) -> (String, String) {
    let (lines, signed) = canonical_headers(r.headers);
    let creq = format!(
        "{}\n{}\n{}\n{lines}\n{signed}\n{}",
        r.method,
        r.path,
        canonical_query(r.query),
        r.payload_hash
    );
    (creq, signed)
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `20150830/us-east-1/service/aws4_request` for an `x-amz-date` of `20150830T…`.
fn credential_scope(amz_date: &str, scope: Scope<'_>) -> String {
    let day = amz_date.get(..8).unwrap_or(amz_date);
    format!("{day}/{}/{}/aws4_request", scope.region, scope.service)
}

/// The signature of a canonical request at `amz_date`.
fn signature(creds: &Credentials, scope: Scope<'_>, amz_date: &str, creq: &str) -> String {
    let cscope = credential_scope(amz_date, scope);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{cscope}\n{}",
        hex(&Sha256::digest(creq.as_bytes()))
    );
    hex(&hmac(
        &signing_key(creds, scope, amz_date),
        to_sign.as_bytes(),
    ))
}

/// The key of a day, a region and a service, derived from the secret.
fn signing_key(creds: &Credentials, scope: Scope<'_>, amz_date: &str) -> [u8; 32] {
    let day = amz_date.get(..8).unwrap_or(amz_date);
    let k_date = hmac(
        format!("AWS4{}", creds.secret_key).as_bytes(),
        day.as_bytes(),
    );
    let k_region = hmac(&k_date, scope.region.as_bytes());
    let k_service = hmac(&k_region, scope.service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// A browser's upload straight to the bucket (an HTML form POST): what its policy pins.
pub struct PostPolicy<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub content_type: &'a str,
    /// The exact size (`content-length-range` from it to it).
    pub size: u64,
    /// When the policy stops being accepted (RFC 3339).
    pub expiration: &'a str,
}

/// The form fields that go with the file of a POST upload (the file last): the key, the
/// type, the algorithm, credential and date, the policy (base64 of its JSON) and its
/// signature — the key derived for the day signing the base64 text itself.
pub fn post_policy(
    creds: &Credentials,
    scope: Scope<'_>,
    amz_date: &str,
    p: &PostPolicy<'_>,
) -> Vec<(String, String)> {
    let credential = format!("{}/{}", creds.access_key, credential_scope(amz_date, scope));
    let mut fields = vec![
        ("key".to_string(), p.key.to_string()),
        ("Content-Type".to_string(), p.content_type.to_string()),
        (
            "x-amz-algorithm".to_string(),
            "AWS4-HMAC-SHA256".to_string(),
        ),
        ("x-amz-credential".to_string(), credential),
        ("x-amz-date".to_string(), amz_date.to_string()),
    ];
    let mut conditions = vec![crate::json::Obj::new().str("bucket", p.bucket).finish()];
    conditions.extend(
        fields
            .iter()
            .map(|(k, v)| crate::json::Obj::new().str(k, v).finish()),
    );
    conditions.push(format!("[\"content-length-range\",{0},{0}]", p.size));
    let policy = crate::json::Obj::new()
        .str("expiration", p.expiration)
        .raw("conditions", &crate::json::array(conditions))
        .finish();
    let encoded = crate::tus::headers::encode_base64(policy.as_bytes());
    let signature = sign_policy(creds, scope, amz_date, &encoded);
    fields.push(("policy".to_string(), encoded));
    fields.push(("x-amz-signature".to_string(), signature));
    fields
}

/// The signature of a POST policy (its base64 text) at `amz_date`.
fn sign_policy(creds: &Credentials, scope: Scope<'_>, amz_date: &str, policy_b64: &str) -> String {
    hex(&hmac(
        &signing_key(creds, scope, amz_date),
        policy_b64.as_bytes(),
    ))
}

/// The `Authorization` header for `r`, whose headers carry `x-amz-date: amz_date`.
pub fn authorization(
    creds: &Credentials,
    scope: Scope<'_>,
    amz_date: &str,
    r: &Signable<'_>,
) -> String {
    let (creq, signed) = canonical_request(r);
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={signed}, Signature={}",
        creds.access_key,
        credential_scope(amz_date, scope),
        signature(creds, scope, amz_date, &creq)
    )
}

/// A request to presign: signed for `host` only, valid `expires` seconds; `extra` query
/// parameters (e.g. `response-content-disposition`) are signed with it.
pub struct Presign<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub extra: &'a [(String, String)],
    pub expires: u64,
}

/// A presigned request's query — its `extra` parameters and the `X-Amz-*` ones — from
/// `amz_date`, encoded and ready to follow `?`.
pub fn presign(creds: &Credentials, scope: Scope<'_>, amz_date: &str, p: &Presign<'_>) -> String {
    let (method, host, path, extra, expires) = (p.method, p.host, p.path, p.extra, p.expires);
    let mut query: Vec<(String, String)> = extra.to_vec();
    let credential = format!("{}/{}", creds.access_key, credential_scope(amz_date, scope));
    for (k, v) in [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_string()),
        ("X-Amz-Credential", credential),
        ("X-Amz-Date", amz_date.to_string()),
        ("X-Amz-Expires", expires.to_string()),
        ("X-Amz-SignedHeaders", "host".to_string()),
    ] {
        query.push((k.to_string(), v));
    }
    let headers = [("host".to_string(), host.to_string())];
    let r = Signable {
        method,
        path,
        query: &query,
        headers: &headers,
        payload_hash: UNSIGNED,
    };
    let (creq, _) = canonical_request(&r);
    let sig = signature(creds, scope, amz_date, &creq);
    format!("{}&X-Amz-Signature={sig}", canonical_query(&query))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// S3's documented browser POST example ("Example: Browser-Based Upload using HTTP POST
    /// (Using AWS Signature Version 4)"): its base64 policy and the signature it gives.
    #[test]
    fn post_policy_signature_of_the_s3_documentation() {
        let creds = Credentials {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        };
        let policy = concat!(
            "eyAiZXhwaXJhdGlvbiI6ICIyMDE1LTEyLTMwVDEyOjAwOjAwLjAwMFoiLA0KICAiY29uZGl0aW9ucyI6IFsNCiAg",
            "ICB7ImJ1Y2tldCI6ICJzaWd2NGV4YW1wbGVidWNrZXQifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRrZXkiLCAi",
            "dXNlci91c2VyMS8iXSwNCiAgICB7ImFjbCI6ICJwdWJsaWMtcmVhZCJ9LA0KICAgIHsic3VjY2Vzc19hY3Rpb25f",
            "cmVkaXJlY3QiOiAiaHR0cDovL3NpZ3Y0ZXhhbXBsZWJ1Y2tldC5zMy5hbWF6b25hd3MuY29tL3N1Y2Nlc3NmdWxf",
            "dXBsb2FkLmh0bWwifSwNCiAgICBbInN0YXJ0cy13aXRoIiwgIiRDb250ZW50LVR5cGUiLCAiaW1hZ2UvIl0sDQog",
            "ICAgeyJ4LWFtei1tZXRhLXV1aWQiOiAiMTQzNjUxMjM2NTEyNzQifSwNCiAgICB7IngtYW16LXNlcnZlci1zaWRl",
            "LWVuY3J5cHRpb24iOiAiQUVTMjU2In0sDQogICAgWyJzdGFydHMtd2l0aCIsICIkeC1hbXotbWV0YS10YWciLCAi",
            "Il0sDQoNCiAgICB7IngtYW16LWNyZWRlbnRpYWwiOiAiQUtJQUlPU0ZPRE5ON0VYQU1QTEUvMjAxNTEyMjkvdXMt",
            "ZWFzdC0xL3MzL2F3czRfcmVxdWVzdCJ9LA0KICAgIHsieC1hbXotYWxnb3JpdGhtIjogIkFXUzQtSE1BQy1TSEEy",
            "NTYifSwNCiAgICB7IngtYW16LWRhdGUiOiAiMjAxNTEyMjlUMDAwMDAwWiIgfQ0KICBdDQp9",
        );
        let scope = Scope {
            region: "us-east-1",
            service: "s3",
        };
        assert_eq!(
            sign_policy(&creds, scope, "20151229T000000Z", policy),
            "8afdbf4008c03f22c2cd3cdb72e4afbb1f6a588f3255ac628749a66d7f09699e"
        );
    }

    #[test]
    fn a_post_policy_pins_key_type_and_exact_size() {
        let scope = Scope {
            region: "garage",
            service: "s3",
        };
        let p = PostPolicy {
            bucket: "b",
            key: "in/ab.png",
            content_type: "image/png",
            size: 1234,
            expiration: "2026-12-02T12:00:00Z",
        };
        let fields = post_policy(&suite(), scope, SUITE_DATE, &p);
        let get = |k: &str| fields.iter().find(|f| f.0 == k).map(|f| f.1.clone());
        let policy = get("policy").and_then(|b| crate::tus::headers::decode_base64(&b));
        let policy = String::from_utf8(policy.unwrap_or_default()).unwrap_or_default();
        for part in [
            r#"{"bucket":"b"}"#,
            r#"{"key":"in/ab.png"}"#,
            r#"{"Content-Type":"image/png"}"#,
            r#"["content-length-range",1234,1234]"#,
            r#""expiration":"2026-12-02T12:00:00Z""#,
        ] {
            assert!(policy.contains(part), "{part} not in {policy}");
        }
        let b64 = get("policy").unwrap_or_default();
        assert_eq!(
            get("x-amz-signature"),
            Some(sign_policy(&suite(), scope, SUITE_DATE, &b64))
        );
    }

    const SUITE_DATE: &str = "20150830T123600Z";

    fn suite() -> Credentials {
        Credentials {
            access_key: "AKIDEXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        }
    }

    fn s3_docs() -> Credentials {
        Credentials {
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        }
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A case of the AWS SigV4 test suite (region us-east-1, service "service").
    fn suite_case(
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> String {
        let mut headers = pairs(&[
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", SUITE_DATE),
        ]);
        headers.extend(pairs(extra));
        let query = pairs(query);
        let r = Signable {
            method,
            path,
            query: &query,
            headers: &headers,
            payload_hash: EMPTY_SHA256,
        };
        let scope = Scope {
            region: "us-east-1",
            service: "service",
        };
        authorization(&suite(), scope, SUITE_DATE, &r)
    }

    fn signed(names: &str, sig: &str) -> String {
        format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders={names}, Signature={sig}")
    }

    #[test]
    fn the_aws_sigv4_test_suite() {
        let plain = "host;x-amz-date";
        assert_eq!(
            suite_case("GET", "/", &[], &[]),
            signed(
                plain,
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
        assert_eq!(
            suite_case("POST", "/", &[], &[]),
            signed(
                plain,
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
            )
        );
        assert_eq!(
            suite_case(
                "GET",
                "/",
                &[("Param2", "value2"), ("Param1", "value1")],
                &[]
            ),
            signed(
                plain,
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
            )
        );
        assert_eq!(
            suite_case("POST", "/", &[], &[("My-Header1", "VALUE1")]),
            signed(
                "host;my-header1;x-amz-date",
                "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"
            )
        );
        let unreserved = "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        assert_eq!(uri_encode(unreserved, true), unreserved);
        assert_eq!(
            suite_case("GET", unreserved, &[], &[]),
            signed(
                plain,
                "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"
            )
        );
        assert_eq!(
            suite_case(
                "GET",
                "/",
                &[],
                &[("My-Header1", " value1"), ("My-Header2", "\"a   b   c\"")]
            ),
            signed(
                "host;my-header1;my-header2;x-amz-date",
                "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"
            )
        );
    }

    #[test]
    fn the_s3_documentation_examples() {
        let scope = Scope {
            region: "us-east-1",
            service: "s3",
        };
        let date = "20130524T000000Z";
        let headers = pairs(&[
            ("Host", "examplebucket.s3.amazonaws.com"),
            ("Range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", date),
        ]);
        let r = Signable {
            method: "GET",
            path: "/test.txt",
            query: &[],
            headers: &headers,
            payload_hash: EMPTY_SHA256,
        };
        assert!(authorization(&s3_docs(), scope, date, &r).ends_with(
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        ));
        let get = Presign {
            method: "GET",
            host: "examplebucket.s3.amazonaws.com",
            path: "/test.txt",
            extra: &[],
            expires: 86_400,
        };
        let q = presign(&s3_docs(), scope, date, &get);
        assert_eq!(
            q,
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        assert!(!format!("{:?}", suite()).contains("EXAMPLEKEY"));
    }
}
