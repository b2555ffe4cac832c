//! Next-token choice: greedy (temperature 0) or temperature + top-p with a seeded RNG.

use rand::{rngs::SmallRng, Rng, SeedableRng};

pub struct Sampler {
    pub temperature: f32,
    pub top_p: f32,
    /// Token ids never chosen (e.g. end-of-turn while a minimum length is enforced).
    pub banned: Vec<u32>,
    rng: SmallRng,
}

impl Sampler {
    pub fn new(temperature: f32, top_p: f32, seed: u64) -> Sampler {
        Sampler { temperature, top_p: top_p.clamp(1e-6, 1.0), banned: Vec::new(), rng: SmallRng::seed_from_u64(seed) }
    }

    pub fn greedy() -> Sampler {
        Sampler::new(0.0, 1.0, 0)
    }

    /// Greedy with nothing banned: the choice is the argmax alone (which a GPU runtime
    /// computes on the device).
    pub fn is_plain_greedy(&self) -> bool {
        self.temperature <= 0.0 && self.banned.is_empty()
    }

    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if !self.banned.is_empty() {
            let mut l = logits.to_vec();
            for &b in &self.banned {
                if let Some(v) = l.get_mut(b as usize) {
                    *v = f32::NEG_INFINITY;
                }
            }
            let banned = std::mem::take(&mut self.banned);
            let t = self.sample(&l);
            self.banned = banned;
            return t;
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        // Greedy, and where probabilities cannot be formed: a +inf logit (inf - inf is
        // NaN) or none above -inf (0 / 0); the argmax then picks a real maximum.
        if self.temperature <= 0.0 || !max.is_finite() {
            // First maximum wins ties, like torch.argmax; a NaN never wins.
            let mut best: Option<usize> = None;
            for (i, &v) in logits.iter().enumerate() {
                if !v.is_nan() && best.is_none_or(|b| v > logits[b]) {
                    best = Some(i);
                }
            }
            return best.unwrap_or(0) as u32;
        }
        // A NaN logit gets no probability (it would make every probability NaN).
        let mut probs: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, if l.is_nan() { 0.0 } else { ((l - max) / self.temperature).exp() }))
            .collect();
        let total: f32 = probs.iter().map(|p| p.1).sum();
        probs.iter_mut().for_each(|p| p.1 /= total);
        probs.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut cum = 0.0;
        let mut keep = probs.len();
        for (i, p) in probs.iter().enumerate() {
            cum += p.1;
            if cum >= self.top_p {
                keep = i + 1;
                break;
            }
        }
        let kept = &probs[..keep];
        let mass: f32 = kept.iter().map(|p| p.1).sum();
        let mut r = self.rng.random::<f32>() * mass;
        for p in kept {
            r -= p.1;
            if r <= 0.0 {
                return p.0;
            }
        }
        kept[keep - 1].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_and_seeded_sampling() {
        let logits = [0.1, 2.0, 2.0, -1.0];
        assert_eq!(Sampler::greedy().sample(&logits), 1);
        let draw = |seed| {
            let mut s = Sampler::new(1.0, 1.0, seed);
            (0..50).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
        // top_p small keeps only the most likely tokens (1 or 2).
        let mut s = Sampler::new(1.0, 0.1, 9);
        assert!((0..100).all(|_| matches!(s.sample(&logits), 1 | 2)));
    }

    /// A +inf logit is chosen (its probability is 1), not the last token after NaN
    /// probabilities; a banned token is not chosen because everything else is -inf.
    #[test]
    fn infinite_logits_give_the_real_maximum() {
        let mut s = Sampler::new(0.7, 0.9, 1);
        assert_eq!(s.sample(&[0.5, f32::INFINITY, 3.0, -1.0]), 1);
        assert_eq!(s.sample(&[f32::NEG_INFINITY, 2.0, f32::NEG_INFINITY]), 1);
        s.banned = vec![1];
        assert_eq!(s.sample(&[0.5, f32::INFINITY, 3.0, -1.0]), 2, "the banned +inf is not chosen");
    }

    #[test]
    fn a_nan_logit_is_never_chosen_and_does_not_spoil_the_others() {
        let logits = [f32::NAN, 0.5, 3.0, f32::NAN];
        assert_eq!(Sampler::greedy().sample(&logits), 2);
        let mut s = Sampler::new(0.7, 1.0, 1);
        let draws: Vec<u32> = (0..200).map(|_| s.sample(&logits)).collect();
        assert!(draws.iter().all(|&t| t == 1 || t == 2) && draws.contains(&2), "{draws:?}");
    }
}
