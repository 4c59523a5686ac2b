//! The width and height of an image, read from its header (PNG, GIF, JPEG, WebP), so that a
//! photo Telegram would refuse goes out as a document instead.
//!
//! `sendPhoto`: "The photo must be at most 10 MB in size. The photo's width and height must not
//! exceed 10000 in total. Width and height ratio must be at most 20."
//! (<https://core.telegram.org/bots/api#sendphoto>). Nothing here trusts the bytes: every read
//! is bounds-checked, and an image whose header cannot be read has no size (`None`).

/// `(width, height)` in pixels, when the header says.
pub fn image_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.get(12..16) == Some(b"IHDR") {
        return Some((be32(bytes, 16)?, be32(bytes, 20)?));
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        return Some((le16(bytes, 6)?, le16(bytes, 8)?));
    }
    if bytes.starts_with(b"\xff\xd8") {
        return jpeg_size(bytes);
    }
    if bytes.get(0..4) == Some(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        return webp_size(bytes);
    }
    None
}

/// Whether Telegram takes an image of this size as a photo (sum ≤ 10000, ratio ≤ 20).
pub fn fits_photo((width, height): (u32, u32)) -> bool {
    let (w, h) = (u64::from(width), u64::from(height));
    w > 0 && h > 0 && w + h <= 10_000 && w <= 20 * h && h <= 20 * w
}

fn be16(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 2)?;
    Some(u32::from(s[0]) << 8 | u32::from(s[1]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn le16(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 2)?;
    Some(u32::from(s[0]) | u32::from(s[1]) << 8)
}

fn le24(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 3)?;
    Some(u32::from(s[0]) | u32::from(s[1]) << 8 | u32::from(s[2]) << 16)
}

/// The first start-of-frame marker (SOF0–SOF15 but DHT, JPG and DAC) holds the size.
fn jpeg_size(b: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    loop {
        // Markers may be padded with extra 0xFF bytes.
        while *b.get(at)? == 0xff && *b.get(at + 1)? == 0xff {
            at += 1;
        }
        if *b.get(at)? != 0xff {
            return None;
        }
        let marker = *b.get(at + 1)?;
        if matches!(marker, 0xd0..=0xd7 | 0x01) {
            at += 2;
            continue;
        }
        let len = be16(b, at + 2)? as usize;
        if matches!(marker, 0xc0..=0xcf) && !matches!(marker, 0xc4 | 0xc8 | 0xcc) {
            return Some((be16(b, at + 7)?, be16(b, at + 5)?));
        }
        if len < 2 {
            return None;
        }
        at += 2 + len;
    }
}

/// Lossy (`VP8 `), lossless (`VP8L`) and extended (`VP8X`) WebP headers
/// (<https://developers.google.com/speed/webp/docs/riff_container>).
fn webp_size(b: &[u8]) -> Option<(u32, u32)> {
    match b.get(12..16)? {
        b"VP8 " => Some((le16(b, 26)? & 0x3fff, le16(b, 28)? & 0x3fff)),
        b"VP8L" => {
            let s = b.get(21..25)?;
            let w = 1 + (u32::from(s[0]) | (u32::from(s[1]) & 0x3f) << 8);
            let h =
                1 + (u32::from(s[1]) >> 6 | u32::from(s[2]) << 2 | (u32::from(s[3]) & 0xf) << 10);
            Some((w, h))
        }
        b"VP8X" => Some((1 + le24(b, 24)?, 1 + le24(b, 27)?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        b.extend_from_slice(&w.to_be_bytes());
        b.extend_from_slice(&h.to_be_bytes());
        b.extend_from_slice(&[8, 6, 0, 0, 0]);
        b
    }

    #[test]
    fn headers_give_the_size() {
        assert_eq!(image_size(&png(640, 480)), Some((640, 480)));
        assert_eq!(image_size(b"GIF89a\x80\x02\xe0\x01\0\0"), Some((640, 480)));
        // SOI, an APP0 segment, then SOF0 (height 480, width 640).
        let jpeg = b"\xff\xd8\xff\xe0\x00\x04ab\xff\xc0\x00\x11\x08\x01\xe0\x02\x80\x03";
        assert_eq!(image_size(jpeg), Some((640, 480)));
        let mut vp8x = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
        vp8x.extend_from_slice(&[0x7f, 0x02, 0x00, 0xdf, 0x01, 0x00]);
        assert_eq!(image_size(&vp8x), Some((640, 480)));
        assert_eq!(image_size(b"\x89PNG"), None);
        assert_eq!(image_size(b"\xff\xd8\xff\xe0\x00"), None);
        assert_eq!(image_size(b"\xff\xd8\xff\xe0\x00\x00"), None);
        assert_eq!(image_size(b""), None);
    }

    #[test]
    fn telegram_photo_bounds() {
        assert!(fits_photo((4000, 3000)));
        assert!(fits_photo((9000, 1000)));
        assert!(!fits_photo((9000, 1001)));
        assert!(!fits_photo((4200, 200)));
        assert!(fits_photo((4000, 200)));
        assert!(!fits_photo((0, 10)));
    }
}
