//! The byte formats of the metric tables (see [`crate::metrics`] for where each lives).
//!
//! - A **staging row** (one host sample not yet in a block): varints, `(series id delta,
//!   zigzag value)` pairs. Small and cheap to write; kept only until its block is written.
//! - A **raw block** (one host, up to 10 minutes): a version byte, the sample count, the
//!   timestamps as one `pco` chunk (delta-coded by pco: a regular 1 s interval costs a few
//!   bits per sample), then per series a column: its id, whether it is sparse (the series
//!   came or went inside the block; then the positions it has, as a pco chunk) and its
//!   quantised values as a pco chunk. The timestamps are shared by every series of the host,
//!   and each column is found without decoding the others.
//! - A **rollup block** (one series, an hour of 1-minute rows or a day of 1-hour rows): the
//!   start of each interval (delta) and its sample count as varints, then min, avg and max
//!   (quantised) as one pco chunk, so reading a block costs one decompression.
//!
//! Every integer is an `i64`; values are quantised by [`crate::series::quantise`].

use pco::ChunkConfig;
use pco::standalone::{simple_compress, simple_decompress};

use crate::Error;

const RAW_VERSION: u8 = 1;
const ROLLUP_VERSION: u8 = 2;

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A reader over a byte slice that fails with [`Error::Codec`] instead of panicking.
struct Cursor<'a> {
    b: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn uvarint(&mut self) -> Result<u64, Error> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self
                .b
                .split_first()
                .ok_or_else(|| Error::Codec("truncated varint".into()))?;
            self.b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Error::Codec("varint too long".into()))
    }

    fn byte(&mut self) -> Result<u8, Error> {
        let (&byte, rest) = self
            .b
            .split_first()
            .ok_or_else(|| Error::Codec("truncated block".into()))?;
        self.b = rest;
        Ok(byte)
    }

    fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let n = usize::try_from(self.uvarint()?).map_err(|_| Error::Codec("length".into()))?;
        if n > self.b.len() {
            return Err(Error::Codec("truncated chunk".into()));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Compresses integers with pco (an empty slice is an empty chunk).
pub fn compress(values: &[i64]) -> Result<Vec<u8>, Error> {
    if values.is_empty() {
        return Ok(Vec::new());
    }
    simple_compress(values, &ChunkConfig::default()).map_err(|e| Error::Codec(e.to_string()))
}

/// The inverse of [`compress`].
pub fn decompress(bytes: &[u8]) -> Result<Vec<i64>, Error> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    simple_decompress(bytes).map_err(|e| Error::Codec(e.to_string()))
}

/// Encodes one staging row: `(series id, quantised value)` pairs.
pub fn encode_staging(values: &[(i64, i64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 4 + 2);
    put_uvarint(&mut out, values.len() as u64);
    let mut prev = 0i64;
    for &(series, v) in values {
        put_uvarint(&mut out, zigzag(series.wrapping_sub(prev)));
        put_uvarint(&mut out, zigzag(v));
        prev = series;
    }
    out
}

/// Decodes a staging row.
pub fn decode_staging(bytes: &[u8]) -> Result<Vec<(i64, i64)>, Error> {
    let mut c = Cursor { b: bytes };
    let n = c.uvarint()?;
    let mut out = Vec::with_capacity(usize::try_from(n.min(4096)).unwrap_or(0));
    let mut prev = 0i64;
    for _ in 0..n {
        let series = prev.wrapping_add(unzigzag(c.uvarint()?));
        let v = unzigzag(c.uvarint()?);
        out.push((series, v));
        prev = series;
    }
    Ok(out)
}

/// Encodes a raw block: the sample times and, per series, its value at each time (`None`
/// where the series had none).
pub fn encode_raw(ts: &[i64], columns: &[(i64, Vec<Option<i64>>)]) -> Result<Vec<u8>, Error> {
    let mut out = vec![RAW_VERSION];
    put_uvarint(&mut out, ts.len() as u64);
    put_bytes(&mut out, &compress(ts)?);
    put_uvarint(&mut out, columns.len() as u64);
    for (series, vals) in columns {
        put_uvarint(&mut out, zigzag(*series));
        let dense = vals.iter().all(Option::is_some);
        out.push(u8::from(!dense));
        if !dense {
            let idx: Vec<i64> = vals
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_some())
                .map(|(i, _)| i as i64)
                .collect();
            put_bytes(&mut out, &compress(&idx)?);
        }
        let present: Vec<i64> = vals.iter().flatten().copied().collect();
        put_bytes(&mut out, &compress(&present)?);
    }
    Ok(out)
}

