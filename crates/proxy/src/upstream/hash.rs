//! Consistent hashing: the request's hash key, and ring-hash and maglev
//! tables built once per endpoint set (group) and shared by every request.

use std::net::IpAddr;

use http::HeaderValue;
use rand::Rng;

use super::RequestContext;
use crate::config::cluster::{HashAlgorithm, HashKey};

/// A stable 64-bit hash (FNV-1a with a strong final mix), the same in every
/// proxy so all of them send a key to the same endpoint.
pub fn hash64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The request's hash, and a cookie to set when one was generated. None: the
/// request has no key (the caller falls back to random).
pub fn request_hash(key: &HashKey, ctx: &RequestContext<'_>) -> Option<(u64, Option<HeaderValue>)> {
    match key {
        HashKey::Header(name) => {
            // Envoy hashes every value of a repeated header; the first is enough
            // to keep one client on one endpoint.
            let v = ctx.headers.get(name)?;
            Some((hash64(v.as_bytes()), None))
        }
        HashKey::SourceIp => {
            let ip = ctx.source?;
            let h = match ip {
                IpAddr::V4(v4) => hash64(&v4.octets()),
                IpAddr::V6(v6) => hash64(&v6.octets()),
            };
            Some((h, None))
        }
        HashKey::QueryParameter(name) => {
            let query = ctx.query?;
            let value = query.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (k == name).then_some(v)
            })?;
            Some((hash64(value.as_bytes()), None))
        }
        HashKey::Cookie {
            name,
            path,
            ttl,
            attributes,
        } => {
            if let Some(v) = cookie(ctx, name) {
                return Some((hash64(v.as_bytes()), None));
            }
            let ttl = (*ttl)?;
            let value = format!("{:016x}", rand::rng().random::<u64>());
            // Envoy's order: attributes after the path, HttpOnly last.
            let header = format!(
                "{name}={value}; Max-Age={}; Path={path}{attributes}; HttpOnly",
                ttl.as_secs()
            );
            let header = HeaderValue::from_str(&header).ok()?;
            Some((hash64(value.as_bytes()), Some(header)))
        }
    }
}

fn cookie<'a>(ctx: &RequestContext<'a>, name: &str) -> Option<&'a str> {
    ctx.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// A table from hash to a member index of one endpoint group.
#[derive(Debug)]
pub enum HashTable {
    /// Sorted (hash, member) points.
    Ring(Vec<(u64, u32)>),
    Maglev(Vec<u32>),
}

impl HashTable {
    /// `names` identify the members (their addresses); `weights` their weights.
    pub fn build(algorithm: HashAlgorithm, names: &[String], weights: &[u32]) -> HashTable {
        match algorithm {
            HashAlgorithm::RingHash { minimum_ring_size } => {
                HashTable::Ring(ring(names, weights, minimum_ring_size))
            }
            HashAlgorithm::Maglev { table_size } => {
                HashTable::Maglev(maglev(names, weights, table_size))
            }
        }
    }

    /// The member for `hash`, then the following ones for probing when the
    /// first is unavailable (`attempt` counts from 0).
    pub fn lookup(&self, hash: u64, attempt: usize) -> Option<u32> {
        match self {
            HashTable::Ring(points) => {
                if points.is_empty() {
                    return None;
                }
                let start = points.partition_point(|(h, _)| *h < hash);
                points.get((start + attempt) % points.len()).map(|p| p.1)
            }
            HashTable::Maglev(table) => {
                if table.is_empty() {
                    return None;
                }
                let len = table.len() as u64;
                table
                    .get(((hash % len) as usize + attempt) % table.len())
                    .copied()
            }
        }
    }
}

/// Envoy's ring: each member gets points in proportion to its weight, at
/// least `min_size` in all, hashing `address_i`.
fn ring(names: &[String], weights: &[u32], min_size: u64) -> Vec<(u64, u32)> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if total == 0 {
        return Vec::new();
    }
    let min_weight = weights.iter().copied().min().unwrap_or(1).max(1);
    // Scale so the lightest member still gets at least one point.
    let per_unit = (min_size as f64 / total as f64).max(1.0 / f64::from(min_weight));
    let mut points = Vec::new();
    for (i, (name, w)) in names.iter().zip(weights).enumerate() {
        let count = (per_unit * f64::from(*w)).ceil() as u64;
        for n in 0..count {
            let key = format!("{name}_{n}");
            points.push((hash64(key.as_bytes()), i as u32));
        }
    }
    points.sort_unstable();
    points
}

