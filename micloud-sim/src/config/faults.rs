//! Fault injection as flags: a rate in percent per kind of fault, the seed of the draws and
//! the stall time (`--faults`, `--fault-seed`, `--stall-secs`). What each kind does on the
//! wire, and the draws, are in [`crate::link::faults`]; `/_sim/faults` changes them at run
//! time ([`crate::control::faults`]).

use serde_json::{json, Value};

/// The kinds of injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    ServerError,
    Stall,
    NoData,
    Deleted,
    Reset,
    Corrupt,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::ServerError,
        Kind::Stall,
        Kind::NoData,
        Kind::Deleted,
        Kind::Reset,
        Kind::Corrupt,
    ];

    /// The name used in flags, the control endpoint and the stats.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ServerError => "5xx",
            Kind::Stall => "stall",
            Kind::NoData => "nodata",
            Kind::Deleted => "deleted",
            Kind::Reset => "reset",
            Kind::Corrupt => "corrupt",
        }
    }

    /// The kind named `name` (as in [`Kind::name`]).
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name.trim())
    }

    /// Position in [`Kind::ALL`] (and in per-kind tables).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Every kind's name, comma-separated (for error messages).
pub fn kind_names() -> String {
    Kind::ALL.map(Kind::name).join(", ")
}

/// A rate in percent per kind.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates([f64; 6]);

impl Rates {
    pub fn get(&self, k: Kind) -> f64 {
        self.0[k.index()]
    }

    pub fn set(&mut self, k: Kind, percent: f64) -> Result<(), String> {
        if !(0.0..=100.0).contains(&percent) {
            return Err(format!(
                "fault rate {percent} for {} is out of range; give a percentage from 0 to 100",
                k.name()
            ));
        }
        self.0[k.index()] = percent;
        Ok(())
    }

    /// `{"5xx": 0.0, "stall": 1.5, ...}`
    pub fn to_json(self) -> Value {
        let m: serde_json::Map<String, Value> = Kind::ALL
            .into_iter()
            .map(|k| (k.name().to_string(), json!(self.get(k))))
            .collect();
        Value::Object(m)
    }
}

/// `--faults`: `kind=percent` pairs separated by commas, e.g. `reset=2,5xx=0.5`.
pub fn parse_rates(s: &str) -> Result<Rates, String> {
    let mut rates = Rates::default();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(format!("{pair:?}: write kind=percent, e.g. reset=2"));
        };
        let kind = Kind::parse(k)
            .ok_or_else(|| format!("unknown fault kind {k:?}; the kinds are {}", kind_names()))?;
        let pct: f64 = v
            .trim()
            .parse()
            .map_err(|_| format!("{v:?} is not a percentage (in {pair:?}); write e.g. 2 or 0.5"))?;
        rates.set(kind, pct)?;
    }
    Ok(rates)
}

/// Fault settings (`micloud-sim` flags, flattened into its command line).
#[derive(clap::Args, Clone, Debug)]
pub struct FaultConfig {
    /// Fault rates in percent, e.g. 'reset=2,corrupt=2,5xx=3,stall=1,nodata=3,deleted=1'
    /// (kinds: 5xx, stall, nodata, deleted, reset, corrupt; fractions allowed).
    #[arg(long, value_name = "KIND=PCT,...", value_parser = parse_rates, default_value = "")]
    pub faults: Rates,
    /// Seed of the fault draws (same seed and same requests, same faults).
    #[arg(long, default_value_t = 1)]
    pub fault_seed: u64,
    /// How long a stalled response stays silent before the connection is dropped.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub stall_secs: u64,
}

impl FaultConfig {
    /// The settings of `--faults SPEC --fault-seed SEED` (for in-process emulators).
    pub fn from_spec(spec: &str, seed: u64) -> Result<Self, String> {
        Ok(FaultConfig {
            faults: parse_rates(spec)?,
            fault_seed: seed,
            ..FaultConfig::default()
        })
    }
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            faults: Rates::default(),
            fault_seed: 1,
            stall_secs: 120,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parses_every_kind() {
        let r = parse_rates("reset=2,corrupt=2,5xx=3,stall=1,nodata=3,deleted=0.5").unwrap();
        assert_eq!(r.get(Kind::ServerError), 3.0);
        assert_eq!(r.get(Kind::Deleted), 0.5);
        assert_eq!(parse_rates("").unwrap(), Rates::default());
        assert!(parse_rates("teapot=1").unwrap_err().contains("5xx"));
        assert!(parse_rates("reset=101").is_err());
        assert!(parse_rates("reset").is_err());
    }
}
