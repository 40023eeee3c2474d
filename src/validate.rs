//! What may be stored: the extension allow-list, the check that a file's first bytes agree with
//! its extension (magic numbers via `infer`, or "is text" for types without one), and the clean-up
//! of the name the client sent. All of it runs on the first bytes, before anything is written.

use crate::error::UploadError;

/// How an extension's content is recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    /// `infer` must detect one of these MIME types.
    Magic(&'static [&'static str]),
    /// No magic number: the sample must be UTF-8 text without NUL bytes.
    Text,
}

/// ISO base-media containers (phones' MP4/MOV/HEIC) are reported under several brands.
const BMFF_VIDEO: &[&str] = &[
    "video/mp4",
    "video/quicktime",
    "video/x-m4v",
    "video/3gpp",
    "video/3gpp2",
];
const OOXML_DOC: &[&str] = &[
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/zip",
];
const OOXML_XLS: &[&str] = &[
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/zip",
];
const OOXML_PPT: &[&str] = &[
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/zip",
];
const OLE: &[&str] = &[
    "application/x-ole-storage",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
];

/// Known extensions: how to check them, the type to serve, and whether they are in the default
/// allow-list. Active content (html, svg, xml, js) is known but never allowed by default.
const TYPES: &[(&str, Check, &str, bool)] = &[
    ("jpg", Check::Magic(&["image/jpeg"]), "image/jpeg", true),
    ("jpeg", Check::Magic(&["image/jpeg"]), "image/jpeg", true),
    ("png", Check::Magic(&["image/png"]), "image/png", true),
    ("gif", Check::Magic(&["image/gif"]), "image/gif", true),
    ("webp", Check::Magic(&["image/webp"]), "image/webp", true),
    (
        "heic",
        Check::Magic(&["image/heif", "image/heic"]),
        "image/heic",
        true,
    ),
    (
        "heif",
        Check::Magic(&["image/heif", "image/heic"]),
        "image/heif",
        true,
    ),
    (
        "avif",
        Check::Magic(&["image/avif", "image/heif"]),
        "image/avif",
        true,
    ),
    ("bmp", Check::Magic(&["image/bmp"]), "image/bmp", true),
    ("tif", Check::Magic(&["image/tiff"]), "image/tiff", true),
    ("tiff", Check::Magic(&["image/tiff"]), "image/tiff", true),
    ("mp4", Check::Magic(BMFF_VIDEO), "video/mp4", true),
    ("m4v", Check::Magic(BMFF_VIDEO), "video/mp4", true),
    ("mov", Check::Magic(BMFF_VIDEO), "video/quicktime", true),
    ("3gp", Check::Magic(BMFF_VIDEO), "video/3gpp", true),
    (
        "mkv",
        Check::Magic(&["video/x-matroska"]),
        "video/x-matroska",
        true,
    ),
    ("webm", Check::Magic(&["video/webm"]), "video/webm", true),
    (
        "avi",
        Check::Magic(&["video/x-msvideo"]),
        "video/x-msvideo",
        true,
    ),
    ("mp3", Check::Magic(&["audio/mpeg"]), "audio/mpeg", true),
    (
        "m4a",
        Check::Magic(&["audio/m4a", "audio/mp4", "video/mp4"]),
        "audio/mp4",
        true,
    ),
    (
        "wav",
        Check::Magic(&["audio/x-wav", "audio/wav"]),
        "audio/wav",
        true,
    ),
    (
        "flac",
        Check::Magic(&["audio/x-flac", "audio/flac"]),
        "audio/flac",
        true,
    ),
    (
        "ogg",
        Check::Magic(&["audio/ogg", "video/ogg", "audio/opus"]),
        "audio/ogg",
        true,
    ),
    (
        "opus",
        Check::Magic(&["audio/ogg", "audio/opus"]),
        "audio/ogg",
        true,
    ),
    (
        "pdf",
        Check::Magic(&["application/pdf"]),
        "application/pdf",
        true,
    ),
    (
        "docx",
        Check::Magic(OOXML_DOC),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        true,
    ),
    (
        "xlsx",
        Check::Magic(OOXML_XLS),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        true,
    ),
    (
        "pptx",
        Check::Magic(OOXML_PPT),
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        true,
    ),
    (
        "odt",
        Check::Magic(&["application/vnd.oasis.opendocument.text", "application/zip"]),
        "application/vnd.oasis.opendocument.text",
        true,
    ),
    (
        "ods",
        Check::Magic(&[
            "application/vnd.oasis.opendocument.spreadsheet",
            "application/zip",
        ]),
        "application/vnd.oasis.opendocument.spreadsheet",
        true,
    ),
    (
        "odp",
        Check::Magic(&[
            "application/vnd.oasis.opendocument.presentation",
            "application/zip",
        ]),
        "application/vnd.oasis.opendocument.presentation",
        true,
    ),
    (
        "epub",
        Check::Magic(&["application/epub+zip", "application/zip"]),
        "application/epub+zip",
        true,
    ),
    ("doc", Check::Magic(OLE), "application/msword", true),
    ("xls", Check::Magic(OLE), "application/vnd.ms-excel", true),
    (
        "ppt",
        Check::Magic(OLE),
        "application/vnd.ms-powerpoint",
        true,
    ),
    (
        "rtf",
        Check::Magic(&["application/rtf", "text/rtf"]),
        "application/rtf",
        true,
    ),
    (
        "zip",
        Check::Magic(&["application/zip"]),
        "application/zip",
        true,
    ),
    (
        "gz",
        Check::Magic(&["application/gzip"]),
        "application/gzip",
        true,
    ),
    (
        "tgz",
        Check::Magic(&["application/gzip"]),
        "application/gzip",
        true,
    ),
    (
        "tar",
        Check::Magic(&["application/x-tar"]),
        "application/x-tar",
        true,
    ),
    (
        "7z",
        Check::Magic(&["application/x-7z-compressed"]),
        "application/x-7z-compressed",
        true,
    ),
    (
        "bz2",
        Check::Magic(&["application/x-bzip2"]),
        "application/x-bzip2",
        true,
    ),
    (
        "xz",
        Check::Magic(&["application/x-xz"]),
        "application/x-xz",
        true,
    ),
    (
        "zst",
        Check::Magic(&["application/zstd"]),
        "application/zstd",
        true,
    ),
    (
        "rar",
        Check::Magic(&["application/vnd.rar", "application/x-rar-compressed"]),
        "application/vnd.rar",
        true,
    ),
    ("txt", Check::Text, "text/plain", true),
    ("csv", Check::Text, "text/csv", true),
    ("tsv", Check::Text, "text/tab-separated-values", true),
    ("md", Check::Text, "text/markdown", true),
    ("log", Check::Text, "text/plain", true),
    ("json", Check::Text, "application/json", true),
    ("srt", Check::Text, "text/plain", true),
    ("vtt", Check::Text, "text/vtt", true),
    ("html", Check::Text, "text/html", false),
    ("htm", Check::Text, "text/html", false),
    ("svg", Check::Text, "image/svg+xml", false),
    ("xml", Check::Text, "application/xml", false),
    ("js", Check::Text, "text/javascript", false),
];

