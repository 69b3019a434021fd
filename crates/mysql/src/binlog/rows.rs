//! Rows events (WRITE/UPDATE/DELETE v1 and v2, and MySQL's PARTIAL_UPDATE_ROWS)
//! into [`RowChange`]s with a value for every column.
//!
//! ```text
//! post-header: table_id u48 (u32 if post-header len is 6) | flags u16 (0x1 = STMT_END)
//!              [v2 only: extra_len u16 (counts itself) | extra data]
//! body:        ncols lenenc | present bitmap (ncols+7)/8 | [UPDATE: present-after bitmap]
//! row image:   null bitmap over the present columns | value of each present non-NULL column
//! UPDATE rows: before image, after image, repeated; WRITE: after only; DELETE: before only.
//! PARTIAL_UPDATE_ROWS after image is prefixed by:
//!              value_options lenenc | [if bit 0 (PARTIAL_JSON): partial bitmap over JSON columns]
//!              a JSON column whose partial bit is set holds: length u32 | JSON diffs
//! ```
//!
//! Invariants: a column absent from the image is `Value::Null` and listed in
//! [`RowImage::missing`]; a partial JSON column is rebuilt from the before
//! image by applying its diffs, and if that is impossible the event fails —
//! the decoder never emits a guessed after image. The one exception is
//! [`Unresolved::KeepDiffs`]: a partial column whose document is absent from
//! the before image is then `Value::Null`, listed in `missing`, and its diffs
//! are in [`RowImage::partial_json`]; diffs that do not fit a document that is
//! present still fail the event.

use super::column::{self, ColumnError};
use super::cursor::{bit, Cursor, Short};
use super::json::{self, Json};
use super::table_map::col;
use crate::event::{PartialJson, RowChange, RowImage, RowKind, TableMap};
use crate::value::Value;

/// Rows-event errors before the decoder adds the event's offset and type.
#[derive(Debug)]
pub enum RowsError {
    Short(Short),
    Column {
        column: usize,
        err: ColumnError,
    },
    Malformed(String),
    /// A partial JSON update (`PARTIAL_UPDATE_ROWS`) whose before image lacks
    /// the column's document (a MINIMAL image): the diff has nothing to apply to.
    PartialJsonWithoutBefore {
        column: usize,
    },
}

impl From<Short> for RowsError {
    fn from(s: Short) -> Self {
        RowsError::Short(s)
    }
}

/// The fixed part of a rows event, read before the table map is known.
pub struct RowsHead<'a> {
    pub table_id: u64,
    pub flags: u16,
    pub rest: Cursor<'a>,
}

pub const STMT_END_F: u16 = 1;

/// What a partial JSON update does when the before image lacks its document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Unresolved {
    /// The event fails: no after image can be built.
    #[default]
    Refuse,
    /// The diffs are kept in [`RowImage::partial_json`] (for inspection).
    KeepDiffs,
}

pub fn read_head(body: &[u8], post_header_len: u8, v2: bool) -> Result<RowsHead<'_>, Short> {
    let mut c = Cursor::new(body);
    let table_id = super::table_map::read_table_id(&mut c, post_header_len)?;
    let flags = c.u16("rows flags")?;
    if v2 {
        let extra = c.u16("extra data length")?;
        c.skip(usize::from(extra).saturating_sub(2), "extra data")?;
    }
    Ok(RowsHead {
        table_id,
        flags,
        rest: c,
    })
}

/// Decodes every row of the event body after its head.
pub fn decode(
    mut c: Cursor<'_>,
    tm: &TableMap,
    kind: RowKind,
    partial: bool,
    unresolved: Unresolved,
) -> Result<Vec<RowChange>, RowsError> {
    let ncols = c.lenenc_len("column count")?;
    if ncols > tm.columns.len() {
        return Err(RowsError::Malformed(format!(
            "rows event has {ncols} columns but the table map of `{}`.`{}` has {}",
            tm.database,
            tm.table,
            tm.columns.len()
        )));
    }
    let present = c.bytes(ncols.div_ceil(8), "columns-present bitmap")?;
    let present_after = if kind == RowKind::Update {
        c.bytes(ncols.div_ceil(8), "columns-after bitmap")?
    } else {
        present
    };
    let mut changes = Vec::new();
    while !c.is_empty() {
        let before_row = c.left();
        let change = match kind {
            RowKind::Insert => RowChange {
                kind,
                before: None,
                after: Some(image(&mut c, tm, ncols, present, None, unresolved)?.0),
            },
            RowKind::Delete => RowChange {
                kind,
                before: Some(image(&mut c, tm, ncols, present, None, unresolved)?.0),
                after: None,
            },
            RowKind::Update => {
                let (before, trees) = image(&mut c, tm, ncols, present, None, unresolved)?;
                let trees = partial.then_some(&trees);
                let after = image(&mut c, tm, ncols, present_after, trees, unresolved)?.0;
                RowChange {
                    kind,
                    before: Some(before),
                    after: Some(after),
                }
            }
        };
        if c.left() == before_row {
            // An image with no present columns consumes no bytes; without this
            // check a forged event would make the loop produce rows forever.
            return Err(RowsError::Malformed(
                "row image with no columns present cannot advance".into(),
            ));
        }
        changes.push(change);
    }
    Ok(changes)
}

