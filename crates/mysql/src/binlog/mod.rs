//! Binlog decoding (temporary stub until the decoder branch lands).
use crate::{Event, EventHeader};
#[derive(Debug)]
pub struct DecodeError(pub String);
impl std::fmt::Display for DecodeError { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(&self.0) } }
pub type Sink<'a> = dyn FnMut(EventHeader, Event) -> Result<(), DecodeError> + 'a;
#[derive(Default)]
pub struct Decoder;
impl Decoder {
    pub fn new() -> Self { Decoder }
    pub fn decode(&mut self, _raw: &[u8], _out: &mut Sink<'_>) -> Result<(), DecodeError> { Err(DecodeError("decoder not built".into())) }
}
pub mod inspect {
    pub fn inspect(_p: &[std::path::PathBuf], _o: &mut dyn std::io::Write) -> Result<(), super::DecodeError> { Err(super::DecodeError("decoder not built".into())) }
}
