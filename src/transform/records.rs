//! An input object as records, and records as mini-batches (CONTRACT-serving-extras A.4).
//!
//! SplitType: `None` (the object is one record), `Line` (newline-ended; a blank line is
//! no record), `RecordIO` (MXNet's framing: magic `0xCED7230A`, a length word whose top
//! three bits are a continuation flag, the data, padding to four bytes) and `TFRecord`
//! (length, its CRC, the data, its CRC). Every record keeps two ranges of the object: as
//! framed there, and its body alone.
//!
//! BatchStrategy: `SingleRecord` sends each record's body alone (the framing removed, as
//! SageMaker removes RecordIO padding); `MultiRecord` sends consecutive records as they
//! lie in the object, framing and newlines included, as many as fit in MaxPayloadInMB. A
//! record larger than the limit fails its object. The payloads are slices of the object:
//! nothing is copied.

use std::ops::Range;

use bytes::Bytes;

use crate::state::transform_job::{BatchStrategy, SplitType};

/// One record of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// As it lies in the object (its newline or framing included).
    pub framed: Range<usize>,
    /// Its data alone.
    pub body: Range<usize>,
}

/// What a mini-batch holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Its records: indexes into the object's records.
    pub records: Range<usize>,
    pub payload: Bytes,
}

/// Why an object could not be split or batched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("it is not {kind} data: {detail} at byte {offset}")]
    Framing {
        kind: &'static str,
        detail: &'static str,
        offset: usize,
    },
    #[error("record {index} is {size} bytes, larger than MaxPayloadInMB ({limit_mb} MB); raise MaxPayloadInMB (at most 100), or split the input into smaller records (SplitType)")]
    Oversize {
        index: usize,
        size: usize,
        limit_mb: u32,
    },
}

/// MXNet RecordIO's magic number.
const RECORDIO_MAGIC: u32 = 0xced7_230a;

/// The records of `data`.
pub fn split(data: &[u8], split: SplitType) -> Result<Vec<Record>, SplitError> {
    match split {
        SplitType::None => Ok(vec![Record {
            framed: 0..data.len(),
            body: 0..data.len(),
        }]),
        SplitType::Line => Ok(lines(data)),
        SplitType::RecordIO => recordio(data),
        SplitType::TFRecord => tfrecord(data),
    }
}

fn lines(data: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let end = memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i + 1);
        let mut body_end = end;
        while body_end > start && matches!(data[body_end - 1], b'\n' | b'\r') {
            body_end -= 1;
        }
        if body_end > start {
            out.push(Record {
                framed: start..end,
                body: start..body_end,
            });
        }
        start = end;
    }
    out
}

fn memchr(byte: u8, data: &[u8]) -> Option<usize> {
    data.iter().position(|b| *b == byte)
}

fn word(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn recordio(data: &[u8]) -> Result<Vec<Record>, SplitError> {
    let fail = |detail, offset| SplitError::Framing {
        kind: "RecordIO",
        detail,
        offset,
    };
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let magic = word(data, at).ok_or_else(|| fail("a truncated header", at))?;
        if magic != RECORDIO_MAGIC {
            return Err(fail("no RecordIO magic number", at));
        }
        let length = word(data, at + 4).ok_or_else(|| fail("a truncated header", at))?;
        let size = (length & ((1 << 29) - 1)) as usize;
        let body = at + 8..at + 8 + size;
        if body.end > data.len() {
            return Err(fail("a record longer than the data left", at));
        }
        let end = body.end.div_ceil(4) * 4;
        out.push(Record {
            framed: at..end.min(data.len()),
            body,
        });
        at = end;
    }
    Ok(out)
}

fn tfrecord(data: &[u8]) -> Result<Vec<Record>, SplitError> {
    let fail = |detail, offset| SplitError::Framing {
        kind: "TFRecord",
        detail,
        offset,
    };
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let length = data
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| fail("a truncated length", at))?;
        let size = usize::try_from(length).map_err(|_| fail("a length too large", at))?;
        let start = at + 12;
        let end = start
            .checked_add(size)
            .and_then(|e| e.checked_add(4))
            .filter(|e| *e <= data.len())
            .ok_or_else(|| fail("a record longer than the data left", at))?;
        out.push(Record {
            framed: at..end,
            body: start..start + size,
        });
        at = end;
    }
    Ok(out)
}

