//! EXIF of a test photo, for the photographer's check of the exposure (the original's
//! `exif {ImageWidth, ImageHeight, ISO, ExposureTime, ShutterSpeed, FNumber, WhiteBalance,
//! DateTimeOriginal, Model}`).
//!
//! [`parse`] is a pure function of the file's bytes: the EXIF block is read by kamadak-exif,
//! the pixel size from the JPEG frame header when EXIF lacks it. Bad input is an error,
//! never a panic; only the first [`MAX_SCAN`] bytes are looked at.

use std::fmt;

use exif::{In, Tag, Value};

use crate::protocol::messages::ExifSummary;

/// EXIF sits in APP1 near the start; a frame header (SOF) follows the metadata segments.
pub const MAX_SCAN: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExifError(pub String);

impl fmt::Display for ExifError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExifError {}

/// The summary of a JPEG's EXIF (and frame size). Not a JPEG → error; a JPEG without EXIF →
/// the frame size only.
pub fn parse(jpeg: &[u8]) -> Result<ExifSummary, ExifError> {
    let bytes = &jpeg[..jpeg.len().min(MAX_SCAN)];
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Err(ExifError("not a JPEG file".into()));
    }
    let mut out = ExifSummary::default();
    if let Ok(e) = exif::Reader::new().read_from_container(&mut std::io::Cursor::new(bytes)) {
        let field = |tag: Tag| e.get_field(tag, In::PRIMARY).map(|f| &f.value);
        let uint = |tag: Tag| field(tag).and_then(|v| v.get_uint(0));
        let rational = |tag: Tag| match field(tag) {
            Some(Value::Rational(r)) if !r.is_empty() && r[0].denom != 0 => Some(r[0].to_f64()),
            _ => None,
        };
        let text = |tag: Tag| match field(tag) {
            Some(Value::Ascii(parts)) => parts.first().map(|p| {
                String::from_utf8_lossy(p)
                    .trim_end_matches('\0')
                    .trim()
                    .chars()
                    .take(64)
                    .collect::<String>()
            }),
            _ => None,
        };
        out.ImageWidth = uint(Tag::PixelXDimension).or_else(|| uint(Tag::ImageWidth));
        out.ImageHeight = uint(Tag::PixelYDimension).or_else(|| uint(Tag::ImageLength));
        out.ISO = uint(Tag::PhotographicSensitivity);
        out.ExposureTime = rational(Tag::ExposureTime).filter(|t| t.is_finite() && *t > 0.0);
        out.ShutterSpeed = out.ExposureTime.map(shutter_speed);
        out.FNumber = rational(Tag::FNumber)
            .filter(|f| f.is_finite() && *f > 0.0)
            .map(|f| (f * 10.0).round() / 10.0);
        out.WhiteBalance = uint(Tag::WhiteBalance).map(|w| {
            if w == 0 {
                "Auto".to_string()
            } else {
                "Manual".to_string()
            }
        });
        out.DateTimeOriginal = text(Tag::DateTimeOriginal)
            .or_else(|| text(Tag::DateTime))
            .and_then(|t| exif_datetime(&t));
        out.Model = text(Tag::Model).filter(|m| !m.is_empty());
    }
    if out.ImageWidth.is_none() || out.ImageHeight.is_none() {
        if let Some((w, h)) = frame_size(bytes) {
            out.ImageWidth = Some(w);
            out.ImageHeight = Some(h);
        }
    }
    Ok(out)
}

/// 0.008 → "1/125", 2.5 → "2.5", 30 → "30".
pub fn shutter_speed(t: f64) -> String {
    if t < 0.3 {
        format!("1/{}", (1.0 / t).round() as u64)
    } else if (t - t.round()).abs() < 0.05 {
        format!("{}", t.round() as u64)
    } else {
        format!("{:.1}", t)
    }
}

