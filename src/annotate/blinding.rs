//! Blinding: each annotator sees the items in their own shuffled order, each item's two
//! stories on sides drawn by a coin. Both come from one seeded RNG and are recorded in
//! the annotator's judgment file, so the report can unblind without re-drawing.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::input::Item;

/// One item as an annotator sees it: which system's story is on which side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presentation {
    #[serde(rename = "uid", alias = "prompt_uid")]
    pub prompt_uid: String,
    pub left: String,
    pub right: String,
}

/// The order and sides for every item of a study, drawn from `seed`.
pub fn draw(items: &[Item], seed: u64) -> Vec<Presentation> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Sides first, in study order, so an item's side does not depend on the shuffle.
    let mut order: Vec<Presentation> = items
        .iter()
        .map(|item| {
            let [a, b] = [&item.stories[0].system, &item.stories[1].system];
            let (left, right) = if rng.random_bool(0.5) { (a, b) } else { (b, a) };
            Presentation { prompt_uid: item.prompt_uid.clone(), left: left.clone(), right: right.clone() }
        })
        .collect();
    order.shuffle(&mut rng);
    order
}

/// The default seed for an annotator: the first 8 bytes of SHA-256 of the name, so two
/// annotators get different orders and the same annotator the same one.
pub fn seed_for(annotator: &str) -> u64 {
    let digest = Sha256::digest(annotator.as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}
