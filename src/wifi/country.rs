//! The Wi-Fi regulatory country. NetworkManager does not own it: the kernel's cfg80211 does.
//!
//! [`IwRegulatory`] reads it with `iw reg get` (falling back to the cfg80211 module parameter in
//! sysfs) and sets it with `iw reg set CC` (needs CAP_NET_ADMIN). A country code is not a
//! secret, and it is validated to two letters before it reaches argv. The setting lasts until
//! reboot: making it permanent is the SD image's job (kernel command line
//! `cfg80211.ieee80211_regdom=CC`, see board/).

use std::path::PathBuf;

use crate::clock::BoxFuture;
use crate::protocol::ApiError;

/// Where the country came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Country {
    /// ISO 3166 alpha-2, or "00" (the world domain: most restrictive, nothing set).
    pub code: String,
    /// "iw" or "sysfs".
    pub source: &'static str,
}

/// Reads and sets the regulatory domain (a seam so tests do not need `iw` or root).
pub trait Regulatory: Send + Sync {
    fn get(&self) -> BoxFuture<'_, Result<Country, String>>;
    /// `code` is already validated by [`validate_country`].
    fn set<'a>(&'a self, code: &'a str) -> BoxFuture<'a, Result<(), String>>;
}

/// Countries offered in the UI (`GET /api/network/wifi/countries`): ISO 3166 code and name.
/// Any valid two-letter code is accepted by `set_wifi_country`; this is the list to pick from.
pub const COUNTRIES: &[(&str, &str)] = &[
    ("AR", "Argentina"),
    ("AT", "Austria"),
    ("AU", "Australia"),
    ("BE", "Belgium"),
    ("BR", "Brazil"),
    ("CA", "Canada"),
    ("CH", "Switzerland"),
    ("CL", "Chile"),
    ("CN", "China"),
    ("CZ", "Czechia"),
    ("DE", "Germany"),
    ("DK", "Denmark"),
    ("EE", "Estonia"),
    ("ES", "Spain"),
    ("FI", "Finland"),
    ("FR", "France"),
    ("GB", "United Kingdom"),
    ("GR", "Greece"),
    ("HR", "Croatia"),
    ("HU", "Hungary"),
    ("IE", "Ireland"),
    ("IL", "Israel"),
    ("IN", "India"),
    ("IS", "Iceland"),
    ("IT", "Italy"),
    ("JP", "Japan"),
    ("KR", "South Korea"),
    ("LT", "Lithuania"),
    ("LU", "Luxembourg"),
    ("LV", "Latvia"),
    ("MX", "Mexico"),
    ("NL", "Netherlands"),
    ("NO", "Norway"),
    ("NZ", "New Zealand"),
    ("PL", "Poland"),
    ("PT", "Portugal"),
    ("RO", "Romania"),
    ("SE", "Sweden"),
    ("SG", "Singapore"),
    ("SI", "Slovenia"),
    ("SK", "Slovakia"),
    ("TR", "Türkiye"),
    ("TW", "Taiwan"),
    ("US", "United States"),
    ("ZA", "South Africa"),
];

/// Two ASCII letters (any case) or "00" → upper-case code.
pub fn validate_country(input: &str) -> Result<String, ApiError> {
    let code = input.trim().to_ascii_uppercase();
    let ok = code.len() == 2 && (code == "00" || code.bytes().all(|b| b.is_ascii_uppercase()));
    if ok {
        Ok(code)
    } else {
        Err(ApiError::invalid(
            "country must be a two-letter ISO 3166 code such as GB or US",
        ))
    }
}

/// The global domain from `iw reg get`: the first `country XX:` line (the per-phy blocks
/// that follow it belong to self-managed drivers).
pub fn parse_iw_reg_get(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("country ")?;
        let code = rest.split(':').next()?.trim();
        validate_country(code).ok()
    })
}