/// Which extensions may be uploaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowList {
    Any,
    Only(Vec<String>),
}

impl AllowList {
    /// `default`, `*`, or `jpg,png,…` (dots and case ignored).
    pub fn parse(s: &str) -> Option<AllowList> {
        let s = s.trim();
        if s == "*" {
            return Some(AllowList::Any);
        }
        if s.is_empty() || s.eq_ignore_ascii_case("default") {
            return Some(AllowList::Only(
                TYPES
                    .iter()
                    .filter(|t| t.3)
                    .map(|t| t.0.to_string())
                    .collect(),
            ));
        }
        let mut list = Vec::new();
        for item in s.split(',') {
            let e = item.trim().trim_start_matches('.').to_ascii_lowercase();
            if e.is_empty() || e.len() > 16 || !e.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return None;
            }
            list.push(e);
        }
        Some(AllowList::Only(list))
    }

    pub fn allows(&self, ext: &str) -> bool {
        match self {
            AllowList::Any => true,
            AllowList::Only(list) => list.iter().any(|e| e == ext),
        }
    }

    /// For the page: the extensions, or `None` for any.
    pub fn extensions(&self) -> Option<&[String]> {
        match self {
            AllowList::Any => None,
            AllowList::Only(l) => Some(l),
        }
    }
}

