//! File bytes for downloads and live view: real baseline JPEGs of the synthetic scene
//! (`jpeg-encoder`), with Canon's layout (SOI, APP1 Exif, no JFIF), padded with COM segments to
//! a file's nominal size; opaque CR3 bytes with a real `ftyp` box. Deterministic per input.

use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

/// Chroma subsampling (stills use 4:2:2 like Canon bodies; the real live-view frame in
/// CCAPI.md's fixture is 4:2:2 too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    S420,
    S422,
}

/// Encodes 8-bit RGB (`width`×`height`, row-major) as a baseline JPEG: SOI, then the Exif
/// APP1 when given (no JFIF APP0, as on the camera), then the encoder's tables and scan.
pub fn encode_rgb(
    rgb: &[u8],
    width: u16,
    height: u16,
    quality: u8,
    sampling: Sampling,
    exif: Option<&Exif>,
) -> Vec<u8> {
    let mut raw = Vec::with_capacity(usize::from(width) * usize::from(height) / 4 + 1024);
    let mut enc = Encoder::new(&mut raw, quality.clamp(1, 100));
    enc.set_sampling_factor(match sampling {
        Sampling::S420 => SamplingFactor::F_2_2,
        Sampling::S422 => SamplingFactor::F_2_1,
    });
    if let Err(e) = enc.encode(rgb, width, height, ColorType::Rgb) {
        // Only reachable with a short buffer or a zero size: a bug here, not bad input.
        log::error!("camera-sim: JPEG encoding failed: {e}");
        return Vec::new();
    }
    // The encoder always writes SOI + a 18-byte JFIF APP0 first.
    let body = if raw.len() > 20 && raw[2..4] == [0xFF, 0xE0] {
        let app0 = 2 + usize::from(u16::from_be_bytes([raw[4], raw[5]]));
        &raw[2 + app0..]
    } else {
        &raw[2..]
    };
    let mut out = Vec::with_capacity(body.len() + 300);
    out.extend_from_slice(&[0xFF, 0xD8]);
    if let Some(e) = exif {
        out.extend_from_slice(&exif_segment(e));
    }
    out.extend_from_slice(body);
    out
}

/// Pads `jpeg` to exactly `target_len` bytes with COM segments placed after the APP
/// segments (before the tables), so it stays a valid JPEG of the same picture. A target
/// smaller than the picture (or less than 4 bytes over it) leaves it as it is.
pub fn pad_to(jpeg: Vec<u8>, target_len: usize) -> Vec<u8> {
    let mut pad = target_len.saturating_sub(jpeg.len());
    if pad < 4 {
        return jpeg;
    }
    // After SOI and every APPn segment.
    let mut at = 2;
    while at + 4 <= jpeg.len() && jpeg[at] == 0xFF && (0xE0..=0xEF).contains(&jpeg[at + 1]) {
        at += 2 + usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
    }
    let at = at.min(jpeg.len());
    let mut out = Vec::with_capacity(target_len);
    out.extend_from_slice(&jpeg[..at]);
    let noise = noise();
    while pad > 0 {
        // A COM segment costs 4 bytes of header; never leave a remainder under 4.
        let mut chunk = pad.min(65_533 + 4);
        if pad - chunk > 0 && pad - chunk < 4 {
            chunk -= 4;
        }
        let body = chunk - 4;
        out.extend_from_slice(&[0xFF, 0xFE]);
        out.extend_from_slice(&((body + 2) as u16).to_be_bytes());
        out.extend_from_slice(&noise[..body]);
        pad -= chunk;
    }
    out.extend_from_slice(&jpeg[at..]);
    out
}

/// Appends `n` bytes of filler after the EOI, as some bodies do in thumbnail replies
/// (CCAPI.md §1.8): zeros first, then bytes that include `FF D9` and `FF D8` pairs, so a
/// client that looks for the last EOI, or for a second image, goes wrong.
pub fn with_trailing_bytes(mut jpeg: Vec<u8>, n: usize) -> Vec<u8> {
    const NASTY: [u8; 8] = [0xFF, 0xD9, 0x00, 0xFF, 0xD8, 0xFF, 0x00, 0x11];
    jpeg.extend((0..n).map(|i| if i < n / 2 { 0 } else { NASTY[i % NASTY.len()] }));
    jpeg
}

/// 64 KiB of fixed pseudo-random filler, made once (downloads copy it, so a 24 MB file costs
/// memcpy time, not a per-byte generator on the simulator's single thread).
fn noise() -> &'static [u8] {
    static NOISE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    NOISE.get_or_init(|| {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..65_536)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    })
}

/// The Exif fields the simulator writes.
#[derive(Debug, Clone)]
pub struct Exif {
    pub model: String,
    /// `YYYY:MM:DD HH:MM:SS` (camera local time).
    pub datetime: String,
    pub iso: u16,
    /// Exposure time as a rational (num, den).
    pub exposure: (u32, u32),
    /// F-number ×10 (f/8 → 80).
    pub fnumber_x10: u32,
}

