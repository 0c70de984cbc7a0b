//! CRC-32C (Castagnoli), as ext4's `metadata_csum` uses it: the raw register update, without the
//! final inversion, so that ext4's seeds chain exactly like the kernel's `crc32c_le`.

const POLY: u32 = 0x82F6_3B78;

const TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// Continues the CRC register `crc` over `data` (the kernel's `crc32c_le(crc, data, len)`).
pub(crate) fn update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_check_value() {
        // The catalogued CRC-32C check: init !0, final inversion, "123456789" -> 0xE3069283.
        assert_eq!(!update(!0, b"123456789"), 0xE306_9283);
    }
}