/// Envoy's weighted maglev: members take turns filling their permutation's
/// next free slot, heavier members more often.
fn maglev(names: &[String], weights: &[u32], size: u64) -> Vec<u32> {
    if names.is_empty() {
        return Vec::new();
    }
    let m = size as usize;
    let max_weight = f64::from(weights.iter().copied().max().unwrap_or(1).max(1));
    struct Entry {
        offset: u64,
        skip: u64,
        next: u64,
        weight: f64,
        target: f64,
    }
    let mut entries: Vec<Entry> = names
        .iter()
        .zip(weights)
        .map(|(name, w)| {
            let h = hash64(name.as_bytes());
            Entry {
                offset: h % size,
                skip: mix(h ^ 0x9e37_79b9_7f4a_7c15) % (size - 1) + 1,
                next: 0,
                weight: f64::from(*w) / max_weight,
                target: 0.0,
            }
        })
        .collect();
    let mut table = vec![u32::MAX; m];
    let mut filled = 0;
    let mut iteration: f64 = 1.0;
    while filled < m {
        for (i, e) in entries.iter_mut().enumerate() {
            if filled >= m {
                break;
            }
            if iteration * e.weight < e.target {
                continue;
            }
            e.target += 1.0;
            let mut c = ((e.offset + e.skip * e.next) % size) as usize;
            while table[c] != u32::MAX {
                e.next += 1;
                c = ((e.offset + e.skip * e.next) % size) as usize;
            }
            table[c] = i as u32;
            e.next += 1;
            filled += 1;
        }
        iteration += 1.0;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:80")).collect()
    }

    /// Removing one of five members keeps most keys where they were: the
    /// removed member's 20% move, plus the share new ring points (the ring
    /// keeps its minimum size) or maglev's table refill take over.
    fn stability(algorithm: HashAlgorithm, min_kept: f64) {
        let before = HashTable::build(algorithm, &names(5), &[1; 5]);
        let remaining: Vec<String> = names(5).into_iter().take(4).collect();
        let after = HashTable::build(algorithm, &remaining, &[1; 4]);
        let keys = 10_000u64;
        let mut kept = 0;
        let mut counts = [0usize; 5];
        for k in 0..keys {
            let h = hash64(&k.to_le_bytes());
            let a = before.lookup(h, 0).expect("member");
            counts[a as usize] += 1;
            let b = after.lookup(h, 0).expect("member");
            if a == b {
                kept += 1;
            }
        }
        assert!(
            kept as f64 > min_kept * keys as f64,
            "{algorithm:?}: kept {kept}"
        );
        for c in counts {
            assert!(
                (1300..2700).contains(&c),
                "{algorithm:?}: uneven {counts:?}"
            );
        }
    }

    #[test]
    fn ring_hash_is_stable_when_an_endpoint_leaves() {
        stability(
            HashAlgorithm::RingHash {
                minimum_ring_size: 1024,
            },
            0.65,
        );
    }

    #[test]
    fn maglev_is_stable_when_an_endpoint_leaves() {
        stability(HashAlgorithm::Maglev { table_size: 65537 }, 0.75);
    }

    #[test]
    fn weights_shape_the_tables() {
        for algorithm in [
            HashAlgorithm::RingHash {
                minimum_ring_size: 1024,
            },
            HashAlgorithm::Maglev { table_size: 65537 },
        ] {
            let t = HashTable::build(algorithm, &names(2), &[3, 1]);
            let heavy = (0..10_000u64)
                .filter(|k| t.lookup(hash64(&k.to_le_bytes()), 0) == Some(0))
                .count();
            assert!((6800..8200).contains(&heavy), "{algorithm:?}: {heavy}");
        }
    }
}