/// `YYYY:MM:DD HH:MM:SS` → `YYYY-MM-DDTHH:MM:SS` (camera local time; EXIF has no zone).
fn exif_datetime(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b':' || b[7] != b':' || b[10] != b' ' {
        return None;
    }
    let ok = [0..4, 5..7, 8..10, 11..13, 14..16, 17..19]
        .into_iter()
        .all(|r| b[r].iter().all(u8::is_ascii_digit));
    ok.then(|| format!("{}-{}-{}T{}", &s[0..4], &s[5..7], &s[8..10], &s[11..19]))
}

/// Width and height from the first SOFn segment of a JPEG read through `r`, skipping the
/// segments before it by their lengths (a camera may put megabytes of maker notes or
/// padding first). At most [`MAX_SEGMENTS`] segments are walked.
pub fn frame_size_in<R: std::io::Read + std::io::Seek>(r: &mut R) -> Option<(u32, u32)> {
    use std::io::SeekFrom;
    let mut b = [0u8; 4];
    r.seek(SeekFrom::Start(0)).ok()?;
    r.read_exact(&mut b[..2]).ok()?;
    if b[..2] != [0xFF, 0xD8] {
        return None;
    }
    for _ in 0..MAX_SEGMENTS {
        r.read_exact(&mut b).ok()?;
        if b[0] != 0xFF {
            return None;
        }
        let marker = b[1];
        let len = u16::from_be_bytes([b[2], b[3]]) as i64;
        if len < 2 || marker == 0xDA {
            return None;
        }
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            let mut seg = [0u8; 5];
            r.read_exact(&mut seg).ok()?;
            let h = u16::from_be_bytes([seg[1], seg[2]]) as u32;
            let w = u16::from_be_bytes([seg[3], seg[4]]) as u32;
            return Some((w, h));
        }
        r.seek(SeekFrom::Current(len - 2)).ok()?;
    }
    None
}

/// Segments [`frame_size_in`] walks at most.
pub const MAX_SEGMENTS: usize = 4096;

