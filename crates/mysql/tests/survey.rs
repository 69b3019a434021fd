mod common;
use dropship_mysql::binlog::types;
use std::collections::BTreeMap;

#[test]
#[ignore]
fn survey_prints_every_corpus_file_outcome() {
    let Some(dir) = common::fixtures() else { return };
    for p in common::corpus_files(&dir) {
        let d = common::decode_file(&p);
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (h, _) in &d.events {
            *counts.entry(types::name(h.type_code)).or_default() += 1;
        }
        println!("{} :: {:?} :: {}", p.strip_prefix(&dir).unwrap().display(), counts, d.error.map(|e| e.to_string()).unwrap_or_default());
    }
}

#[test]
#[ignore]
fn survey_dump_one_file() {
    let Some(dir) = common::fixtures() else { return };
    let f = std::env::var("DUMP").unwrap();
    let d = common::decode_file(&dir.join(f));
    for (h, e) in &d.events {
        println!("{} {} {:?}", h.offset, types::name(h.type_code), e);
    }
    println!("ERR {:?}", d.error.map(|e| e.to_string()));
}
