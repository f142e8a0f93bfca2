//! The UPnP device description (`CameraDevDesc.xml`): the few fields discovery needs, read
//! without an XML crate.
//!
//! Matching is by **local name** (any namespace prefix, any inline `xmlns`), because Canon's
//! sample only understands one exact serialization and other clients broke on the others
//! (CCAPI.md §4.3). The scanner walks tags once, skips comments, processing instructions and
//! CDATA, and never indexes past the input: malformed documents give an error, never a panic.

use std::fmt;

use super::ssdp::HttpUrl;

/// Largest description we read (the real one is ~2 KiB).
pub const MAX_DESCRIPTION: usize = 64 * 1024;

/// Longest text value we keep from any field.
const MAX_VALUE: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceDescription {
    /// The UDN without `uuid:`.
    pub udn: String,
    pub model_name: Option<String>,
    pub serial_number: Option<String>,
    pub friendly_name: Option<String>,
    /// The CCAPI base (`X_accessURL`), e.g. `http://192.168.1.2:8080/ccapi`.
    pub access_url: HttpUrl,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DescriptionError {
    TooLarge(usize),
    NotUtf8,
    Missing(&'static str),
    Invalid(&'static str),
}

impl fmt::Display for DescriptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DescriptionError::TooLarge(n) => {
                write!(f, "description of {n} bytes exceeds {MAX_DESCRIPTION}")
            }
            DescriptionError::NotUtf8 => f.write_str("description is not UTF-8"),
            DescriptionError::Missing(field) => write!(f, "description has no {field}"),
            DescriptionError::Invalid(field) => write!(f, "description has an invalid {field}"),
        }
    }
}

impl std::error::Error for DescriptionError {}

/// Reads UDN, modelName, serialNumber, friendlyName and X_accessURL.
///
/// A description without `X_accessURL` (PTP / EOS Utility modes) is not a CCAPI camera and is
/// an error.
pub fn parse(bytes: &[u8]) -> Result<DeviceDescription, DescriptionError> {
    if bytes.len() > MAX_DESCRIPTION {
        return Err(DescriptionError::TooLarge(bytes.len()));
    }
    let xml = std::str::from_utf8(bytes).map_err(|_| DescriptionError::NotUtf8)?;
    let udn = element_text(xml, "UDN").ok_or(DescriptionError::Missing("UDN"))?;
    let udn = super::ssdp::uuid_from_usn(&udn).ok_or(DescriptionError::Invalid("UDN"))?;
    let access =
        element_text(xml, "X_accessURL").ok_or(DescriptionError::Missing("X_accessURL"))?;
    let access_url = HttpUrl::parse(&access).ok_or(DescriptionError::Invalid("X_accessURL"))?;
    Ok(DeviceDescription {
        udn,
        model_name: element_text(xml, "modelName"),
        serial_number: element_text(xml, "serialNumber"),
        friendly_name: element_text(xml, "friendlyName"),
        access_url,
    })
}

/// The trimmed, entity-decoded text of the first element whose local name is `local`, if it
/// holds only text and closes with the same local name. Empty text counts as absent.
pub fn element_text(xml: &str, local: &str) -> Option<String> {
    let mut rest = xml;
    loop {
        let lt = rest.find('<')?;
        rest = &rest[lt + 1..];
        // Skip markup that is not an element start.
        if let Some(r) = rest.strip_prefix("!--") {
            rest = &r[r.find("-->")? + 3..];
            continue;
        }
        if let Some(r) = rest.strip_prefix("![CDATA[") {
            rest = &r[r.find("]]>")? + 3..];
            continue;
        }
        if rest.starts_with('?') || rest.starts_with('!') || rest.starts_with('/') {
            continue;
        }
        let gt = rest.find('>')?;
        let tag = &rest[..gt];
        let after = &rest[gt + 1..];
        if tag.ends_with('/') {
            rest = after;
            continue;
        }
        let name = tag.split(|c: char| c.is_ascii_whitespace()).next()?;
        if local_name(name) != local {
            rest = after;
            continue;
        }
        // Text up to the next tag, which must be this element's end tag.
        let end = after.find('<')?;
        let text = &after[..end];
        let close = after[end..].strip_prefix("</")?;
        let close_name = close[..close.find('>')?].trim();
        if local_name(close_name) != local {
            // Not a text-only element; keep looking for another occurrence.
            rest = after;
            continue;
        }
        let value = decode_entities(text.trim())?;
        if value.is_empty() || value.len() > MAX_VALUE || value.chars().any(char::is_control) {
            return None;
        }
        return Some(value);
    }
}

