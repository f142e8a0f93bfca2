//! The synthetic scene every simulated JPEG shows: a night (or day) sky over a landscape
//! silhouette, stars of several magnitudes, a glow along the horizon, rendered through a
//! camera-like response.
//!
//! ```text
//!   Scene (seeded once: stars, ridge)     Light (per picture: scene EV, sun altitude,
//!        │                                 camera EV, ISO, focus blur, noise seed)
//!        └──────────────┬──────────────────────────┘
//!                       ▼
//!   render(view: crop + size) ─▶ per band of 16 rows: sky/ground colour ─▶ + stars (PSF
//!   integrated over each pixel, so flux is conserved at any size) ─▶ × exposure ─▶ + noise
//!   ─▶ clip at black and white ─▶ sRGB tone curve ─▶ 8-bit RGB
//! ```
//!
//! Units: a pixel's linear value is `0.18 × 2^(EV_scene − EV_camera) × rel`, where `rel` is
//! its luminance relative to the scene's metered brightness (so an exposure that matches the
//! scene EV renders the sky near mid-grey); 1.0 is the sensor's white. A star's light is
//! absolute: `0.18 × 2^(STAR_EV − EV_camera) × 10^(−0.4·mag)` summed over its pixels at the
//! reference width [`REF_WIDTH`], scaling with the square of the frame width (a thumbnail
//! pixel averages over many display pixels). So stars vanish in daylight exposures by
//! themselves. Blur (focus) is a Gaussian whose σ is given in reference-width pixels.

/// Width in pixels of the full frame at which star flux and blur are specified (the display
/// size).
pub const REF_WIDTH: f64 = 1620.0;
/// The brightness of a magnitude-0 star (see the module doc), tuned so that at a night
/// exposure (EV −3) the brightest star clips in display-size pictures and magnitude-6 stars
/// are just visible.
const STAR_EV: f64 = 6.0;
/// Smallest star blur (seeing plus the lens), reference pixels.
pub const MIN_BLUR: f64 = 0.6;
/// Blur per focus step away from true focus, reference pixels.
pub const BLUR_PER_STEP: f64 = 0.15;
/// Largest blur rendered (a lens far out of focus), reference pixels.
const MAX_BLUR: f64 = 60.0;
/// Width of the sensor in pixels (noise per output pixel grows as pixels get smaller).
const SENSOR_WIDTH: f64 = 6000.0;
/// Rows rendered at a time (bounds the star buffer).
const BAND: usize = 16;

/// Star blur σ in reference pixels for a focus position.
pub fn blur_for_focus(position: i32, true_focus: i32) -> f64 {
    let d = f64::from(position - true_focus) * BLUR_PER_STEP;
    (MIN_BLUR * MIN_BLUR + d * d).sqrt().min(MAX_BLUR)
}

/// Exposure of a camera setting as EV at ISO 100: `log2(N²/t) − log2(ISO/100)`.
pub fn camera_ev(exposure_s: f64, fnumber: f64, iso: f64) -> f64 {
    let t = exposure_s.max(1e-6);
    (fnumber * fnumber / t).log2() - (iso.max(1.0) / 100.0).log2()
}

#[derive(Debug, Clone, Copy)]
struct Star {
    u: f64,
    v: f64,
    /// 10^(−0.4·mag)
    flux: f64,
    tint: [f32; 3],
}

/// The seeded, stable geometry of the scene (frame units: u across, v down, both 0..1 over
/// the full 3:2 frame).
pub struct Scene {
    stars: Vec<Star>,
    /// (amplitude, frequency, phase) of the ridge line's terms.
    ridge: Vec<(f64, f64, f64)>,
    /// Where the brightest star is (frame units), for tests and the magnified view.
    pub brightest: (f64, f64),
}

/// Mean height of the landscape's ridge line (v coordinate; larger is lower).
const RIDGE_BASE: f64 = 0.76;

