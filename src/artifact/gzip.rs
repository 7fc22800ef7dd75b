//! A strict gzip reader (RFC 1952) built on flate2's raw inflate.
//!
//! flate2's `GzDecoder` treats input that ends in the middle of a deflate stream as a
//! normal end of file, so a truncated `model.tar.gz` could unpack "successfully" with a
//! short last file. This reader tells the three failures apart instead: the input is not
//! gzip at all, it ends early, or its data is corrupt (inflate error, CRC or length
//! mismatch). Concatenated members are read in turn, as `gzip -d` does; bytes after the
//! last member that do not start a new member are ignored, as `gzip -d` ignores them.
//!
//! Errors travel inside `io::Error` (so the tar reader above can pass them through) and
//! are recovered with [`GzipError::from_io`].

use std::io::{self, BufRead, Read};

use flate2::{Crc, Decompress, FlushDecompress, Status};

/// Why a gzip stream could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GzipError {
    #[error("not gzip data (no gzip magic bytes 1f 8b at the start)")]
    NotGzip,
    #[error("gzip data ends early: the file is truncated")]
    Truncated,
    #[error("gzip data is corrupt: {0}")]
    Corrupt(String),
}

impl GzipError {
    /// Recovers a `GzipError` carried by an `io::Error` from [`Gunzip`].
    pub fn from_io(err: &io::Error) -> Option<&GzipError> {
        err.get_ref()
            .and_then(|inner| inner.downcast_ref::<GzipError>())
    }

    fn into_io(self) -> io::Error {
        let kind = match self {
            GzipError::Truncated => io::ErrorKind::UnexpectedEof,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, self)
    }
}

const FLAG_HCRC: u8 = 0x02;
const FLAG_EXTRA: u8 = 0x04;
const FLAG_NAME: u8 = 0x08;
const FLAG_COMMENT: u8 = 0x10;

enum State {
    /// Expecting a member header; `first` is true before the first member.
    Header {
        first: bool,
    },
    Body,
    Done,
}

/// Decompresses a (possibly multi-member) gzip stream, strictly.
pub struct Gunzip<R> {
    inner: R,
    state: State,
    inflate: Decompress,
    crc: Crc,
}

impl<R: BufRead> Gunzip<R> {
    pub fn new(inner: R) -> Self {
        Gunzip {
            inner,
            state: State::Header { first: true },
            inflate: Decompress::new(false),
            crc: Crc::new(),
        }
    }

