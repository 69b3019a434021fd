//! A throwaway certificate authority for TLS tests, made with the `openssl` command: a CA, server certificates
//! it signs for chosen names, and self-signed ones. [`TestCa::serve`] installs one of them as a running server's
//! certificate (`ALTER INSTANCE RELOAD TLS` on MySQL, `FLUSH SSL` on MariaDB), so one server can present a good,
//! a self-signed and a wrong-host certificate in turn.

use crate::error::{Error, Result};
use crate::server::Server;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A certificate and its key, PEM files.
#[derive(Debug, Clone)]
pub struct Cert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A CA in a temporary directory (removed on drop).
pub struct TestCa {
    dir: tempfile::TempDir,
    /// The CA certificate, to give dropship as `ca = "..."`.
    pub ca: PathBuf,
    ca_key: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| Error::io("running openssl (apt-get install openssl)", e))?;
    if !out.status.success() {
        return Err(Error::Invalid(format!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

/// `IP:127.0.0.1` or `DNS:name` for each name.
fn alt_names(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| {
            if n.parse::<std::net::IpAddr>().is_ok() {
                format!("IP:{n}")
            } else {
                format!("DNS:{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl TestCa {
    pub fn new() -> Result<TestCa> {
        let dir = tempfile::Builder::new()
            .prefix("ds-ca")
            .tempdir_in("/tmp")
            .map_err(|e| Error::io("creating the CA directory", e))?;
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "3",
                "-subj",
                "/CN=dropship test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            dir.path(),
        )?;
        Ok(TestCa {
            ca: dir.path().join("ca.pem"),
            ca_key: dir.path().join("ca.key"),
            dir,
        })
    }

    /// The extensions file of a server certificate for `names`.
    fn extensions(&self, file: &str, names: &[&str]) -> Result<PathBuf> {
        let ext = self.dir.path().join(format!("{file}.ext"));
        std::fs::write(
            &ext,
            format!(
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName={}\n",
                alt_names(names)
            ),
        )
        .map_err(|e| Error::io("writing the certificate extensions", e))?;
        Ok(ext)
    }

    /// A server certificate signed by this CA for `names` (IP addresses or DNS names).
    pub fn server_cert(&self, file: &str, names: &[&str]) -> Result<Cert> {
        self.issue(file, names, true)
    }

    /// A self-signed certificate for `names` (an end-entity certificate, as servers generate for themselves):
    /// valid for the host, signed by nobody dropship trusts.
    pub fn self_signed(&self, file: &str, names: &[&str]) -> Result<Cert> {
        self.issue(file, names, false)
    }

    /// A key, a request and the certificate for `names`, signed by the CA or by its own key.
    fn issue(&self, file: &str, names: &[&str], by_ca: bool) -> Result<Cert> {
        let d = self.dir.path();
        let ext = self.extensions(file, names)?;
        let (key, csr, pem) = (
            format!("{file}.key"),
            format!("{file}.csr"),
            format!("{file}.pem"),
        );
        let subj = format!("/CN={}", names.first().copied().unwrap_or("server"));
        openssl(
            &[
                "req", "-newkey", "rsa:2048", "-nodes", "-subj", &subj, "-keyout", &key, "-out",
                &csr,
            ],
            d,
        )?;
        let (ca, ca_key) = (
            self.ca.display().to_string(),
            self.ca_key.display().to_string(),
        );
        let signer: Vec<&str> = if by_ca {
            vec!["-CA", &ca, "-CAkey", &ca_key, "-CAcreateserial"]
        } else {
            vec!["-signkey", &key]
        };
        let ext = ext.display().to_string();
        let mut args = vec!["x509", "-req", "-in", &csr];
        args.extend(signer);
        args.extend(["-days", "3", "-out", &pem, "-extfile", &ext]);
        openssl(&args, d)?;
        Ok(Cert {
            cert: d.join(pem),
            key: d.join(key),
        })
    }

    /// Server options lines that make a server start with `cert` (copied into the CA directory under
    /// `serving-<port-tag>`, the files [`TestCa::serve`] replaces later).
    pub fn server_config(&self, tag: &str, cert: &Cert) -> Result<Vec<String>> {
        let d = self.dir.path();
        let (c, k) = (
            d.join(format!("serving-{tag}.pem")),
            d.join(format!("serving-{tag}.key")),
        );
        std::fs::copy(&cert.cert, &c).map_err(|e| Error::io("copying the certificate", e))?;
        std::fs::copy(&cert.key, &k).map_err(|e| Error::io("copying the key", e))?;
        Ok(vec![
            format!("ssl_ca={}", self.ca.display()),
            format!("ssl_cert={}", c.display()),
            format!("ssl_key={}", k.display()),
        ])
    }

    /// Makes the running `server` (started with [`TestCa::server_config`] under `tag`) present `cert` to new
    /// connections.
    pub async fn serve(&self, server: &Server, tag: &str, cert: &Cert) -> Result<()> {
        let d = self.dir.path();
        std::fs::copy(&cert.cert, d.join(format!("serving-{tag}.pem")))
            .map_err(|e| Error::io("copying the certificate", e))?;
        std::fs::copy(&cert.key, d.join(format!("serving-{tag}.key")))
            .map_err(|e| Error::io("copying the key", e))?;
        let reload = if server.is_mysql() {
            "ALTER INSTANCE RELOAD TLS"
        } else {
            "FLUSH SSL"
        };
        let mut c = server.conn().await?;
        use mysql_async::prelude::Queryable;
        c.query_drop(reload).await.map_err(|e| Error::Sql {
            context: "reloading the server's TLS certificate".into(),
            statement: reload.into(),
            source: e,
        })?;
        let _ = c.disconnect().await;
        Ok(())
    }
}
