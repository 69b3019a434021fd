//! Finding the server binaries of each flavor and preparing the cached template datadir.
//!
//! - **MariaDB** comes from Debian (`/usr/sbin/mariadbd`, `mariadb-install-db`).
//! - **MySQL 9.7** is unpacked by `scripts/install-mysql.sh` into a private folder (`$DROPSHIP_MYSQL_ROOT`, default
//!   `/opt/dropship-mysql`), never into the system: its `bin/mysqld` wrapper runs the server through the folder's
//!   own dynamic loader. The template is made with `mysqld --initialize-insecure` plus an init file that lets
//!   `root` in over TCP from 127.0.0.1 without a password (MySQL's `root@localhost` does not match TCP clients
//!   under `skip-name-resolve`).
//!
//! Initialising a datadir takes most of a second (MariaDB) or about five (MySQL), so it runs once per flavor and
//! version into a template directory `$TMPDIR/dropship-sandbox-template-<version>-<format>`, and every instance
//! starts from a `cp -a` copy of it.
//!
//! Invariants:
//! - The template is complete or absent: it is installed into a private `*.tmp-<pid>` directory, marked with a
//!   `.dropship-template-ok` file and only then renamed into place, so a crash mid-install leaves no half template.
//! - Parallel test binaries (and parallel tests in one binary) do not race: the whole check-install-rename runs
//!   under an exclusive `flock` on `<template>.lock`, which the kernel releases if the holder dies.
//!
//! Fails with [`Error::NotInstalled`] when the binaries are missing and [`Error::Template`] (with the installer's
//! output) when the install fails.

use std::fs::{self, File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// Bumped when the template's content or install options change, so old caches are not reused.
const TEMPLATE_FORMAT: &str = "v2";
const OK_MARKER: &str = ".dropship-template-ok";

/// The two server families the sandbox can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flavor {
    /// MariaDB 10.11 from Debian.
    MariaDb,
    /// MySQL 9.7 from `scripts/install-mysql.sh`.
    MySql,
}

impl Flavor {
    /// Both flavors, MySQL first (the product's main case).
    pub const ALL: [Flavor; 2] = [Flavor::MySql, Flavor::MariaDb];

    /// `mysql` or `mariadb`.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::MariaDb => "mariadb",
            Flavor::MySql => "mysql",
        }
    }

    /// Parses `mysql` / `mariadb` (any case).
    pub fn parse(text: &str) -> Option<Flavor> {
        match text.to_ascii_lowercase().as_str() {
            "mysql" => Some(Flavor::MySql),
            "mariadb" | "maria" => Some(Flavor::MariaDb),
            _ => None,
        }
    }

    /// True when this flavor's binaries are installed here.
    pub fn available(self) -> bool {
        find_binaries_of(self).is_ok()
    }
}

impl std::fmt::Display for Flavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Flavor::MariaDb => "MariaDB",
            Flavor::MySql => "MySQL",
        })
    }
}

/// Paths of the server binaries and the version they report.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// Which family these binaries are.
    pub flavor: Flavor,
    /// `mariadbd`, or the `mysqld` wrapper.
    pub server: PathBuf,
    /// `mariadb-install-db` (MariaDB); the server itself for MySQL (`--initialize-insecure`).
    pub install_db: PathBuf,
    /// MySQL only: the unpacked folder (`basedir` is `ROOT/usr`).
    pub root: Option<PathBuf>,
    /// Version string as printed by `--version`, for example `10.11.19-MariaDB-0+deb12u1` or `9.7.4-2`.
    pub version: String,
}

/// Where `scripts/install-mysql.sh` puts MySQL: `$DROPSHIP_MYSQL_ROOT`, default `/opt/dropship-mysql`.
pub fn mysql_root() -> PathBuf {
    std::env::var_os("DROPSHIP_MYSQL_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/dropship-mysql"))
}

/// Finds the MariaDB binaries (kept for callers that predate flavors).
pub fn find_binaries() -> Result<Binaries> {
    find_binaries_of(Flavor::MariaDb)
}

/// Finds the binaries of `flavor`.
pub fn find_binaries_of(flavor: Flavor) -> Result<Binaries> {
    match flavor {
        Flavor::MariaDb => find_mariadb(),
        Flavor::MySql => find_mysql(),
    }
}

fn find_mysql() -> Result<Binaries> {
    let root = mysql_root();
    let server = root.join("bin/mysqld");
    if !server.is_file() {
        return Err(Error::NotInstalled(format!(
            "MySQL: {} (run scripts/install-mysql.sh, or set DROPSHIP_MYSQL_ROOT)",
            server.display()
        )));
    }
    let version = read_version(&server)?;
    Ok(Binaries {
        flavor: Flavor::MySql,
        install_db: server.clone(),
        server,
        root: Some(root),
        version,
    })
}

fn read_version(server: &Path) -> Result<String> {
    let out = Command::new(server)
        .arg("--version")
        .output()
        .map_err(|e| Error::io(format!("running {} --version", server.display()), e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "Ver")
        .nth(1)
        .map(str::to_string)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "cannot read a version from `{} --version` output {text:?} (stderr {:?})",
                server.display(),
                String::from_utf8_lossy(&out.stderr)
            ))
        })
}