    /// Gives back the underlying reader, positioned after the last byte consumed.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn byte(&mut self) -> io::Result<Option<u8>> {
        let buf = self.inner.fill_buf()?;
        let Some(&b) = buf.first() else {
            return Ok(None);
        };
        self.inner.consume(1);
        Ok(Some(b))
    }

    fn need_byte(&mut self) -> io::Result<u8> {
        self.byte()?.ok_or_else(|| GzipError::Truncated.into_io())
    }

    fn need_bytes<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut out = [0u8; N];
        for slot in &mut out {
            *slot = self.need_byte()?;
        }
        Ok(out)
    }

    /// Reads one member header. Returns false when there is no further member.
    fn read_header(&mut self, first: bool) -> io::Result<bool> {
        let buf = self.inner.fill_buf()?;
        if !first && (buf.len() < 2 || buf[..2] != [0x1f, 0x8b]) {
            // Trailing bytes that are not a member: ignored, as gzip -d does.
            return Ok(false);
        }
        let magic = [self.byte()?, self.byte()?];
        if magic != [Some(0x1f), Some(0x8b)] {
            return Err(GzipError::NotGzip.into_io());
        }
        let [method, flags] = self.need_bytes::<2>()?;
        if method != 8 {
            return Err(
                GzipError::Corrupt(format!("unknown compression method {method}")).into_io(),
            );
        }
        self.need_bytes::<6>()?; // mtime, extra flags, OS
        if flags & FLAG_EXTRA != 0 {
            let len = u16::from_le_bytes(self.need_bytes::<2>()?);
            for _ in 0..len {
                self.need_byte()?;
            }
        }
        for flag in [FLAG_NAME, FLAG_COMMENT] {
            if flags & flag != 0 {
                while self.need_byte()? != 0 {}
            }
        }
        if flags & FLAG_HCRC != 0 {
            self.need_bytes::<2>()?;
        }
        self.inflate.reset(false);
        self.crc.reset();
        Ok(true)
    }

    fn read_trailer(&mut self) -> io::Result<()> {
        let crc = u32::from_le_bytes(self.need_bytes::<4>()?);
        let size = u32::from_le_bytes(self.need_bytes::<4>()?);
        if crc != self.crc.sum() {
            return Err(GzipError::Corrupt("CRC32 mismatch".into()).into_io());
        }
        if size != self.crc.amount() {
            return Err(GzipError::Corrupt("length mismatch".into()).into_io());
        }
        Ok(())
    }

    /// Inflates into `out`; returns the bytes produced (0 only when a member ended).
    fn inflate_into(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let input = self.inner.fill_buf()?;
            if input.is_empty() {
                return Err(GzipError::Truncated.into_io());
            }
            let (in_before, out_before) = (self.inflate.total_in(), self.inflate.total_out());
            let status = self
                .inflate
                .decompress(input, out, FlushDecompress::None)
                .map_err(|e| GzipError::Corrupt(e.to_string()).into_io())?;
            // Bounded by `input` and `out`, both slices: they fit a usize.
            let consumed =
                usize::try_from(self.inflate.total_in() - in_before).unwrap_or(input.len());
            let produced =
                usize::try_from(self.inflate.total_out() - out_before).unwrap_or(out.len());
            self.inner.consume(consumed);
            self.crc.update(&out[..produced]);
            if status == Status::StreamEnd {
                self.read_trailer()?;
                self.state = State::Header { first: false };
                return Ok(produced);
            }
            if produced > 0 {
                return Ok(produced);
            }
            if consumed == 0 {
                return Err(GzipError::Corrupt("inflate made no progress".into()).into_io());
            }
        }
    }
}

impl<R: BufRead> Read for Gunzip<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                State::Header { first } => {
                    self.state = if self.read_header(first)? {
                        State::Body
                    } else {
                        State::Done
                    };
                }
                State::Body => {
                    let n = self.inflate_into(out)?;
                    if n > 0 {
                        return Ok(n);
                    }
                }
                State::Done => return Ok(0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, GzipError> {
        let mut out = Vec::new();
        Gunzip::new(bytes)
            .read_to_end(&mut out)
            .map(|_| out)
            .map_err(|e| GzipError::from_io(&e).cloned().expect("a GzipError"))
    }

    #[test]
    fn round_trips_and_reads_concatenated_members() {
        let mut both = gz(b"hello ");
        both.extend(gz(b"world"));
        assert_eq!(gunzip(&both).unwrap(), b"hello world");
    }

    #[test]
    fn ignores_trailing_garbage_like_gzip() {
        let mut bytes = gz(b"data");
        bytes.extend_from_slice(&[0, 0, 0]);
        assert_eq!(gunzip(&bytes).unwrap(), b"data");
    }

    #[test]
    fn tells_not_gzip_truncated_and_corrupt_apart() {
        assert_eq!(gunzip(b"plain text"), Err(GzipError::NotGzip));
        assert_eq!(gunzip(b""), Err(GzipError::NotGzip));
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let full = gz(&data);
        assert_eq!(gunzip(&full[..full.len() / 2]), Err(GzipError::Truncated));
        assert_eq!(gunzip(&full[..full.len() - 3]), Err(GzipError::Truncated));
        let mut bad_crc = full.clone();
        let at = bad_crc.len() - 8;
        bad_crc[at] ^= 0xff;
        assert!(matches!(gunzip(&bad_crc), Err(GzipError::Corrupt(_))));
    }
}