/// JSON documents of the before image, by column, for partial updates.
type Trees = Vec<Option<Json>>;

fn image(
    c: &mut Cursor<'_>,
    tm: &TableMap,
    ncols: usize,
    present: &[u8],
    before: Option<&Trees>,
    unresolved: Unresolved,
) -> Result<(RowImage, Trees), RowsError> {
    // Partial-update after image: value options and the partial-JSON bitmap.
    let mut partial_bits: &[u8] = &[];
    if before.is_some() {
        let options = c.lenenc("value options")?;
        if options & 1 != 0 {
            let njson = tm
                .columns
                .iter()
                .filter(|m| m.type_code == col::JSON)
                .count();
            partial_bits = c.bytes(njson.div_ceil(8), "partial JSON bitmap")?;
        }
    }
    let npresent = (0..ncols).filter(|&i| bit(present, i)).count();
    let nulls = c.bytes(npresent.div_ceil(8), "null bitmap")?;
    let mut values = Vec::with_capacity(tm.columns.len());
    let mut missing = Vec::new();
    let mut partial_json = Vec::new();
    let mut trees: Trees = Vec::new();
    let mut json_index = 0usize;
    let mut null_index = 0usize;
    for (i, m) in tm.columns.iter().enumerate() {
        let is_json = m.type_code == col::JSON;
        let this_json = json_index;
        if is_json {
            json_index += 1;
        }
        if i >= ncols || !bit(present, i) {
            missing.push(i);
            values.push(Value::Null);
            continue;
        }
        let is_null = bit(nulls, null_index);
        null_index += 1;
        if is_null {
            values.push(Value::Null);
            continue;
        }
        if is_json {
            let raw = column::blob(c, m.meta, "JSON")
                .map_err(|err| RowsError::Column { column: i, err })?;
            let partial = bit(partial_bits, this_json);
            let doc = if partial {
                let diffs = json::parse_diffs(raw).map_err(|e| RowsError::Column {
                    column: i,
                    err: ColumnError::Malformed(e),
                })?;
                let Some(mut doc) = before.and_then(|t| t.get(i).cloned().flatten()) else {
                    if unresolved == Unresolved::KeepDiffs {
                        missing.push(i);
                        values.push(Value::Null);
                        partial_json.push(PartialJson { column: i, diffs });
                        continue;
                    }
                    return Err(RowsError::PartialJsonWithoutBefore { column: i });
                };
                json::apply(&mut doc, &diffs).map_err(|e| RowsError::Column {
                    column: i,
                    err: ColumnError::Malformed(e),
                })?;
                doc
            } else {
                json::parse(raw).map_err(|e| RowsError::Column {
                    column: i,
                    err: ColumnError::Malformed(e),
                })?
            };
            let mut text = String::new();
            json::write(&doc, &mut text);
            if trees.len() <= i {
                trees.resize(i + 1, None);
            }
            if let Some(slot) = trees.get_mut(i) {
                *slot = Some(doc);
            }
            values.push(Value::Json(text));
            continue;
        }
        let v = column::decode(c, m).map_err(|err| RowsError::Column { column: i, err })?;
        values.push(v);
    }
    Ok((
        RowImage {
            values,
            missing,
            partial_json,
        },
        trees,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ColumnMeta;

    fn col(type_code: u8, meta: u16) -> ColumnMeta {
        ColumnMeta {
            type_code,
            meta,
            nullable: true,
            name: None,
            unsigned: None,
            charset: None,
            enum_values: None,
            set_values: None,
            visible: None,
            real_type: type_code,
        }
    }

    fn table() -> TableMap {
        TableMap {
            table_id: 1,
            database: "d".into(),
            table: "t".into(),
            columns: vec![col(col::LONG, 0), col(col::JSON, 4)],
            primary_key: None,
        }
    }

    // {"age": 26} in binary JSON.
    const AGE_26: [u8; 15] = [
        0x00, 1, 0, 14, 0, 11, 0, 3, 0, 0x05, 26, 0, b'a', b'g', b'e',
    ];

    fn age_27() -> Vec<u8> {
        [&[0u8, 5][..], b"$.age", &[3, 0x05, 27, 0]].concat()
    }

    fn partial_body(before_present: u8, diff: &[u8]) -> Vec<u8> {
        let mut b = vec![2, before_present, 0b11];
        // before image
        b.push(0);
        b.extend_from_slice(&1u32.to_le_bytes());
        if before_present & 0b10 != 0 {
            b.extend_from_slice(&(AGE_26.len() as u32).to_le_bytes());
            b.extend_from_slice(&AGE_26);
        }
        // after image: value options PARTIAL_JSON, partial bitmap, null bitmap
        b.extend_from_slice(&[1, 1, 0]);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&(diff.len() as u32).to_le_bytes());
        b.extend_from_slice(diff);
        b
    }

    #[test]
    fn partial_json_update_applies_the_diff_to_the_before_image() {
        let body = partial_body(0b11, &age_27());
        let changes = decode(
            Cursor::new(&body),
            &table(),
            RowKind::Update,
            true,
            Unresolved::Refuse,
        )
        .unwrap();
        assert_eq!(changes.len(), 1);
        let before = changes[0].before.as_ref().unwrap();
        let after = changes[0].after.as_ref().unwrap();
        assert_eq!(
            before.values,
            vec![Value::Int(1), Value::Json(r#"{"age": 26}"#.into())]
        );
        assert_eq!(
            after.values,
            vec![Value::Int(1), Value::Json(r#"{"age": 27}"#.into())]
        );
        assert!(after.missing.is_empty());
        assert!(after.partial_json.is_empty());
    }

    #[test]
    fn partial_json_update_without_the_document_in_the_before_image_is_an_error() {
        let body = partial_body(0b01, &age_27());
        let err = decode(
            Cursor::new(&body),
            &table(),
            RowKind::Update,
            true,
            Unresolved::Refuse,
        )
        .unwrap_err();
        assert!(
            matches!(err, RowsError::PartialJsonWithoutBefore { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn partial_json_update_without_the_before_document_keeps_its_diffs_when_asked() {
        let diff = [age_27(), [&[2u8, 5][..], b"$.old"].concat()].concat();
        let body = partial_body(0b01, &diff);
        let changes = decode(
            Cursor::new(&body),
            &table(),
            RowKind::Update,
            true,
            Unresolved::KeepDiffs,
        )
        .unwrap();
        let before = changes[0].before.as_ref().unwrap();
        assert_eq!(before.missing, vec![1]);
        assert!(before.partial_json.is_empty());
        let after = changes[0].after.as_ref().unwrap();
        assert_eq!(after.values, vec![Value::Int(1), Value::Null]);
        assert_eq!(after.missing, vec![1]);
        assert_eq!(
            after.partial_json,
            vec![PartialJson {
                column: 1,
                diffs: vec![
                    json::Diff {
                        op: 0,
                        path: "$.age".into(),
                        value: Some(Json::Int(27)),
                    },
                    json::Diff {
                        op: 2,
                        path: "$.old".into(),
                        value: None,
                    },
                ],
            }]
        );
    }

    #[test]
    fn kept_diffs_that_do_not_fit_the_before_document_still_fail() {
        let body = partial_body(0b11, &[&[2u8, 5][..], b"$.old"].concat());
        let err = decode(
            Cursor::new(&body),
            &table(),
            RowKind::Update,
            true,
            Unresolved::KeepDiffs,
        )
        .unwrap_err();
        assert!(
            matches!(err, RowsError::Column { column: 1, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn columns_absent_from_the_image_are_null_and_listed_as_missing() {
        // WRITE with only column 0 present.
        let mut b = vec![2, 0b01, 0];
        b.extend_from_slice(&7i32.to_le_bytes());
        let changes = decode(
            Cursor::new(&b),
            &table(),
            RowKind::Insert,
            false,
            Unresolved::Refuse,
        )
        .unwrap();
        let after = changes[0].after.as_ref().unwrap();
        assert_eq!(after.values, vec![Value::Int(7), Value::Null]);
        assert_eq!(after.missing, vec![1]);
    }

    #[test]
    fn an_image_with_no_columns_is_refused_instead_of_looping() {
        let b = vec![2, 0, 0, 0];
        assert!(decode(
            Cursor::new(&b),
            &table(),
            RowKind::Insert,
            false,
            Unresolved::Refuse
        )
        .is_err());
    }
}