fn find_mariadb() -> Result<Binaries> {
    let server = find_program(
        "mariadbd",
        &[
            "/usr/sbin/mariadbd",
            "/usr/bin/mariadbd",
            "/usr/local/sbin/mariadbd",
        ],
    )
    .ok_or_else(|| Error::NotInstalled("mariadbd in /usr/sbin, /usr/bin and PATH".into()))?;
    let install_db = find_program(
        "mariadb-install-db",
        &[
            "/usr/bin/mariadb-install-db",
            "/usr/scripts/mariadb-install-db",
        ],
    )
    .ok_or_else(|| Error::NotInstalled("mariadb-install-db in /usr/bin and PATH".into()))?;
    let version = read_version(&server)?;
    Ok(Binaries {
        flavor: Flavor::MariaDb,
        server,
        install_db,
        root: None,
        version,
    })
}

fn find_program(name: &str, candidates: &[&str]) -> Option<PathBuf> {
    for c in candidates {
        let p = Path::new(c);
        if p.is_file() {
            return Some(p.to_path_buf());
        }
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// True when this process runs as root, in which case `mariadbd` needs `--user=root`.
pub(crate) fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Returns the template datadir for these binaries, installing it first if needed. Blocking: call it from
/// `spawn_blocking`.
pub fn ensure_template(bins: &Binaries) -> Result<PathBuf> {
    let safe_version: String = bins
        .version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = std::env::temp_dir().join(format!(
        "dropship-sandbox-template-{}-{safe_version}-{TEMPLATE_FORMAT}",
        bins.flavor.name()
    ));
    if dir.join(OK_MARKER).is_file() {
        return Ok(dir);
    }
    let lock_path = dir.with_extension("lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(format!("opening template lock {}", lock_path.display()), e))?;
    let _guard = FileLock::exclusive(&lock, &lock_path)?;
    if dir.join(OK_MARKER).is_file() {
        return Ok(dir); // another process finished while we waited for the lock
    }
    if dir.exists() {
        // Left by an older, unmarked layout: replace it.
        fs::remove_dir_all(&dir)
            .map_err(|e| Error::io(format!("removing stale template {}", dir.display()), e))?;
    }
    let staging = dir.with_extension(format!("tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let mut cmd = Command::new(&bins.install_db);
    match (bins.flavor, &bins.root) {
        (Flavor::MySql, Some(root)) => {
            let init = dir.with_extension(format!("init-{}.sql", std::process::id()));
            fs::write(
                &init,
                "CREATE USER 'root'@'127.0.0.1' IDENTIFIED BY '';\n\
                 GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;\n",
            )
            .map_err(|e| Error::io(format!("writing {}", init.display()), e))?;
            cmd.arg("--no-defaults")
                .arg("--initialize-insecure")
                .arg(format!("--datadir={}", staging.display()))
                .arg(format!("--basedir={}", root.join("usr").display()))
                .arg(format!(
                    "--lc-messages-dir={}",
                    root.join("usr/share/mysql").display()
                ))
                .arg(format!("--init-file={}", init.display()))
                .arg("--innodb-redo-log-capacity=16M")
                .arg("--log-error-verbosity=1");
        }
        _ => {
            cmd.arg("--no-defaults")
                .arg(format!("--datadir={}", staging.display()))
                .arg("--auth-root-authentication-method=normal")
                .arg("--skip-test-db")
                .arg("--skip-name-resolve")
                .arg("--innodb-log-file-size=32M");
        }
    }
    if running_as_root() {
        cmd.arg("--user=root");
    }
    let started = std::time::Instant::now();
    let out = cmd
        .output()
        .map_err(|e| Error::io(format!("running {}", bins.install_db.display()), e))?;
    if !out.status.success() {
        let _ = fs::remove_dir_all(&staging);
        let mut detail = format!("exit status {}\n", out.status);
        detail.push_str(&tail(&String::from_utf8_lossy(&out.stdout), 20));
        detail.push_str(&tail(&String::from_utf8_lossy(&out.stderr), 20));
        return Err(Error::Template { dir, detail });
    }
    File::create(staging.join(OK_MARKER))
        .map_err(|e| Error::io(format!("marking template {}", staging.display()), e))?;
    fs::rename(&staging, &dir).map_err(|e| {
        Error::io(
            format!("moving template {} into place", staging.display()),
            e,
        )
    })?;
    let _ = fs::remove_file(dir.with_extension(format!("init-{}.sql", std::process::id())));
    tracing::info!(template = %dir.display(), flavor = %bins.flavor, elapsed_ms = started.elapsed().as_millis() as u64, "installed template datadir");
    Ok(dir)
}

/// An exclusive `flock`, released on drop (and by the kernel if the process dies).
struct FileLock<'a>(&'a File);

impl<'a> FileLock<'a> {
    fn exclusive(file: &'a File, path: &Path) -> Result<Self> {
        loop {
            // SAFETY: the descriptor is valid for as long as `file` is borrowed.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(FileLock(file));
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::io(format!("locking {}", path.display()), err));
            }
        }
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        // SAFETY: as above; unlocking a held lock cannot violate memory safety.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// The last `lines` lines of `text`.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut s = all[start..].join("\n");
    if !s.is_empty() {
        s.push('\n');
    }
    s
}
