//! HTTPS (SPEC §7): the rustls server configuration made from `[server.tls]`, and the
//! `Strict-Transport-Security` header every answer carries when it is on.
//!
//! The crypto provider is rustls's `ring`, named explicitly rather than taken from a
//! process-wide default, so the choice does not depend on which other crate happens
//! to enable which rustls feature. The files are read and checked when the
//! configuration is loaded (a bad one exits 2 naming its key) and read again when the
//! server is built.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix_web::middleware::DefaultHeaders;
use actix_web_lab::header::StrictTransportSecurity;
use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;

const CERT_KEY: &str = "server.tls.cert_file";
const KEY_KEY: &str = "server.tls.key_file";

/// ALPN, in the server's order of preference: HTTP/2 lets a browser hold every
/// EventSource of a page over one connection, instead of six per host at most.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The `max-age` of `Strict-Transport-Security`: a year, the usual recommendation
/// (actix-web-lab's default of five minutes would protect a browser only briefly).
/// Without `includeSubDomains`: the hub cannot know whether the other hosts of its
/// domain all speak HTTPS.
const HSTS_MAX_AGE: Duration = Duration::from_secs(365 * 24 * 3600);

/// A problem with one key: the key and what is wrong with it, as `Config::check`
/// answers.
pub type Refusal = (&'static str, String);

/// The server's TLS configuration, or `None` when TLS is off (neither file set).
pub fn server_config(tls: &TlsConfig) -> Result<Option<ServerConfig>, Refusal> {
    let (cert_file, key_file) = match (tls.cert_file.as_str(), tls.key_file.as_str()) {
        ("", "") => return Ok(None),
        (_, "") => return Err((CERT_KEY, format!("is set, but {KEY_KEY} is not"))),
        ("", _) => return Err((KEY_KEY, format!("is set, but {CERT_KEY} is not"))),
        (cert, key) => (Path::new(cert), Path::new(key)),
    };
    let chain = certificates(cert_file).map_err(|problem| (CERT_KEY, problem))?;
    let key = private_key(key_file).map_err(|problem| (KEY_KEY, problem))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // The key is loaded on its own first, so that a bad key is blamed on its file and
    // a bad certificate on its own.
    provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| {
            let at = key_file.display();
            (KEY_KEY, format!("{at} is not a usable private key: {e}"))
        })?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        // ring supports every default version: this cannot fail, but would say why.
        .map_err(|e| (CERT_KEY, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => (
                KEY_KEY,
                format!(
                    "{} is not the key of the certificate in {}",
                    key_file.display(),
                    cert_file.display()
                ),
            ),
            other => (
                CERT_KEY,
                format!(
                    "{} is not a usable certificate: {other}",
                    cert_file.display()
                ),
            ),
        })?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Some(config))
}