impl Scene {
    pub fn new(seed: u64) -> Scene {
        let mut rng = crate::time::Rng::new(seed ^ 0x5CE9_E5EE_D000_0001);
        let mut ridge = Vec::new();
        for (amp, freq) in [
            (0.045, 1.0),
            (0.025, 2.7),
            (0.012, 6.3),
            (0.006, 14.1),
            (0.003, 31.0),
        ] {
            let f = freq * (0.8 + 0.4 * rng.next_f64());
            ridge.push((amp, f, rng.next_f64() * std::f64::consts::TAU));
        }
        let brightest = (0.42 + 0.16 * rng.next_f64(), 0.30 + 0.12 * rng.next_f64());
        let mut stars = vec![Star {
            u: brightest.0,
            v: brightest.1,
            flux: 10f64.powf(0.4 * 0.3), // magnitude −0.3
            tint: tint(0.5),
        }];
        // Magnitudes 0.8..6.5 with more faint stars than bright ones (density ∝ 10^(0.45 m)).
        let (m0, m1) = (0.8f64, 6.5f64);
        let (a, b) = (10f64.powf(0.45 * m0), 10f64.powf(0.45 * m1));
        while stars.len() < 500 {
            let u = rng.next_f64();
            let v = rng.next_f64() * 0.8;
            let m = (a + rng.next_f64() * (b - a)).log10() / 0.45;
            let colour = rng.next_f64();
            // Keep the brightest star isolated so a focus figure measures it alone.
            if (u - brightest.0).hypot((v - brightest.1) * 2.0 / 3.0) < 0.03 {
                continue;
            }
            stars.push(Star {
                u,
                v,
                flux: 10f64.powf(-0.4 * m),
                tint: tint(colour),
            });
        }
        let mut scene = Scene {
            stars,
            ridge,
            brightest,
        };
        // Stars behind the landscape never show.
        let hidden: Vec<bool> = scene
            .stars
            .iter()
            .map(|s| s.v > scene.horizon_at(s.u))
            .collect();
        let mut keep = hidden.iter().map(|h| !h);
        scene.stars.retain(|_| keep.next().unwrap_or(false));
        scene
    }

    /// The ridge line's v coordinate at `u` (sky above, ground below).
    pub fn horizon_at(&self, u: f64) -> f64 {
        let mut h = RIDGE_BASE;
        for &(amp, f, ph) in &self.ridge {
            h -= amp * (std::f64::consts::TAU * f * u + ph).sin();
        }
        h
    }
}

/// A star colour from blue-white (0) to orange (1), unit luminance.
fn tint(t: f64) -> [f32; 3] {
    let t = t as f32;
    unit([1.0 + 0.3 * t - 0.1, 1.0, 1.25 - 0.55 * t])
}

fn luma(c: [f32; 3]) -> f32 {
    0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
}

/// Scales a colour to unit luminance.
fn unit(c: [f32; 3]) -> [f32; 3] {
    let y = luma(c).max(1e-6);
    [c[0] / y, c[1] / y, c[2] / y]
}

fn scale(c: [f32; 3], k: f32) -> [f32; 3] {
    [c[0] * k, c[1] * k, c[2] * k]
}

fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

/// Sky and ground colours (relative luminance × tint) for a sun altitude.
#[derive(Debug, Clone, Copy)]
struct Palette {
    zenith: [f32; 3],
    horizon: [f32; 3],
    ground: [f32; 3],
}

fn palette(sun_alt: f64) -> Palette {
    // (altitude, zenith rel, zenith tint, horizon rel, horizon tint, ground rel, ground tint)
    type Key = (f64, f32, [f32; 3], f32, [f32; 3], f32, [f32; 3]);
    const KEYS: [Key; 5] = [
        (
            -18.0,
            0.7,
            [0.85, 0.95, 1.2],
            1.8,
            [1.25, 1.0, 0.75],
            0.04,
            [0.9, 0.9, 1.0],
        ),
        (
            -9.0,
            0.6,
            [0.6, 0.75, 1.45],
            2.0,
            [1.1, 0.95, 1.0],
            0.05,
            [0.9, 0.9, 1.0],
        ),
        (
            -3.0,
            0.6,
            [0.55, 0.7, 1.5],
            2.2,
            [1.5, 0.85, 0.55],
            0.08,
            [1.0, 0.9, 0.9],
        ),
        (
            3.0,
            0.8,
            [0.7, 0.85, 1.3],
            1.8,
            [1.45, 1.0, 0.6],
            0.25,
            [1.2, 1.0, 0.6],
        ),
        (
            15.0,
            0.9,
            [0.6, 0.8, 1.35],
            1.3,
            [0.95, 1.0, 1.1],
            0.45,
            [0.8, 1.0, 0.6],
        ),
    ];
    let at = |k: &Key| Palette {
        zenith: scale(unit(k.2), k.1),
        horizon: scale(unit(k.4), k.3),
        ground: scale(unit(k.6), k.5),
    };
    let alt = if sun_alt.is_finite() { sun_alt } else { -90.0 };
    if alt <= KEYS[0].0 {
        return at(&KEYS[0]);
    }
    for w in KEYS.windows(2) {
        if alt <= w[1].0 {
            let t = ((alt - w[0].0) / (w[1].0 - w[0].0)) as f32;
            let (a, b) = (at(&w[0]), at(&w[1]));
            return Palette {
                zenith: mix(a.zenith, b.zenith, t),
                horizon: mix(a.horizon, b.horizon, t),
                ground: mix(a.ground, b.ground, t),
            };
        }
    }
    at(&KEYS[KEYS.len() - 1])
}

