//! Where the S3 server is and how a connection to it is made: `http://host[:port]` on a plain
//! `TcpStream` (a Garage on the LAN), or — in the `s3-tls` build — `https://host[:port]`
//! through rustls with the ring provider (cloud S3, B2, R2, or a Garage behind a TLS proxy),
//! the server's certificate checked against a PEM bundle: `--s3-ca`, else `$SSL_CERT_FILE`,
//! else the system's (`/etc/ssl/certs/ca-certificates.crt` on Debian and Pi OS). The bundle is
//! read once, at start; a wrong one stops start-up with the reason.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

/// Waits this long for a connection, and for each read or write.
const TIMEOUT: Duration = Duration::from_secs(30);

/// An S3 server's address, parsed once.
pub struct Endpoint {
    /// What the `Host` header (and so the signature) names: the URL's `host[:port]`.
    pub authority: String,
    /// `http` or `https`, for presigned URLs.
    pub scheme: &'static str,
    /// `host:port` to connect to (the scheme's port when the URL has none).
    addr: String,
    #[cfg(feature = "s3-tls")]
    tls: Option<tls::Client>,
}

impl Endpoint {
    /// `url` is `http://host[:port]` or (s3-tls) `https://host[:port]`, a trailing `/` allowed;
    /// `ca` a PEM bundle to trust instead of the system's.
    #[cfg_attr(not(feature = "s3-tls"), allow(unused_variables))]
    pub fn parse(url: &str, ca: Option<&Path>) -> Result<Endpoint, String> {
        let (scheme, rest, port) = if let Some(rest) = url.strip_prefix("http://") {
            ("http", rest, 80)
        } else if let Some(rest) = url.strip_prefix("https://") {
            ("https", rest, 443)
        } else {
            return Err(format!("{url}: expected http://host:port or https://host"));
        };
        if scheme == "https" && !cfg!(feature = "s3-tls") {
            return Err(format!(
                "{url}: https:// endpoints need the s3-tls build (cargo build --release --features s3-tls)"
            ));
        }
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(format!("{url}: expected {scheme}://host[:port]"));
        }
        let has_port = match authority.strip_prefix('[') {
            Some(v6) => v6.split_once(']').is_some_and(|(_, p)| p.starts_with(':')),
            None => authority.contains(':'),
        };
        Ok(Endpoint {
            authority: authority.to_string(),
            scheme,
            addr: match has_port {
                true => authority.to_string(),
                false => format!("{authority}:{port}"),
            },
            #[cfg(feature = "s3-tls")]
            tls: match scheme {
                "https" => Some(tls::Client::new(host_of(authority), ca)?),
                _ => None,
            },
        })
    }

    /// A new connection (TLS set up on its first write).
    pub fn connect(&self) -> io::Result<Conn> {
        let addr = self
            .addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::other(format!("{} has no address", self.addr)))?;
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        stream.set_nodelay(true)?;
        #[cfg(feature = "s3-tls")]
        if let Some(tls) = &self.tls {
            return tls.wrap(stream).map(|s| Conn::Tls(Box::new(s)));
        }
        Ok(Conn::Plain(stream))
    }
}

/// The host of `host[:port]` (an IPv6 literal without its brackets).
#[cfg(feature = "s3-tls")]
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// One connection to the server.
pub enum Conn {
    Plain(TcpStream),
    #[cfg(feature = "s3-tls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(out),
            #[cfg(feature = "s3-tls")]
            Conn::Tls(s) => s.read(out),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(data),
            #[cfg(feature = "s3-tls")]
            Conn::Tls(s) => s.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            #[cfg(feature = "s3-tls")]
            Conn::Tls(s) => s.flush(),
        }
    }
}

#[cfg(feature = "s3-tls")]
mod tls {
    use std::net::TcpStream;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

    /// Debian's and Pi OS's bundle of the system's trusted authorities.
    const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

    /// What every TLS connection to one server shares.
    pub struct Client {
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    }

    impl Client {
        pub fn new(host: &str, ca: Option<&Path>) -> Result<Client, String> {
            let bundle = ca.map(Path::to_path_buf).unwrap_or_else(|| {
                std::env::var_os("SSL_CERT_FILE")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(SYSTEM_BUNDLE))
            });
            let certs = CertificateDer::pem_file_iter(&bundle)
                .map_err(|e| format!("cannot read {}: {e}", bundle.display()))?
                .filter_map(Result::ok);
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("no certificates in {}", bundle.display()));
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            let name = ServerName::try_from(host.to_string())
                .map_err(|e| format!("{host}: not a server name: {e}"))?;
            Ok(Client {
                config: Arc::new(config),
                name,
            })
        }

        pub fn wrap(
            &self,
            stream: TcpStream,
        ) -> std::io::Result<StreamOwned<ClientConnection, TcpStream>> {
            let conn = ClientConnection::new(self.config.clone(), self.name.clone())
                .map_err(std::io::Error::other)?;
            Ok(StreamOwned::new(conn, stream))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_take_the_scheme_port_when_none_is_given() {
        let e = Endpoint::parse("http://127.0.0.1:3900/", None).expect("http");
        assert_eq!(
            (e.authority.as_str(), e.addr.as_str()),
            ("127.0.0.1:3900", "127.0.0.1:3900")
        );
        let e = Endpoint::parse("http://garage.local", None).expect("no port");
        assert_eq!(
            (e.authority.as_str(), e.addr.as_str()),
            ("garage.local", "garage.local:80")
        );
        let e = Endpoint::parse("http://[::1]:3900", None).expect("v6");
        assert_eq!(e.addr, "[::1]:3900");
        let e = Endpoint::parse("http://[::1]", None).expect("v6 no port");
        assert_eq!(e.addr, "[::1]:80");
        for bad in [
            "ftp://x",
            "http://",
            "http://a/b",
            "http://u@h",
            "garage:3900",
        ] {
            assert!(Endpoint::parse(bad, None).is_err(), "{bad}");
        }
    }

    #[cfg(not(feature = "s3-tls"))]
    #[test]
    fn https_needs_the_tls_build() {
        let e = Endpoint::parse("https://s3.example", None)
            .err()
            .unwrap_or_default();
        assert!(e.contains("s3-tls"), "{e}");
    }

    #[cfg(feature = "s3-tls")]
    #[test]
    fn https_needs_a_bundle_with_certificates() {
        let dir = std::env::temp_dir().join(format!("pidrop-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let e = Endpoint::parse("https://s3.example", Some(&empty))
            .err()
            .unwrap_or_default();
        assert!(e.contains("no certificates"), "{e}");
        let e = Endpoint::parse("https://s3.example", Some(&dir.join("missing.pem")))
            .err()
            .unwrap_or_default();
        assert!(e.contains("cannot read"), "{e}");
        std::fs::remove_dir_all(&dir).expect("clean up");
        assert_eq!(host_of("[::1]:443"), "::1");
        assert_eq!(host_of("s3.example:9000"), "s3.example");
    }
}
