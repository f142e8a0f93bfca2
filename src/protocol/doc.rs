//! `docs/PROTOCOL.md` is prose written by hand around tables generated from the code: the
//! command table, the events and their wire names, the channels, the REST routes and the error
//! codes. Each generated part sits between `<!-- generated:NAME -->` and
//! `<!-- /generated:NAME -->`; `protocol_md_matches_the_tables` fails when one disagrees with
//! the code, and `SKYLAPSE_BLESS=1 cargo test --lib protocol::` rewrites them (the prose is
//! kept). The message shapes are in `docs/PROTOCOL-SHAPES.md` (see `super::contracts`).

use super::contracts::{check_golden, payload_fields};
use super::messages::{EventKind, REPLIES};
use super::routes::ROUTES;
use super::{Channel, ErrorCode, COMMANDS};

pub(crate) const PROTOCOL_FILE: &str = "docs/PROTOCOL.md";

type Render = fn() -> String;

/// The generated sections, by marker name.
pub(crate) const SECTIONS: &[(&str, Render)] = &[
    ("commands", commands),
    ("payloads", payloads),
    ("events", events),
    ("channels", channels),
    ("routes", routes),
    ("errors", errors),
];

fn code(s: &str) -> String {
    format!("`{s}`")
}

fn joined<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let v: Vec<String> = items.into_iter().map(code).collect();
    if v.is_empty() {
        "–".into()
    } else {
        v.join(", ")
    }
}

fn commands() -> String {
    let mut s = String::from(
        "| type | aliases | owner | read-only | payload (`data`) | reply `type` |\n\
         |---|---|---|---|---|---|\n",
    );
    for c in COMMANDS {
        let payload = if c.payload == "Empty" {
            "–".to_string()
        } else {
            format!("[`{0}`](#payload-{1})", c.payload, c.payload.to_lowercase())
        };
        s.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | [`{}`](PROTOCOL-SHAPES.md#reply-{}) |\n",
            c.name,
            joined(c.aliases.iter().copied()),
            c.owner.as_str(),
            if c.read_only() { "yes" } else { "no" },
            payload,
            c.reply,
            c.reply,
        ));
    }
    s
}

/// The fields of every command payload type, once per type.
fn payloads() -> String {
    let mut s = String::new();
    let mut seen = Vec::new();
    for c in COMMANDS {
        if c.payload == "Empty" || seen.contains(&c.payload) {
            continue;
        }
        seen.push(c.payload);
        let users: Vec<&str> = COMMANDS
            .iter()
            .filter(|o| o.payload == c.payload)
            .map(|o| o.name)
            .collect();
        s.push_str(&format!(
            "\n#### payload `{}`\n\nFor {}.\n\n| field | type |\n|---|---|\n",
            c.payload,
            joined(users)
        ));
        for (path, ty) in payload_fields(c.name) {
            s.push_str(&format!("| `{path}` | {ty} |\n"));
        }
    }
    s
}

fn events() -> String {
    let mut s = String::from(
        "| event | channel | sent as (`type` / `eventType`) | payload |\n|---|---|---|---|\n",
    );
    for k in EventKind::ALL {
        let names: Vec<String> = k
            .wire_names()
            .iter()
            .map(|(family, name)| format!("`{}` / `{name}`", family.wire_type()))
            .collect();
        s.push_str(&format!(
            "| {:?} | `{}` | {} | [`{}`](PROTOCOL-SHAPES.md#event-{}) |\n",
            k,
            k.channel().as_str(),
            names.join("<br>"),
            k.payload(),
            format!("{k:?}").to_lowercase(),
        ));
    }
    s
}

fn channels() -> String {
    let mut s = String::from("| channel | events |\n|---|---|\n");
    for ch in Channel::ALL {
        let events: Vec<String> = EventKind::ALL
            .iter()
            .filter(|k| k.channel() == ch)
            .map(|k| format!("{k:?}"))
            .collect();
        let events = if ch == Channel::Status {
            "`status_update`".to_string()
        } else {
            events.join(", ")
        };
        s.push_str(&format!("| `{}` | {} |\n", ch.as_str(), events));
    }
    s
}

fn routes() -> String {
    let mut s = String::from("| method | path | command | payload from |\n|---|---|---|---|\n");
    for r in ROUTES {
        let mut from: Vec<String> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix(':'))
            .map(|p| format!("path `{p}`"))
            .collect();
        if r.body {
            from.push("JSON body".into());
        }
        from.extend(r.query.iter().map(|q| format!("query `{q}`")));
        let from = if from.is_empty() {
            "–".to_string()
        } else {
            from.join(", ")
        };
        s.push_str(&format!(
            "| {} | `/api/{}` | `{}` | {} |\n",
            r.method, r.path, r.command, from
        ));
    }
    s
}

fn errors() -> String {
    let mut s = String::from("| code | HTTP status (REST) |\n|---|---|\n");
    for c in ErrorCode::ALL {
        let name = serde_json::to_value(c).expect("a code serializes");
        s.push_str(&format!(
            "| `{}` | {} |\n",
            name.as_str().unwrap_or_default(),
            c.http_status()
        ));
    }
    s
}

/// `text` with every generated section replaced by what the code says; an error names a
/// section whose markers are missing.
pub(crate) fn regenerate(text: &str) -> Result<String, String> {
    let mut out = text.to_string();
    for (name, render) in SECTIONS {
        let open = format!("<!-- generated:{name} -->");
        let close = format!("<!-- /generated:{name} -->");
        let start = out
            .find(&open)
            .ok_or_else(|| format!("{PROTOCOL_FILE} has no `{open}` marker"))?
            + open.len();
        let end = out[start..]
            .find(&close)
            .ok_or_else(|| format!("{PROTOCOL_FILE} has no `{close}` after `{open}`"))?
            + start;
        out.replace_range(start..end, &format!("\n{}", render()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_md_matches_the_tables() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(PROTOCOL_FILE);
        let text = std::fs::read_to_string(&path).expect("docs/PROTOCOL.md exists");
        let expected = regenerate(&text).unwrap_or_else(|e| panic!("{e}"));
        check_golden(PROTOCOL_FILE, &expected);
    }

    /// Every reply `type` is some command's reply, so the command table documents it.
    #[test]
    fn every_reply_answers_a_command() {
        for (kind, ty) in REPLIES {
            assert!(
                COMMANDS.iter().any(|c| c.reply == *kind),
                "reply `{kind}` ({ty}) answers no command of the table"
            );
        }
    }

    #[test]
    fn the_generated_tables_change_with_the_code() {
        let marker = "<!-- generated:errors -->\nstale\n<!-- /generated:errors -->";
        let mut doc = String::new();
        for (name, _) in SECTIONS {
            doc.push_str(&format!(
                "<!-- generated:{name} -->\n<!-- /generated:{name} -->\n"
            ));
        }
        let doc = doc.replace(
            "<!-- generated:errors -->\n<!-- /generated:errors -->",
            marker,
        );
        let fresh = regenerate(&doc).expect("all markers");
        assert!(!fresh.contains("stale"));
        assert!(fresh.contains("| `CAMERA_OFFLINE` | 503 |"), "{fresh}");
        assert!(fresh.contains("| `take_photo` |"));
        assert!(regenerate("no markers").is_err());
    }
}