/// A parsed raw block: its columns are decoded only when asked for.
pub struct RawBlock<'a> {
    n: usize,
    ts: &'a [u8],
    columns: Vec<Column<'a>>,
}

/// A column of a raw block, not yet decoded: series id, positions (sparse only), values.
type Column<'a> = (i64, Option<&'a [u8]>, &'a [u8]);

impl<'a> RawBlock<'a> {
    /// Parses the block's layout (no decompression yet).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let mut c = Cursor { b: bytes };
        let v = c.byte()?;
        if v != RAW_VERSION {
            return Err(Error::Codec(format!("raw block version {v} is unknown")));
        }
        let n = usize::try_from(c.uvarint()?).map_err(|_| Error::Codec("count".into()))?;
        let ts = c.bytes()?;
        let ncol = c.uvarint()?;
        let mut columns = Vec::new();
        for _ in 0..ncol {
            let series = unzigzag(c.uvarint()?);
            let sparse = c.byte()? != 0;
            let idx = if sparse { Some(c.bytes()?) } else { None };
            columns.push((series, idx, c.bytes()?));
        }
        Ok(Self { n, ts, columns })
    }

    /// The series the block holds.
    pub fn series(&self) -> impl Iterator<Item = i64> + '_ {
        self.columns.iter().map(|c| c.0)
    }

    /// The sample times.
    pub fn times(&self) -> Result<Vec<i64>, Error> {
        let ts = decompress(self.ts)?;
        if ts.len() != self.n {
            return Err(Error::Codec("raw block: wrong number of times".into()));
        }
        Ok(ts)
    }

    /// The values of `series` as `(position, value)`, or `None` when the block lacks it.
    pub fn column(&self, series: i64) -> Result<Option<Vec<(usize, i64)>>, Error> {
        let Some((_, idx, vals)) = self.columns.iter().find(|c| c.0 == series) else {
            return Ok(None);
        };
        let vals = decompress(vals)?;
        let out: Vec<(usize, i64)> = match idx {
            None => vals.into_iter().enumerate().collect(),
            Some(idx) => {
                let idx = decompress(idx)?;
                if idx.len() != vals.len() {
                    return Err(Error::Codec("raw block: sparse column mismatch".into()));
                }
                idx.into_iter().map(|i| i as usize).zip(vals).collect()
            }
        };
        if out.iter().any(|(i, _)| *i >= self.n) {
            return Err(Error::Codec("raw block: position out of range".into()));
        }
        Ok(Some(out))
    }
}

/// One rollup interval of a series (quantised like its samples).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rollup {
    /// Start of the interval (ms since the epoch).
    pub t: i64,
    /// The lowest sample.
    pub min: i64,
    /// The mean of the samples (rounded).
    pub avg: i64,
    /// The highest sample.
    pub max: i64,
    /// How many samples (hosts, for a cluster's series) it summarises.
    pub n: i64,
}

/// Encodes rollup rows (sorted by `t`).
pub fn encode_rollups(rows: &[Rollup]) -> Result<Vec<u8>, Error> {
    let mut out = vec![ROLLUP_VERSION];
    put_uvarint(&mut out, rows.len() as u64);
    // Times and counts as varints (regular: a few bytes a block); min, avg and max as one pco
    // chunk, so a block costs one decompression (a 30-day query reads 720 blocks a series).
    let mut prev = 0i64;
    for r in rows {
        put_uvarint(&mut out, zigzag(r.t.wrapping_sub(prev)));
        put_uvarint(&mut out, zigzag(r.n));
        prev = r.t;
    }
    let mut vals = Vec::with_capacity(rows.len() * 3);
    vals.extend(rows.iter().map(|r| r.min));
    vals.extend(rows.iter().map(|r| r.avg));
    vals.extend(rows.iter().map(|r| r.max));
    put_bytes(&mut out, &compress(&vals)?);
    Ok(out)
}