/// Width and height from the first SOFn segment, walking the marker segments.
fn frame_size(b: &[u8]) -> Option<(u32, u32)> {
    let mut i = 2;
    while i + 4 <= b.len() {
        if b[i] != 0xFF {
            return None;
        }
        let marker = b[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
        if len < 2 {
            return None;
        }
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            let seg = b.get(i + 4..i + 2 + len)?;
            if seg.len() < 5 {
                return None;
            }
            let h = u16::from_be_bytes([seg[1], seg[2]]) as u32;
            let w = u16::from_be_bytes([seg[3], seg[4]]) as u32;
            return Some((w, h));
        }
        if marker == 0xDA {
            return None; // start of scan: no frame header before it
        }
        i += 2 + len;
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn shutter_speeds_read_like_a_camera() {
        assert_eq!(shutter_speed(0.008), "1/125");
        assert_eq!(shutter_speed(1.0 / 4000.0), "1/4000");
        assert_eq!(shutter_speed(30.0), "30");
        assert_eq!(shutter_speed(2.5), "2.5");
    }

    #[test]
    fn garbage_is_an_error_or_an_empty_summary_never_a_panic() {
        assert!(parse(b"").is_err());
        assert!(parse(b"GIF89a").is_err());
        // A JPEG start with nothing useful after it.
        let s = parse(&[0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x02]).unwrap();
        assert_eq!(s, ExifSummary::default());
        // Truncated segment lengths and a lying APP1.
        for tail in [
            &[0xFF, 0xE1, 0xFF, 0xFF, b'E', b'x'][..],
            &[0xFF, 0xC0, 0x00, 0x03, 0x08][..],
            &[0xFF, 0xFF, 0xFF][..],
        ] {
            let mut f = vec![0xFF, 0xD8];
            f.extend_from_slice(tail);
            let _ = parse(&f);
        }
        // Every prefix of a real file.
        let f = sample();
        for n in 0..f.len() {
            let _ = parse(&f[..n]);
        }
    }

    /// A minimal JPEG: APP1 Exif (big-endian TIFF: IFD0 {Model, ExifIFD} → Exif IFD
    /// {ExposureTime 1/125, FNumber 2.8, ISO 6400, DateTimeOriginal, WhiteBalance 0}) and
    /// a SOF0 of 6000×4000.
    pub(crate) fn sample() -> Vec<u8> {
        let model = b"Canon EOS R50\0";
        let dto = b"2025:10:02 19:30:00\0";
        let mut t: Vec<u8> = vec![b'M', b'M', 0, 42, 0, 0, 0, 8];
        let entry = |t: &mut Vec<u8>, tag: u16, typ: u16, count: u32, value: u32| {
            t.extend_from_slice(&tag.to_be_bytes());
            t.extend_from_slice(&typ.to_be_bytes());
            t.extend_from_slice(&count.to_be_bytes());
            t.extend_from_slice(&value.to_be_bytes());
        };
        let ifd0 = 8u32;
        let ifd0_len = 2 + 2 * 12 + 4;
        let exif_ifd = ifd0 + ifd0_len;
        let exif_len = 2 + 5 * 12 + 4;
        let data = exif_ifd + exif_len;
        let model_off = data;
        let dto_off = model_off + model.len() as u32;
        let exp_off = dto_off + dto.len() as u32;
        let fn_off = exp_off + 8;
        t.extend_from_slice(&2u16.to_be_bytes());
        entry(&mut t, 0x0110, 2, model.len() as u32, model_off);
        entry(&mut t, 0x8769, 4, 1, exif_ifd);
        t.extend_from_slice(&0u32.to_be_bytes());
        t.extend_from_slice(&5u16.to_be_bytes());
        entry(&mut t, 0x829A, 5, 1, exp_off);
        entry(&mut t, 0x829D, 5, 1, fn_off);
        entry(&mut t, 0x8827, 3, 1, 6400 << 16);
        entry(&mut t, 0x9003, 2, dto.len() as u32, dto_off);
        entry(&mut t, 0xA403, 3, 1, 0);
        t.extend_from_slice(&0u32.to_be_bytes());
        t.extend_from_slice(model);
        t.extend_from_slice(dto);
        t.extend_from_slice(&1u32.to_be_bytes());
        t.extend_from_slice(&125u32.to_be_bytes());
        t.extend_from_slice(&28u32.to_be_bytes());
        t.extend_from_slice(&10u32.to_be_bytes());
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&t);
        let mut f = vec![0xFF, 0xD8, 0xFF, 0xE1];
        f.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        f.extend_from_slice(&app1);
        f.extend_from_slice(&[0xFF, 0xC0, 0, 11, 8, 0x0F, 0xA0, 0x17, 0x70, 1, 1, 0x11, 0]);
        f.extend_from_slice(&[0xFF, 0xD9]);
        f
    }

    #[test]
    fn the_frame_size_is_found_past_large_segments() {
        let mut f = vec![0xFF, 0xD8];
        for _ in 0..40 {
            f.extend_from_slice(&[0xFF, 0xFE, 0xFF, 0xFF]);
            f.extend_from_slice(&[0u8; 65_533]);
        }
        f.extend_from_slice(&[0xFF, 0xC0, 0, 11, 8, 0x0F, 0xA0, 0x17, 0x70, 1, 1, 0x11, 0]);
        assert_eq!(
            frame_size_in(&mut std::io::Cursor::new(&f)),
            Some((6000, 4000))
        );
        assert_eq!(frame_size_in(&mut std::io::Cursor::new(&f[..100])), None);
        assert_eq!(frame_size_in(&mut std::io::Cursor::new(b"nope")), None);
    }

    #[test]
    fn reads_the_fields_the_original_shows() {
        let s = parse(&sample()).unwrap();
        assert_eq!(s.Model.as_deref(), Some("Canon EOS R50"));
        assert_eq!(s.ISO, Some(6400));
        assert_eq!(s.ExposureTime, Some(0.008));
        assert_eq!(s.ShutterSpeed.as_deref(), Some("1/125"));
        assert_eq!(s.FNumber, Some(2.8));
        assert_eq!(s.WhiteBalance.as_deref(), Some("Auto"));
        assert_eq!(s.DateTimeOriginal.as_deref(), Some("2025-10-02T19:30:00"));
        assert_eq!((s.ImageWidth, s.ImageHeight), (Some(6000), Some(4000)));
    }
}
