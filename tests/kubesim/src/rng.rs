//! A small deterministic generator for names, uids and jitter.
//!
//! The simulator needs reproducible workloads and cheap randomness, not
//! cryptographic quality, so SplitMix64 is enough.

/// SplitMix64.
#[derive(Debug, Clone)]
pub struct Rng(u64);

/// The alphabet Kubernetes uses for generated name suffixes (no vowels, so
/// no words, and no look-alike characters).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A name suffix such as the `x7k2q` of `web-5d8f7c9b6-x7k2q`.
    pub fn suffix(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| {
                let i = usize::try_from(self.below(NAME_ALPHABET.len() as u64)).unwrap_or(0);
                char::from(NAME_ALPHABET[i])
            })
            .collect()
    }

    /// `n` different suffixes: a thousand random five-letter names collide
    /// a few times in a hundred, and a name must be unique in its namespace.
    pub fn distinct_suffixes(&mut self, n: usize, len: usize) -> Vec<String> {
        let mut seen = std::collections::HashSet::with_capacity(n);
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let s = self.suffix(len);
            if seen.insert(s.clone()) {
                out.push(s);
            }
        }
        out
    }

    /// A version-4-shaped UUID.
    pub fn uuid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }
}

/// The SplitMix64 finalizer, also used on its own to hash a name into a
/// stable number.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable hash of a string (FNV-1a, then mixed).
pub fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_shaped() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!(a.uuid(), b.uuid());
        let u = a.uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        let s = a.suffix(5);
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|c| NAME_ALPHABET.contains(&c)));
    }

    #[test]
    fn distinct_suffixes_never_repeat() {
        // Two-letter names: 2,000 draws from a few hundred would repeat.
        let mut r = Rng::new(7);
        let names = r.distinct_suffixes(300, 2);
        let set: std::collections::HashSet<&String> = names.iter().collect();
        assert_eq!(set.len(), 300);
    }
}
