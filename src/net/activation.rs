//! Activations σ of the denoisers (SPEC §2.5): `tanh`, `erf` (erf(h/√2)), `relu`, `linear`, `hermite(k)`.

use std::fmt;
use std::str::FromStr;

/// An activation function with its derivative, evaluated in `f64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Tanh,
    /// erf(h/√2), i.e. 2Φ(h) − 1.
    Erf,
    Relu,
    Linear,
    /// The probabilists' Hermite polynomial He_k.
    Hermite(u32),
}

impl Activation {
    /// σ(h).
    #[inline]
    pub fn value(self, h: f64) -> f64 {
        match self {
            Activation::Tanh => h.tanh(),
            Activation::Erf => libm::erf(h * std::f64::consts::FRAC_1_SQRT_2),
            Activation::Relu => h.max(0.0),
            Activation::Linear => h,
            Activation::Hermite(k) => hermite(k, h),
        }
    }

    /// σ'(h); for ReLU, σ'(0) = 0.
    #[inline]
    pub fn derivative(self, h: f64) -> f64 {
        match self {
            Activation::Tanh => {
                let t = h.tanh();
                1.0 - t * t
            }
            Activation::Erf => {
                // d/dh erf(h/√2) = √(2/π) e^{-h²/2}
                (2.0 / std::f64::consts::PI).sqrt() * (-0.5 * h * h).exp()
            }
            Activation::Relu => {
                if h > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Linear => 1.0,
            // He_k' = k He_{k-1}
            Activation::Hermite(0) => 0.0,
            Activation::Hermite(k) => k as f64 * hermite(k - 1, h),
        }
    }

    /// (σ(h), σ'(h)) in one call.
    #[inline]
    pub fn value_and_derivative(self, h: f64) -> (f64, f64) {
        match self {
            Activation::Tanh => {
                let t = h.tanh();
                (t, 1.0 - t * t)
            }
            _ => (self.value(h), self.derivative(h)),
        }
    }

    /// True when σ(−h) = −σ(h); then every odd Hermite coefficient ψ_k of the loss vanishes (SPEC §2.9).
    pub fn is_odd(self) -> bool {
        match self {
            Activation::Tanh | Activation::Erf | Activation::Linear => true,
            Activation::Relu => false,
            Activation::Hermite(k) => k % 2 == 1,
        }
    }

    /// True when σ has a kink (quadrature then needs a finer or composite rule).
    pub fn is_nonsmooth(self) -> bool {
        matches!(self, Activation::Relu)
    }
}

/// Probabilists' Hermite polynomial He_k(x) by the three-term recurrence He_{k+1} = x He_k − k He_{k−1}.
pub fn hermite(k: u32, x: f64) -> f64 {
    let (mut prev, mut cur) = (1.0, x);
    if k == 0 {
        return 1.0;
    }
    for j in 1..k {
        let next = x * cur - j as f64 * prev;
        prev = cur;
        cur = next;
    }
    cur
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Activation::Tanh => f.write_str("tanh"),
            Activation::Erf => f.write_str("erf"),
            Activation::Relu => f.write_str("relu"),
            Activation::Linear => f.write_str("linear"),
            Activation::Hermite(k) => write!(f, "hermite({k})"),
        }
    }
}

impl FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        match t {
            "tanh" => Ok(Activation::Tanh),
            "erf" => Ok(Activation::Erf),
            "relu" => Ok(Activation::Relu),
            "linear" => Ok(Activation::Linear),
            _ => {
                if let Some(inner) = t.strip_prefix("hermite(").and_then(|r| r.strip_suffix(')')) {
                    if let Ok(k) = inner.trim().parse::<u32>() {
                        if (1..=12).contains(&k) {
                            return Ok(Activation::Hermite(k));
                        }
                    }
                }
                Err(format!("unknown activation `{s}`; allowed: tanh, erf, relu, linear, hermite(k) with 1 ≤ k ≤ 12"))
            }
        }
    }
}

impl serde::Serialize for Activation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Activation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivatives_match_central_differences() {
        let acts = [
            Activation::Tanh,
            Activation::Erf,
            Activation::Relu,
            Activation::Linear,
            Activation::Hermite(3),
            Activation::Hermite(4),
        ];
        for act in acts {
            for &h in &[-2.3, -0.7, 0.31, 1.9] {
                let eps = 1e-6;
                let fd = (act.value(h + eps) - act.value(h - eps)) / (2.0 * eps);
                let an = act.derivative(h);
                assert!((fd - an).abs() < 1e-6 * (1.0 + an.abs()), "{act}: h={h} fd={fd} an={an}");
            }
        }
    }

    #[test]
    fn hermite_recurrence_matches_closed_forms() {
        for &x in &[-1.5, 0.0, 0.4, 2.2] {
            assert_eq!(hermite(2, x), x * x - 1.0);
            assert!((hermite(3, x) - (x * x * x - 3.0 * x)).abs() < 1e-12);
            assert!((hermite(4, x) - (x.powi(4) - 6.0 * x * x + 3.0)).abs() < 1e-12);
        }
    }

    #[test]
    fn parse_round_trips_and_rejects_unknown() {
        for s in ["tanh", "erf", "relu", "linear", "hermite(4)"] {
            assert_eq!(s.parse::<Activation>().unwrap().to_string(), s);
        }
        let err = "sigmoid".parse::<Activation>().unwrap_err();
        assert!(err.contains("allowed"), "{err}");
        assert!("hermite(0)".parse::<Activation>().is_err());
    }
}
