//! A full file system under the relay log: nothing accepted is lost, writing
//! resumes exactly where it stopped once space returns, and acks (which
//! free segments) can still be recorded. Runs on a small tmpfs, which needs
//! root; elsewhere it is skipped with a printed note.

use std::path::{Path, PathBuf};
use std::process::Command;

use dropship_relay::{RelayLog, RelayOptions};

/// A tmpfs mounted on a temporary directory for the test's lifetime.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mib: u32) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("note: no_space tests skipped: cannot mount a tmpfs here (they need root)");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the file system of `dir` with one file; returns its path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let chunk = vec![7u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.write_all(&chunk[..1]);
    path
}

fn payload(i: u64) -> Vec<u8> {
    // 10 KB, different for every record.
    (0..10_000u64).map(|j| (i * 31 + j) as u8).collect()
}

#[test]
fn a_full_file_system_loses_no_accepted_record_and_writing_resumes_where_it_stopped() {
    let Some(fs) = Tmpfs::mount(8) else { return };
    let dir = fs.path().join("relay");
    let opts = RelayOptions {
        segment_max_bytes: 512 * 1024,
        write_buffer_bytes: 64 * 1024,
        ..RelayOptions::default()
    };
    let mut log = RelayLog::open(&dir, opts.clone()).expect("open");
    let handle = log.handle();
    handle.register("svc").expect("register");
    // Leave the relay log about 1 MiB (plus its 1 MiB reserve file).
    let filler = fill(fs.path());
    let keep = std::fs::metadata(&filler).unwrap().len() - 1024 * 1024;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(keep)
        .unwrap();

    let mut accepted: Vec<u64> = Vec::new();
    let mut refused_at = None;
    for i in 0..10_000u64 {
        match log.append(&payload(i)) {
            Ok(id) => {
                assert_eq!(id, accepted.len() as u64 + 1, "ids follow each other");
                accepted.push(i);
            }
            Err(e) => {
                assert!(
                    e.is_no_space(),
                    "a full disk is NoSpace, not a failure: {e}"
                );
                refused_at = Some(i);
                break;
            }
        }
        if i % 5 == 4 {
            if let Err(e) = log.flush() {
                assert!(e.is_no_space(), "{e}");
                assert!(e.to_string().contains("is full"), "{e}");
                assert!(
                    e.hint()
                        .is_some_and(|h| h.contains(&dir.display().to_string())),
                    "the hint names the directory: {e:?}"
                );
                refused_at = Some(i);
                break;
            }
        }
    }
    let refused_at = refused_at.expect("the 8 MiB file system must fill up");
    assert!(accepted.len() > 10, "some records fit first ({refused_at})");

    // Readers see only what was written whole.
    let flushed = handle.last_id();
    assert!(flushed < accepted.len() as u64 + 1);
    let mut r = handle.reader(1).unwrap();
    let mut n = 0;
    while let Some((id, bytes)) = r.next().unwrap() {
        assert_eq!(bytes, payload(accepted[id as usize - 1]));
        n += 1;
    }
    assert_eq!(n, flushed, "every flushed record, and nothing else");

    // An ack is recorded on the full disk (the reserve is given up for it).
    handle.ack("svc", flushed).expect("an ack on a full disk");

    // Space returns: the writer continues where it stopped.
    std::fs::remove_file(&filler).unwrap();
    log.flush().expect("flush once space returned");
    for i in 10_000..10_010u64 {
        log.append(&payload(i)).expect("append");
        accepted.push(i);
    }
    log.flush().unwrap();
    assert!(
        handle.ensure_reserve(),
        "the reserve comes back with the space"
    );
    let total = accepted.len() as u64;
    assert_eq!(handle.last_id(), total);
    drop(log);

    // Reopened (recovery scans every segment): exactly the accepted records.
    let log = RelayLog::open(&dir, opts).expect("reopen");
    assert_eq!(log.next_id(), total + 1);
    let mut r = log.reader(flushed + 1).unwrap();
    let mut id_expected = flushed + 1;
    while let Some((id, bytes)) = r.next().unwrap() {
        assert_eq!(id, id_expected);
        assert_eq!(bytes, payload(accepted[id as usize - 1]));
        id_expected += 1;
    }
    assert_eq!(
        id_expected,
        total + 1,
        "no record lost across the full disk"
    );
}

#[test]
fn a_drained_log_gives_back_its_active_segment_on_a_full_disk() {
    let Some(fs) = Tmpfs::mount(8) else { return };
    let dir = fs.path().join("relay");
    let mut log = RelayLog::open(&dir, RelayOptions::default()).expect("open");
    let handle = log.handle();
    handle.register("svc").unwrap();
    for i in 0..200 {
        log.append(&payload(i)).unwrap();
    }
    log.flush().unwrap();
    let before = handle.free_space().expect("statvfs");
    assert!(!log.release_drained().unwrap(), "nothing is acked yet");
    handle.ack("svc", 100).unwrap();
    assert!(
        !log.release_drained().unwrap(),
        "half acked: the segment is still needed"
    );
    handle.ack("svc", 200).unwrap();
    assert!(
        log.release_drained().unwrap(),
        "every record acked: the segment goes"
    );
    let after = handle.free_space().unwrap();
    assert!(after >= before + 1_900_000, "{before} -> {after}");
    log.append(&payload(200)).unwrap();
    log.flush().unwrap();
    assert_eq!(handle.last_id(), 201);
    assert_eq!(handle.first_id(), 201);
}
