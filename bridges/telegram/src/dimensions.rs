//! The width and height of an image, read from its header (the `imagesize` crate: PNG, GIF,
//! JPEG, WebP and more), so that a photo Telegram would refuse goes out as a document instead.
//!
//! `sendPhoto`: "The photo must be at most 10 MB in size. The photo's width and height must not
//! exceed 10000 in total. Width and height ratio must be at most 20."
//! (<https://core.telegram.org/bots/api#sendphoto>). An image whose header cannot be read has no
//! size (`None`).

/// `(width, height)` in pixels, when the header says.
pub fn image_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let size = imagesize::blob_size(bytes).ok()?;
    Some((
        u32::try_from(size.width).ok()?,
        u32::try_from(size.height).ok()?,
    ))
}

/// Whether Telegram takes an image of this size as a photo (sum ≤ 10000, ratio ≤ 20).
pub fn fits_photo((width, height): (u32, u32)) -> bool {
    let (w, h) = (u64::from(width), u64::from(height));
    w > 0 && h > 0 && w + h <= 10_000 && w <= 20 * h && h <= 20 * w
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
