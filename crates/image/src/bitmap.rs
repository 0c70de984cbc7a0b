//! Used-block bitmaps stored with a stream: bit `i` (LSB first within each byte) set means block
//! `i` of the stream holds data.

/// A used-block bitmap of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    block_size: u32,
    blocks: u64,
    bits: Vec<u8>,
}

impl Bitmap {
    /// A bitmap of `blocks` blocks of `block_size` bytes. `bits` must hold exactly
    /// `ceil(blocks / 8)` bytes; bits past `blocks` in the last byte are cleared.
    pub fn new(block_size: u32, blocks: u64, mut bits: Vec<u8>) -> Result<Self, String> {
        if !block_size.is_power_of_two()
            || !(crate::format::MIN_BITMAP_BLOCK..=crate::format::MAX_BITMAP_BLOCK)
                .contains(&block_size)
        {
            return Err(format!(
                "block size {block_size} is not a power of two in 512..=1 GiB"
            ));
        }
        let need = blocks.div_ceil(8);
        if bits.len() as u64 != need {
            return Err(format!(
                "{} bitmap bytes for {blocks} blocks, expected {need}",
                bits.len()
            ));
        }
        let tail = (blocks % 8) as u32;
        if tail != 0 {
            if let Some(last) = bits.last_mut() {
                *last &= (1u8 << tail) - 1;
            }
        }
        Ok(Bitmap {
            block_size,
            blocks,
            bits,
        })
    }

    /// A bitmap with every block of a stream of `len` bytes marked used.
    pub fn all_used(block_size: u32, len: u64) -> Result<Self, String> {
        let blocks = len.div_ceil(u64::from(block_size.max(1)));
        let bytes = usize::try_from(blocks.div_ceil(8))
            .map_err(|_| format!("{blocks} blocks do not fit in memory"))?;
        Self::new(block_size, blocks, vec![0xff; bytes])
    }

    /// Block size in bytes.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Number of blocks.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// The raw bits, LSB first.
    pub fn bits(&self) -> &[u8] {
        &self.bits
    }

    /// Whether block `block` is used (false past the end).
    pub fn is_used(&self, block: u64) -> bool {
        usize::try_from(block / 8)
            .ok()
            .and_then(|i| self.bits.get(i))
            .is_some_and(|b| b & (1 << (block % 8)) != 0)
    }

    /// The first block in `[from, limit)` that is used (`used`) or free (`!used`); `limit` (at
    /// most [`blocks`](Bitmap::blocks)) when there is none. Skips 64 blocks per step over runs,
    /// so a multi-terabyte map with few used blocks is walked in milliseconds.
    pub fn next_with(&self, from: u64, used: bool, limit: u64) -> u64 {
        let blocks = self.blocks.min(limit);
        let mut i = from;
        while i < blocks {
            let byte = usize::try_from(i / 8).unwrap_or(usize::MAX);
            // Eight bytes from the one holding `i` (missing bytes read as free).
            let mut word = [0u8; 8];
            if let Some(src) = self.bits.get(byte..) {
                let n = src.len().min(8);
                word[..n].copy_from_slice(&src[..n]);
            }
            let word = u64::from_le_bytes(word);
            let word = if used { word } else { !word };
            let rest = word >> (i % 8);
            let span = 64 - i % 8;
            if rest != 0 && u64::from(rest.trailing_zeros()) < span {
                return (i + u64::from(rest.trailing_zeros())).min(blocks);
            }
            i += span;
        }
        blocks
    }

    /// Number of used blocks.
    pub fn used_blocks(&self) -> u64 {
        self.bits.iter().map(|b| u64::from(b.count_ones())).sum()
    }

    fn block_range(&self, offset: u64, len: u64) -> (u64, u64) {
        let bs = u64::from(self.block_size);
        let first = offset / bs;
        let end = offset.saturating_add(len).div_ceil(bs).min(self.blocks);
        (first, end)
    }

    /// Whether any block overlapping the byte range `[offset, offset+len)` is used.
    pub fn any_used(&self, offset: u64, len: u64) -> bool {
        let (first, end) = self.block_range(offset, len);
        first < end && self.next_with(first, true, end) < end
    }

    /// Zeroes the bytes of `data` (which holds the stream's bytes from `offset` on) that lie in
    /// unused blocks, so free space compresses to nothing and reads back as zeros.
    pub fn zero_unused(&self, offset: u64, data: &mut [u8]) {
        let bs = u64::from(self.block_size);
        let (first, end) = self.block_range(offset, data.len() as u64);
        for b in first..end {
            if self.is_used(b) {
                continue;
            }
            let start = (b * bs).saturating_sub(offset);
            let stop = ((b + 1) * bs).saturating_sub(offset).min(data.len() as u64);
            if let (Ok(s), Ok(e)) = (usize::try_from(start), usize::try_from(stop)) {
                if let Some(range) = data.get_mut(s..e) {
                    range.fill(0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_answers_ranges_and_zeroes_free_blocks() {
        // blocks 0 and 3 used out of 10 blocks of 512 bytes
        let bm = Bitmap::new(512, 10, vec![0b0000_1001, 0xff]).unwrap();
        assert_eq!(bm.bits(), &[0b0000_1001, 0b11]);
        assert_eq!(bm.used_blocks(), 4);
        assert!(bm.any_used(0, 1));
        // next_with agrees with is_used everywhere, across byte and word boundaries.
        for used in [true, false] {
            for from in 0..=bm.blocks() {
                let want = (from..bm.blocks())
                    .find(|&b| bm.is_used(b) == used)
                    .unwrap_or(bm.blocks());
                assert_eq!(
                    bm.next_with(from, used, u64::MAX),
                    want,
                    "from {from} used {used}"
                );
                let limit = bm.blocks() / 2;
                let want = (from..limit)
                    .find(|&b| bm.is_used(b) == used)
                    .unwrap_or(limit);
                assert_eq!(bm.next_with(from, used, limit), want, "limit, from {from}");
            }
        }
        assert!(!bm.any_used(512, 1024));
        assert!(bm.any_used(1000, 600));
        let mut data = vec![0xaau8; 2048];
        bm.zero_unused(0, &mut data);
        assert!(data[..512].iter().all(|&b| b == 0xaa));
        assert!(data[512..1536].iter().all(|&b| b == 0));
        assert!(data[1536..].iter().all(|&b| b == 0xaa));
        assert!(Bitmap::new(512, 10, vec![0]).is_err());
        assert!(Bitmap::new(1000, 8, vec![0]).is_err());
    }
}
