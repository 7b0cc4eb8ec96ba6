//! Seeded chaos for the fault tests: a run prints its seed, and the same seed replays the same
//! decisions (which fault, when, on what). Not the same timings: the processes under test keep
//! their own clocks, so a race a run hit may take a few replays to hit again.

use std::time::{SystemTime, UNIX_EPOCH};

/// xorshift64*: reproducible draws without a `rand` dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose draws depend only on `seed`.
    pub fn new(seed: u64) -> Rng {
        // Spreads small seeds, and keeps the state off zero, where xorshift stays stuck.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high, "empty range {low}..={high}");
        // The modulo bias is at most 2^-40 for the small ranges tests draw from.
        low + self.next_u64() % (high - low + 1)
    }

    /// Uniform in `0..n` (`n > 0`), e.g. an index.
    pub fn below(&mut self, n: usize) -> usize {
        self.between(0, n as u64 - 1) as usize
    }

    /// One of `choices`, each as likely as its weight.
    pub fn weighted<T: Copy>(&mut self, choices: &[(T, u64)]) -> T {
        let total: u64 = choices.iter().map(|(_, weight)| weight).sum();
        let mut at = self.between(0, total - 1);
        for (choice, weight) in choices {
            if at < *weight {
                return *choice;
            }
            at -= weight;
        }
        unreachable!("a draw below the total weight lands on a choice")
    }
}

/// `CHAOS_SEED` when set (to replay a run), otherwise a fresh one from the clock.
pub fn seed_from_env() -> u64 {
    match std::env::var("CHAOS_SEED") {
        Ok(raw) => raw
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("CHAOS_SEED must be an unsigned integer (got {raw:?})")),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |since| since.as_nanos() as u64),
    }
}

/// `CHAOS_SECONDS` when set, otherwise `default`: how long the faults go on.
pub fn seconds_from_env(default: u64) -> u64 {
    match std::env::var("CHAOS_SECONDS") {
        Ok(raw) => raw
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("CHAOS_SECONDS must be a whole number of seconds (got {raw:?})")),
        Err(_) => default,
    }
}

/// The `host:port` of a `postgres://user@host:port/db?query` URL: what a proxy forwards to.
pub fn server_address(database_url: &str) -> String {
    let rest = database_url.split_once("://").map_or(database_url, |(_, rest)| rest);
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_numbers() {
        let draws = |seed| {
            let mut rng = Rng::new(seed);
            (0..100).map(|_| rng.between(1, 6)).collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
        assert!(draws(0).iter().all(|d| (1..=6).contains(d)), "seed 0 works too");
    }

    #[test]
    fn weights_bias_the_choice() {
        let mut rng = Rng::new(42);
        let heads = (0..10_000).filter(|_| rng.weighted(&[(true, 3), (false, 1)])).count();
        assert!((7_000..8_000).contains(&heads), "{heads} of 10,000 at 3:1");
    }

    #[test]
    fn the_server_address_is_read_from_the_url() {
        assert_eq!(
            server_address("postgres://postgres@127.0.0.1:5432/postgres"),
            "127.0.0.1:5432"
        );
        assert_eq!(server_address("postgres://u:p@db:6543/x?sslmode=disable"), "db:6543");
        assert_eq!(server_address("postgresql://localhost/x"), "localhost:5432");
    }
}
