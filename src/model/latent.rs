//! The non-Gaussian latent ν of the cumulant spike and its coupling to the Gaussian latent λ
//! (SPEC §2.1, tables `nu_law` and `coupling`).

use crate::rng::ScalarRng;
use std::fmt;
use std::str::FromStr;

/// τ₂ = Φ⁻¹(3/4): the `even` coupling flips the sign inside |λ| < τ₂, so P(ε = 1) = ½.
pub const TAU2: f64 = 0.674_489_750_196_081_7;
/// τ₃ = √(2 log 2): φ(τ₃) = φ(0)/2, which makes the `odd` coupling's m₁ vanish.
pub const TAU3: f64 = 1.177_410_022_515_474_7;

/// Law of ν; every law has E ν = 0 and E ν² = 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NuLaw {
    Rademacher,
    /// U[−√3, √3].
    Uniform,
    /// Density e^{−√2|x|}/√2.
    Laplace,
    /// (B − ρ)/√(ρ(1−ρ)) with B ~ Bern(ρ).
    TwoPoint(f64),
}

impl NuLaw {
    /// κ₃ = E ν³.
    pub fn kappa3(self) -> f64 {
        match self {
            NuLaw::TwoPoint(r) => (1.0 - 2.0 * r) / (r * (1.0 - r)).sqrt(),
            _ => 0.0,
        }
    }

    /// κ₄ = E ν⁴ − 3.
    pub fn kappa4(self) -> f64 {
        match self {
            NuLaw::Rademacher => -2.0,
            NuLaw::Uniform => -6.0 / 5.0,
            NuLaw::Laplace => 3.0,
            NuLaw::TwoPoint(r) => (1.0 - 6.0 * r + 6.0 * r * r) / (r * (1.0 - r)),
        }
    }

    /// E|ν|.
    pub fn mean_abs(self) -> f64 {
        match self {
            NuLaw::Rademacher => 1.0,
            NuLaw::Uniform => 3f64.sqrt() / 2.0,
            NuLaw::Laplace => std::f64::consts::FRAC_1_SQRT_2,
            NuLaw::TwoPoint(r) => 2.0 * (r * (1.0 - r)).sqrt(),
        }
    }

    /// True for the laws symmetric about 0 (all but `two_point` with ρ ≠ ½).
    pub fn is_symmetric(self) -> bool {
        match self {
            NuLaw::TwoPoint(r) => r == 0.5,
            _ => true,
        }
    }

    /// (value, probability) pairs for the discrete laws; `None` for continuous ones.
    pub fn discrete_support(self) -> Option<Vec<(f64, f64)>> {
        match self {
            NuLaw::Rademacher => Some(vec![(-1.0, 0.5), (1.0, 0.5)]),
            NuLaw::TwoPoint(r) => {
                let s = (r * (1.0 - r)).sqrt();
                Some(vec![(-r / s, 1.0 - r), ((1.0 - r) / s, r)])
            }
            _ => None,
        }
    }

    /// One draw of ν₀ from the law.
    #[inline]
    pub fn sample(self, rng: &mut ScalarRng) -> f64 {
        match self {
            NuLaw::Rademacher => rng.sign(),
            NuLaw::Uniform => 3f64.sqrt() * (2.0 * rng.uniform() - 1.0),
            NuLaw::Laplace => {
                let e = -rng.uniform_open().ln();
                rng.sign() * e * std::f64::consts::FRAC_1_SQRT_2
            }
            NuLaw::TwoPoint(r) => {
                let b = if rng.uniform() < r { 1.0 } else { 0.0 };
                (b - r) / (r * (1.0 - r)).sqrt()
            }
        }
    }
}

impl fmt::Display for NuLaw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NuLaw::Rademacher => f.write_str("rademacher"),
            NuLaw::Uniform => f.write_str("uniform"),
            NuLaw::Laplace => f.write_str("laplace"),
            NuLaw::TwoPoint(r) => write!(f, "two_point({r})"),
        }
    }
}

impl FromStr for NuLaw {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "rademacher" => Ok(NuLaw::Rademacher),
            "uniform" => Ok(NuLaw::Uniform),
            "laplace" => Ok(NuLaw::Laplace),
            t => {
                if let Some(inner) = t.strip_prefix("two_point(").and_then(|r| r.strip_suffix(')')) {
                    if let Ok(r) = inner.trim().parse::<f64>() {
                        if r > 0.0 && r < 1.0 {
                            return Ok(NuLaw::TwoPoint(r));
                        }
                    }
                }
                Err(format!("unknown nu_law `{s}`; allowed: rademacher, uniform, laplace, two_point(ρ) with 0 < ρ < 1"))
            }
        }
    }
}

/// How the sign ε of ν = |ν₀|ε depends on λ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coupling {
    Independent,
    /// ε = sign λ (order 1).
    Sign,
    /// ε = +1 iff |λ| ≥ τ₂ (order 2).
    Even,
    /// ε = sign(λ)·sign(|λ| − τ₃) (order 3).
    Odd,
}

