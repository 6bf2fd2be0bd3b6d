//! Agreement between two annotators who labelled the same items.

use std::collections::HashMap;
use std::hash::Hash;

/// Share of items both gave the same label; None if there are no items.
pub fn raw_agreement<L: PartialEq>(pairs: &[(L, L)]) -> Option<f64> {
    (!pairs.is_empty()).then(|| pairs.iter().filter(|(a, b)| a == b).count() as f64 / pairs.len() as f64)
}

/// Cohen's kappa: (p_o - p_e) / (1 - p_e), where p_o is the raw agreement and p_e the
/// agreement expected by chance from each annotator's own label frequencies,
/// p_e = sum over labels k of p1(k) * p2(k). None with no items, or when p_e = 1 (both
/// annotators used one and the same label throughout, so kappa is undefined).
pub fn cohens_kappa<L: Eq + Hash>(pairs: &[(L, L)]) -> Option<f64> {
    let observed = raw_agreement(pairs)?;
    let n = pairs.len() as f64;
    let mut first: HashMap<&L, f64> = HashMap::new();
    let mut second: HashMap<&L, f64> = HashMap::new();
    for (a, b) in pairs {
        *first.entry(a).or_default() += 1.0 / n;
        *second.entry(b).or_default() += 1.0 / n;
    }
    let expected: f64 = first.iter().map(|(label, p)| p * second.get(label).copied().unwrap_or(0.0)).sum();
    // p_e = 1 only when a single label was used by both; allow for rounding in the sum.
    if (1.0 - expected).abs() < 1e-12 {
        return None;
    }
    Some((observed - expected) / (1.0 - expected))
}
