//! Lip sync from the sound that is playing: an analyser's spectrum becomes mouth shapes.
//!
//! Vowels differ mostly in their first two formants: open vowels (`aa`) put energy around
//! 600–1100 Hz (a high F1), front vowels (`ee`, `ih`) have a high F2 (1700–2600 Hz), rounded back
//! vowels (`ou`, `oh`) keep nearly everything below 1 kHz. Three bands of the spectrum place the
//! sound in a small vowel space, the two nearest visemes are blended, and the
//! loudness opens the mouth. [`Smoother`] then opens it quickly and closes it a little slower,
//! as a real mouth does, and returns to rest in silence.

use super::Mouth;

/// The loudness (mean of the speech bands, 0..1 of the analyser's byte scale) below which the
/// mouth is closed, and the span above it that opens it fully. With the analyser's default
/// range (-100..-30 dB) speech at a normal level sits around 0.45–0.7.
const SILENCE: f32 = 0.2;
const FULL_OPEN: f32 = 0.35;

/// Mouth shapes for one analyser frame. `spectrum` is `getByteFrequencyData` output, `bin_hz`
/// the width of one bin (sample rate / FFT size).
pub fn visemes(spectrum: &[u8], bin_hz: f32) -> Mouth {
    if spectrum.is_empty() || bin_hz <= 0.0 {
        return Mouth::default();
    }
    let band = |lo: f32, hi: f32| -> f32 {
        let a = ((lo / bin_hz) as usize).min(spectrum.len());
        let b = ((hi / bin_hz).ceil() as usize).clamp(a, spectrum.len());
        if b == a {
            return 0.0;
        }
        spectrum[a..b].iter().map(|&v| f32::from(v)).sum::<f32>() / ((b - a) as f32 * 255.0)
    };
    let low = band(150.0, 550.0);
    let mid = band(550.0, 1100.0);
    let high = band(1100.0, 2600.0);
    let level = (low + mid + high) / 3.0;
    let open = ((level - SILENCE) / FULL_OPEN).clamp(0.0, 1.0);
    if open <= 0.0 {
        return Mouth::default();
    }
    // Where the vowel sits in a two-dimensional vowel space: how open (the first formant's share
    // against the low band) and how front (the second formant's share).
    let openness = mid / (low + mid).max(f32::EPSILON);
    let frontness = high / (low + mid + high).max(f32::EPSILON);
    blend_nearest(openness, frontness, open)
}

/// Each viseme's place in the (openness, frontness) plane. The analyser's bytes are decibels, so
/// the ratios stay nearer 0.5 than formant energies would: the places are spread accordingly.
const PROTOTYPES: [(Viseme, f32, f32); 5] = [
    (Viseme::Aa, 0.58, 0.30),
    (Viseme::Oh, 0.47, 0.18),
    (Viseme::Ou, 0.36, 0.12),
    (Viseme::Ee, 0.33, 0.42),
    (Viseme::Ih, 0.45, 0.38),
];

#[derive(Clone, Copy, PartialEq, Debug)]
enum Viseme {
    Aa,
    Ih,
    Ou,
    Ee,
    Oh,
}

/// The two nearest visemes share `open` in inverse proportion to their distance.
fn blend_nearest(openness: f32, frontness: f32, open: f32) -> Mouth {
    let mut near =
        PROTOTYPES.map(|(v, o, f)| (v, ((openness - o).powi(2) + (frontness - f).powi(2)).sqrt()));
    near.sort_by(|a, b| a.1.total_cmp(&b.1));
    let closeness = |d: f32| 1.0 / (d + 0.02);
    let (c1, c2) = (closeness(near[0].1), closeness(near[1].1));
    let mut mouth = Mouth::default();
    set(&mut mouth, near[0].0, open * c1 / (c1 + c2));
    set(&mut mouth, near[1].0, open * c2 / (c1 + c2));
    mouth
}

