//! HTTPS on the collector: a push over TLS with the server's CA, and with
//! client certificates required, a push without one is refused at the
//! handshake. Certificates are made here with the openssl command; the
//! client is curl.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use lookout_protocol::remote_write::{self, Label, Sample, TimeSeries, WriteRequest};
use lookout_tests::tls::make_certs;
use lookout_tests::{bin, free_port, have_program, require, wait_for};

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn curl(dir: &Path, url: &str, extra: &[&str]) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(dir.join("ca.crt"))
        .args(extra)
        .args(["-w", "%{http_code}", "-o", "/dev/null", url])
        .current_dir(dir)
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).to_string())
}

#[test]
fn pushes_over_https_with_and_without_client_certificates() {
    if !require("openssl", have_program("openssl")) || !require("curl", have_program("curl")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_certs(d);
    let body = remote_write::encode(&WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![Label {
                name: "__name__".into(),
                value: "tls_push".into(),
            }],
            samples: vec![Sample {
                value: 1.0,
                timestamp: 1_790_000_000_000,
            }],
            ..Default::default()
        }],
        metadata: Vec::new(),
    });
    std::fs::write(d.join("body.bin"), &body).unwrap();
    let push_args = [
        "-X",
        "POST",
        "-H",
        "Content-Encoding: snappy",
        "-H",
        "Content-Type: application/x-protobuf",
        "--data-binary",
        "@body.bin",
    ];

    for require_client_cert in [false, true] {
        let port = free_port();
        let mut cfg = format!(
            "listen: 127.0.0.1:{port}\nstorage:\n  path: {}\ntls:\n  cert_file: {}\n  key_file: {}\n",
            d.join(format!("data-{require_client_cert}")).display(),
            d.join("server.crt").display(),
            d.join("server.key").display()
        );
        if require_client_cert {
            cfg.push_str(&format!(
                "  client_ca_file: {}\n",
                d.join("ca.crt").display()
            ));
        }
        std::fs::write(d.join("lookout.yaml"), cfg).unwrap();
        let log =
            std::fs::File::create(d.join(format!("lookout-{require_client_cert}.log"))).unwrap();
        let _collector = Killed(
            Command::new(bin("lookout"))
                .arg("serve")
                .arg("--config")
                .arg(d.join("lookout.yaml"))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let base = format!("https://127.0.0.1:{port}");
        let client = ["--cert", "client.crt", "--key", "client.key"];
        let with_cert: &[&str] = if require_client_cert { &client } else { &[] };
        let ready = wait_for(Duration::from_secs(15), || {
            curl(d, &format!("{base}/-/ready"), with_cert).filter(|c| c == "200")
        });
        let log_text = || {
            std::fs::read_to_string(d.join(format!("lookout-{require_client_cert}.log")))
                .unwrap_or_default()
        };
        assert!(
            ready.is_some(),
            "collector did not answer over https; log:\n{}",
            log_text()
        );
        let mut args: Vec<&str> = push_args.to_vec();
        args.extend_from_slice(with_cert);
        assert_eq!(
            curl(d, &format!("{base}/api/v1/write"), &args).as_deref(),
            Some("204")
        );
        if require_client_cert {
            let refused = curl(d, &format!("{base}/api/v1/write"), &push_args);
            assert_eq!(
                refused.as_deref(),
                Some("000"),
                "a client without a certificate gets no answer"
            );
        }
        // Plain HTTP on the TLS port gets nothing.
        let plain = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "3",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("http://127.0.0.1:{port}/-/ready"),
            ])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&plain.stdout), "000");
        assert!(
            log_text().contains("listening on https://"),
            "{}",
            log_text()
        );
    }
}
