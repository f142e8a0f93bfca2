//! A frame's brightness from its thumbnail (CCAPI `kind=thumbnail`, 160×120 JPEG): decoded to
//! luma with zune-jpeg (pure Rust), Canon's letterbox bars cropped, then the mean linear
//! luminance ([`crate::ramp::mean_linear_luma`]) and the share of clipped highlights.
//!
//! Real bodies send filler after the JPEG's EOI marker (CCAPI.md §1.8); the decoder stops at
//! EOI, and a test below holds it to that.

use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

/// The largest thumbnail decoded (a thumbnail is 160×120; this refuses a full-size file).
const MAX_PIXELS: usize = 640 * 480;
/// 8-bit level at and above which a pixel counts as clipped.
pub const CLIP_LEVEL: u8 = 250;

/// What a thumbnail says about its frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Mean linear luminance, 0 (black) to 1 (white).
    pub brightness: f64,
    /// Share of pixels at or above [`CLIP_LEVEL`].
    pub clipped: f64,
}

/// Luma samples of a JPEG (width, height, samples), row-major.
pub fn decode_luma(jpeg: &[u8]) -> Result<(usize, usize, Vec<u8>), String> {
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::Luma)
        .set_max_width(640)
        .set_max_height(480);
    let mut d = JpegDecoder::new_with_options(ZCursor::new(jpeg), options);
    d.decode_headers()
        .map_err(|e| format!("not a JPEG: {e:?}"))?;
    let (w, h) = d
        .dimensions()
        .ok_or_else(|| "JPEG without dimensions".to_string())?;
    if w == 0 || h == 0 || w * h > MAX_PIXELS {
        return Err(format!("unexpected thumbnail size {w}×{h}"));
    }
    let px = d.decode().map_err(|e| format!("bad JPEG: {e:?}"))?;
    if px.len() != w * h {
        return Err(format!("decoded {} samples for {w}×{h}", px.len()));
    }
    Ok((w, h, px))
}

/// The picture rows of a thumbnail: Canon letterboxes the 3:2 frame in 4:3 with black bars;
/// a frame taller than 3:2 keeps only its central 3:2 band (less a row of margin each side,
/// where the JPEG's blocks blur the bar's edge).
pub fn picture_rows(w: usize, h: usize) -> std::ops::Range<usize> {
    let band = (w * 2 + 1) / 3;
    if h <= band + 2 {
        return 0..h;
    }
    let top = (h - band) / 2 + 2;
    top..(top + band - 4).min(h)
}

/// The brightness and clipping of a thumbnail.
pub fn measure(jpeg: &[u8]) -> Result<Measured, String> {
    let (w, h, px) = decode_luma(jpeg)?;
    let rows = picture_rows(w, h);
    let samples = &px[rows.start * w..rows.end * w];
    let brightness =
        crate::ramp::mean_linear_luma(samples).ok_or_else(|| "empty thumbnail".to_string())?;
    Ok(Measured {
        brightness,
        clipped: crate::ramp::clipped_share(samples, CLIP_LEVEL),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_rows_are_the_central_three_by_two_band() {
        assert_eq!(picture_rows(160, 120), 8..111);
        assert_eq!(picture_rows(160, 107), 0..107);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(measure(b"").is_err());
        assert!(measure(b"\xff\xd8\xff\xe0garbage").is_err());
    }

    /// A letterboxed mid-grey thumbnail as the simulator encodes it (4:2:2, like Canon), with
    /// and without filler after EOI: the same measure.
    #[test]
    fn a_real_jpeg_measures_its_grey_and_trailing_bytes_do_not_matter() {
        let (w, h, band) = (160usize, 120usize, 106usize);
        let top = (h - band) / 2;
        let mut rgb = vec![0u8; w * h * 3];
        // sRGB 118 is linear 0.181.
        for b in &mut rgb[top * w * 3..(top + band) * w * 3] {
            *b = 118;
        }
        let jpeg = skylapse_sim::jpeg::encode_rgb(
            &rgb,
            w as u16,
            h as u16,
            90,
            skylapse_sim::jpeg::Sampling::S422,
            None,
        );
        let clean = measure(&jpeg).unwrap();
        assert!((clean.brightness - 0.181).abs() < 0.01, "{clean:?}");
        assert_eq!(clean.clipped, 0.0);
        for filler in [0x00u8, 0xFF] {
            let mut padded = jpeg.clone();
            padded.extend(std::iter::repeat_n(filler, 4096));
            assert_eq!(measure(&padded).unwrap(), clean, "filler {filler:#x}");
        }
    }
}