fn set(mouth: &mut Mouth, v: Viseme, w: f32) {
    match v {
        Viseme::Aa => mouth.aa = w,
        Viseme::Ih => mouth.ih = w,
        Viseme::Ou => mouth.ou = w,
        Viseme::Ee => mouth.ee = w,
        Viseme::Oh => mouth.oh = w,
    }
}

/// The mouth for the character spoken at `ms` into a sentence, from a voice's own timings
/// (`chars[i]` is spoken from `start_ms[i]` to `end_ms[i]`). Vowels take their viseme (`y` counts
/// as `ih`); lips closed for `m b p`, a little open for other consonants; rest between words,
/// before the first and after the last character.
pub fn from_timings(t: &crate::shared::tts::Timings, ms: f64) -> Mouth {
    let spoken = t
        .chars
        .iter()
        .zip(t.start_ms.iter().zip(&t.end_ms))
        .find(|(_, (&start, &end))| f64::from(start) <= ms && ms < f64::from(end));
    let Some((c, _)) = spoken else {
        return Mouth::default();
    };
    let mut mouth = Mouth::default();
    match c.to_lowercase().chars().next().unwrap_or(' ') {
        'a' | 'á' | 'à' | 'ä' | 'â' => mouth.aa = 0.9,
        'e' | 'é' | 'è' | 'ê' => mouth.ee = 0.8,
        'i' | 'í' | 'y' => mouth.ih = 0.7,
        'o' | 'ó' | 'ö' | 'ô' => mouth.oh = 0.85,
        'u' | 'ú' | 'ü' | 'w' => mouth.ou = 0.8,
        'm' | 'b' | 'p' => {}
        c if c.is_alphanumeric() => mouth.aa = 0.3,
        _ => {}
    }
    mouth
}

/// Time constants of the mouth, in seconds: it opens fast and closes a little slower.
const OPEN_TAU: f32 = 0.035;
const CLOSE_TAU: f32 = 0.07;
/// Weights below this are shown as exactly zero (so a silent mouth is at rest, not at 0.0001).
const REST: f32 = 0.01;

/// Smooths successive frames of [`visemes`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Smoother {
    current: Mouth,
}

impl Smoother {
    /// Moves towards `target` over `dt` seconds and returns the shape to show.
    pub fn step(&mut self, target: Mouth, dt: f32) -> Mouth {
        let dt = dt.clamp(0.0, 0.25);
        let follow = |cur: &mut f32, to: f32| {
            let tau = if to > *cur { OPEN_TAU } else { CLOSE_TAU };
            *cur += (to - *cur) * (1.0 - (-dt / tau).exp());
            if *cur < REST {
                *cur = 0.0;
            }
        };
        follow(&mut self.current.aa, target.aa);
        follow(&mut self.current.ih, target.ih);
        follow(&mut self.current.ou, target.ou);
        follow(&mut self.current.ee, target.ee);
        follow(&mut self.current.oh, target.oh);
        self.current
    }

    #[cfg(test)]
    fn at_rest(&self) -> bool {
        self.current == Mouth::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIN: f32 = 48_000.0 / 1024.0;

    /// A spectrum with `level` (0..255) in the given frequency ranges and a floor elsewhere.
    fn spectrum(peaks: &[(f32, f32, u8)]) -> Vec<u8> {
        (0..512)
            .map(|i| {
                let f = i as f32 * BIN;
                peaks
                    .iter()
                    .filter(|(lo, hi, _)| f >= *lo && f < *hi)
                    .map(|p| p.2)
                    .max()
                    .unwrap_or(40)
            })
            .collect()
    }

    fn weights(m: Mouth) -> [f32; 5] {
        [m.aa, m.ih, m.ou, m.ee, m.oh]
    }

    fn dominant(m: Mouth) -> &'static str {
        let names = ["aa", "ih", "ou", "ee", "oh"];
        let w = weights(m);
        let i = (0..5).max_by(|&a, &b| w[a].total_cmp(&w[b])).unwrap();
        names[i]
    }

