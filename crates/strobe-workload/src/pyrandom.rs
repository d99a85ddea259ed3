//! CPython's `random` module, bit for bit, for the operations vLLM's benchmark uses to order data
//! sets: `random.seed(n)`, `random.shuffle(x)` and `random.choice(x)`. With it strobe sends the
//! same ShareGPT requests in the same order as `vllm bench serve --seed n`.
//!
//! The generator is MT19937 seeded by CPython's `init_by_array` over the seed's 32-bit words.

const N: usize = 624;
const M: usize = 397;

/// CPython's `random.Random`, for the operations listed in the module docs.
pub struct PyRandom {
    mt: [u32; N],
    index: usize,
}

impl PyRandom {
    /// The state of `random.seed(seed)` for a non-negative integer seed.
    pub fn new(seed: u64) -> PyRandom {
        let mut r = PyRandom {
            mt: [0; N],
            index: N,
        };
        // The seed's 32-bit words, least significant first; zero is one word, [0].
        let key: Vec<u32> = if seed >> 32 == 0 {
            vec![seed as u32]
        } else {
            vec![seed as u32, (seed >> 32) as u32]
        };
        r.init_by_array(&key);
        r
    }

    fn init_genrand(&mut self, s: u32) {
        self.mt[0] = s;
        for i in 1..N {
            let prev = self.mt[i - 1];
            self.mt[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        self.index = N;
    }

    fn init_by_array(&mut self, key: &[u32]) {
        self.init_genrand(19_650_218);
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
        }
        self.mt[0] = 0x8000_0000;
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            for k in 0..N {
                let y = (self.mt[k] & 0x8000_0000) | (self.mt[(k + 1) % N] & 0x7fff_ffff);
                let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
                self.mt[k] = self.mt[(k + M) % N] ^ (y >> 1) ^ mag;
            }
            self.index = 0;
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `random.getrandbits(k)` for `k <= 64`.
    pub fn getrandbits(&mut self, k: u32) -> u64 {
        assert!(k <= 64, "getrandbits supports up to 64 bits here");
        match k {
            0 => 0,
            1..=32 => (self.next_u32() >> (32 - k)) as u64,
            _ => {
                // Words least significant first; the last one keeps its top bits.
                let lo = self.next_u32() as u64;
                let hi = (self.next_u32() >> (64 - k)) as u64;
                lo | (hi << 32)
            }
        }
    }

    /// `random._randbelow(n)` (the getrandbits variant): uniform in `0..n`, by rejection.
    pub fn randbelow(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let k = 64 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `random.shuffle(items)`.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.randbelow(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }

    /// The index `random.choice(seq)` picks for a sequence of `len` items.
    pub fn choice_index(&mut self, len: usize) -> usize {
        self.randbelow(len as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values printed by CPython 3.12 (`random.seed(s); random.getrandbits(...)`, etc.).
    #[test]
    fn getrandbits_matches_cpython() {
        for (seed, words, b50, b64) in [
            (
                0u64,
                [3626764237u64, 1654615998, 3255389356],
                473523967952514u64,
                4776171008201404212u64,
            ),
            (
                1,
                [577090037, 2444712010, 3639700191],
                859933207772720,
                4705193143269049553,
            ),
            (
                42,
                [2746317213, 478163327, 107420369],
                309657442074875,
                4117511471858006928,
            ),
            (
                (1 << 40) + 7,
                [2635837658, 3209733218, 3500038837],
                1063991981659835,
                10521851240000246337,
            ),
        ] {
            let mut r = PyRandom::new(seed);
            assert_eq!(
                [r.getrandbits(32), r.getrandbits(32), r.getrandbits(32)],
                words,
                "seed {seed}"
            );
            assert_eq!(r.getrandbits(50), b50);
            assert_eq!(r.getrandbits(64), b64);
        }
    }

    #[test]
    fn shuffle_and_choice_match_cpython() {
        let check = |seed: u64, n: usize, head: [usize; 5], tail: [usize; 3], weighted: u128| {
            let mut x: Vec<usize> = (0..n).collect();
            PyRandom::new(seed).shuffle(&mut x);
            assert_eq!(x[..5], head, "seed {seed} n {n}");
            assert_eq!(x[n - 3..], tail);
            let sum = x
                .iter()
                .enumerate()
                .map(|(i, &v)| i as u128 * v as u128)
                .sum::<u128>();
            assert_eq!(sum % ((1 << 61) - 1), weighted);
        };
        check(0, 10, [7, 8, 1, 5, 3], [0, 9, 6], 195);
        check(
            0,
            1000,
            [439, 621, 160, 549, 237],
            [776, 394, 864],
            251292570,
        );
        check(
            0,
            70000,
            [65343, 65886, 45933, 7322, 64281],
            [5306, 55125, 50494],
            85695019701441,
        );
        check(1, 10, [6, 8, 9, 7, 5], [4, 1, 2], 136);
        check(
            1,
            1000,
            [852, 836, 280, 575, 208],
            [867, 582, 137],
            249757595,
        );
        check(
            1,
            70000,
            [36213, 64457, 17134, 37040, 66275],
            [33432, 8271, 17611],
            85900195547243,
        );
        let mut r = PyRandom::new(5);
        let picks: Vec<usize> = (0..10).map(|_| r.choice_index(7)).collect();
        assert_eq!(picks, [4, 2, 5, 2, 6, 5, 6, 5, 5, 4]);
    }
}
