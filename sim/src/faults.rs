//! Fault rules for the CCAPI listeners (CCAPI.md §5.6): matched per request, counted,
//! optionally probabilistic with a seeded RNG, so a test is deterministic.

use std::time::Duration;

use serde_json::{json, Value};

use crate::time::Rng;

/// Which requests a rule applies to. Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct Match {
    /// Exact method (`GET`, `POST`, …), case-insensitive.
    pub method: Option<String>,
    /// Substring of the path (e.g. `shutterbutton`, `/event/polling`).
    pub path_contains: Option<String>,
}

impl Match {
    pub fn any() -> Match {
        Match::default()
    }

    pub fn path(p: &str) -> Match {
        Match {
            method: None,
            path_contains: Some(p.to_string()),
        }
    }

    pub fn method_path(m: &str, p: &str) -> Match {
        Match {
            method: Some(m.to_string()),
            path_contains: Some(p.to_string()),
        }
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p))
    }
}

/// What a matching rule does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Delay the response (sim clock).
    Latency(Duration),
    /// Answer with this status and `{"message": …}` instead of the real handler.
    Respond { status: u16, message: String },
    /// Close the connection with a TCP RST instead of answering.
    Reset,
    /// Never answer (the connection stays open until the client gives up or the sim stops).
    Hang,
    /// Send the response head and this many body bytes, then RST (ECONNRESET mid-download).
    TruncateBody(usize),
    /// Do the work (a shutter press takes the picture) but lose the answer: RST instead of
    /// the reply, as a Wi-Fi drop during a long exposure does.
    LoseReply,
}

impl Action {
    fn is_terminal(&self) -> bool {
        !matches!(self, Action::Latency(_))
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: u64,
    pub matcher: Match,
    pub action: Action,
    /// How many more times it fires (`None`: until removed).
    pub remaining: Option<u32>,
    /// Chance of firing on a match (1.0 = always).
    pub probability: f64,
}

/// The outcome for one request: summed latency, then at most one terminal action.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    pub latency: Duration,
    pub terminal: Option<Action>,
}

pub struct Faults {
    pub rules: Vec<Rule>,
    next_id: u64,
    rng: Rng,
    /// R50: after heavy downloads every request answers 502 until a power cycle.
    pub wedged_502: bool,
    /// Refuse (RST) connections beyond this many concurrent ones.
    pub max_connections: Option<usize>,
}

impl Faults {
    pub fn new(seed: u64) -> Faults {
        Faults {
            rules: Vec::new(),
            next_id: 1,
            rng: Rng::new(seed ^ 0x5eed_fa17),
            wedged_502: false,
            max_connections: None,
        }
    }

    pub fn add(
        &mut self,
        matcher: Match,
        action: Action,
        count: Option<u32>,
        probability: f64,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.rules.push(Rule {
            id,
            matcher,
            action,
            remaining: count,
            probability: probability.clamp(0.0, 1.0),
        });
        id
    }

    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.rules.len();
        self.rules.retain(|r| r.id != id);
        self.rules.len() != before
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// Applies the rules to one request, consuming counts of the rules that fire.
    pub fn decide(&mut self, method: &str, path: &str) -> Decision {
        let mut d = Decision::default();
        for rule in &mut self.rules {
            if !rule.matcher.matches(method, path) || rule.remaining == Some(0) {
                continue;
            }
            if rule.action.is_terminal() && d.terminal.is_some() {
                continue;
            }
            if rule.probability < 1.0 && self.rng.next_f64() >= rule.probability {
                continue;
            }
            if let Some(n) = rule.remaining.as_mut() {
                *n -= 1;
            }
            match &rule.action {
                Action::Latency(l) => d.latency += *l,
                a => d.terminal = Some(a.clone()),
            }
        }
        self.rules.retain(|r| r.remaining != Some(0));
        d
    }

    pub fn to_json(&self) -> Value {
        let rules: Vec<Value> = self
            .rules
            .iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "match": {"method": r.matcher.method, "path": r.matcher.path_contains},
                    "action": action_json(&r.action),
                    "remaining": r.remaining,
                    "probability": r.probability,
                })
            })
            .collect();
        json!({"rules": rules, "wedged_502": self.wedged_502, "max_connections": self.max_connections})
    }
}

pub fn action_json(a: &Action) -> Value {
    match a {
        Action::Latency(d) => json!({"latency_ms": d.as_millis() as u64}),
        Action::Respond { status, message } => json!({"status": status, "message": message}),
        Action::Reset => json!({"kind": "reset"}),
        Action::Hang => json!({"kind": "hang"}),
        Action::TruncateBody(n) => json!({"kind": "truncate", "bytes": n}),
        Action::LoseReply => json!({"kind": "lose_reply"}),
    }
}

/// Parses the control-plane form of an action:
/// `{"latency_ms":N}` | `{"status":503,"message":"Device busy"}` |
/// `{"kind":"reset"|"hang"|"lose_reply"}` | `{"kind":"truncate","bytes":N}`.
pub fn parse_action(v: &Value) -> Option<Action> {
    if let Some(ms) = v.get("latency_ms").and_then(Value::as_u64) {
        return Some(Action::Latency(Duration::from_millis(ms)));
    }
    if let Some(status) = v.get("status").and_then(Value::as_u64) {
        let status = u16::try_from(status)
            .ok()
            .filter(|s| (100..600).contains(s))?;
        let message = v
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("Device busy")
            .to_string();
        return Some(Action::Respond { status, message });
    }
    match v.get("kind").and_then(Value::as_str)? {
        "reset" => Some(Action::Reset),
        "hang" => Some(Action::Hang),
        "lose_reply" => Some(Action::LoseReply),
        "truncate" => Some(Action::TruncateBody(
            v.get("bytes").and_then(Value::as_u64).unwrap_or(0) as usize,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_rule_fires_n_times_then_passes() {
        let mut f = Faults::new(1);
        f.add(
            Match::path("shutterbutton"),
            Action::Respond {
                status: 503,
                message: "Device busy".into(),
            },
            Some(2),
            1.0,
        );
        let hit = |f: &mut Faults| f.decide("POST", "/ccapi/ver100/shooting/control/shutterbutton");
        assert!(hit(&mut f).terminal.is_some());
        assert_eq!(f.decide("GET", "/ccapi").terminal, None);
        assert!(hit(&mut f).terminal.is_some());
        assert_eq!(hit(&mut f).terminal, None);
        assert!(f.rules.is_empty());
    }

    #[test]
    fn latencies_add_and_first_terminal_wins() {
        let mut f = Faults::new(1);
        f.add(
            Match::any(),
            Action::Latency(Duration::from_millis(5)),
            None,
            1.0,
        );
        f.add(
            Match::any(),
            Action::Latency(Duration::from_millis(7)),
            None,
            1.0,
        );
        f.add(Match::any(), Action::Hang, Some(1), 1.0);
        f.add(Match::any(), Action::Reset, Some(1), 1.0);
        let d = f.decide("GET", "/x");
        assert_eq!(d.latency, Duration::from_millis(12));
        assert_eq!(d.terminal, Some(Action::Hang));
        assert_eq!(f.decide("GET", "/x").terminal, Some(Action::Reset));
    }
}
