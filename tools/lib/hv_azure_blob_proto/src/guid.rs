// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! GUIDs in the mixed-endian `guid_t` byte order used on the wire.

/// Formats a `guid_t` as the usual `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` text.
pub fn format_guid(b: &[u8; 16]) -> String {
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    )
}

/// Parses the text form into `guid_t` byte order; `None` if it is not a GUID.
pub fn parse_guid(s: &str) -> Option<[u8; 16]> {
    let s = s.trim().trim_start_matches('{').trim_end_matches('}');
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || s.len() != 36 {
        return None;
    }
    let mut raw = [0u8; 16];
    for (i, byte) in raw.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some([
        raw[3], raw[2], raw[1], raw[0], raw[5], raw[4], raw[7], raw[6], raw[8], raw[9], raw[10],
        raw[11], raw[12], raw[13], raw[14], raw[15],
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HV_AZURE_BLOB_GUID;

    #[test]
    fn device_class_round_trips_through_text() {
        assert_eq!(
            format_guid(&HV_AZURE_BLOB_GUID),
            "0590b792-db64-45cc-81db-b8d70c577c9e"
        );
        assert_eq!(
            parse_guid("{0590b792-db64-45cc-81db-b8d70c577c9e}"),
            Some(HV_AZURE_BLOB_GUID)
        );
        assert_eq!(parse_guid("0590b792-db64-45cc-81db-b8d70c577c9"), None);
        assert_eq!(parse_guid("0590b792xdb64-45cc-81db-b8d70c577c9e0"), None);
    }
}
