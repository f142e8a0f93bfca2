//! The firmware's throttle word (`vcgencmd get_throttled`, or sysfs
//! `/sys/devices/platform/soc/soc:firmware/get_throttled`).
//!
//! Bits 0–3 are the state now, bits 16–19 whether it happened since boot:
//! 0 under-voltage, 1 ARM frequency capped, 2 throttled, 3 soft temperature limit.

use crate::protocol::status::{ThrottleFlagsBlock, ThrottledBlock};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled(pub u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThrottleFlags {
    pub under_voltage: bool,
    pub arm_frequency_capped: bool,
    pub throttled: bool,
    pub soft_temperature_limit: bool,
}

impl ThrottleFlags {
    fn from_nibble(n: u32) -> Self {
        ThrottleFlags {
            under_voltage: n & 1 != 0,
            arm_frequency_capped: n & 2 != 0,
            throttled: n & 4 != 0,
            soft_temperature_limit: n & 8 != 0,
        }
    }

    pub fn any(&self) -> bool {
        self.under_voltage
            || self.arm_frequency_capped
            || self.throttled
            || self.soft_temperature_limit
    }

    fn block(self) -> ThrottleFlagsBlock {
        ThrottleFlagsBlock {
            under_voltage: self.under_voltage,
            arm_frequency_capped: self.arm_frequency_capped,
            throttled: self.throttled,
            soft_temperature_limit: self.soft_temperature_limit,
        }
    }
}

impl Throttled {
    /// Parses `throttled=0x50005` (vcgencmd), `0x50005`, or sysfs's bare hex `50005`.
    pub fn parse(s: &str) -> Option<Throttled> {
        let s = s.trim().trim_end_matches('\0');
        let s = s.strip_prefix("throttled=").unwrap_or(s);
        let hex = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        if hex.is_empty() || hex.len() > 8 {
            return None;
        }
        u32::from_str_radix(hex, 16).ok().map(Throttled)
    }

    pub fn now(&self) -> ThrottleFlags {
        ThrottleFlags::from_nibble(self.0 & 0xf)
    }

    pub fn since_boot(&self) -> ThrottleFlags {
        ThrottleFlags::from_nibble((self.0 >> 16) & 0xf)
    }

    /// The `power.throttled` block (`source` is set by the caller).
    pub fn block(self) -> ThrottledBlock {
        ThrottledBlock {
            raw: format!("0x{:x}", self.0),
            current: self.now().block(),
            since_boot: self.since_boot().block(),
            source: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_now_and_since_boot() {
        let t = Throttled::parse("throttled=0x50005\n").unwrap();
        assert!(t.now().under_voltage && t.now().throttled);
        assert!(!t.now().arm_frequency_capped && !t.now().soft_temperature_limit);
        assert!(t.since_boot().under_voltage && t.since_boot().throttled);
        assert_eq!(Throttled::parse("50000"), Some(Throttled(0x50000)));
        assert!(!Throttled::parse("50000").unwrap().now().any());
        assert!(Throttled::parse("0").unwrap().since_boot() == ThrottleFlags::default());
        assert!(
            Throttled::parse("0x80008")
                .unwrap()
                .now()
                .soft_temperature_limit
        );
        for bad in ["", "throttled=", "0xZZ", "hello", "123456789"] {
            assert_eq!(Throttled::parse(bad), None, "{bad}");
        }
    }
}
