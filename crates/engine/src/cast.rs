//! Restoring from a cast stream (issue 19): an image arriving as one sequential stream (from
//! `udp-receiver`, a pipe, stdin; see `image::cast` and FORMAT.md, "Cast streams") is restored
//! as it arrives, through the same plan and run as a restore from a file ([`crate::job`]'s
//! `JobSpec::Receive`). Nothing is staged: the metadata is held in memory, chunk records are
//! written as they are read.
//!
//! What differs from a file: every record can be read once, so the restore runs in the stream's
//! order; verification compares what was read back from the target with a crc32 of what was
//! written (the image cannot be read a second time); the stream is read to its end frame before
//! the partition table is written, so a target whose sender stopped or whose stream was cut has
//! no partition table; a target smaller than the imaged disk is refused (shrinking measures the
//! file systems, which a stream cannot show before it is written).

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use image::cast::CastReceiver;
use image::ImageReader;

use crate::error::JobError;

/// An image arriving as a cast stream, its metadata read and checked.
#[derive(Debug, Clone)]
pub struct CastSource {
    name: String,
    image: Arc<ImageReader>,
    receiver: CastReceiver,
}

impl CastSource {
    /// Reads the stream's metadata from `input` (blocking until the sender starts) and opens
    /// the image it carries. `name` names the stream in messages and is the key of its password
    /// in [`crate::keys`] (an encrypted image needs [`crate::keys::remember`] for `name` first).
    pub fn open(input: Box<dyn Read + Send>, name: &str) -> Result<Self, JobError> {
        let pw = crate::keys::password_for(Path::new(name));
        let (image, receiver) = image::cast::receive(input, name, pw.as_ref())?;
        Ok(CastSource {
            name: name.to_string(),
            image: Arc::new(image),
            receiver,
        })
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The image, as far as its metadata tells.
    pub fn image(&self) -> &Arc<ImageReader> {
        &self.image
    }

    /// Reads the rest of the stream to its end frame (see `image::cast::CastReceiver::finish`).
    pub fn finish(&self) -> Result<u64, JobError> {
        Ok(self.receiver.finish()?)
    }

    /// Declares the streams a restore will read (see `image::cast::CastReceiver::only_streams`).
    pub fn only_streams(&self, streams: impl IntoIterator<Item = u32>) {
        self.receiver.only_streams(streams);
    }

    /// Bytes read from the stream so far.
    pub fn bytes_read(&self) -> u64 {
        self.receiver.bytes_read()
    }
}
