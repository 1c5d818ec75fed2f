//! Objects read as one blocking byte stream, in ranged reads fetched as the
//! reader needs them: for code on a blocking thread (a backup worker reading
//! its parent's maps) that reads an object too large to hold whole. Memory
//! is one range.

use super::Store;
use crate::providers::ProviderError;
use std::io::Read;

/// The size of one ranged read.
const RANGE: u64 = 8 << 20;

/// The objects `keys`, one after the other, as one stream. Only for a
/// blocking thread (`spawn_blocking`): each range waits on the runtime.
pub struct ObjectsReader {
    store: Store,
    keys: std::vec::IntoIter<String>,
    runtime: tokio::runtime::Handle,
    /// The object being read: key, size, ETag, next offset.
    current: Option<(String, u64, Option<String>, u64)>,
    chunk: Vec<u8>,
    at: usize,
}

impl ObjectsReader {
    pub fn new(store: Store, keys: Vec<String>, runtime: tokio::runtime::Handle) -> Self {
        ObjectsReader {
            store,
            keys: keys.into_iter(),
            runtime,
            current: None,
            chunk: Vec::new(),
            at: 0,
        }
    }

    /// Bytes `range` of one object (a file's frame in a data object).
    pub fn range(
        store: Store,
        key: String,
        range: std::ops::Range<u64>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        ObjectsReader {
            current: Some((key, range.end, None, range.start)),
            ..ObjectsReader::new(store, Vec::new(), runtime)
        }
    }

    /// The next range, or `false` at the end of the last object.
    fn refill(&mut self) -> Result<bool, ProviderError> {
        loop {
            if let Some((key, size, etag, offset)) = &mut self.current {
                if *offset < *size {
                    let end = (*offset + RANGE).min(*size);
                    let range = *offset..end;
                    self.chunk =
                        self.runtime
                            .block_on(self.store.get_range(key, range, etag.as_deref()))?;
                    *offset = end;
                    self.at = 0;
                    return Ok(true);
                }
            }
            let Some(key) = self.keys.next() else {
                return Ok(false);
            };
            let head = self
                .runtime
                .block_on(self.store.head(&key))?
                .ok_or_else(|| ProviderError::new("s3", format!("{key} is listed but missing")))?;
            self.current = Some((key, head.size, head.etag, 0));
        }
    }
}

impl Read for ObjectsReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            if !self.refill().map_err(std::io::Error::other)? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