/// The kinds the page groups allowed extensions by, in the order it shows them.
pub const KINDS: [&str; 7] = [
    "photos",
    "videos",
    "audio",
    "documents",
    "archives",
    "text",
    "other",
];

/// The kind of an extension, for the page: from its type where pidrop knows it.
pub fn kind_of(ext: &str) -> &'static str {
    let Some((_, _, mime, _)) = TYPES.iter().find(|t| t.0 == ext) else {
        return "other";
    };
    const ARCHIVES: &[&str] = &[
        "zip",
        "gzip",
        "x-tar",
        "x-7z-compressed",
        "x-bzip2",
        "x-xz",
        "zstd",
        "vnd.rar",
    ];
    match mime.split_once('/') {
        Some(("image", _)) => "photos",
        Some(("video", _)) => "videos",
        Some(("audio", _)) => "audio",
        Some(("text", _)) | Some(("application", "json")) => "text",
        Some(("application", sub)) if ARCHIVES.contains(&sub) => "archives",
        _ => "documents",
    }
}

/// The extension we store under: lower-case ASCII alphanumerics, at most 16, or empty.
pub fn extension(name: &str) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext))
            if !stem.is_empty()
                && !ext.is_empty()
                && ext.len() <= 16
                && ext.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            ext.to_ascii_lowercase()
        }
        _ => String::new(),
    }
}

/// The type a file with extension `ext` is stored as when its content agrees (what a direct
/// upload's policy pins); `application/octet-stream` for an extension pidrop does not know.
pub fn declared_type(ext: &str) -> &'static str {
    TYPES
        .iter()
        .find(|t| t.0 == ext)
        .map_or("application/octet-stream", |t| t.2)
}

/// How many leading bytes the content check wants (less if the file is shorter).
pub const SNIFF_LEN: usize = 8 << 10; // 8 KiB

/// Checks the extension against the allow-list and the first bytes against the extension.
/// Returns the MIME type to store and serve.
pub fn check(allow: &AllowList, ext: &str, head: &[u8]) -> Result<String, UploadError> {
    if !allow.allows(ext) {
        return Err(UploadError::TypeNotAllowed {
            extension: ext.to_string(),
        });
    }
    let detected = infer::get(head).map(|t| t.mime_type());
    let known = TYPES.iter().find(|t| t.0 == ext);
    match known {
        Some((_, Check::Magic(ok), mime, _)) => match detected {
            Some(d) if ok.contains(&d) => Ok((*mime).to_string()),
            Some(d) => Err(mismatch(ext, d)),
            None => Err(mismatch(ext, "not recognised")),
        },
        Some((_, Check::Text, mime, _)) => {
            if let Some(d) = detected.filter(|d| !d.starts_with("text/")) {
                return Err(mismatch(ext, d));
            }
            if !is_text(head) {
                return Err(UploadError::NotText {
                    extension: ext.to_string(),
                });
            }
            Ok((*mime).to_string())
        }
        // Unknown extensions get here only with `--allow '*'` or an explicit entry.
        None => Ok(detected.unwrap_or("application/octet-stream").to_string()),
    }
}

fn mismatch(ext: &str, detected: &str) -> UploadError {
    UploadError::ContentMismatch {
        extension: ext.to_string(),
        detected: detected.to_string(),
    }
}

/// UTF-8 (a sequence cut at the end of the sample is fine) with no NUL byte.
pub fn is_text(sample: &[u8]) -> bool {
    if memchr::memchr(0, sample).is_some() {
        return false;
    }
    match std::str::from_utf8(sample) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && sample.len() - e.valid_up_to() < 4,
    }
}

/// Whether a stored type may be shown inline by a browser; everything else is an attachment.
pub fn inline_safe(mime: &str) -> bool {
    (mime.starts_with("image/") && mime != "image/svg+xml")
        || mime.starts_with("video/")
        || mime.starts_with("audio/")
        || mime == "application/pdf"
        || mime.starts_with("text/plain")
}

