//! Diagnostics, ignored by default: `cargo test -p dropship-mysql --test survey -- --ignored --nocapture`
//! prints every corpus file's event counts and error; with `DUMP=<relative path>` it dumps one file.

mod common;
use dropship_mysql::binlog::types;
use std::collections::BTreeMap;

#[test]
#[ignore]
fn surveying_the_corpus_prints_each_files_event_counts_and_error() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    for p in common::corpus_files(&dir) {
        let d = common::decode_file(&p);
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (h, _) in &d.events {
            *counts.entry(types::name(h.type_code)).or_default() += 1;
        }
        println!(
            "{} :: {:?} :: {}",
            p.strip_prefix(&dir).unwrap().display(),
            counts,
            d.error.map(|e| e.to_string()).unwrap_or_default()
        );
    }
}

#[test]
#[ignore]
fn dumping_the_file_named_by_env_dump_prints_each_event() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let f = std::env::var("DUMP").unwrap();
    let d = common::decode_file(&dir.join(f));
    for (h, e) in &d.events {
        println!("{} {} {:?}", h.offset, types::name(h.type_code), e);
    }
    println!("ERR {:?}", d.error.map(|e| e.to_string()));
}

#[test]
#[ignore]
fn inspecting_the_file_named_by_env_dump_prints_json_lines() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let f = std::env::var("DUMP").unwrap_or_default();
    let mut out = std::io::stdout();
    let r = dropship_mysql::binlog::inspect(&[dir.join(f)], &mut out);
    println!("{r:?}");
}
