//! Reads the names and shapes of the arrays in an MXNet `.params` file without MXNet: the
//! NDArray list format of MXNet 1.x (`mx.nd.save`, `Module.save_checkpoint`, Gluon
//! `HybridBlock.export`). Array data is skipped with seeks, so a large file costs a few
//! reads.
//!
//! Layout (little-endian; MXNet's `NDArray::Save`): u64 magic 0x112, u64 reserved, u64
//! count, then per array: u32 magic (0xF993FAC9 v2, 0xF993FACA v3), i32 storage type,
//! (sparse only: the storage shape), the shape (u32 ndim, i64 × ndim), then unless the
//! shape is empty: the context (2 × i32), i32 dtype, (sparse only: aux types and shapes),
//! the data; then u64 name count and per name u64 length + bytes (`arg:NAME`, `aux:NAME`).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

const LIST_MAGIC: u64 = 0x112;
const ARRAY_MAGIC_V2: u32 = 0xF993_FAC9;
const ARRAY_MAGIC_V3: u32 = 0xF993_FACA;
/// More arrays or dimensions than this is a corrupt header, not a model.
const MAX_COUNT: u64 = 1 << 24;
const MAX_NDIM: u32 = 32;

/// One saved array: its name as stored (`arg:fc1_weight`) and its shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Array {
    pub name: String,
    pub shape: Vec<i64>,
}

#[derive(Debug)]
pub enum ParamsError {
    /// The file does not start with the NDArray list magic.
    NotParams,
    /// Readable MXNet data this reader does not follow (sparse arrays, unknown dtypes).
    Unsupported(String),
    /// Ends early or holds impossible sizes.
    Corrupt(String),
    Io(io::Error),
}

impl From<io::Error> for ParamsError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            ParamsError::Corrupt("the file ends inside an array".into())
        } else {
            ParamsError::Io(e)
        }
    }
}

pub fn read_file(path: &Path) -> Result<Vec<Array>, ParamsError> {
    read(BufReader::new(File::open(path)?))
}

pub fn read(mut r: impl Read + Seek) -> Result<Vec<Array>, ParamsError> {
    let mut magic = [0u8; 8];
    if r.read_exact(&mut magic).is_err() || u64::from_le_bytes(magic) != LIST_MAGIC {
        return Err(ParamsError::NotParams);
    }
    let _reserved = u64_(&mut r)?;
    let count = bounded(u64_(&mut r)?, "array count")?;
    // `bounded` has held it to MAX_COUNT.
    let mut shapes = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for _ in 0..count {
        shapes.push(skip_array(&mut r)?);
    }
    let names = bounded(u64_(&mut r)?, "name count")?;
    if names != count {
        return Err(ParamsError::Corrupt(format!(
            "{count} arrays but {names} names"
        )));
    }
    shapes
        .into_iter()
        .map(|shape| {
            let len = bounded(u64_(&mut r)?, "name length")?;
            let mut name = vec![0; usize::try_from(len).unwrap_or(0)];
            r.read_exact(&mut name)?;
            Ok(Array {
                name: String::from_utf8_lossy(&name).into_owned(),
                shape,
            })
        })
        .collect()
}

/// Reads one array's header, seeks past its data, returns its shape.
fn skip_array(r: &mut (impl Read + Seek)) -> Result<Vec<i64>, ParamsError> {
    let magic = u32_(r)?;
    if magic != ARRAY_MAGIC_V2 && magic != ARRAY_MAGIC_V3 {
        return Err(ParamsError::Unsupported(format!(
            "array format {magic:#x} (MXNet 1.x saves 0xf993fac9 or 0xf993faca)"
        )));
    }
    let storage = u32_(r)?;
    if storage != 0 {
        return Err(ParamsError::Unsupported(
            "sparse arrays (row_sparse or csr)".into(),
        ));
    }
    let shape = shape(r)?;
    // v2 marks "no array" with ndim 0, v3 with ndim -1 (read here as an empty shape).
    if shape.is_empty() {
        return Ok(shape);
    }
    let _context = (u32_(r)?, u32_(r)?);
    let dtype = u32_(r)?;
    let width: i64 = match dtype {
        0 | 4 => 4,     // float32, int32
        1 | 6 => 8,     // float64, int64
        2 | 12 => 2,    // float16, bfloat16
        3 | 5 | 7 => 1, // uint8, int8, bool
        other => return Err(ParamsError::Unsupported(format!("dtype {other}"))),
    };
    let bytes = shape
        .iter()
        .try_fold(width, |n, &d| n.checked_mul(d).filter(|_| d >= 0))
        .ok_or_else(|| ParamsError::Corrupt(format!("impossible shape {shape:?}")))?;
    r.seek_relative(bytes)?;
    Ok(shape)
}

fn shape(r: &mut impl Read) -> Result<Vec<i64>, ParamsError> {
    let ndim = u32_(r)?;
    if ndim == u32::MAX {
        return Ok(Vec::new()); // v3's unknown shape (-1)
    }
    if ndim > MAX_NDIM {
        return Err(ParamsError::Corrupt(format!("{ndim} dimensions")));
    }
    (0..ndim)
        .map(|_| {
            let dim = u64_(r)?;
            i64::try_from(dim).map_err(|_| ParamsError::Corrupt(format!("dimension {dim}")))
        })
        .collect()
}

fn bounded(n: u64, what: &str) -> Result<u64, ParamsError> {
    if n > MAX_COUNT {
        return Err(ParamsError::Corrupt(format!("{what} {n}")));
    }
    Ok(n)
}

fn u32_(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn u64_(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn fixture() -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/models/mxnet/model-0000.params"),
        )
        .unwrap()
    }

    #[test]
    fn names_and_shapes_of_a_checkpoint_saved_by_mxnet() {
        let arrays = read(Cursor::new(fixture())).unwrap();
        assert_eq!(
            arrays,
            [
                Array {
                    name: "arg:fc1_weight".into(),
                    shape: vec![3, 4]
                },
                Array {
                    name: "arg:fc1_bias".into(),
                    shape: vec![3]
                },
            ]
        );
    }

    #[test]
    fn other_files_and_cut_files_are_told_apart() {
        assert!(matches!(
            read(Cursor::new(b"PK\x03\x04 not params".to_vec())),
            Err(ParamsError::NotParams)
        ));
        let mut cut = fixture();
        cut.truncate(cut.len() - 5);
        assert!(matches!(
            read(Cursor::new(cut)),
            Err(ParamsError::Corrupt(_))
        ));
        let mut huge = fixture();
        huge[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            read(Cursor::new(huge)),
            Err(ParamsError::Corrupt(_))
        ));
    }
}
