//! Bytes of a backup object on their way to the bucket: compressed and cut
//! into parts as they are written ([`PartWriter`], on a blocking thread), and
//! uploaded a few at once ([`upload_parts`]). Memory is bounded by the parts
//! queued and in flight, whatever the object's size.

use crate::format::codec::ZSTD_LEVEL;
use crate::providers::storage::{Part, Upload};
use crate::providers::ProviderError;
use crate::spec::Compression;
use futures_util::StreamExt;
use std::io::Write;
use zstd::stream::raw::{InBuffer, Operation, OutBuffer};

/// The first part size; parts grow as the object does, so that S3's limit of
/// 10,000 parts allows objects of several terabytes.
const FIRST_PART: usize = 16 << 20;
/// Parts uploaded at once, per object.
const UPLOADS_IN_FLIGHT: usize = 3;
/// Parts cut but not yet uploading, per object.
pub const QUEUED_PARTS: usize = 2;

/// A `Write` that compresses (or not) and hands full parts to the uploader.
/// The compressed stream is a series of zstd frames, ended by
/// [`PartWriter::end_frame`]: a backup ends one after each file, so a range
/// of the object ([`PartWriter::position`] before and after) decompresses
/// alone, and a delta restore fetches just the files it needs.
pub struct PartWriter {
    /// One context for every frame (`reinit` between them).
    encoder: Option<zstd::stream::raw::Encoder<'static>>,
    /// Output not yet sent.
    out: Vec<u8>,
    /// Bytes of the object sent in earlier parts.
    sent_bytes: u64,
    /// Uncompressed bytes written into the frame being written.
    in_frame: u64,
    parts: tokio::sync::mpsc::Sender<Vec<u8>>,
    sent_parts: usize,
    /// The uploader went away (it failed; its error is the one reported).
    pub stopped: bool,
}

impl PartWriter {
    pub fn new(
        compression: Compression,
        parts: tokio::sync::mpsc::Sender<Vec<u8>>,
    ) -> std::io::Result<Self> {
        Ok(PartWriter {
            encoder: match compression {
                Compression::Zstd => Some(zstd::stream::raw::Encoder::new(ZSTD_LEVEL)?),
                Compression::None => None,
            },
            out: Vec::new(),
            sent_bytes: 0,
            in_frame: 0,
            parts,
            sent_parts: 0,
            stopped: false,
        })
    }

    /// Where the next frame starts in the object (call after `end_frame`).
    pub fn position(&self) -> u64 {
        self.sent_bytes + self.out.len() as u64
    }

    /// Ends the frame being written (nothing when none is open).
    pub fn end_frame(&mut self) -> std::io::Result<()> {
        if self.in_frame == 0 {
            return Ok(());
        }
        if let Some(encoder) = &mut self.encoder {
            loop {
                self.out.reserve(64 << 10);
                let pos = self.out.len();
                let mut output = OutBuffer::around_pos(&mut self.out, pos);
                if encoder.finish(&mut output, false)? == 0 {
                    break;
                }
            }
            encoder.reinit()?;
        }
        self.in_frame = 0;
        self.send_full()
    }

    fn send_full(&mut self) -> std::io::Result<()> {
        let part_size = FIRST_PART << (self.sent_parts / 1000).min(8);
        if self.out.len() >= part_size {
            let part = std::mem::take(&mut self.out);
            self.send(part)?;
        }
        Ok(())
    }

    fn send(&mut self, part: Vec<u8>) -> std::io::Result<()> {
        self.sent_parts += 1;
        self.sent_bytes += part.len() as u64;
        if self.parts.blocking_send(part).is_err() {
            self.stopped = true;
            return Err(std::io::Error::other("the upload stopped"));
        }
        Ok(())
    }

    /// Ends the compressed stream and sends what is left (an empty object
    /// still gets its one part).
    pub fn finish(mut self) -> std::io::Result<()> {
        self.end_frame()?;
        let rest = std::mem::take(&mut self.out);
        if !rest.is_empty() || self.sent_parts == 0 {
            self.send(rest)?;
        }
        Ok(())
    }
}

impl Write for PartWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.in_frame += buf.len() as u64;
        match &mut self.encoder {
            Some(encoder) => {
                let mut input = InBuffer::around(buf);
                while input.pos() < buf.len() {
                    self.out.reserve((buf.len() - input.pos()).max(64 << 10));
                    let pos = self.out.len();
                    let mut output = OutBuffer::around_pos(&mut self.out, pos);
                    encoder.run(&mut input, &mut output)?;
                }
            }
            None => self.out.extend_from_slice(buf),
        }
        self.send_full()?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Uploads the parts `parts` delivers, a few at once, until it closes.
/// Returns the parts and the bytes stored (also counted into `stored` as
/// they go, for the backup's progress); on an error it stops taking parts
/// (the writer then sees [`PartWriter::stopped`]).
pub async fn upload_parts(
    upload: &Upload,
    mut parts: tokio::sync::mpsc::Receiver<Vec<u8>>,
    stored: &std::sync::atomic::AtomicU64,
) -> Result<(Vec<Part>, u64), ProviderError> {
    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    let mut done = Vec::new();
    let mut number = 0;
    let mut stored_bytes = 0u64;
    loop {
        tokio::select! {
            part = parts.recv(), if in_flight.len() < UPLOADS_IN_FLIGHT => {
                let Some(part) = part else { break };
                number += 1;
                stored_bytes += part.len() as u64;
                let size = part.len() as u64;
                in_flight.push(async move { upload.send_part(number, part).await.map(|p| (p, size)) });
            }
            Some(sent) = in_flight.next(), if !in_flight.is_empty() => done.push(counted(sent?, stored)),
        }
    }
    while let Some(sent) = in_flight.next().await {
        done.push(counted(sent?, stored));
    }
    Ok((done, stored_bytes))
}

/// A sent part, its size counted into `stored`.
fn counted((part, size): (Part, u64), stored: &std::sync::atomic::AtomicU64) -> Part {
    stored.fetch_add(size, std::sync::atomic::Ordering::Relaxed);
    part
}
