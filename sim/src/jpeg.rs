//! File bytes for downloads: a valid baseline JPEG (uniform grey, any size, padded with COM
//! segments to the nominal file size) with an Exif block, and opaque CR3 bytes with a real
//! `ftyp` box. Generated on demand, deterministic per file.

/// A grey `width`×`height` baseline JPEG of at least `target_len` bytes (exactly, when the
/// target is larger than the minimal encoding). `exif_datetime`: `YYYY:MM:DD HH:MM:SS`.
pub fn grey_jpeg(width: u16, height: u16, target_len: usize, exif: Option<&Exif>) -> Vec<u8> {
    let mut head = vec![0xFF, 0xD8];
    if let Some(e) = exif {
        head.extend_from_slice(&exif_segment(e));
    }
    let mut tail = Vec::new();
    // DQT: table 0, all ones.
    tail.extend_from_slice(&[0xFF, 0xDB, 0x00, 0x43, 0x00]);
    tail.extend_from_slice(&[1u8; 64]);
    // SOF0: 8-bit, one component.
    tail.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 0x08]);
    tail.extend_from_slice(&height.to_be_bytes());
    tail.extend_from_slice(&width.to_be_bytes());
    tail.extend_from_slice(&[0x01, 0x01, 0x11, 0x00]);
    // DHT DC 0 and AC 0: a single 1-bit code "0" each (DC category 0, AC EOB).
    for class in [0x00u8, 0x10] {
        tail.extend_from_slice(&[0xFF, 0xC4, 0x00, 0x14, class, 1]);
        tail.extend_from_slice(&[0u8; 15]);
        tail.push(0x00);
    }
    // SOS.
    tail.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]);
    // Each 8×8 block: DC diff 0 ("0"), EOB ("0") = 2 zero bits; pad the last byte with ones.
    let blocks = usize::from(width.div_ceil(8)) * usize::from(height.div_ceil(8));
    let bits = blocks * 2;
    let mut data = vec![0u8; bits.div_ceil(8)];
    if bits % 8 != 0 {
        if let Some(last) = data.last_mut() {
            *last = 0xFFu8 >> (bits % 8);
        }
    }
    tail.extend_from_slice(&data);
    tail.extend_from_slice(&[0xFF, 0xD9]);

    let minimal = head.len() + tail.len();
    let mut out = head;
    let mut pad = target_len.saturating_sub(minimal);
    let noise = noise();
    out.reserve(pad + tail.len());
    while pad > 0 {
        // A COM segment costs 4 bytes of header; never leave a remainder under 4.
        let mut chunk = pad.min(65_533 + 4);
        if pad - chunk > 0 && pad - chunk < 4 {
            chunk -= 4;
        }
        if chunk < 4 {
            // Unreachable in practice (pad ≥ 1 but < 4): grow by a minimal segment instead.
            chunk = 4;
        }
        let body = chunk - 4;
        out.extend_from_slice(&[0xFF, 0xFE]);
        out.extend_from_slice(&((body + 2) as u16).to_be_bytes());
        out.extend_from_slice(&noise[..body]);
        pad = pad.saturating_sub(chunk);
    }
    out.extend_from_slice(&tail);
    out
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

    #[test]
    fn jpeg_has_markers_and_exact_padded_size() {
        let j = grey_jpeg(160, 120, 0, None);
        assert_eq!(&j[..2], &[0xFF, 0xD8]);
        assert_eq!(&j[j.len() - 2..], &[0xFF, 0xD9]);
        for target in [500usize, 70_000, 200_003, 400_000] {
            let p = grey_jpeg(
                160,
                120,
                target,
                Some(&Exif {
                    model: "Canon EOS R50".into(),
                    datetime: "2026:11:21 23:00:00".into(),
                    iso: 100,
                    exposure: (1, 125),
                    fnumber_x10: 80,
                }),
            );
            assert_eq!(p.len(), target, "target {target}");
            assert_eq!(&p[p.len() - 2..], &[0xFF, 0xD9]);
        }
    }
}
