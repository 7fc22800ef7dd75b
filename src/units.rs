//! Byte sizes as people write them (`100G`, `512MiB`, `1_000`) and as they read them.

/// `x` as a whole count: NaN and anything below 0 is 0, anything past `u64::MAX` is
/// `u64::MAX`, the rest is truncated toward zero.
pub fn saturating_u64(x: f64) -> u64 {
    // Rust's float-to-integer `as` saturates and maps NaN to 0: exactly this.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = x as u64;
    n
}

/// Parses a byte count with an optional binary suffix: K, M, G, T (optionally followed
/// by `i`, `B` or `iB`, case-insensitive). Suffixes are powers of 1024.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim().replace('_', "");
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    let number: u64 = digits.parse().map_err(|_| {
        format!("'{text}' is not a byte size (examples: 1048576, 512M, 100G, 2TiB)")
    })?;
    let shift = match suffix
        .to_ascii_lowercase()
        .trim_end_matches('b')
        .trim_end_matches('i')
    {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => {
            return Err(format!(
                "unknown unit in '{text}': use K, M, G or T (powers of 1024)"
            ))
        }
    };
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// Formats a byte count for people: `512 B`, `1.5 KiB`, `2.0 GiB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_suffixed_sizes() {
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert_eq!(parse_bytes("1K"), Ok(1024));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("100g"), Ok(100 << 30));
        assert_eq!(parse_bytes("1_000"), Ok(1000));
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("99999999999T").is_err());
    }

    #[test]
    fn formats_sizes() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(3 << 30), "3.0 GiB");
    }
}
