//! A parallel gzip writer (the pigz method) with output independent of the thread count.
//!
//! Input is cut into fixed 512 KiB blocks; each block is deflated on a worker thread
//! with the previous block's last 32 KiB as preset dictionary (so the ratio stays close to
//! a single stream) and ended with a sync flush, which byte-aligns it without ending the
//! stream; the last block ends the stream. The blocks, written in order, form one deflate
//! stream inside one gzip member, readable by any gzip. The bytes depend only on the input
//! and the level: the same tree always packs to the same sha256, on any machine size.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

const BLOCK: usize = 512 * 1024;
const DICT: usize = 32 * 1024;

struct Job {
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
    done: SyncSender<io::Result<Vec<u8>>>,
}

/// Writes a gzip stream, compressing blocks on worker threads.
pub struct ParallelGzWriter<W: Write> {
    out: Option<W>,
    block: Vec<u8>,
    dict: Vec<u8>,
    crc: Crc,
    jobs: Option<SyncSender<Job>>,
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    max_pending: usize,
    workers: Vec<JoinHandle<()>>,
}

impl<W: Write> ParallelGzWriter<W> {
    /// Starts a gzip member (no name, mtime 0, OS "unknown") on `out`, compressing on as
    /// many threads as there are cores (at most 8).
    pub fn new(out: W, level: u32) -> io::Result<Self> {
        let threads = thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8);
        Self::with_threads(out, level, threads)
    }

    /// Like [`ParallelGzWriter::new`] with a given number of compressing threads.
    pub fn with_threads(mut out: W, level: u32, threads: usize) -> io::Result<Self> {
        let xfl = match level {
            9 => 2,
            1 => 4,
            _ => 0,
        };
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255])?;
        let threads = threads.max(1);
        let (tx, rx) = mpsc::sync_channel::<Job>(threads);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let workers = (0..threads)
            .map(|i| {
                let rx = rx.clone();
                thread::Builder::new()
                    .name(format!("sagedock-gzip-{i}"))
                    .spawn(move || worker(&rx, Compression::new(level)))
                    .expect("spawning a thread")
            })
            .collect();
        Ok(ParallelGzWriter {
            out: Some(out),
            block: Vec::with_capacity(BLOCK),
            dict: Vec::new(),
            crc: Crc::new(),
            jobs: Some(tx),
            pending: VecDeque::new(),
            max_pending: threads + 2,
            workers,
        })
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(
            &mut self.block,
            Vec::with_capacity(if last { 0 } else { BLOCK }),
        );
        let dict = std::mem::take(&mut self.dict);
        self.dict = data[data.len().saturating_sub(DICT)..].to_vec();
        let (done, result) = mpsc::sync_channel(1);
        let jobs = self.jobs.as_ref().expect("writer not finished");
        jobs.send(Job {
            dict,
            data,
            last,
            done,
        })
        .map_err(|_| io::Error::other("gzip worker stopped"))?;
        self.pending.push_back(result);
        while self.pending.len() > self.max_pending {
            self.write_oldest()?;
        }
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(result) = self.pending.pop_front() else {
            return Ok(());
        };
        let compressed = result
            .recv()
            .map_err(|_| io::Error::other("gzip worker stopped"))??;
        self.out
            .as_mut()
            .expect("writer not finished")
            .write_all(&compressed)
    }

    /// Compresses what is left, writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        let mut out = self.out.take().expect("writer not finished");
        out.write_all(&self.crc.sum().to_le_bytes())?;
        out.write_all(&self.crc.amount().to_le_bytes())?;
        Ok(out)
    }
}

impl<W: Write> Write for ParallelGzWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        self.crc.update(&buf[..n]);
        if self.block.len() == BLOCK {
            self.submit(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(()) // blocks are fixed-size so that the output stays deterministic
    }
}

impl<W: Write> Drop for ParallelGzWriter<W> {
    fn drop(&mut self) {
        self.jobs.take();
        self.pending.clear();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn worker(jobs: &std::sync::Mutex<Receiver<Job>>, level: Compression) {
    loop {
        let job = match jobs.lock().map(|rx| rx.recv()) {
            Ok(Ok(job)) => job,
            _ => return,
        };
        // A fresh compressor per block: a reset one can carry state from the block it did
        // before, which would make the bytes depend on which thread took which block.
        let mut deflate = Compress::new(level, false);
        let result = compress_block(&mut deflate, &job);
        let _ = job.done.send(result);
    }
}

fn compress_block(deflate: &mut Compress, job: &Job) -> io::Result<Vec<u8>> {
    if !job.dict.is_empty() {
        deflate
            .set_dictionary(&job.dict)
            .map_err(io::Error::other)?;
    }
    let flush = if job.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(job.data.len() + job.data.len() / 64 + 1024);
    let start = deflate.total_in();
    loop {
        let consumed = usize::try_from(deflate.total_in() - start).unwrap_or(job.data.len());
        let status = deflate
            .compress_vec(&job.data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let consumed = usize::try_from(deflate.total_in() - start).unwrap_or(job.data.len());
        let finished = match status {
            Status::StreamEnd => true,
            _ if job.last => false,
            // A sync flush is complete once all input is in and there was room to spare.
            _ => consumed == job.data.len() && out.len() < out.capacity(),
        };
        if finished {
            return Ok(out);
        }
        out.reserve(out.capacity().max(4096));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn compress(data: &[u8], level: u32) -> Vec<u8> {
        compress_on(data, level, 2)
    }

    fn compress_on(data: &[u8], level: u32, threads: usize) -> Vec<u8> {
        let mut gz = ParallelGzWriter::with_threads(Vec::new(), level, threads).unwrap();
        for chunk in data.chunks(100_003) {
            gz.write_all(chunk).unwrap();
        }
        gz.finish().unwrap()
    }

    fn sample(len: usize) -> Vec<u8> {
        let mut state = 42u64;
        (0..len)
            .map(|i| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                if i % 3 == 0 {
                    (state >> 56) as u8
                } else {
                    b"model weights "[i % 14]
                }
            })
            .collect()
    }

    #[test]
    fn output_is_standard_gzip_and_deterministic() {
        for len in [0, 1, BLOCK - 1, BLOCK, 3 * BLOCK + 17] {
            let data = sample(len);
            let packed = compress(&data, 6);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&packed[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "length {len}");
            let mut strict = Vec::new();
            crate::artifact::gzip::Gunzip::new(&packed[..])
                .read_to_end(&mut strict)
                .unwrap();
            assert_eq!(strict, data);
            assert_eq!(packed, compress(&data, 6), "same input, same bytes");
            assert_eq!(
                packed,
                compress_on(&data, 6, 1),
                "one thread or two, same bytes"
            );
            assert_eq!(
                packed,
                compress_on(&data, 6, 5),
                "one thread or five, same bytes"
            );
        }
    }

    #[test]
    fn the_dictionary_keeps_the_ratio_of_repetitive_data() {
        let data: Vec<u8> = b"0123456789abcdef"
            .iter()
            .copied()
            .cycle()
            .take(4 * BLOCK)
            .collect();
        assert!(compress(&data, 6).len() < 20_000);
    }
}
