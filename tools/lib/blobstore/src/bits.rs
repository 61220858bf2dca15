//! A plain bitmap for the page, cluster and blob-id pools.

/// A fixed-length bitmap with a count of set bits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Bits {
    words: Vec<u64>,
    len: usize,
    ones: usize,
}

impl Bits {
    pub(crate) fn new(len: usize) -> Self {
        Bits {
            words: vec![0; len.div_ceil(64)],
            len,
            ones: 0,
        }
    }

    pub(crate) fn from_bools(b: &[bool]) -> Self {
        let mut s = Self::new(b.len());
        for (i, &v) in b.iter().enumerate() {
            if v {
                s.set(i);
            }
        }
        s
    }

    pub(crate) fn to_bools(&self) -> Vec<bool> {
        (0..self.len).map(|i| self.get(i)).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn count_ones(&self) -> usize {
        self.ones
    }

    pub(crate) fn get(&self, i: usize) -> bool {
        i < self.len && self.words[i / 64] & (1 << (i % 64)) != 0
    }

    pub(crate) fn set(&mut self, i: usize) {
        if i < self.len && !self.get(i) {
            self.words[i / 64] |= 1 << (i % 64);
            self.ones += 1;
        }
    }

    pub(crate) fn clear(&mut self, i: usize) {
        if self.get(i) {
            self.words[i / 64] &= !(1 << (i % 64));
            self.ones -= 1;
        }
    }

    /// Lowest clear bit at or after `from`.
    pub(crate) fn first_clear(&self, from: usize) -> Option<usize> {
        let mut w = from / 64;
        while w < self.words.len() {
            let mut word = !self.words[w];
            if w == from / 64 {
                word &= !0u64 << (from % 64);
            }
            if word != 0 {
                let i = w * 64 + word.trailing_zeros() as usize;
                return (i < self.len).then_some(i);
            }
            w += 1;
        }
        None
    }

    pub(crate) fn grow(&mut self, len: usize) {
        if len > self.len {
            self.words.resize(len.div_ceil(64), 0);
            self.len = len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_clear_and_counts() {
        let mut b = Bits::new(130);
        for i in 0..70 {
            b.set(i);
        }
        assert_eq!(b.count_ones(), 70);
        assert_eq!(b.first_clear(0), Some(70));
        b.clear(3);
        assert_eq!(b.first_clear(0), Some(3));
        assert_eq!(b.first_clear(4), Some(70));
        for i in 70..130 {
            b.set(i);
        }
        assert_eq!(b.first_clear(4), None);
        b.grow(131);
        assert_eq!(b.first_clear(0), Some(3));
        assert_eq!(b.first_clear(4), Some(130));
    }
}