impl Coupling {
    /// ε as a function of λ, or `None` when ε is an independent fair sign.
    #[inline]
    pub fn sign_of(self, lambda: f64) -> Option<f64> {
        let sgn = |x: f64| if x >= 0.0 { 1.0 } else { -1.0 };
        match self {
            Coupling::Independent => None,
            Coupling::Sign => Some(sgn(lambda)),
            Coupling::Even => Some(if lambda.abs() >= TAU2 { 1.0 } else { -1.0 }),
            Coupling::Odd => Some(sgn(lambda) * sgn(lambda.abs() - TAU3)),
        }
    }

    /// (m₁, m₂, m₃) = (E[λε], E[λ²ε], E[λ³ε]) in closed form (SPEC §2.1).
    pub fn moments(self) -> [f64; 3] {
        let sqrt_2_pi = (2.0 / std::f64::consts::PI).sqrt();
        let phi = |x: f64| (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
        match self {
            Coupling::Independent => [0.0; 3],
            Coupling::Sign => [sqrt_2_pi, 0.0, 2.0 * sqrt_2_pi],
            Coupling::Even => [0.0, 4.0 * TAU2 * phi(TAU2), 0.0],
            Coupling::Odd => [0.0, 0.0, 4.0 * std::f64::consts::LN_2 / (2.0 * std::f64::consts::PI).sqrt()],
        }
    }

    /// k_c = min{k : E[λ^k ε] ≠ 0}; `None` (∞) for `independent`.
    pub fn order(self) -> Option<u32> {
        match self {
            Coupling::Independent => None,
            Coupling::Sign => Some(1),
            Coupling::Even => Some(2),
            Coupling::Odd => Some(3),
        }
    }

    /// Points where ε jumps as a function of λ (for split quadrature).
    pub fn breakpoints(self) -> &'static [f64] {
        match self {
            Coupling::Independent => &[],
            Coupling::Sign => &[0.0],
            Coupling::Even => &[-TAU2, TAU2],
            Coupling::Odd => &[-TAU3, 0.0, TAU3],
        }
    }
}

impl fmt::Display for Coupling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Coupling::Independent => "independent",
            Coupling::Sign => "sign",
            Coupling::Even => "even",
            Coupling::Odd => "odd",
        })
    }
}

impl FromStr for Coupling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "independent" => Ok(Coupling::Independent),
            "sign" => Ok(Coupling::Sign),
            "even" => Ok(Coupling::Even),
            "odd" => Ok(Coupling::Odd),
            _ => Err(format!("unknown coupling `{s}`; allowed: independent, sign, even, odd")),
        }
    }
}

/// Draws (λ, ν) jointly: λ ~ N(0,1), ν = |ν₀|·ε with ε from the coupling (or ν = ν₀ when independent,
/// which also covers the asymmetric `two_point` law).
#[inline]
pub fn draw_latents(law: NuLaw, coupling: Coupling, rng: &mut ScalarRng) -> (f64, f64) {
    let lambda = rng.normal();
    let nu0 = law.sample(rng);
    let nu = match coupling.sign_of(lambda) {
        None => nu0,
        Some(eps) => nu0.abs() * eps,
    };
    (lambda, nu)
}

macro_rules! serde_via_str {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_via_str!(NuLaw);
serde_via_str!(Coupling);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_and_constants() {
        // SPEC §7 item 10.
        assert!((TAU2 - 0.674_489_750_2).abs() < 1e-10);
        assert!((TAU3 - 1.177_410_022_5).abs() < 1e-10);
        assert!((TAU3 - (2.0 * std::f64::consts::LN_2).sqrt()).abs() < 1e-15);
        let phi = |x: f64| (-0.5 * x * x).exp();
        assert!((phi(TAU3) - 0.5 * phi(0.0)).abs() < 1e-15);
        // SPEC §7 item 8 closed forms.
        assert!((Coupling::Sign.moments()[0] - 0.797_884_6).abs() < 1e-7);
        assert!((Coupling::Sign.moments()[2] - 1.595_769_1).abs() < 1e-7);
        assert!((Coupling::Even.moments()[1] - 0.857_348_2).abs() < 1e-7);
        assert!((Coupling::Odd.moments()[2] - 1.106_102_9).abs() < 1e-7);
    }

    #[test]
    fn two_point_matches_table() {
        let r = 0.3;
        let law = NuLaw::TwoPoint(r);
        let sup = law.discrete_support().unwrap();
        let m = |k: i32| sup.iter().map(|(x, p)| p * x.powi(k)).sum::<f64>();
        assert!(m(1).abs() < 1e-14);
        assert!((m(2) - 1.0).abs() < 1e-14);
        assert!((m(3) - law.kappa3()).abs() < 1e-13);
        assert!((m(4) - 3.0 - law.kappa4()).abs() < 1e-13);
        assert!((sup.iter().map(|(x, p)| p * x.abs()).sum::<f64>() - law.mean_abs()).abs() < 1e-14);
    }

    #[test]
    fn parse_errors_name_allowed_values() {
        assert!("two_point(1.5)".parse::<NuLaw>().unwrap_err().contains("0 < ρ < 1"));
        assert!("weird".parse::<Coupling>().unwrap_err().contains("independent, sign, even, odd"));
        assert_eq!("two_point(0.3)".parse::<NuLaw>().unwrap(), NuLaw::TwoPoint(0.3));
    }
}