/// The light and the camera for one picture.
#[derive(Debug, Clone, Copy)]
pub struct Light {
    /// The scene's metered brightness, EV at ISO 100.
    pub scene_ev: f64,
    /// Sun altitude in degrees (colours only).
    pub sun_alt: f64,
    /// The exposure, EV at ISO 100 (see [`camera_ev`]).
    pub camera_ev: f64,
    /// ISO (noise grows with it).
    pub iso: f64,
    /// Star blur σ, reference pixels (see [`blur_for_focus`]).
    pub blur: f64,
    /// Noise pattern seed.
    pub seed: u64,
}

/// Which part of the frame, at which output size.
#[derive(Debug, Clone, Copy)]
pub struct View {
    /// Left and top edge of the crop, frame units.
    pub u0: f64,
    pub v0: f64,
    /// Width and height of the crop, frame units (1, 1: the whole frame).
    pub uw: f64,
    pub vh: f64,
    pub width: usize,
    pub height: usize,
}

impl View {
    pub fn full(width: usize, height: usize) -> View {
        View {
            u0: 0.0,
            v0: 0.0,
            uw: 1.0,
            vh: 1.0,
            width,
            height,
        }
    }

    /// A crop magnified `mag` times around (`cu`, `cv`), kept inside the frame.
    pub fn magnified(width: usize, height: usize, mag: f64, cu: f64, cv: f64) -> View {
        let mag = mag.max(1.0);
        let (uw, vh) = (1.0 / mag, 1.0 / mag);
        View {
            u0: (cu - uw / 2.0).clamp(0.0, 1.0 - uw),
            v0: (cv - vh / 2.0).clamp(0.0, 1.0 - vh),
            uw,
            vh,
            width,
            height,
        }
    }
}

/// The sRGB transfer curve as a table over linear 0..=1.
fn tone_lut() -> &'static [u8; 4096] {
    static LUT: std::sync::OnceLock<[u8; 4096]> = std::sync::OnceLock::new();
    LUT.get_or_init(|| {
        let mut t = [0u8; 4096];
        for (i, v) in t.iter_mut().enumerate() {
            let x = i as f64 / 4095.0;
            let s = if x <= 0.003_130_8 {
                12.92 * x
            } else {
                1.055 * x.powf(1.0 / 2.4) - 0.055
            };
            *v = (s * 255.0).round().clamp(0.0, 255.0) as u8;
        }
        t
    })
}

/// The inverse of the tone curve for one 8-bit code (what a client linearising a frame
/// computes).
pub fn linear_of_code(code: u8) -> f64 {
    let s = f64::from(code) / 255.0;
    if s <= 0.040_45 {
        s / 12.92
    } else {
        ((s + 0.055) / 1.055).powf(2.4)
    }
}

/// erf, Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7).
fn erf(x: f64) -> f64 {
    let s = x.signum();
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    s * y
}

/// A star ready to draw: its pixel-integrated profile along each axis.
struct Sprite {
    x0: isize,
    y0: isize,
    gx: Vec<f32>,
    gy: Vec<f32>,
    rgb: [f32; 3],
}

fn profile(centre: f64, sigma: f64) -> (isize, Vec<f32>) {
    if sigma < 0.25 {
        // Too small for the erf to matter: split between the two nearest pixels.
        let x = centre - 0.5;
        let first = x.floor();
        let t = (x - first) as f32;
        return (first as isize, vec![1.0 - t, t]);
    }
    let r = (4.0 * sigma).ceil() as isize + 1;
    let c = centre.floor() as isize;
    let k = 1.0 / (sigma * std::f64::consts::SQRT_2);
    let first = c - r;
    let mut g = Vec::with_capacity((2 * r + 1) as usize);
    let mut prev = erf((first as f64 - centre) * k);
    for p in first..=c + r {
        let next = erf(((p + 1) as f64 - centre) * k);
        g.push((0.5 * (next - prev)) as f32);
        prev = next;
    }
    (first, g)
}