/// The certificate chain in a PEM file, the server's own certificate first.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let at = path.display();
    let text = std::fs::read(path).map_err(|e| format!("cannot read {at}: {e}"))?;
    let chain = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "{at} is not a valid PEM certificate chain: {}",
                pem_problem(&e)
            )
        })?;
    if chain.is_empty() {
        return Err(format!(
            "{at} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(chain)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let at = path.display();
    let text = std::fs::read(path).map_err(|e| format!("cannot read {at}: {e}"))?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|e| match e {
        pem::Error::NoItemsFound => {
            format!("{at} holds no PEM private key (-----BEGIN PRIVATE KEY-----, or RSA or EC)")
        }
        e => format!("{at} is not a valid PEM private key: {}", pem_problem(&e)),
    })
}

/// What was wrong with a PEM file, readably (the parser's own text shows bytes as
/// numbers). Never quotes the file's contents beyond a section's marker line.
fn pem_problem(error: &pem::Error) -> String {
    match error {
        pem::Error::MissingSectionEnd { end_marker } => {
            format!(
                "a section never ends ({})",
                String::from_utf8_lossy(end_marker)
            )
        }
        pem::Error::IllegalSectionStart { .. } => "a malformed -----BEGIN line".into(),
        pem::Error::Base64Decode(e) => format!("bad base64 in a section ({e})"),
        other => other.to_string(),
    }
}

/// `Strict-Transport-Security` on every answer when the server speaks HTTPS, nothing
/// when it does not (a browser ignores the header over plain HTTP anyway, and it
/// would promise what the server does not keep). Added only where the handler set none.
pub fn hsts(on: bool) -> DefaultHeaders {
    let headers = DefaultHeaders::new();
    if on {
        headers.add(StrictTransportSecurity::new(HSTS_MAX_AGE))
    } else {
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file in the temp directory holding `text`, removed when dropped.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(name: &str, text: &[u8]) -> Self {
            let path =
                std::env::temp_dir().join(format!("ssehub-tls-unit-{}-{name}", std::process::id()));
            std::fs::write(&path, text).unwrap();
            Self(path)
        }

        fn path(&self) -> String {
            self.0.display().to_string()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn tls(cert: &str, key: &str) -> TlsConfig {
        TlsConfig {
            cert_file: cert.into(),
            key_file: key.into(),
        }
    }

    /// A self-signed certificate for localhost and its key, as PEM files.
    fn pair(name: &str) -> (TempFile, TempFile) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        (
            TempFile::new(&format!("{name}-cert.pem"), made.cert.pem().as_bytes()),
            TempFile::new(
                &format!("{name}-key.pem"),
                made.signing_key.serialize_pem().as_bytes(),
            ),
        )
    }

    #[test]
    fn neither_file_is_plain_http_and_both_are_https_with_h2_first() {
        assert!(server_config(&tls("", "")).unwrap().is_none());
        let (cert, key) = pair("good");
        let config = server_config(&tls(&cert.path(), &key.path()))
            .unwrap()
            .expect("TLS is on");
        assert_eq!(config.alpn_protocols, [&b"h2"[..], &b"http/1.1"[..]]);
    }

    #[test]
    fn one_file_without_the_other_names_the_one_that_is_set() {
        let (key, problem) = server_config(&tls("cert.pem", "")).unwrap_err();
        assert_eq!(key, CERT_KEY);
        assert!(problem.contains(KEY_KEY), "{problem}");
        let (key, problem) = server_config(&tls("", "key.pem")).unwrap_err();
        assert_eq!(key, KEY_KEY);
        assert!(problem.contains(CERT_KEY), "{problem}");
    }

    #[test]
    fn unreadable_or_malformed_files_name_their_key() {
        let (cert, key) = pair("bad");
        let garbage = TempFile::new("garbage.pem", b"not a pem file\n");
        let unended = TempFile::new("unended.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n");
        let armoured_junk = TempFile::new(
            "junk.pem",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let cases = [
            (
                tls("/nonexistent/cert.pem", &key.path()),
                CERT_KEY,
                "cannot read",
            ),
            (
                tls(&cert.path(), "/nonexistent/key.pem"),
                KEY_KEY,
                "cannot read",
            ),
            (
                tls(&garbage.path(), &key.path()),
                CERT_KEY,
                "no PEM certificate",
            ),
            (tls(&unended.path(), &key.path()), CERT_KEY, "never ends"),
            (
                tls(&armoured_junk.path(), &key.path()),
                CERT_KEY,
                "not a usable certificate",
            ),
            (
                tls(&cert.path(), &garbage.path()),
                KEY_KEY,
                "no PEM private key",
            ),
            // A certificate is no key.
            (
                tls(&cert.path(), &cert.path()),
                KEY_KEY,
                "no PEM private key",
            ),
        ];
        for (config, want_key, want_problem) in cases {
            let (key, problem) = server_config(&config).unwrap_err();
            assert_eq!(key, want_key, "{config:?}: {problem}");
            assert!(problem.contains(want_problem), "{config:?}: {problem}");
            assert!(!problem.contains('\n'), "{problem}");
        }
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let (cert, _) = pair("mine");
        let (_, other_key) = pair("theirs");
        let (key, problem) = server_config(&tls(&cert.path(), &other_key.path())).unwrap_err();
        assert_eq!(key, KEY_KEY);
        assert!(problem.contains("is not the key of"), "{problem}");
    }

    #[test]
    fn hsts_is_sent_only_with_tls() {
        let call = |on: bool| {
            actix_web::rt::System::new().block_on(async move {
                let app = actix_web::test::init_service(
                    actix_web::App::new()
                        .wrap(hsts(on))
                        .default_service(actix_web::web::to(actix_web::HttpResponse::Ok)),
                )
                .await;
                let req = actix_web::test::TestRequest::get().to_request();
                let res = actix_web::test::call_service(&app, req).await;
                let header = actix_web::http::header::STRICT_TRANSPORT_SECURITY;
                res.headers().get(header).cloned()
            })
        };
        assert_eq!(call(true).unwrap(), "max-age=31536000");
        assert_eq!(call(false), None);
    }
}
