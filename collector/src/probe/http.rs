//! The HTTP client of the health probes: GET with a deadline, a small body
//! limit, http or https (web roots, a given CA, or no verification for the
//! self-signed certificates control-plane components serve by default).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Request;
use hyper::header::{AUTHORIZATION, HeaderValue};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Health answers are a few hundred bytes; `/metrics` of etcd a few
/// hundred kilobytes.
const MAX_BODY: usize = 4 << 20;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

#[derive(Clone)]
pub struct ProbeClient {
    client: Client<Connector, Empty<Bytes>>,
    timeout: Duration,
}

/// What a probe got: the status and body, or why there was no answer.
#[derive(Debug, Clone)]
pub enum Answer {
    Http { status: u16, body: String },
    Failed(String),
}

impl ProbeClient {
    pub fn new(
        timeout: Duration,
        ca_file: Option<&std::path::Path>,
        insecure: bool,
    ) -> anyhow::Result<ProbeClient> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let tls = if insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
                .with_no_client_auth()
        } else {
            let mut roots = rustls::RootCertStore::empty();
            match ca_file {
                Some(path) => {
                    let pem = std::fs::read(path).map_err(|e| {
                        anyhow::anyhow!("kube.probes.ca_file {}: {e}", path.display())
                    })?;
                    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
                        let cert: CertificateDer<'static> = cert.map_err(|e| {
                            anyhow::anyhow!("kube.probes.ca_file {}: {e}", path.display())
                        })?;
                        roots.add(cert)?;
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(ProbeClient { client, timeout })
    }

    pub async fn get(&self, url: &str) -> Answer {
        self.get_with(url, None, MAX_BODY).await
    }

    /// GET with an optional `Authorization` header and a body limit of
    /// `max_body` bytes (a route table can be far larger than a health
    /// answer).
    pub async fn get_with(
        &self,
        url: &str,
        authorization: Option<&HeaderValue>,
        max_body: usize,
    ) -> Answer {
        let uri: hyper::Uri = match url.parse() {
            Ok(u) => u,
            Err(e) => return Answer::Failed(format!("bad URL {url:?}: {e}")),
        };
        let mut req = match Request::get(uri).body(Empty::<Bytes>::new()) {
            Ok(r) => r,
            Err(e) => return Answer::Failed(format!("bad request for {url:?}: {e}")),
        };
        if let Some(v) = authorization {
            req.headers_mut().insert(AUTHORIZATION, v.clone());
        }
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| error_chain(&e))?;
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), max_body)
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            Ok::<_, String>(Answer::Http {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => Answer::Failed(e),
            Err(_) => Answer::Failed(format!(
                "no answer within {}",
                humantime::format_duration(self.timeout)
            )),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
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
