//! Envoy's response flags as a bitset. Metrics and the access log want a
//! `&'static str`, so every combination's text is built once, in Envoy's
//! order, and a request only indexes it. UAEX (denied by ext_authz) is rare
//! and set on local replies only: its combinations get their own table,
//! built on first use, so the common table stays 4096 entries. (RBAC
//! denials are no flag in Envoy: they show in the access log's details.)

use std::sync::LazyLock;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags(u16);

/// In the order Envoy prints them.
const NAMES: [&str; 12] = [
    "UH", "UT", "UF", "UC", "UO", "NR", "DI", "FI", "DC", "URX", "DPE", "NC",
];

static TEXT: LazyLock<Vec<Box<str>>> = LazyLock::new(|| table(None));
static TEXT_UAEX: LazyLock<Vec<Box<str>>> = LazyLock::new(|| table(Some("UAEX")));

/// Bits past the common table's.
const LOW: u16 = (1 << NAMES.len()) - 1;

fn table(extra: Option<&'static str>) -> Vec<Box<str>> {
    (0..1u32 << NAMES.len())
        .map(|bits| {
            let set: Vec<&str> = NAMES
                .iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .map(|(_, n)| *n)
                .chain(extra)
                .collect();
            if set.is_empty() {
                Box::from("-")
            } else {
                set.join(",").into_boxed_str()
            }
        })
        .collect()
}

impl Flags {
    pub const NONE: Flags = Flags(0);
    pub const UH: Flags = Flags(1);
    pub const UT: Flags = Flags(1 << 1);
    pub const UF: Flags = Flags(1 << 2);
    pub const UC: Flags = Flags(1 << 3);
    pub const UO: Flags = Flags(1 << 4);
    pub const NR: Flags = Flags(1 << 5);
    pub const DI: Flags = Flags(1 << 6);
    pub const FI: Flags = Flags(1 << 7);
    pub const DC: Flags = Flags(1 << 8);
    pub const URX: Flags = Flags(1 << 9);
    pub const DPE: Flags = Flags(1 << 10);
    pub const NC: Flags = Flags(1 << 11);
    /// Denied by the external authorizer (AuthorizationPolicy CUSTOM).
    pub const UAEX: Flags = Flags(1 << 12);

    #[must_use]
    pub fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn as_str(self) -> &'static str {
        let text: &'static [Box<str>] = if self.0 & Flags::UAEX.0 != 0 {
            TEXT_UAEX.as_slice()
        } else {
            TEXT.as_slice()
        };
        text.get(usize::from(self.0 & LOW)).map_or("-", |t| &**t)
    }
}

impl std::fmt::Display for Flags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_in_envoy_order() {
        assert_eq!(Flags::NONE.as_str(), "-");
        assert_eq!(Flags::URX.with(Flags::UF).as_str(), "UF,URX");
        assert_eq!(Flags::FI.with(Flags::DI).as_str(), "DI,FI");
        assert_eq!(Flags::NC.as_str(), "NC");
        assert!(!Flags::UT.with(Flags::URX).is_empty());
        assert_eq!(Flags::UAEX.as_str(), "UAEX");
        assert_eq!(Flags::UAEX.with(Flags::DC).as_str(), "DC,UAEX");
    }
}