/// Decodes a rollup block.
pub fn decode_rollups(bytes: &[u8]) -> Result<Vec<Rollup>, Error> {
    let mut c = Cursor { b: bytes };
    let v = c.byte()?;
    if v != ROLLUP_VERSION {
        return Err(Error::Codec(format!("rollup block version {v} is unknown")));
    }
    let n = usize::try_from(c.uvarint()?).map_err(|_| Error::Codec("count".into()))?;
    if n > bytes.len() {
        return Err(Error::Codec("rollup block: count past its end".into()));
    }
    let mut tn = Vec::with_capacity(n);
    let mut prev = 0i64;
    for _ in 0..n {
        let t = prev.wrapping_add(unzigzag(c.uvarint()?));
        tn.push((t, unzigzag(c.uvarint()?)));
        prev = t;
    }
    let vals = decompress(c.bytes()?)?;
    if vals.len() != 3 * n {
        return Err(Error::Codec("rollup block: column length mismatch".into()));
    }
    Ok(tn
        .into_iter()
        .enumerate()
        .map(|(i, (t, count))| Rollup {
            t,
            min: vals[i],
            avg: vals[n + i],
            max: vals[2 * n + i],
            n: count,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn staging_rows_round_trip() {
        let v = vec![(5, -3), (7, i64::MAX), (2, i64::MIN), (9, 0)];
        assert_eq!(decode_staging(&encode_staging(&v)).expect("decode"), v);
        assert!(decode_staging(&[3, 1]).is_err());
    }

    #[test]
    fn raw_blocks_round_trip_dense_and_sparse_columns() {
        let ts: Vec<i64> = (0..600)
            .map(|i| 1_700_000_000_000 + i * 1000 + i % 3)
            .collect();
        let dense: Vec<Option<i64>> = (0..600).map(|i| Some(i * 7 % 101)).collect();
        let sparse: Vec<Option<i64>> = (0..600).map(|i| (i >= 300).then_some(-i)).collect();
        let b = encode_raw(&ts, &[(3, dense.clone()), (9, sparse.clone())]).expect("encode");
        let blk = RawBlock::parse(&b).expect("parse");
        assert_eq!(blk.times().expect("ts"), ts);
        assert_eq!(blk.series().collect::<Vec<_>>(), [3, 9]);
        let d = blk.column(3).expect("col").expect("present");
        assert_eq!(d.len(), 600);
        assert_eq!(d[10], (10, 70));
        let s = blk.column(9).expect("col").expect("present");
        assert_eq!(s.len(), 300);
        assert_eq!(s[0], (300, -300));
        assert!(blk.column(4).expect("col").is_none());
        // Regular times and a slow value cost far less than a byte a sample.
        assert!(b.len() < 600, "{} bytes", b.len());
    }

    #[test]
    fn damaged_blocks_are_errors_not_panics() {
        let ts = [1i64, 2, 3];
        let b = encode_raw(&ts, &[(1, vec![Some(1), Some(2), Some(3)])]).expect("encode");
        for cut in 0..b.len() {
            if let Ok(blk) = RawBlock::parse(&b[..cut]) {
                let _ = blk.times();
                let _ = blk.column(1);
            }
        }
        let mut bad = b.clone();
        bad[0] = 99;
        assert!(RawBlock::parse(&bad).is_err());
        assert!(decode_rollups(&[1, 5]).is_err());
    }

    proptest! {
        #[test]
        fn rollups_round_trip(rows in proptest::collection::vec(
            (any::<i32>(), any::<i64>(), any::<i64>(), any::<i64>(), 0i64..100), 0..80)) {
            let rows: Vec<Rollup> = rows.into_iter().map(|(t, min, avg, max, n)| Rollup {
                t: i64::from(t), min, avg, max, n }).collect();
            let b = encode_rollups(&rows).expect("encode");
            prop_assert_eq!(decode_rollups(&b).expect("decode"), rows);
        }
    }
}
