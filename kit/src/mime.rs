//! Mime type ↔ file extension: one table for every channel (naming a file that came without a
//! name, guessing the type of one that came without a type).

/// `(mime essence, extensions)`: the first extension is the one given to a file of that type.
const TABLE: &[(&str, &[&str])] = &[
    ("image/jpeg", &["jpg", "jpeg", "jpe"]),
    ("image/png", &["png"]),
    ("image/gif", &["gif"]),
    ("image/webp", &["webp"]),
    ("image/heic", &["heic"]),
    ("image/bmp", &["bmp"]),
    ("image/tiff", &["tif", "tiff"]),
    ("image/svg+xml", &["svg"]),
    ("image/avif", &["avif"]),
    ("audio/ogg", &["ogg", "oga", "opus"]),
    ("audio/mpeg", &["mp3"]),
    ("audio/mp4", &["m4a"]),
    ("audio/aac", &["aac"]),
    ("audio/amr", &["amr"]),
    ("audio/wav", &["wav"]),
    ("audio/webm", &["weba"]),
    ("audio/flac", &["flac"]),
    ("video/mp4", &["mp4", "m4v"]),
    ("video/3gpp", &["3gp"]),
    ("video/quicktime", &["mov"]),
    ("video/webm", &["webm"]),
    ("video/x-matroska", &["mkv"]),
    ("application/pdf", &["pdf"]),
    ("application/zip", &["zip"]),
    ("application/x-7z-compressed", &["7z"]),
    ("application/vnd.rar", &["rar"]),
    ("application/gzip", &["gz"]),
    ("application/x-tar", &["tar"]),
    ("application/epub+zip", &["epub"]),
    ("application/msword", &["doc"]),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        &["docx"],
    ),
    ("application/vnd.ms-excel", &["xls"]),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        &["xlsx"],
    ),
    ("application/vnd.ms-powerpoint", &["ppt"]),
    (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        &["pptx"],
    ),
    ("application/vnd.oasis.opendocument.text", &["odt"]),
    ("application/vnd.oasis.opendocument.spreadsheet", &["ods"]),
    ("application/rtf", &["rtf"]),
    ("application/json", &["json"]),
    ("text/plain", &["txt"]),
    ("text/csv", &["csv"]),
    ("text/markdown", &["md"]),
    ("text/html", &["html", "htm"]),
    ("text/calendar", &["ics"]),
    ("text/vcard", &["vcf"]),
    ("message/rfc822", &["eml"]),
];

/// Aliases some senders use for a type of the table.
const ALIASES: &[(&str, &str)] = &[
    ("image/jpg", "image/jpeg"),
    ("image/pjpeg", "image/jpeg"),
    ("audio/opus", "audio/ogg"),
    ("video/3gp", "video/3gpp"),
    ("audio/x-wav", "audio/wav"),
    ("audio/mp3", "audio/mpeg"),
    ("audio/x-m4a", "audio/mp4"),
    ("application/x-zip-compressed", "application/zip"),
    ("application/x-rar-compressed", "application/vnd.rar"),
    ("application/x-gzip", "application/gzip"),
];

/// The lowercase essence of a mime type (`Image/JPEG; q=1` → `image/jpeg`), aliases resolved.
pub fn essence(mime: &str) -> String {
    let essence = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == essence)
        .map(|(_, real)| (*real).to_owned())
        .unwrap_or(essence)
}

/// The usual extension (no dot) of a mime type, if the table knows it.
pub fn extension_for(mime: &str) -> Option<&'static str> {
    let essence = essence(mime);
    TABLE
        .iter()
        .find(|(m, _)| *m == essence)
        .and_then(|(_, exts)| exts.first().copied())
}

/// The mime type of a file name's extension, if the table knows it.
pub fn mime_for_name(name: &str) -> Option<&'static str> {
    let (_, ext) = name.rsplit_once('.')?;
    let ext = ext.to_ascii_lowercase();
    TABLE
        .iter()
        .find(|(_, exts)| exts.contains(&ext.as_str()))
        .map(|(m, _)| *m)
}

/// The mime type of a file name's extension, else `application/octet-stream`.
pub fn mime_for_name_or_binary(name: &str) -> &'static str {
    mime_for_name(name).unwrap_or("application/octet-stream")
}

/// `name` with the usual extension of `mime` added when it has no extension of its own.
pub fn with_extension(name: &str, mime: &str) -> String {
    if name
        .rsplit_once('.')
        .is_some_and(|(stem, ext)| !stem.is_empty() && !ext.is_empty())
    {
        return name.to_owned();
    }
    match extension_for(mime) {
        Some(ext) => format!("{name}.{ext}"),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_goes_both_ways() {
        for (mime, exts) in TABLE {
            let first = exts[0];
            assert_eq!(extension_for(mime), Some(first), "{mime}");
            for ext in *exts {
                assert_eq!(mime_for_name(&format!("x.{ext}")), Some(*mime), "{ext}");
            }
        }
        assert_eq!(extension_for("IMAGE/JPG; charset=x"), Some("jpg"));
        assert_eq!(mime_for_name("SCAN.JPEG"), Some("image/jpeg"));
        assert_eq!(mime_for_name("noext"), None);
        assert_eq!(
            mime_for_name_or_binary("x.unknown"),
            "application/octet-stream"
        );
        assert_eq!(with_extension("photo", "image/png"), "photo.png");
        assert_eq!(with_extension("photo.jpeg", "image/png"), "photo.jpeg");
        assert_eq!(with_extension("blob", "application/x-unknown"), "blob");
    }
}
