//! One curve's values by row, kept with a summary per block of `BLOCK` rows (lowest, highest,
//! first and last value) so that thinning a long history for drawing reads a block's summary
//! instead of its 32 values: three overlaid runs of 100k steps draw within a frame's budget.
//! Where a chart column spans fewer than `SNAP` blocks, `thin` gives exactly what
//! `history::thin` gives; where it spans more, whole blocks go to the column their first step
//! falls in (a column's edge moves by less than a block, under 1/8 of its width), so a frame
//! streams the block summaries instead of touching the values at every column's edges (the
//! cache misses of that dominated a frame of three 100k-step runs).

/// Rows per block.
pub const BLOCK: usize = 32;
/// Blocks per chart column from which columns are snapped to whole blocks.
pub const SNAP: usize = 8;

/// The values of a run of rows, NaN skipped: lo > hi (and first NaN) when there are none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Block {
    pub lo: f64,
    pub hi: f64,
    pub first: f64,
    pub last: f64,
}

impl Default for Block {
    fn default() -> Self {
        Self { lo: f64::INFINITY, hi: f64::NEG_INFINITY, first: f64::NAN, last: f64::NAN }
    }
}

impl Block {
    /// A chart column's points for these rows, first at step `first_x`, last at `last_x`: its
    /// lowest and highest value in the order the values run (one point if they are equal,
    /// none if every value was NaN).
    fn push_points(&self, out: &mut Vec<(f64, f64)>, first_x: f64, last_x: f64) {
        if self.lo > self.hi {
            return; // nothing but NaN
        }
        if self.lo == self.hi {
            out.push((first_x, self.lo));
        } else if self.first <= self.last {
            out.extend([(first_x, self.lo), (last_x, self.hi)]);
        } else {
            out.extend([(first_x, self.hi), (last_x, self.lo)]);
        }
    }

    fn take(&mut self, y: f64) {
        if y.is_nan() {
            return;
        }
        self.lo = self.lo.min(y);
        self.hi = self.hi.max(y);
        if self.first.is_nan() {
            self.first = y;
        }
        self.last = y;
    }

    fn join(&mut self, b: &Block) {
        if b.first.is_nan() {
            return;
        }
        self.lo = self.lo.min(b.lo);
        self.hi = self.hi.max(b.hi);
        if self.first.is_nan() {
            self.first = b.first;
        }
        self.last = b.last;
    }

    fn of(ys: &[f64]) -> Block {
        let mut b = Block::default();
        ys.iter().for_each(|&y| b.take(y));
        b
    }
}

/// Values by row (NaN where a row has none) and the summary of each whole block.
#[derive(Debug, Clone, Default)]
pub struct Column {
    values: Vec<f64>,
    blocks: Vec<Block>,
}

impl Column {
    /// `n` rows without a value.
    pub fn missing(n: usize) -> Self {
        Column { values: vec![f64::NAN; n], blocks: vec![Block::default(); n / BLOCK] }
    }

    pub fn from_values(values: Vec<f64>) -> Self {
        let blocks = values.chunks_exact(BLOCK).map(Block::of).collect();
        Column { values, blocks }
    }

    pub fn push(&mut self, y: f64) {
        self.values.push(y);
        if self.values.len().is_multiple_of(BLOCK) {
            self.blocks.push(Block::of(&self.values[self.values.len() - BLOCK..]));
        }
    }

    pub fn truncate(&mut self, n: usize) {
        self.values.truncate(n);
        self.blocks.truncate(n / BLOCK);
    }

