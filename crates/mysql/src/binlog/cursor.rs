//! A bounds-checked little reader over one event's bytes.
//!
//! Every read either returns the bytes asked for or a [`Short`] error naming
//! what was being read; nothing here indexes a slice unchecked, so no input
//! can make the decoder panic. Callers turn [`Short`] into a
//! [`super::DecodeError::Truncated`] carrying the event's offset and type.

/// Not enough bytes for `what`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Short {
    pub what: &'static str,
    pub wanted: usize,
    pub left: usize,
}

impl std::fmt::Display for Short {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: needs {} bytes, {} left",
            self.what, self.wanted, self.left
        )
    }
}

pub type R<T> = Result<T, Short>;

#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }
    pub fn pos(&self) -> usize {
        self.pos
    }
    pub fn left(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
    pub fn is_empty(&self) -> bool {
        self.left() == 0
    }
    pub fn rest(&mut self) -> &'a [u8] {
        let r = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        r
    }
    pub fn peek_rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }
    pub fn bytes(&mut self, n: usize, what: &'static str) -> R<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Short {
            what,
            wanted: n,
            left: self.left(),
        })?;
        match self.buf.get(self.pos..end) {
            Some(s) => {
                self.pos = end;
                Ok(s)
            }
            None => Err(Short {
                what,
                wanted: n,
                left: self.left(),
            }),
        }
    }
    pub fn skip(&mut self, n: usize, what: &'static str) -> R<()> {
        self.bytes(n, what).map(|_| ())
    }
    pub fn u8(&mut self, what: &'static str) -> R<u8> {
        Ok(self.bytes(1, what)?[0])
    }
    /// Little-endian unsigned integer of `n` (<= 8) bytes.
    pub fn uint_le(&mut self, n: usize, what: &'static str) -> R<u64> {
        let b = self.bytes(n.min(8), what)?;
        Ok(b.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }
    /// Big-endian unsigned integer of `n` (<= 8) bytes.
    pub fn uint_be(&mut self, n: usize, what: &'static str) -> R<u64> {
        let b = self.bytes(n.min(8), what)?;
        Ok(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }
    pub fn u16(&mut self, what: &'static str) -> R<u16> {
        Ok(self.uint_le(2, what)? as u16)
    }
    pub fn u32(&mut self, what: &'static str) -> R<u32> {
        Ok(self.uint_le(4, what)? as u32)
    }
    pub fn u64(&mut self, what: &'static str) -> R<u64> {
        self.uint_le(8, what)
    }
    /// MySQL length-encoded integer (`net_field_length`).
    ///
    /// ```text
    /// first byte < 0xfb : the value itself
    /// 0xfc + u16 | 0xfd + u24 | 0xfe + u64   (0xfb = NULL, 0xff invalid -> read as 0xfb..)
    /// ```
    pub fn lenenc(&mut self, what: &'static str) -> R<u64> {
        let b = self.u8(what)?;
        match b {
            0..=0xfa => Ok(u64::from(b)),
            0xfc => self.uint_le(2, what),
            0xfd => self.uint_le(3, what),
            0xfe => self.uint_le(8, what),
            _ => Ok(u64::from(b)),
        }
    }
    /// A length-encoded count or length, bounded by the bytes left so a forged
    /// huge count cannot make the caller allocate.
    pub fn lenenc_len(&mut self, what: &'static str) -> R<usize> {
        let v = self.lenenc(what)?;
        if v > self.left() as u64 {
            return Err(Short {
                what,
                wanted: usize::try_from(v).unwrap_or(usize::MAX),
                left: self.left(),
            });
        }
        Ok(v as usize)
    }
    pub fn lenenc_bytes(&mut self, what: &'static str) -> R<&'a [u8]> {
        let n = self.lenenc_len(what)?;
        self.bytes(n, what)
    }
}

/// Bit `i` of a little-endian-bit-order bitmap (MySQL column bitmaps).
pub fn bit(bitmap: &[u8], i: usize) -> bool {
    bitmap.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
}

/// Bit `i` of a most-significant-bit-first bitmap (optional metadata).
pub fn bit_msb(bitmap: &[u8], i: usize) -> bool {
    bitmap
        .get(i / 8)
        .is_some_and(|b| b & (0x80 >> (i % 8)) != 0)
}
