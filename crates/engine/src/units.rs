//! Human-readable sizes: binary units with one decimal, as lsblk prints them.

/// `1536` → `1.5 KiB`, `0` → `0 B`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::human as size;

    #[test]
    fn sizes_use_binary_units_with_one_decimal() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(256 * 1024 * 1024 * 1024), "256 GiB");
        assert_eq!(size(500_107_862_016), "466 GiB");
        assert_eq!(size(u64::MAX), "16.0 EiB");
    }
}