    pub fn values(&self) -> &[f64] {
        &self.values
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The summary of rows [a, b): whole blocks from their summaries, the ends value by value.
    fn summary(&self, a: usize, b: usize) -> Block {
        let (first_block, end_block) = (a.div_ceil(BLOCK), b / BLOCK);
        if end_block <= first_block {
            return Block::of(&self.values[a..b]);
        }
        let mut s = Block::of(&self.values[a..first_block * BLOCK]);
        for blk in &self.blocks[first_block..end_block] {
            s.join(blk);
        }
        s.join(&Block::of(&self.values[end_block * BLOCK..b]));
        s
    }
}

/// Reduces rows [lo, hi) of `column` (`xs` the steps of every row, ascending) over the steps
/// [x0, x1] to at most two points per column of `columns` equal columns: the column's lowest
/// and highest value at its first and last step, in the order the values run. As
/// `history::thin`, which reads every value.
pub fn thin(
    xs: &[f64],
    column: &Column,
    (lo, hi): (usize, usize),
    x0: f64,
    x1: f64,
    columns: usize,
) -> Vec<(f64, f64)> {
    let columns = columns.max(1);
    if hi.saturating_sub(lo) >= SNAP * BLOCK * columns {
        return thin_snapped(xs, column, (lo, hi), x0, x1, columns);
    }
    let width = (x1 - x0).max(f64::MIN_POSITIVE);
    let xs = &xs[..hi];
    let mut out = Vec::with_capacity(2 * columns);
    let mut start = lo;
    for c in 0..columns {
        let end = if c + 1 == columns {
            hi
        } else {
            let edge = x0 + width * (c + 1) as f64 / columns as f64;
            first_from(xs, start, edge)
        };
        if end == start {
            continue;
        }
        column.summary(start, end).push_points(&mut out, xs[start], xs[end - 1]);
        start = end;
    }
    out
}

/// `thin` with whole blocks: each goes to the chart column its first step falls in; the
/// window's partial blocks at either end go by their first row the same way.
fn thin_snapped(
    xs: &[f64],
    column: &Column,
    (lo, hi): (usize, usize),
    x0: f64,
    x1: f64,
    columns: usize,
) -> Vec<(f64, f64)> {
    let width = (x1 - x0).max(f64::MIN_POSITIVE);
    let column_of = |x: f64| (((x - x0) / width * columns as f64).max(0.0) as usize).min(columns - 1);
    let (a, b) = (lo.div_ceil(BLOCK).min(hi / BLOCK) * BLOCK, hi / BLOCK * BLOCK);
    let (a, b) = if a >= b { (lo, lo) } else { (a, b) };
    let head = (a > lo).then(|| (lo, a, Block::of(&column.values[lo..a])));
    let tail = (hi > b).then(|| (b, hi, Block::of(&column.values[b..hi])));
    let whole = (a / BLOCK..b / BLOCK).map(|k| (k * BLOCK, (k + 1) * BLOCK, column.blocks[k]));
    let mut out = Vec::with_capacity(2 * columns);
    // the column being gathered: (its column, first row, last row, summary)
    let mut open: Option<(usize, usize, usize, Block)> = None;
    let flush = |out: &mut Vec<(f64, f64)>, (_, first, last, s): (usize, usize, usize, Block)| {
        s.push_points(out, xs[first], xs[last])
    };
    for (start, end, block) in head.into_iter().chain(whole).chain(tail) {
        let c = column_of(xs[start]);
        match open.as_mut() {
            Some(o) if o.0 == c => {
                o.2 = end - 1;
                o.3.join(&block);
            }
            _ => {
                if let Some(o) = open.take() {
                    flush(&mut out, o);
                }
                open = Some((c, start, end - 1, block));
            }
        }
    }
    if let Some(o) = open {
        flush(&mut out, o);
    }
    out
}

/// The first row from `from` on whose step is at least `edge` (`xs.len()` if none): galloping
/// forward, then bisecting the last stride. The next column's edge lies a column's rows ahead,
/// so this reads memory near `from` instead of bisecting the whole history, whose cache
/// misses dominated a frame of three 100k-step runs.
fn first_from(xs: &[f64], from: usize, edge: f64) -> usize {
    let (mut lo, mut stride) = (from, 1);
    loop {
        let probe = from + stride - 1;
        if probe >= xs.len() {
            return lo + xs[lo..].partition_point(|&x| x < edge);
        }
        if xs[probe] >= edge {
            return lo + xs[lo..probe].partition_point(|&x| x < edge);
        }
        lo = probe + 1;
        stride *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::history;

    /// Against `history::thin` on values with spikes and NaN runs, for windows that start and
    /// end inside blocks and widths from one column to more columns than rows.
    /// The snapped rule written value by value: row i goes to the column of the first step of
    /// its block (the window's partial end blocks counting as blocks), then each column gives
    /// its extremes as `history::thin` does.
    fn snapped_by_value(xs: &[f64], ys: &[f64], (lo, hi): (usize, usize), columns: usize) -> Vec<(f64, f64)> {
        let (x0, x1) = (xs[lo], xs[hi - 1]);
        let column_of = |x: f64| (((x - x0) / (x1 - x0) * columns as f64) as usize).min(columns - 1);
        let owner = |i: usize| column_of(xs[(i / BLOCK * BLOCK).max(lo)]);
        let mut out = Vec::new();
        let mut i = lo;
        while i < hi {
            let c = owner(i);
            let mut j = i;
            while j < hi && owner(j) == c {
                j += 1;
            }
            // one column's rows [i, j): history::thin with a single column gives its extremes
            out.extend(history::thin(&xs[i..j], &ys[i..j], xs[i], xs[j - 1], 1));
            i = j;
        }
        out
    }

    #[test]
    fn galloping_finds_what_bisecting_finds() {
        let xs: Vec<f64> = (0..1000).map(|i| (i * 2) as f64).collect();
        for from in [0, 1, 17, 500, 999, 1000] {
            for edge in [-1.0, 0.0, 1.0, 2.0, 35.0, 36.0, 999.0, 1998.0, 1999.0, 5000.0] {
                let want = from + xs[from..].partition_point(|&x| x < edge);
                assert_eq!(first_from(&xs, from, edge), want, "from {from}, edge {edge}");
            }
        }
    }

    #[test]
    fn block_thinning_equals_thinning_every_value() {
        let n = 10_000;
        let xs: Vec<f64> = (0..n).map(|i| (i * 3 + 1) as f64).collect();
        let ys: Vec<f64> = (0..n)
            .map(|i| match i {
                777 => 40.0,
                2_000..2_300 => f64::NAN,
                i if i % 97 == 0 => f64::NAN,
                _ => ((i as f64) * 0.37).sin() * (1.0 + (i % 13) as f64),
            })
            .collect();
        let mut column = Column::default();
        ys.iter().for_each(|&y| column.push(y));
        assert_eq!(column.blocks.len(), n / BLOCK);
        for (lo, hi) in [(0, n), (5, n - 3), (130, 4_100), (1_990, 2_310), (64, 128), (10, 20)] {
            for columns in [1, 7, 100, 317, 20_000] {
                let (x0, x1) = (xs[lo], xs[hi - 1]);
                let fast = thin(&xs, &column, (lo, hi), x0, x1, columns);
                if hi - lo >= SNAP * BLOCK * columns {
                    assert_eq!(
                        fast,
                        snapped_by_value(&xs, &ys, (lo, hi), columns),
                        "rows {lo}..{hi}, {columns} columns"
                    );
                } else {
                    let slow = history::thin(&xs[lo..hi], &ys[lo..hi], x0, x1, columns);
                    assert_eq!(fast, slow, "rows {lo}..{hi}, {columns} columns");
                }
            }
        }
        // built at once, pushed one by one, or cut back and regrown: the same blocks (bit for
        // bit: an all-NaN block's first value is NaN, which no == matches)
        let bits = |c: &Column| -> Vec<[u64; 4]> {
            c.blocks.iter().map(|b| [b.lo, b.hi, b.first, b.last].map(f64::to_bits)).collect()
        };
        let whole = Column::from_values(ys.clone());
        assert_eq!(bits(&whole), bits(&column));
        column.truncate(5_000);
        ys[5_000..].iter().for_each(|&y| column.push(y));
        assert_eq!(bits(&whole), bits(&column));
    }
}