/// Renders `view` of `scene` under `light` as 8-bit RGB, row-major.
pub fn render(scene: &Scene, light: &Light, view: &View) -> Vec<u8> {
    let (w, h) = (view.width, view.height);
    let mut out = vec![0u8; w * h * 3];
    if w == 0 || h == 0 {
        return out;
    }
    // Output pixels per frame unit.
    let weff = w as f64 / view.uw;
    let heff = h as f64 / view.vh;
    let gain = 0.18 * (light.scene_ev - light.camera_ev).exp2();
    let pal = palette(light.sun_alt);

    // The ridge line per column, in output rows (pixel centres sit at j + 0.5).
    let hrow: Vec<f64> = (0..w)
        .map(|i| {
            let u = view.u0 + (i as f64 + 0.5) / weff;
            (scene.horizon_at(u) - view.v0) * heff
        })
        .collect();
    let blur_px = light.blur * weff / REF_WIDTH;
    // The ridge's edge is as soft as a star (a landscape far away).
    let edge = blur_px.max(0.5);

    // Sky colour by height above the mean ridge line (frame units, 0..1), times the gain.
    const SKY_BINS: usize = 512;
    let sky: Vec<[f32; 3]> = (0..SKY_BINS)
        .map(|b| {
            let above = b as f64 / (SKY_BINS - 1) as f64;
            let t = (-above / 0.22).exp() as f32;
            scale(mix(pal.zenith, pal.horizon, t), gain as f32)
        })
        .collect();
    let ground = scale(pal.ground, gain as f32);

    // Stars in output pixels.
    let star_gain = 0.18 * (STAR_EV - light.camera_ev).exp2() * (weff / REF_WIDTH).powi(2);
    let mut sprites: Vec<Sprite> = Vec::new();
    for s in &scene.stars {
        let sigma = blur_px.max(0.05);
        let r = 4.0 * sigma + 1.0;
        let (cx, cy) = ((s.u - view.u0) * weff, (s.v - view.v0) * heff);
        if cx < -r || cy < -r || cx > w as f64 + r || cy > h as f64 + r {
            continue;
        }
        let total = star_gain * s.flux;
        // Peak of an integrated Gaussian (at least the whole flux in one pixel when tiny).
        let peak = total * (1.0 / (2.0 * std::f64::consts::PI * sigma * sigma)).min(1.0);
        if peak < 2e-4 {
            continue; // below half a code even in the darkest tones
        }
        let (x0, gx) = profile(cx, sigma);
        let (y0, gy) = profile(cy, sigma);
        if gx.is_empty() || gy.is_empty() {
            continue;
        }
        sprites.push(Sprite {
            x0,
            y0,
            gx,
            gy,
            rgb: scale(s.tint, total as f32),
        });
    }

    // Noise: σ² = a·p + b², per output pixel, smaller for big pixels (thumbnails average).
    let iso = (light.iso / 100.0).max(1.0) as f32;
    let res = (weff / REF_WIDTH).min(SENSOR_WIDTH / REF_WIDTH) as f32;
    let shot_a = 3e-4 * iso * res * res;
    let read_b2 = (8e-4 * iso.powf(0.7) * res).powi(2);
    const SD_BINS: usize = 256;
    let sd_lut: Vec<f32> = (0..SD_BINS)
        .map(|b| (shot_a * b as f32 / (SD_BINS - 1) as f32 + read_b2).sqrt())
        .collect();
    let noise = noise_table();

    let lut = tone_lut();
    let mut band = vec![0f32; w * BAND * 3];
    let mut j0 = 0usize;
    while j0 < h {
        let rows = BAND.min(h - j0);
        band[..w * rows * 3].fill(0.0);
        for s in &sprites {
            let sy1 = s.y0 + s.gy.len() as isize;
            if sy1 <= j0 as isize || s.y0 >= (j0 + rows) as isize {
                continue;
            }
            for (dy, gy) in s.gy.iter().enumerate() {
                let y = s.y0 + dy as isize;
                if y < j0 as isize || y >= (j0 + rows) as isize {
                    continue;
                }
                let row = (y as usize - j0) * w * 3;
                for (dx, gx) in s.gx.iter().enumerate() {
                    let x = s.x0 + dx as isize;
                    if x < 0 || x >= w as isize {
                        continue;
                    }
                    let k = gx * gy;
                    let p = row + x as usize * 3;
                    band[p] += s.rgb[0] * k;
                    band[p + 1] += s.rgb[1] * k;
                    band[p + 2] += s.rgb[2] * k;
                }
            }
        }
        for r in 0..rows {
            let j = j0 + r;
            let yc = j as f64 + 0.5;
            // The glow follows elevation (the mean ridge line), not each peak.
            let v = view.v0 + yc / heff;
            let sky_row = sky_at(&sky, (RIDGE_BASE - v).max(0.0));
            // Each row reads the noise table from its own seeded place.
            let off = mix64(light.seed ^ (j as u64).wrapping_mul(0xA076_1D64_78BD_642F)) as usize;
            let lin_row = &band[r * w * 3..(r + 1) * w * 3];
            let out_row = &mut out[j * w * 3..(j + 1) * w * 3];
            // Wide rows: the codes of plain sky and plain ground for each noise level, once.
            let flat = (w >= 2 * NOISE_LEVELS).then(|| {
                [sky_row, ground].map(|base| {
                    let sd = sd_lut[(luma(base).clamp(0.0, 1.0) * (SD_BINS - 1) as f32) as usize];
                    let mut codes = [[0u8; 3]; NOISE_LEVELS];
                    for (k, code) in codes.iter_mut().enumerate() {
                        *code = encode(base, level(k) * sd, lut);
                    }
                    codes
                })
            });
            for (i, (px, add)) in out_row
                .chunks_exact_mut(3)
                .zip(lin_row.chunks_exact(3))
                .enumerate()
            {
                let d = yc - hrow[i]; // > 0: below the ridge
                let k = noise[(off + i) & (NOISE_LEN - 1)];
                let plain = add[0] == 0.0 && add[1] == 0.0 && add[2] == 0.0;
                let base = if d >= 4.0 * edge {
                    if let (true, Some(f)) = (plain, &flat) {
                        px.copy_from_slice(&f[1][usize::from(k)]);
                        continue;
                    }
                    ground
                } else if d <= -4.0 * edge {
                    if let (true, Some(f)) = (plain, &flat) {
                        px.copy_from_slice(&f[0][usize::from(k)]);
                        continue;
                    }
                    sky_row
                } else {
                    let f = (1.0 / (1.0 + (1.702 * d / edge).exp())) as f32;
                    mix(ground, sky_row, f)
                };
                let lin = [base[0] + add[0], base[1] + add[1], base[2] + add[2]];
                let y = luma(lin).clamp(0.0, 1.0);
                let sd = sd_lut[(y * (SD_BINS - 1) as f32) as usize];
                px.copy_from_slice(&encode(lin, level(usize::from(k)) * sd, lut));
            }
        }
        j0 += rows;
    }
    out
}