fn local_name(qname: &str) -> &str {
    qname.rsplit(':').next().unwrap_or(qname)
}

/// The five XML entities and numeric character references; anything else is invalid.
fn decode_entities(s: &str) -> Option<String> {
    if !s.contains('&') {
        return Some(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let semi = after.find(';').filter(|&i| i <= 10)?;
        let entity = &after[..semi];
        let ch = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = entity.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()?
                } else {
                    entity.strip_prefix('#')?.parse().ok()?
                };
                char::from_u32(code)?
            }
        };
        out.push(ch);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// A description in exactly the form the simulator and real bodies emit (CCAPI.md §4.3):
/// `ns:` prefix, inline xmlns. For tests and the simulator's conformance checks.
pub fn render(udn: &str, model: &str, serial: &str, access_url: &str) -> String {
    format!(
        r#"<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
<specVersion><major>1</major><minor>0</minor></specVersion>
<device>
<deviceType>urn:schemas-canon-com:device:ICPO-CameraControlAPIService:1</deviceType>
<friendlyName>{model}</friendlyName>
<manufacturer>Canon</manufacturer>
<modelName>{model}</modelName>
<serialNumber>{serial}</serialNumber>
<UDN>uuid:{udn}</UDN>
<serviceList>
<service>
<serviceType>urn:schemas-canon-com:service:ICPO-CameraControlAPIService:1</serviceType>
<ns:X_accessURL xmlns:ns="urn:schemas-canon-com:schema-upnp">{access_url}</ns:X_accessURL>
</service>
</serviceList>
</device>
</root>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::Rng;

    const CANON: &str = r#"<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
<specVersion><major>1</major><minor>0</minor></specVersion>
<URLBase>http://192.168.1.2:49152/upnp/</URLBase>
<device>
<deviceType>urn:schemas-canon-com:device:ICPO-CameraControlAPIService:1</deviceType>
<friendlyName>Canon EOS R50</friendlyName>
<manufacturer>Canon</manufacturer>
<modelName>Canon EOS R50</modelName>
<serialNumber>012345678901</serialNumber>
<UDN>uuid:00000000-0000-0000-0001-0A0B0C0D0E0F</UDN>
<serviceList>
<service>
<serviceType>urn:schemas-canon-com:service:ICPO-CameraControlAPIService:1</serviceType>
<ns:X_targetId xmlns:ns="urn:schemas-canon-com:schema-upnp">uuid:00000000-0000-0000-0001-0A0B0C0D0E0F</ns:X_targetId>
<ns:X_onService xmlns:ns="urn:schemas-canon-com:schema-upnp">0</ns:X_onService>
<ns:X_accessURL xmlns:ns="urn:schemas-canon-com:schema-upnp">http://192.168.1.2:8080/ccapi</ns:X_accessURL>
</service>
</serviceList>
</device>
</root>"#;

    #[test]
    fn reads_the_canon_serialization() {
        let d = parse(CANON.as_bytes()).unwrap();
        assert_eq!(d.udn, "00000000-0000-0000-0001-0A0B0C0D0E0F");
        assert_eq!(d.model_name.as_deref(), Some("Canon EOS R50"));
        assert_eq!(d.serial_number.as_deref(), Some("012345678901"));
        assert_eq!(d.access_url.to_string(), "http://192.168.1.2:8080/ccapi");
    }

    #[test]
    fn any_prefix_whitespace_and_entities() {
        for form in [
            "<canon:X_accessURL xmlns:canon=\"urn:x\">https://10.0.0.5:443/ccapi</canon:X_accessURL>",
            "<X_accessURL>\n  https://10.0.0.5:443/ccapi\n</X_accessURL>",
            "<!-- <X_accessURL>http://wrong/</X_accessURL> --><a:X_accessURL\txmlns:a='u'>https://10.0.0.5/ccapi</a:X_accessURL >",
        ] {
            let xml = CANON.replace(
                r#"<ns:X_accessURL xmlns:ns="urn:schemas-canon-com:schema-upnp">http://192.168.1.2:8080/ccapi</ns:X_accessURL>"#,
                form,
            );
            let d = parse(xml.as_bytes()).unwrap_or_else(|e| panic!("{form}: {e}"));
            assert_eq!(d.access_url.to_string(), "https://10.0.0.5:443/ccapi", "{form}");
        }
        let xml = CANON.replace(
            "Canon EOS R50</modelName>",
            "R50 &amp; &#x41;&#66;</modelName>",
        );
        assert_eq!(
            parse(xml.as_bytes()).unwrap().model_name.as_deref(),
            Some("R50 & AB")
        );
    }

    #[test]
    fn non_ccapi_and_broken_descriptions_are_errors() {
        let ptp = CANON.replace("X_accessURL", "X_somethingElse");
        assert_eq!(
            parse(ptp.as_bytes()),
            Err(DescriptionError::Missing("X_accessURL"))
        );
        let no_udn = CANON.replace("<UDN>", "<UDX>").replace("</UDN>", "</UDX>");
        assert_eq!(
            parse(no_udn.as_bytes()),
            Err(DescriptionError::Missing("UDN"))
        );
        let bad_url = CANON.replace("http://192.168.1.2:8080/ccapi</ns:X", "javascript:1</ns:X");
        assert_eq!(
            parse(bad_url.as_bytes()),
            Err(DescriptionError::Invalid("X_accessURL"))
        );
        assert_eq!(parse(&[0xff, 0xfe]), Err(DescriptionError::NotUtf8));
        let big = vec![b' '; MAX_DESCRIPTION + 1];
        assert!(matches!(parse(&big), Err(DescriptionError::TooLarge(_))));
    }

    #[test]
    fn rendered_form_round_trips() {
        let xml = render(
            "abc-1",
            "Canon EOS R50",
            "42",
            "https://127.0.0.2:4443/ccapi",
        );
        let d = parse(xml.as_bytes()).unwrap();
        assert_eq!(d.udn, "abc-1");
        assert_eq!(d.serial_number.as_deref(), Some("42"));
        assert_eq!(d.access_url.port, 4443);
    }

    /// Property: truncations and random mutations of a real description never panic.
    #[test]
    fn mutated_descriptions_never_panic() {
        let mut rng = Rng::new(0xDE5C);
        let base = CANON.as_bytes();
        for cut in 0..base.len() {
            let _ = parse(&base[..cut]);
        }
        for _ in 0..5_000 {
            let mut p = base.to_vec();
            for _ in 0..(1 + rng.next_u64() % 12) {
                let at = (rng.next_u64() as usize) % p.len();
                let b = [b'<', b'>', b'/', b':', b'&', b';', b'!', b'-', 0xC3, b'x'];
                match rng.next_u64() % 3 {
                    0 => p[at] = b[(rng.next_u64() as usize) % b.len()],
                    1 => {
                        p.remove(at);
                    }
                    _ => p.insert(at, rng.next_u64() as u8),
                }
            }
            let _ = parse(&p);
        }
    }
}