    #[test]
    fn silence_and_quiet_noise_keep_the_mouth_at_rest() {
        assert_eq!(visemes(&[0; 512], BIN), Mouth::default());
        assert_eq!(visemes(&spectrum(&[]), BIN), Mouth::default());
        assert_eq!(visemes(&[], BIN), Mouth::default());
    }

    #[test]
    fn formant_regions_pick_the_vowel() {
        // "ah": strong F1 around 800 Hz.
        let aa = visemes(
            &spectrum(&[
                (150.0, 550.0, 150),
                (550.0, 1100.0, 230),
                (1100.0, 2600.0, 140),
            ]),
            BIN,
        );
        assert_eq!(dominant(aa), "aa", "{aa:?}");
        // "ee": low F1, high F2.
        let ee = visemes(
            &spectrum(&[
                (150.0, 550.0, 200),
                (550.0, 1100.0, 90),
                (1100.0, 2600.0, 230),
            ]),
            BIN,
        );
        assert!(matches!(dominant(ee), "ee" | "ih"), "{ee:?}");
        // "oo": everything low.
        let ou = visemes(
            &spectrum(&[
                (150.0, 550.0, 240),
                (550.0, 1100.0, 110),
                (1100.0, 2600.0, 60),
            ]),
            BIN,
        );
        assert_eq!(dominant(ou), "ou", "{ou:?}");
    }

    #[test]
    fn at_most_two_shapes_and_louder_opens_wider() {
        let loud = visemes(
            &spectrum(&[
                (150.0, 550.0, 200),
                (550.0, 1100.0, 230),
                (1100.0, 2600.0, 170),
            ]),
            BIN,
        );
        let soft = visemes(
            &spectrum(&[
                (150.0, 550.0, 120),
                (550.0, 1100.0, 140),
                (1100.0, 2600.0, 100),
            ]),
            BIN,
        );
        for m in [loud, soft] {
            let w = weights(m);
            assert!(w.iter().filter(|&&x| x > 0.0).count() <= 2, "{m:?}");
            assert!(w.iter().sum::<f32>() <= 1.0 + 1e-5, "{m:?}");
        }
        assert!(weights(loud).iter().sum::<f32>() > weights(soft).iter().sum::<f32>());
    }

    #[test]
    fn provider_timings_give_the_mouth_of_the_character_being_spoken() {
        let t = crate::shared::tts::Timings {
            chars: ["H", "e", "l", "l", "o", " ", "m", "u"]
                .map(String::from)
                .to_vec(),
            start_ms: vec![0, 80, 160, 220, 280, 400, 450, 520],
            end_ms: vec![80, 160, 220, 280, 400, 450, 520, 650],
        };
        assert_eq!(from_timings(&t, 100.0).ee, 0.8);
        assert_eq!(dominant(from_timings(&t, 300.0)), "oh");
        assert_eq!(
            from_timings(&t, 420.0),
            Mouth::default(),
            "rest between words"
        );
        assert_eq!(
            from_timings(&t, 460.0),
            Mouth::default(),
            "lips closed on m"
        );
        assert_eq!(dominant(from_timings(&t, 600.0)), "ou");
        assert_eq!(from_timings(&t, 700.0), Mouth::default(), "after the end");
        assert!(from_timings(&t, 10.0).aa > 0.0 && from_timings(&t, 10.0).aa < 0.5);
    }

    #[test]
    fn the_smoother_opens_faster_than_it_closes_and_comes_to_rest() {
        let open = Mouth {
            aa: 1.0,
            ..Mouth::default()
        };
        let mut s = Smoother::default();
        let after_open = s.step(open, 0.05).aa;
        let mut c = Smoother { current: open };
        let after_close = 1.0 - c.step(Mouth::default(), 0.05).aa;
        assert!(
            after_open > after_close,
            "open {after_open} close {after_close}"
        );
        for _ in 0..40 {
            c.step(Mouth::default(), 1.0 / 30.0);
        }
        assert!(c.at_rest());
        // A long pause between frames does not overshoot.
        let mut j = Smoother::default();
        assert!(j.step(open, 10.0).aa <= 1.0);
    }
}
