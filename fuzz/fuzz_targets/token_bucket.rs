//! The rate limiter's token buckets under arbitrary sequences of takes, peeks, sweeps and clock
//! steps (the clock is injected, so runs are exact):
//! - remaining tokens never exceed the burst (and, being whole tokens, are never negative);
//! - with no take in between, the tokens seen by successive peeks never go down (refill is
//!   monotone);
//! - per key, the tokens allowed since the start never exceed `burst + elapsed / interval`;
//! - a cost above the burst is never allowed and gets no retry time; any other denial names a
//!   wait no longer than refilling `cost` tokens takes.
//!
//! Input: bytes 0-2 the rate per minute (little-endian), byte 3 the burst, then 3-byte ops
//! `[kind, a, b]`: kind % 5 = 0 advance `a·256+b` ms, 1 advance `a·b·1000` ns, 2 take `b`
//! tokens from key `a`, 3 peek key `a`, 4 sweep.
#![no_main]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use task_mcp::security::ratelimit::{Key, Limiter, Quota};

enum Op {
    Advance { ms: u16 },
    AdvanceNanos { ns: u32 },
    Take { key: u8, cost: u8 },
    Peek { key: u8 },
    Sweep,
}

#[derive(Default)]
struct Seen {
    allowed: u64,
    last_peek: Option<u32>,
}

fuzz_target!(|input: &[u8]| {
    let [r0, r1, r2, burst, ops @ ..] = input else {
        return;
    };
    let per_min = u32::from_le_bytes([*r0, *r1, *r2, 0]);
    let Some(quota) = Quota::new(per_min, u32::from(*burst)) else {
        return;
    };
    let ops = ops.chunks_exact(3).map(|op| match op[0] % 5 {
        0 => Op::Advance {
            ms: u16::from_be_bytes([op[1], op[2]]),
        },
        1 => Op::AdvanceNanos {
            ns: u32::from(op[1]) * u32::from(op[2]) * 1_000,
        },
        2 => Op::Take {
            key: op[1],
            cost: op[2],
        },
        3 => Op::Peek { key: op[1] },
        _ => Op::Sweep,
    });
    let epoch = Instant::now();
    // Room for every key, so no bucket is ever evicted (eviction forgets spent tokens by design).
    let limiter = Limiter::new(quota, 4_096, epoch);
    let interval = u128::from(quota.interval_ns());
    let burst = quota.burst();
    let mut elapsed = Duration::ZERO;
    let mut seen: HashMap<u8, Seen> = HashMap::new();
    for op in ops {
        let now = epoch + elapsed;
        match op {
            Op::Advance { ms } => elapsed += Duration::from_millis(u64::from(ms)),
            Op::AdvanceNanos { ns } => elapsed += Duration::from_nanos(u64::from(ns)),
            Op::Sweep => limiter.sweep(now),
            Op::Peek { key } => {
                let d = limiter.check(&token(key), 0, now);
                assert!(d.remaining <= burst && d.limit == burst);
                let s = seen.entry(key % 8).or_default();
                if let Some(before) = s.last_peek {
                    assert!(
                        d.remaining >= before,
                        "tokens fell from {before} to {} without a take",
                        d.remaining
                    );
                }
                s.last_peek = Some(d.remaining);
            }
            Op::Take { key, cost } => {
                let cost = u32::from(cost);
                let d = limiter.check(&token(key), cost, now);
                assert!(d.remaining <= burst && d.limit == burst);
                let s = seen.entry(key % 8).or_default();
                s.last_peek = None;
                if cost > burst {
                    assert!(!d.allowed && d.retry_after.is_none());
                }
                if d.allowed {
                    assert!(d.retry_after.is_none());
                    s.allowed += u64::from(cost);
                    let bound = u128::from(burst) + elapsed.as_nanos() / interval;
                    assert!(
                        u128::from(s.allowed) <= bound,
                        "allowed {} > bound {bound}",
                        s.allowed
                    );
                } else if let Some(wait) = d.retry_after {
                    assert!(
                        wait.as_nanos() <= u128::from(cost) * interval,
                        "wait {wait:?} too long"
                    );
                }
            }
        }
    }
});

fn token(key: u8) -> Key {
    Key::Token(format!("k{}", key % 8))
}