/// APP1 Exif: IFD0 {Make, Model, DateTime, ExifIFD} → Exif IFD {ExposureTime, FNumber, ISO,
/// DateTimeOriginal}. Big-endian TIFF.
fn exif_segment(e: &Exif) -> Vec<u8> {
    let mut tiff: Vec<u8> = vec![b'M', b'M', 0, 42, 0, 0, 0, 8];
    let make = b"Canon\0".to_vec();
    let mut model = e.model.as_bytes().to_vec();
    model.push(0);
    let mut dt = e.datetime.as_bytes().to_vec();
    dt.truncate(19);
    dt.resize(19, b' ');
    dt.push(0);
    // Layout: IFD0 (4 entries) at 8, then Exif IFD (4 entries), then data area.
    let ifd0_len = 2 + 4 * 12 + 4;
    let exif_ifd_off = 8 + ifd0_len;
    let exif_len = 2 + 4 * 12 + 4;
    let mut data_off = exif_ifd_off + exif_len;
    let mut data: Vec<u8> = Vec::new();
    let place = |bytes: &[u8], data: &mut Vec<u8>, data_off: &mut usize| -> u32 {
        let at = *data_off + data.len();
        data.extend_from_slice(bytes);
        if data.len() % 2 == 1 {
            data.push(0);
        }
        let _ = data_off;
        at as u32
    };
    let make_at = place(&make, &mut data, &mut data_off);
    let model_at = place(&model, &mut data, &mut data_off);
    let dt_at = place(&dt, &mut data, &mut data_off);
    let dto_at = place(&dt, &mut data, &mut data_off);
    let mut rat = Vec::new();
    rat.extend_from_slice(&e.exposure.0.to_be_bytes());
    rat.extend_from_slice(&e.exposure.1.to_be_bytes());
    let exp_at = place(&rat, &mut data, &mut data_off);
    let mut fnum = Vec::new();
    fnum.extend_from_slice(&e.fnumber_x10.to_be_bytes());
    fnum.extend_from_slice(&10u32.to_be_bytes());
    let fn_at = place(&fnum, &mut data, &mut data_off);

    let entry = |tag: u16, typ: u16, count: u32, value: u32| -> Vec<u8> {
        let mut v = Vec::with_capacity(12);
        v.extend_from_slice(&tag.to_be_bytes());
        v.extend_from_slice(&typ.to_be_bytes());
        v.extend_from_slice(&count.to_be_bytes());
        v.extend_from_slice(&value.to_be_bytes());
        v
    };
    tiff.extend_from_slice(&4u16.to_be_bytes());
    tiff.extend(entry(0x010F, 2, make.len() as u32, make_at));
    tiff.extend(entry(0x0110, 2, model.len() as u32, model_at));
    tiff.extend(entry(0x0132, 2, 20, dt_at));
    tiff.extend(entry(0x8769, 4, 1, exif_ifd_off as u32));
    tiff.extend_from_slice(&0u32.to_be_bytes());
    tiff.extend_from_slice(&4u16.to_be_bytes());
    tiff.extend(entry(0x829A, 5, 1, exp_at));
    tiff.extend(entry(0x829D, 5, 1, fn_at));
    // SHORT value left-justified in the 4-byte field.
    tiff.extend(entry(0x8827, 3, 1, u32::from(e.iso) << 16));
    tiff.extend(entry(0x9003, 2, 20, dto_at));
    tiff.extend_from_slice(&0u32.to_be_bytes());
    tiff.extend_from_slice(&data);

    let mut seg = vec![0xFF, 0xE1];
    let len = 2 + 6 + tiff.len();
    seg.extend_from_slice(&(len as u16).to_be_bytes());
    seg.extend_from_slice(b"Exif\0\0");
    seg.extend_from_slice(&tiff);
    seg
}

/// Opaque CR3-like bytes: an ISO-BMFF `ftyp crx ` box, then deterministic filler.
pub fn cr3_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len.max(24));
    out.extend_from_slice(&[0, 0, 0, 0x18]);
    out.extend_from_slice(b"ftypcrx ");
    out.extend_from_slice(&[0, 0, 0, 1]);
    out.extend_from_slice(b"crx isom");
    // The seed rotates the filler so different files differ.
    let noise = noise();
    let mut at = (seed as usize).wrapping_mul(7919) % noise.len();
    while out.len() < len {
        let take = (len - out.len()).min(noise.len() - at);
        out.extend_from_slice(&noise[at..at + take]);
        at = 0;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exif() -> Exif {
        Exif {
            model: "Canon EOS R50".into(),
            datetime: "2026:11:21 23:00:00".into(),
            iso: 100,
            exposure: (1, 125),
            fnumber_x10: 80,
        }
    }

    #[test]
    fn encoded_jpeg_has_canon_layout_and_pads_to_an_exact_size() {
        let rgb = vec![90u8; 160 * 120 * 3];
        let j = encode_rgb(&rgb, 160, 120, 85, Sampling::S422, Some(&exif()));
        assert_eq!(&j[..4], &[0xFF, 0xD8, 0xFF, 0xE1]);
        assert_eq!(&j[6..12], b"Exif\0\0");
        assert_eq!(&j[j.len() - 2..], &[0xFF, 0xD9]);
        for target in [j.len() + 4, j.len() + 5, 70_000, 200_003, 400_000] {
            let p = pad_to(j.clone(), target);
            assert_eq!(p.len(), target, "target {target}");
            assert_eq!(&p[..4], &[0xFF, 0xD8, 0xFF, 0xE1]);
            assert_eq!(&p[p.len() - 2..], &[0xFF, 0xD9]);
        }
        assert_eq!(pad_to(j.clone(), 10), j);
        let t = with_trailing_bytes(j.clone(), 64);
        assert_eq!(t.len(), j.len() + 64);
        assert_eq!(&t[..j.len()], &j[..]);
    }
}
