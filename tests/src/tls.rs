//! TLS for the end-to-end tests: certificates made with the `openssl`
//! command, and `openssl s_server` as a real HTTPS server of static files.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, wait_for};

/// Runs `openssl` in `dir`; a failure panics with its error output.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes in `dir` a CA (`ca.crt`, `ca.key`), a server certificate for
/// 127.0.0.1 signed by it (`server.crt`, `server.key`) and a client
/// certificate (`client.crt`, `client.key`).
pub fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=lookout test CA",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write server.ext");
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n")
        .expect("write client.ext");
    for who in ["server", "client"] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{who}.key"),
                "-out",
                &format!("{who}.csr"),
                "-subj",
                &format!("/CN={who}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{who}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{who}.crt"),
                "-days",
                "2",
                "-extfile",
                &format!("{who}.ext"),
            ],
        );
    }
}

/// `openssl s_server -WWW`: answers `GET /<path>` with the file `<path>`
/// under its root (query string included in the name), over TLS with the
/// `server.crt` of a [`make_certs`] directory. Killed on drop.
pub struct TlsFileServer {
    child: Child,
    pub port: u16,
    pub root: PathBuf,
}

impl TlsFileServer {
    pub fn start(certs: &Path, root: &Path) -> TlsFileServer {
        let port = free_port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-WWW", "-accept", &port.to_string()])
            .arg("-cert")
            .arg(certs.join("server.crt"))
            .arg("-key")
            .arg(certs.join("server.key"))
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start openssl s_server");
        let listening = wait_for(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| ())
        });
        assert!(
            listening.is_some(),
            "openssl s_server did not listen on {port}"
        );
        TlsFileServer {
            child,
            port,
            root: root.to_path_buf(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// Serves `body` at `path` (`/stats/summary`, `/healthz?verbose`).
    pub fn put(&self, path: &str, body: &str) {
        let file = self.root.join(path.trim_start_matches('/'));
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).expect("create the served directory");
        }
        std::fs::write(&file, body).expect("write the served file");
    }
}

impl Drop for TlsFileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
