//! The read side of an unpack on its own thread: file → sha256 → gunzip.
//!
//! `tar xzf` runs gzip in a second process, so decompression and file writes overlap on
//! two cores. This module gives sagedock the same overlap inside one process: a producer
//! thread reads the archive, hashes the compressed bytes and inflates them into reused
//! 1 MiB blocks sent over a bounded channel; [`PipeReader`] hands them to the tar reader.
//!
//! Invariants: the producer stops as soon as the reader is dropped (its send fails); an
//! error of the producer reaches the reader at the position where it happened and is also
//! the thread's result, so the caller can name the root cause after the tar layer has
//! wrapped it.

use std::io::{self, BufReader, Read};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

use sha2::{Digest, Sha256};

use super::gzip::Gunzip;

const BLOCK: usize = 1 << 20;
const DEPTH: usize = 4;
const READ_BUFFER: usize = 256 * 1024;

/// Reads decompressed blocks produced by [`spawn_gunzip`].
pub struct PipeReader {
    blocks: Receiver<io::Result<Vec<u8>>>,
    recycle: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.blocks.recv() {
                Ok(Ok(block)) => {
                    let used = std::mem::replace(&mut self.current, block);
                    self.pos = 0;
                    let _ = self.recycle.try_send(used);
                }
                Ok(Err(err)) => return Err(err),
                Err(mpsc::RecvError) => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Hashes every byte read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Starts decompressing `file`. The thread's result is the lowercase hex sha256 of the
/// whole file (every byte, including any trailing bytes after the gzip data).
pub fn spawn_gunzip(
    file: impl Read + Send + 'static,
) -> (PipeReader, JoinHandle<io::Result<String>>) {
    let (block_tx, block_rx) = mpsc::sync_channel(DEPTH);
    let (recycle_tx, recycle_rx) = mpsc::sync_channel(DEPTH + 2);
    let handle = thread::Builder::new()
        .name("sagedock-gunzip".into())
        .spawn(move || produce(file, block_tx, recycle_rx))
        .expect("spawning a thread");
    let reader = PipeReader {
        blocks: block_rx,
        recycle: recycle_tx,
        current: Vec::new(),
        pos: 0,
    };
    (reader, handle)
}

fn produce(
    file: impl Read,
    blocks: SyncSender<io::Result<Vec<u8>>>,
    recycle: Receiver<Vec<u8>>,
) -> io::Result<String> {
    let hashing = HashingReader {
        inner: file,
        hasher: Sha256::new(),
    };
    let mut gunzip = Gunzip::new(BufReader::with_capacity(READ_BUFFER, hashing));
    loop {
        let mut block = recycle
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BLOCK));
        block.resize(BLOCK, 0);
        let (filled, failure) = fill(&mut gunzip, &mut block);
        block.truncate(filled);
        if let Some(err) = failure {
            // Hand over what was decoded before the failure, so the reader can name the
            // entry it was in; then the error (as text: the thread result keeps the type).
            if filled > 0 {
                let _ = blocks.send(Ok(block));
            }
            let _ = blocks.send(Err(io::Error::new(err.kind(), err.to_string())));
            return Err(err);
        }
        if filled == 0 {
            break;
        }
        if blocks.send(Ok(block)).is_err() {
            return Err(io::Error::other(
                "unpack stopped before the end of the archive",
            ));
        }
    }
    drop(blocks);
    let mut rest = gunzip.into_inner();
    io::copy(&mut rest, &mut io::sink())?;
    let digest = rest.into_inner().hasher.finalize();
    Ok(super::hex(&digest))
}

/// Fills `buf` as far as the stream allows; returns the bytes filled (0 at the end) and
/// the error that stopped it early, if any.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return (filled, Some(err)),
        }
    }
    (filled, None)
}