/// Whether an AP on `channel` (2.4 GHz when `band` is "bg" or empty) is legal in every country,
/// else why not. 2.4 GHz channels 1–11 are legal everywhere; 12–13 are not in the Americas,
/// 14 only in Japan (802.11b), 5 GHz rules differ per country (DFS).
pub fn ap_channel_warning(country: &str, band: &str, channel: u32) -> Option<String> {
    match (band, channel) {
        (_, 0) => None, // automatic: NM and the driver pick a legal one
        ("bg" | "", 1..=11) => None,
        ("bg" | "", ch) => Some(format!(
            "the access point uses 2.4 GHz channel {ch}, which is not legal in every country; \
             check it is allowed in {country}, or use channels 1–11 (legal everywhere)"
        )),
        (_, ch) => Some(format!(
            "the access point uses 5 GHz channel {ch}; check it is allowed in {country} \
             (5 GHz rules and DFS differ per country)"
        )),
    }
}

/// `iw reg get` / `iw reg set`, with the sysfs module parameter as a read fallback.
pub struct IwRegulatory {
    /// `/sys/module/cfg80211/parameters/ieee80211_regdom` by default.
    pub sysfs_param: PathBuf,
}

impl Default for IwRegulatory {
    fn default() -> Self {
        IwRegulatory {
            sysfs_param: PathBuf::from("/sys/module/cfg80211/parameters/ieee80211_regdom"),
        }
    }
}

impl Regulatory for IwRegulatory {
    fn get(&self) -> BoxFuture<'_, Result<Country, String>> {
        Box::pin(async move {
            let iw = smol::process::Command::new("iw")
                .args(["reg", "get"])
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output()
                .await;
            let iw_error = match iw {
                Ok(out) if out.status.success() => {
                    match parse_iw_reg_get(&String::from_utf8_lossy(&out.stdout)) {
                        Some(code) => return Ok(Country { code, source: "iw" }),
                        None => "`iw reg get` printed no country".to_string(),
                    }
                }
                Ok(out) => format!("`iw reg get` failed ({})", out.status),
                Err(e) => format!("`iw` could not run: {e}"),
            };
            match std::fs::read_to_string(&self.sysfs_param) {
                Ok(s) => match validate_country(&s) {
                    Ok(code) => Ok(Country {
                        code,
                        source: "sysfs",
                    }),
                    Err(_) => Err(format!("{iw_error}; sysfs has no valid country")),
                },
                Err(e) => Err(format!(
                    "{iw_error}; {} unreadable: {e}",
                    self.sysfs_param.display()
                )),
            }
        })
    }

    fn set<'a>(&'a self, code: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let out = smol::process::Command::new("iw")
                .args(["reg", "set", code])
                .stdin(std::process::Stdio::null())
                .output()
                .await
                .map_err(|e| format!("`iw` could not run: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                let err = String::from_utf8_lossy(&out.stderr);
                Err(format!(
                    "`iw reg set {code}` failed ({}): {} (it needs CAP_NET_ADMIN)",
                    out.status,
                    err.trim()
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iw_output_gives_the_global_country() {
        let text = "global\ncountry GB: DFS-ETSI\n\t(2400 - 2483 @ 40), (N/A, 20), (N/A)\n\n\
                    phy#0 (self-managed)\ncountry 00: DFS-UNSET\n";
        assert_eq!(parse_iw_reg_get(text).as_deref(), Some("GB"));
        assert_eq!(
            parse_iw_reg_get("global\ncountry 00: DFS-UNSET\n").as_deref(),
            Some("00")
        );
        assert_eq!(parse_iw_reg_get("command failed: No such file"), None);
    }

    #[test]
    fn country_codes_are_two_letters() {
        assert_eq!(validate_country(" gb\n").unwrap(), "GB");
        assert_eq!(validate_country("00").unwrap(), "00");
        for bad in ["", "G", "GBR", "G1", "-r", "U S"] {
            assert!(validate_country(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ap_channels_outside_1_to_11_are_flagged() {
        assert_eq!(ap_channel_warning("US", "bg", 6), None);
        assert_eq!(ap_channel_warning("US", "", 0), None);
        assert!(ap_channel_warning("US", "bg", 13).unwrap().contains("US"));
        assert!(ap_channel_warning("DE", "a", 36).unwrap().contains("5 GHz"));
    }
}