/// The type to send for a stored type: text types go out as plain text, so a browser never
/// renders them; active content goes out as a download.
pub fn served_type(mime: &str) -> String {
    if mime.starts_with("text/") || mime == "application/json" {
        if mime == "text/html" || mime == "text/javascript" {
            return "application/octet-stream".to_string();
        }
        return "text/plain; charset=utf-8".to_string();
    }
    if mime == "image/svg+xml" || mime == "application/xml" {
        return "application/octet-stream".to_string();
    }
    mime.to_string()
}

/// Bidi controls that can make `gpj.exe` look like `exe.jpg`.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The longest original name we keep, in bytes.
const MAX_NAME: usize = 255;

/// The name to show and offer for download: the last path component (IE sends full Windows
/// paths), without control characters or bidi overrides, Unicode otherwise intact. It is never
/// used as a path. `None` if nothing usable is left.
pub fn original_name(raw: &str) -> Option<String> {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .collect();
    let trimmed = cleaned.trim();
    if trimmed.is_empty() || trimmed == "." || trimmed == ".." {
        return None;
    }
    if trimmed.len() <= MAX_NAME {
        return Some(trimmed.to_string());
    }
    // Too long: keep the extension, cut the stem at a character boundary.
    let ext = extension(trimmed);
    let keep = MAX_NAME - ext.len() - 1;
    let mut cut = keep;
    while !trimmed.is_char_boundary(cut) {
        cut -= 1;
    }
    Some(if ext.is_empty() {
        trimmed[..cut].to_string()
    } else {
        format!("{}.{}", &trimmed[..cut], ext)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F', 0];
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn content_must_agree_with_extension() {
        let allow = AllowList::parse("default").expect("default");
        assert_eq!(
            check(&allow, "jpg", JPEG).as_deref().ok(),
            Some("image/jpeg")
        );
        assert_eq!(check(&allow, "png", PNG).as_deref().ok(), Some("image/png"));
        assert!(matches!(
            check(&allow, "jpg", PNG),
            Err(UploadError::ContentMismatch { .. })
        ));
        assert!(matches!(
            check(&allow, "jpg", b"hello, I am text"),
            Err(UploadError::ContentMismatch { .. })
        ));
        assert!(matches!(
            check(&allow, "jpg", b"MZ\x90\0\x03\0\0\0"),
            Err(UploadError::ContentMismatch { .. })
        ));
        assert_eq!(
            check(&allow, "txt", "héllo\n".as_bytes()).as_deref().ok(),
            Some("text/plain")
        );
        assert!(matches!(
            check(&allow, "txt", b"a\0b"),
            Err(UploadError::NotText { .. })
        ));
        assert!(matches!(
            check(&allow, "txt", PNG),
            Err(UploadError::ContentMismatch { .. })
        ));
        assert!(matches!(
            check(&allow, "exe", b"MZ"),
            Err(UploadError::TypeNotAllowed { .. })
        ));
        assert!(matches!(
            check(&allow, "html", b"<html>"),
            Err(UploadError::TypeNotAllowed { .. })
        ));
        assert!(matches!(
            check(&allow, "", b"x"),
            Err(UploadError::TypeNotAllowed { .. })
        ));
        // A polyglot: JPEG magic, HTML after it. It is a JPEG and will be served as one.
        let mut poly = JPEG.to_vec();
        poly.extend_from_slice(b"<html><script>alert(1)</script>");
        assert_eq!(
            check(&allow, "jpg", &poly).as_deref().ok(),
            Some("image/jpeg")
        );
        assert!(matches!(
            check(&allow, "html", &poly),
            Err(UploadError::TypeNotAllowed { .. })
        ));
    }

    #[test]
    fn old_office_files_are_recognised_without_cfb() {
        // infer's "cfb" feature is off: every OLE compound file is one type, accepted for all three.
        let allow = AllowList::parse("default").expect("default");
        let mut ole = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
        ole.resize(512, 0);
        for ext in ["doc", "xls", "ppt"] {
            assert!(check(&allow, ext, &ole).is_ok(), "{ext}");
        }
        assert!(check(&allow, "doc", b"%PDF-1.4").is_err());
    }

    #[test]
    fn any_allows_unknown_types_but_still_checks_known_ones() {
        let any = AllowList::Any;
        assert_eq!(
            check(&any, "xyz", b"\x01\x02").as_deref().ok(),
            Some("application/octet-stream")
        );
        assert!(check(&any, "jpg", b"text").is_err());
        assert_eq!(
            check(&any, "svg", b"<svg/>").as_deref().ok(),
            Some("image/svg+xml")
        );
        assert_eq!(served_type("image/svg+xml"), "application/octet-stream");
        assert_eq!(served_type("text/html"), "application/octet-stream");
        assert_eq!(served_type("text/csv"), "text/plain; charset=utf-8");
        assert!(!inline_safe("image/svg+xml"));
        assert!(
            inline_safe("image/jpeg") && inline_safe("video/mp4") && inline_safe("application/pdf")
        );
        assert!(!inline_safe("text/html") && !inline_safe("application/zip"));
    }

    #[test]
    fn every_default_extension_has_a_kind() {
        let AllowList::Only(all) = AllowList::parse("default").expect("default") else {
            panic!("default is a list");
        };
        for e in &all {
            assert_ne!(kind_of(e), "other", "{e}");
        }
        assert_eq!(kind_of("jpg"), "photos");
        assert_eq!(kind_of("mov"), "videos");
        assert_eq!(kind_of("flac"), "audio");
        assert_eq!(kind_of("docx"), "documents");
        assert_eq!(kind_of("7z"), "archives");
        assert_eq!(kind_of("md"), "text");
        assert_eq!(kind_of("xyz"), "other");
    }

    #[test]
    fn allow_list_parsing() {
        assert_eq!(AllowList::parse("*"), Some(AllowList::Any));
        assert_eq!(
            AllowList::parse(".JPG, png"),
            Some(AllowList::Only(vec!["jpg".into(), "png".into()]))
        );
        assert_eq!(AllowList::parse("jpg,../x"), None);
        let d = AllowList::parse("default").expect("default");
        assert!(
            d.allows("jpg")
                && d.allows("mov")
                && d.allows("pdf")
                && d.allows("txt")
                && d.allows("zip")
        );
        assert!(!d.allows("html") && !d.allows("svg") && !d.allows("exe"));
    }

    #[test]
    fn text_sampling() {
        assert!(is_text(b""));
        assert!(is_text("日本語".as_bytes()));
        // A multi-byte character cut by the end of the sample is still text.
        assert!(is_text(&"日本語".as_bytes()[..7]));
        assert!(!is_text(&[0xff, 0xfe, b'a']));
        assert!(!is_text(b"a\0"));
    }

    #[test]
    fn names() {
        assert_eq!(extension("IMG_0001.JPG"), "jpg");
        assert_eq!(extension("archive.tar.gz"), "gz");
        assert_eq!(extension(".bashrc"), "");
        assert_eq!(extension("noext"), "");
        assert_eq!(extension("a.j/pg"), "");
        assert_eq!(
            original_name("C:\\Users\\me\\Desktop\\photo.png").as_deref(),
            Some("photo.png")
        );
        assert_eq!(original_name("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(original_name("..").as_deref(), None);
        assert_eq!(original_name("a/..").as_deref(), None);
        assert_eq!(original_name("").as_deref(), None);
        assert_eq!(
            original_name("Fête à Montréal 🎉.jpg").as_deref(),
            Some("Fête à Montréal 🎉.jpg")
        );
        assert_eq!(
            original_name("evil\u{202E}gpj.exe").as_deref(),
            Some("evilgpj.exe")
        );
        assert_eq!(original_name("a\r\nb\0c.txt").as_deref(), Some("abc.txt"));
        let long = format!("{}.jpg", "é".repeat(300));
        let kept = original_name(&long).expect("kept");
        assert!(kept.len() <= 255 && kept.ends_with(".jpg"), "{kept}");
    }
}
