//! Combining input sources into units: one value from each source.
//!
//! As GNU parallel does, several sources give every combination, the first
//! source varying slowest (`::: a b ::: 1 2` gives a1 a2 b1 b2). With
//! `--link` they are paired instead, the shorter ones wrapping around
//! (`--link ::: a b c ::: 1 2` gives a1 b2 c1). A source given with `:::+`
//! or `::::+` is paired with the one before it without wrapping: the
//! shortest decides. A unit is the columns of its records, source by
//! source.

use crate::inputs::Record;

/// One job's worth of input before `-N` grouping: every column of one
/// record from each source.
pub type Unit = Vec<Vec<u8>>;

/// Sources read whole, combined lazily (a product can be far larger than
/// its sources).
pub struct Combination {
    /// Groups of paired sources; the product runs over the groups.
    groups: Vec<Group>,
    /// The odometer: the next index into each group.
    next: Vec<usize>,
    /// Units not yet produced.
    left: usize,
}

struct Group {
    sources: Vec<Vec<Record>>,
    /// Pairs by wrapping around (`--link`) rather than cutting at the
    /// shortest (`:::+`).
    wrap: bool,
}

impl Group {
    fn len(&self) -> usize {
        let lens = self.sources.iter().map(Vec::len);
        if self.wrap {
            if self.sources.iter().any(Vec::is_empty) {
                0
            } else {
                lens.max().unwrap_or(0)
            }
        } else {
            lens.min().unwrap_or(0)
        }
    }

    fn push_unit(&self, i: usize, unit: &mut Unit) {
        for source in &self.sources {
            unit.extend(source[i % source.len()].iter().cloned());
        }
    }
}

impl Combination {
    /// Combines `sources`, each with whether it is linked to the one
    /// before it; `link_all` is `--link`.
    pub fn new(sources: Vec<(Vec<Record>, bool)>, link_all: bool) -> Combination {
        let mut groups: Vec<Group> = Vec::new();
        for (records, linked) in sources {
            match groups.last_mut() {
                Some(g) if link_all || linked => g.sources.push(records),
                _ => groups.push(Group {
                    sources: vec![records],
                    wrap: link_all,
                }),
            }
        }
        let left = if groups.is_empty() {
            0
        } else {
            groups
                .iter()
                .map(Group::len)
                .try_fold(1usize, |acc, n| acc.checked_mul(n))
                .unwrap_or(usize::MAX)
        };
        Combination {
            next: vec![0; groups.len()],
            groups,
            left,
        }
    }

    /// How many units are left.
    pub fn remaining(&self) -> usize {
        self.left
    }
}

impl Iterator for Combination {
    type Item = Unit;

    fn next(&mut self) -> Option<Unit> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let mut unit = Vec::new();
        for (g, &i) in self.groups.iter().zip(&self.next) {
            g.push_unit(i, &mut unit);
        }
        // Advance the odometer: the last group turns fastest.
        for k in (0..self.groups.len()).rev() {
            self.next[k] += 1;
            if self.next[k] < self.groups[k].len() {
                break;
            }
            self.next[k] = 0;
        }
        Some(unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(vals: &[&str]) -> Vec<Record> {
        vals.iter().map(|v| vec![v.as_bytes().to_vec()]).collect()
    }

    fn all(c: Combination) -> Vec<String> {
        c.map(|u| {
            u.iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("")
        })
        .collect()
    }

    #[test]
    fn product_in_gnu_parallels_order() {
        let c = Combination::new(
            vec![(src(&["a", "b"]), false), (src(&["1", "2"]), false)],
            false,
        );
        assert_eq!(c.remaining(), 4);
        assert_eq!(all(c), ["a1", "a2", "b1", "b2"]);
    }

    #[test]
    fn link_wraps() {
        let c = Combination::new(
            vec![(src(&["a", "b", "c"]), false), (src(&["1", "2"]), false)],
            true,
        );
        assert_eq!(all(c), ["a1", "b2", "c1"]);
    }

    #[test]
    fn plus_pairs_without_wrapping() {
        // ::: a b c :::+ 1 2 3 ::: X Y :::+ 11 22
        let c = Combination::new(
            vec![
                (src(&["a", "b", "c"]), false),
                (src(&["1", "2"]), true),
                (src(&["X", "Y"]), false),
                (src(&["11", "22"]), true),
            ],
            false,
        );
        assert_eq!(all(c), ["a1X11", "a1Y22", "b2X11", "b2Y22"]);
    }

    #[test]
    fn empty_sources() {
        assert_eq!(Combination::new(vec![], false).remaining(), 0);
        let c = Combination::new(vec![(src(&["a"]), false), (src(&[]), false)], true);
        assert_eq!(c.remaining(), 0);
    }
}
