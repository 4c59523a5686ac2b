//! Whom the email channel trusts on TLS connections (IMAPS, IMAP STARTTLS, SMTPS, SMTP STARTTLS).
//!
//! Always the public web PKI (webpki-roots); plus, when the config names one with
//! `tls_ca_file`, the certificates of a private CA (PEM; a company's own mail server). There is
//! deliberately no switch to accept invalid certificates: a server whose certificate does not
//! verify is refused, the mailbox retries with backoff and the log says why (`invalid peer
//! certificate: UnknownIssuer`), and the mail waits on the server until the trust is fixed.

use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// The certificates of `tls_ca_file`, or why they cannot be used; `key` names the setting.
pub fn load_ca(path: &str, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{key}: cannot read {path}: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{key}: {path} is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{key}: {path} holds no certificate"));
    }
    Ok(certs)
}

/// A rustls client configuration trusting the public roots and `extra`.
pub fn client_config(extra: &[CertificateDer<'static>]) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra {
        roots
            .add(cert.clone())
            .map_err(|e| format!("a certificate of tls_ca_file cannot be used: {e}"))?;
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The rustls configuration for a connection with an optional `tls_ca_file`.
pub fn for_ca_file(ca_file: Option<&str>, key: &str) -> Result<Arc<ClientConfig>, String> {
    let extra = match ca_file {
        Some(path) => load_ca(path, key)?,
        None => Vec::new(),
    };
    client_config(&extra)
}

/// When `error` (or anything it wraps) is rustls refusing the server's certificate: rustls's
/// words for why (`invalid peer certificate: UnknownIssuer`, `…: Expired`, …).
pub fn untrusted_certificate(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    fn refused(e: &tokio_rustls::rustls::Error) -> Option<String> {
        matches!(e, tokio_rustls::rustls::Error::InvalidCertificate(_)).then(|| e.to_string())
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<tokio_rustls::rustls::Error>() {
            return refused(r);
        }
        // io::Error hides its inner error from `source()`: look inside.
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<tokio_rustls::rustls::Error>())
        {
            return refused(inner);
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_a_config_error_naming_the_key() {
        let e = for_ca_file(
            Some("/nonexistent/ca.pem"),
            "channels.email.smtp.tls_ca_file",
        )
        .unwrap_err();
        assert!(
            e.starts_with("channels.email.smtp.tls_ca_file: cannot read"),
            "{e}"
        );
        let dir = std::env::temp_dir().join(format!("sb-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = for_ca_file(empty.to_str(), "k").unwrap_err();
        assert!(e.contains("holds no certificate"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(for_ca_file(None, "k").is_ok());
    }

    #[test]
    fn a_refused_certificate_is_found_inside_io_errors() {
        use tokio_rustls::rustls::{CertificateError, Error};
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert_eq!(
            untrusted_certificate(&io).as_deref(),
            Some("invalid peer certificate: UnknownIssuer")
        );
        let other = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(untrusted_certificate(&other), None);
    }
}
