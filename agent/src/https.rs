//! An HTTP client that speaks both `http://` and `https://` (rustls with the
//! ring provider, like the rest of the workspace), for node endpoints such
//! as the kubelet's authenticated port, which serves a self-signed
//! certificate unless serving-certificate rotation is on.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

pub type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
pub type HttpsClient = Client<Connector, Empty<Bytes>>;

/// How the server's certificate is checked.
#[derive(Clone, Copy, Debug)]
pub enum Verify<'a> {
    /// Any certificate is accepted (handshake signatures are still checked).
    Nothing,
    /// Against a PEM bundle; the web roots when `None`.
    Roots(Option<&'a Path>),
}

/// A client for GETs over http or https. `connect_timeout` bounds the TCP
/// connect; the caller bounds the whole exchange.
pub fn client(connect_timeout: Duration, verify: Verify<'_>) -> anyhow::Result<HttpsClient> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?;
    let tls = match verify {
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth(),
        Verify::Roots(ca_file) => {
            let mut roots = rustls::RootCertStore::empty();
            match ca_file {
                Some(path) => {
                    let pem = std::fs::read(path)
                        .with_context(|| format!("reading CA file {}", path.display()))?;
                    let mut found = 0;
                    for cert in CertificateDer::pem_slice_iter(&pem) {
                        let cert = cert.with_context(|| {
                            format!("CA file {}: not a PEM certificate", path.display())
                        })?;
                        roots.add(cert).with_context(|| {
                            format!("CA file {}: unusable certificate", path.display())
                        })?;
                        found += 1;
                    }
                    if found == 0 {
                        anyhow::bail!("CA file {} holds no PEM certificate", path.display());
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    let mut http = HttpConnector::new();
    // The https connector wraps this one; it must accept https:// URIs.
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(https))
}

/// Accepts any server certificate, still checking handshake signatures.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