/// SplitMix64's finaliser.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const NOISE_LEN: usize = 1 << 14;
/// Noise is quantised to this many levels (±3σ in steps of σ/10.5: invisible, and it lets
/// wide rows look plain pixels up in a table).
const NOISE_LEVELS: usize = 64;

/// The noise value of a level, in standard deviations.
fn level(k: usize) -> f32 {
    (k as f32 - 31.5) / 10.5
}

/// Zero-mean, unit-variance noise (sums of four uniforms) as levels, made once.
fn noise_table() -> &'static [u8; NOISE_LEN] {
    static T: std::sync::OnceLock<Box<[u8; NOISE_LEN]>> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut t = Box::new([0u8; NOISE_LEN]);
        for (k, v) in t.iter_mut().enumerate() {
            let z = mix64(k as u64 ^ 0x6E01_5E00);
            let sum = (z & 0xFFFF) + ((z >> 16) & 0xFFFF) + ((z >> 32) & 0xFFFF) + (z >> 48);
            let n = (sum as f32 / 65_536.0 - 2.0) * 1.732;
            *v = (n * 10.5 + 31.5)
                .round()
                .clamp(0.0, (NOISE_LEVELS - 1) as f32) as u8;
        }
        t
    })
}

/// Linear RGB plus a luminance noise offset → 8-bit codes. The black level is subtracted on
/// the sensor, so noise below it clips at 0; white clips at 1.
fn encode(lin: [f32; 3], noise: f32, lut: &[u8; 4096]) -> [u8; 3] {
    lin.map(|c| lut[((c + noise).clamp(0.0, 1.0) * 4095.0 + 0.5) as usize])
}