/// The mini-batches of `records` (of `data`): `limit` bytes at most per payload (None:
/// no limit, MaxPayloadInMB 0), which `limit_mb` states for messages.
pub fn batches(
    data: &Bytes,
    records: &[Record],
    strategy: BatchStrategy,
    limit: Option<usize>,
    limit_mb: u32,
) -> Result<Vec<Batch>, SplitError> {
    let fits = |size: usize| limit.is_none_or(|l| size <= l);
    let mut out = Vec::new();
    for (index, record) in records.iter().enumerate() {
        let size = match strategy {
            BatchStrategy::SingleRecord => record.body.len(),
            BatchStrategy::MultiRecord => record.framed.len(),
        };
        if !fits(size) {
            return Err(SplitError::Oversize {
                index: index + 1,
                size,
                limit_mb,
            });
        }
    }
    match strategy {
        BatchStrategy::SingleRecord => {
            for (index, record) in records.iter().enumerate() {
                out.push(Batch {
                    records: index..index + 1,
                    payload: data.slice(record.body.clone()),
                });
            }
        }
        BatchStrategy::MultiRecord => {
            let mut first = 0;
            while first < records.len() {
                let start = records[first].framed.start;
                let mut last = first;
                while last + 1 < records.len() && fits(records[last + 1].framed.end - start) {
                    last += 1;
                }
                out.push(Batch {
                    records: first..last + 1,
                    payload: data.slice(start..records[last].framed.end),
                });
                first = last + 1;
            }
        }
    }
    Ok(out)
}

/// Frames `bodies` as `split` lays records out, for a MultiRecord payload made of changed
/// records (an InputFilter's): lines end with a newline, RecordIO and TFRecord records
/// get their headers (the CRCs of a TFRecord are zero: nothing here checks them).
pub fn frame(bodies: &[Vec<u8>], split: SplitType) -> Vec<u8> {
    let mut out = Vec::new();
    for body in bodies {
        match split {
            SplitType::None | SplitType::Line => {
                out.extend_from_slice(body);
                out.push(b'\n');
            }
            SplitType::RecordIO => {
                out.extend_from_slice(&RECORDIO_MAGIC.to_le_bytes());
                let size = u32::try_from(body.len()).unwrap_or(u32::MAX) & ((1 << 29) - 1);
                out.extend_from_slice(&size.to_le_bytes());
                out.extend_from_slice(body);
                out.resize(out.len().div_ceil(4) * 4, 0);
            }
            SplitType::TFRecord => {
                out.extend_from_slice(&(body.len() as u64).to_le_bytes());
                out.extend_from_slice(&[0; 4]);
                out.extend_from_slice(body);
                out.extend_from_slice(&[0; 4]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodies(data: &[u8], records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| String::from_utf8_lossy(&data[r.body.clone()]).into_owned())
            .collect()
    }

    #[test]
    fn lines_keep_their_newline_in_the_frame_and_skip_blank_lines() {
        let data = b"1,2\r\n\n3,4\n5,6";
        let records = split(data, SplitType::Line).unwrap();
        assert_eq!(bodies(data, &records), ["1,2", "3,4", "5,6"]);
        assert_eq!(records[0].framed, 0..5);
        assert_eq!(records[2].framed, 10..13);
    }

    #[test]
    fn recordio_and_tfrecord_frames_are_read_back() {
        let items = vec![b"abc".to_vec(), b"defgh".to_vec(), Vec::new()];
        for kind in [SplitType::RecordIO, SplitType::TFRecord] {
            let data = frame(&items, kind);
            let records = split(&data, kind).unwrap();
            assert_eq!(bodies(&data, &records), ["abc", "defgh", ""], "{kind:?}");
            assert_eq!(records.last().unwrap().framed.end, data.len());
        }
        let err = split(b"not recordio", SplitType::RecordIO).unwrap_err();
        assert!(
            err.to_string()
                .contains("no RecordIO magic number at byte 0"),
            "{err}"
        );
        let mut cut = frame(&items, SplitType::TFRecord);
        cut.truncate(cut.len() - 2);
        assert!(split(&cut, SplitType::TFRecord).is_err());
    }

    #[test]
    fn multi_record_packs_consecutive_records_up_to_the_limit() {
        let data = Bytes::from_static(b"aaaa\nbbbb\ncccc\ndd\n");
        let records = split(&data, SplitType::Line).unwrap();
        let out = batches(&data, &records, BatchStrategy::MultiRecord, Some(10), 1).unwrap();
        let payloads: Vec<&[u8]> = out.iter().map(|b| b.payload.as_ref()).collect();
        assert_eq!(payloads, [&b"aaaa\nbbbb\n"[..], b"cccc\ndd\n"]);
        assert_eq!(out[1].records, 2..4);
        let all = batches(&data, &records, BatchStrategy::MultiRecord, None, 0).unwrap();
        assert_eq!(all.len(), 1);
    }

    #[test]
    fn single_record_sends_bodies_and_oversize_records_fail() {
        let data = Bytes::from_static(b"aaaa\nbbbbbbbbbb\n");
        let records = split(&data, SplitType::Line).unwrap();
        let out = batches(&data, &records, BatchStrategy::SingleRecord, Some(20), 1).unwrap();
        assert_eq!(out[1].payload, "bbbbbbbbbb");
        let err = batches(&data, &records, BatchStrategy::SingleRecord, Some(5), 1).unwrap_err();
        assert_eq!(
            err,
            SplitError::Oversize {
                index: 2,
                size: 10,
                limit_mb: 1
            }
        );
    }
}
