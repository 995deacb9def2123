//! Per-wearer baselines: a running median over the last N accepted values (TAC outside
//! excursions, IR voltage of normal readings). The median ignores the odd outlier that a mean
//! would chase, and the window lets the baseline follow slow drift.

/// Median of the last `capacity` values pushed. Once the window is full a push replaces the
/// oldest value in the sorted copy by sliding it to the new value's place: as many moves as
/// values lie between the two (usually a handful), no allocation. Small enough to clone for
/// state snapshots.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunningMedian {
    capacity: usize,
    /// Values in arrival order (a ring once full; `next` is the oldest).
    ring: Vec<i32>,
    next: usize,
    /// The same values, sorted.
    sorted: Vec<i32>,
}

impl RunningMedian {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            ring: Vec::with_capacity(capacity),
            next: 0,
            sorted: Vec::with_capacity(capacity),
        }
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    pub fn push(&mut self, value: i32) {
        if self.ring.len() < self.capacity {
            self.ring.push(value);
            let at = self.sorted.partition_point(|v| *v < value);
            self.sorted.insert(at, value);
            return;
        }
        let old = std::mem::replace(&mut self.ring[self.next], value);
        self.next = (self.next + 1) % self.capacity;
        if old == value {
            return; // the usual case for a quiet sensor: nothing moves
        }
        let sorted = &mut self.sorted;
        // `old` is in `sorted` (every ring value is); slide its slot to where `value` belongs.
        let mut k = sorted.partition_point(|v| *v < old);
        if value > old {
            while k + 1 < sorted.len() && sorted[k + 1] < value {
                sorted[k] = sorted[k + 1];
                k += 1;
            }
        } else {
            while k > 0 && sorted[k - 1] > value {
                sorted[k] = sorted[k - 1];
                k -= 1;
            }
        }
        sorted[k] = value;
    }

    /// The median (mean of the middle two, rounded down, for an even count); `None` when empty.
    pub fn median(&self) -> Option<i32> {
        let n = self.sorted.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(self.sorted[n / 2]),
            _ => Some(
                ((self.sorted[n / 2 - 1] as i64 + self.sorted[n / 2] as i64).div_euclid(2)) as i32,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_follows_the_last_values_only() {
        let mut m = RunningMedian::new(3);
        assert_eq!(m.median(), None);
        m.push(5);
        assert_eq!(m.median(), Some(5));
        m.push(1);
        assert_eq!(m.median(), Some(3));
        m.push(100);
        assert_eq!(m.median(), Some(5));
        m.push(7); // drops 5: {1, 100, 7}
        assert_eq!(m.median(), Some(7));
        m.push(7); // drops 1
        m.push(7); // drops 100
        assert_eq!(m.median(), Some(7));
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn the_sorted_window_always_equals_a_fresh_sort() {
        let mut m = RunningMedian::new(7);
        let mut x: u64 = 1;
        let mut all = vec![];
        for _ in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = ((x >> 33) % 50) as i32 - 25;
            m.push(v);
            all.push(v);
            let mut window: Vec<i32> = all.iter().rev().take(7).copied().collect();
            window.sort();
            assert_eq!(m.sorted, window);
        }
    }

    #[test]
    fn duplicates_are_removed_one_at_a_time() {
        let mut m = RunningMedian::new(2);
        for v in [4, 4, 4, 9, 9] {
            m.push(v);
        }
        assert_eq!(m.median(), Some(9));
    }
}