fn sky_at(sky: &[[f32; 3]], above: f64) -> [f32; 3] {
    let b = (above * (sky.len() - 1) as f64) as usize;
    sky[b.min(sky.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn night() -> Light {
        Light {
            scene_ev: -3.0,
            sun_alt: -40.0,
            camera_ev: -3.0,
            iso: 1600.0,
            blur: MIN_BLUR,
            seed: 7,
        }
    }

    fn mean_linear(rgb: &[u8]) -> f64 {
        rgb.iter().map(|&c| linear_of_code(c)).sum::<f64>() / rgb.len() as f64
    }

    #[test]
    fn the_same_inputs_render_the_same_pixels() {
        let s = Scene::new(3);
        let a = render(&s, &night(), &View::full(160, 107));
        let b = render(&Scene::new(3), &night(), &View::full(160, 107));
        assert_eq!(a, b);
        assert_ne!(a, render(&Scene::new(4), &night(), &View::full(160, 107)));
    }

    #[test]
    fn tone_curve_round_trips() {
        for code in [0u8, 1, 10, 50, 128, 200, 255] {
            let lin = linear_of_code(code);
            let back = tone_lut()[(lin * 4095.0).round() as usize];
            assert!((i32::from(back) - i32::from(code)).abs() <= 1, "{code}");
        }
    }

    #[test]
    fn brightness_doubles_per_ev_until_white() {
        let s = Scene::new(1);
        let mut l = night();
        l.iso = 100.0;
        l.camera_ev = 0.0; // 3 EV under the scene
        let m0 = mean_linear(&render(&s, &l, &View::full(320, 213)));
        l.camera_ev = -1.0;
        let m1 = mean_linear(&render(&s, &l, &View::full(320, 213)));
        assert!((m1 / m0 - 2.0).abs() < 0.15, "{m0} {m1}");
        l.camera_ev = -12.0; // far over: white
        assert!(mean_linear(&render(&s, &l, &View::full(320, 213))) > 0.95);
    }

    #[test]
    fn stars_vanish_by_day_and_show_at_night() {
        let s = Scene::new(1);
        let (bu, bv) = s.brightest;
        let view = View::full(1620, 1080);
        let at = |rgb: &[u8]| {
            let (x, y) = ((bu * 1620.0) as usize, (bv * 1080.0) as usize);
            rgb[(y * 1620 + x) * 3 + 1]
        };
        let night_px = render(&s, &night(), &view);
        assert!(at(&night_px) > 250, "{}", at(&night_px));
        let day = Light {
            scene_ev: 15.0,
            sun_alt: 50.0,
            camera_ev: 15.0,
            iso: 100.0,
            ..night()
        };
        let day_px = render(&s, &day, &view);
        // Only sky there: within a few codes of its neighbour 20 px away.
        let (x, y) = ((bu * 1620.0) as usize + 20, (bv * 1080.0) as usize);
        let near = day_px[(y * 1620 + x) * 3 + 1];
        assert!((i32::from(at(&day_px)) - i32::from(near)).abs() < 6);
    }

    #[test]
    fn defocus_spreads_a_star_without_losing_its_light() {
        let s = Scene::new(1);
        let (bu, bv) = s.brightest;
        let mut l = night();
        l.camera_ev = 3.0; // the star well below white
        let crop = |blur: f64| {
            let mut l = l;
            l.blur = blur;
            let v = View::magnified(200, 200, 10.0, bu, bv);
            render(&s, &l, &v)
        };
        let sharp = crop(MIN_BLUR);
        let soft = crop(blur_for_focus(40, 0));
        let peak = |p: &[u8]| p.iter().copied().max().unwrap_or(0);
        assert!(peak(&sharp) > peak(&soft) + 40);
        let (a, b) = (mean_linear(&sharp), mean_linear(&soft));
        assert!((a - b).abs() / a < 0.1, "{a} {b}");
    }
}
