//! The discovery machine (sans-IO): search schedule, description fetch queue, camera registry.
//!
//! ```text
//!  search schedule                         per camera (registry entry, keyed by UDN)
//!
//!   new ──▶ Hunting{attempt, next_at} ─────┐        announce (reply / NOTIFY alive)
//!            │  ▲  search at next_at,      │              │ queue (bounded, deduped,
//!            │  │  next_at += 3 s·2^n ≤ 5 min            ▼  rate-limited)
//!   link up  │  │ link down / scan:        │        FetchDescription ──fail──▶ negative cache
//!            ▼  │ search now, attempt 0    │              │ ok
//!          Watching{next_at} ──────────────┘              ▼
//!            search every 10 min;           unknown UDN ─▶ Online (camera_discovered;
//!            scan: search now                              first one → primary_camera_changed
//!                                                          + Target)
//!                                           known, new address ─▶ camera_ip_changed (+ Target,
//!                                                          primary_camera_reconnected if primary)
//!          Online ──byebye / max-age expiry (not while the link is up)──▶ Offline
//!                   (camera_offline; primary_camera_disconnected if primary)
//!          Offline ──announce + description──▶ Online (primary_camera_reconnected if primary)
//! ```
//!
//! Bounds (a flood of fake devices cannot grow memory): at most `max_cameras` entries (the
//! oldest non-primary entry, offline first, is evicted), at most `max_pending` queued fetches
//! (more are dropped), at most `max_in_flight` fetches at once, fetches paced by a token bucket,
//! and a bounded negative cache of descriptions that failed.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use super::description::DeviceDescription;
use super::ssdp::{Announcement, HttpUrl, SsdpMessage};
pub use super::types::{
    Action, Camera, DiscoveryEvent, Footprint, Input, ProbeInfo, Settings, Source,
};
use crate::backoff::Rng;
use crate::protocol::status::{CameraRefBlock, DiscoveredCamera, DiscoveryBlock};
use crate::protocol::ApiError;
use crate::util::iso8601;

/// Registry keys of cameras known only by address start with this (`manual-ip:port`).
pub const MANUAL_PREFIX: &str = "manual-";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schedule {
    /// No camera connected: search on a backoff schedule.
    Hunting { attempt: u32, next_at: Instant },
    /// A camera is connected: search rarely.
    Watching { next_at: Instant },
}

#[derive(Debug, Clone)]
struct PendingFetch {
    location: HttpUrl,
    max_age: Duration,
    /// The link was already nudged (`SsdpAlive`) when this announcement arrived.
    nudged: bool,
}

pub struct Discovery {
    settings: Settings,
    rng: Rng,
    schedule: Schedule,
    cameras: BTreeMap<String, Camera>,
    primary: Option<String>,
    pending: VecDeque<PendingFetch>,
    /// Locations being fetched, with the max-age their announcement carried.
    in_flight: Vec<PendingFetch>,
    tokens: u32,
    /// When the next token is added (only while the bucket is not full).
    next_token_at: Option<Instant>,
    /// Locations whose description failed, and when they may be tried again.
    failed: VecDeque<(HttpUrl, Instant)>,
    actions: VecDeque<Action>,
    last_search_at: Option<Instant>,
    footprint: Footprint,
}

impl Discovery {
    /// A machine whose first search is due at `now`.
    pub fn new(settings: Settings, rng: Rng, now: Instant) -> Self {
        let mut settings = settings;
        settings.fetch_burst = settings.fetch_burst.max(1);
        let tokens = settings.fetch_burst;
        Discovery {
            settings,
            rng,
            schedule: Schedule::Hunting {
                attempt: 0,
                next_at: now,
            },
            cameras: BTreeMap::new(),
            primary: None,
            pending: VecDeque::new(),
            in_flight: Vec::new(),
            tokens,
            next_token_at: None,
            failed: VecDeque::new(),
            actions: VecDeque::new(),
            last_search_at: None,
            footprint: Footprint::default(),
        }
    }

    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Tick => {}
            Input::Ssdp(SsdpMessage::Announce(a)) => self.on_announce(now, a),
            Input::Ssdp(SsdpMessage::ByeBye { uuid }) => self.on_byebye(&uuid),
            Input::DescriptionFetched { location, result } => {
                self.on_description(now, location, result)
            }
            Input::ScanRequested => {
                self.schedule = match self.schedule {
                    Schedule::Hunting { .. } => Schedule::Hunting {
                        attempt: 0,
                        next_at: now,
                    },
                    Schedule::Watching { .. } => Schedule::Watching { next_at: now },
                };
            }
            Input::ManualConnected { base_url, info } => self.on_manual(now, base_url, info),
            Input::LinkUp { id } => self.on_link_up(now, &id),
            Input::LinkDown => {
                for c in self.cameras.values_mut() {
                    c.connected = false;
                    c.back_reported = false;
                }
                // The camera may have moved (DHCP, new Wi-Fi): look for it right away.
                self.schedule = Schedule::Hunting {
                    attempt: 0,
                    next_at: now,
                };
            }
        }
        self.run_due(now);
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let search = match self.schedule {
            Schedule::Hunting { next_at, .. } | Schedule::Watching { next_at } => next_at,
        };
        let expiry = self
            .cameras
            .values()
            .filter(|c| c.online && !c.connected)
            .filter_map(|c| c.expires_at)
            .min();
        let fetch =
            if !self.pending.is_empty() && self.in_flight.len() < self.settings.max_in_flight {
                self.next_token_at
            } else {
                None
            };
        [Some(search), expiry, fetch].into_iter().flatten().min()
    }

    /// `set_primary_camera`.
    pub fn set_primary(&mut self, uuid: &str) -> Result<(), ApiError> {
        let Some(c) = self.cameras.get(uuid) else {
            return Err(ApiError::not_found(format!("Unknown camera: {uuid}")));
        };
        let target = Action::Target {
            base_url: c.access_url.clone(),
            id: c.uuid.clone(),
        };
        if self.primary.as_deref() != Some(uuid) {
            self.primary = Some(uuid.to_string());
            self.event(DiscoveryEvent::PrimaryCameraChanged {
                uuid: uuid.to_string(),
            });
        }
        self.actions.push_back(target);
        Ok(())
    }

    pub fn cameras(&self) -> impl Iterator<Item = &Camera> {
        self.cameras.values()
    }

    pub fn camera(&self, uuid: &str) -> Option<&Camera> {
        self.cameras.get(uuid)
    }

    pub fn primary(&self) -> Option<&Camera> {
        self.primary.as_deref().and_then(|u| self.cameras.get(u))
    }

    pub fn footprint(&self) -> Footprint {
        Footprint {
            cameras: self.cameras.len(),
            pending: self.pending.len(),
            in_flight: self.in_flight.len(),
            failed: self.failed.len(),
            ..self.footprint
        }
    }

    /// The `discovery` status block. Instants become wall times relative to one fixed anchor
    /// (`epoch` ↔ `epoch_wall`), so an unchanged registry renders to an unchanged value.
    pub fn status(&self, epoch: Instant, epoch_wall: SystemTime) -> DiscoveryBlock {
        let wall_of = |t: Instant| iso8601(epoch_wall + t.saturating_duration_since(epoch));
        let cameras = self
            .cameras
            .values()
            .map(|c| {
                (
                    c.uuid.clone(),
                    DiscoveredCamera {
                        uuid: c.uuid.clone(),
                        model_name: c.model_name.clone(),
                        serial_number: c.serial_number.clone(),
                        friendly_name: c.friendly_name.clone(),
                        ip_address: c.access_url.host.clone(),
                        port: c.access_url.port,
                        access_url: c.access_url.to_string(),
                        last_seen: wall_of(c.last_seen),
                        online: c.online,
                        connected: c.connected,
                        is_primary: self.primary.as_deref() == Some(c.uuid.as_str()),
                        source: match c.source {
                            Source::Ssdp => "ssdp",
                            Source::Manual => "manual",
                        }
                        .into(),
                    },
                )
            })
            .collect();
        DiscoveryBlock {
            is_discovering: true,
            total_cameras: self.cameras.len(),
            connected_cameras: self.cameras.values().filter(|c| c.connected).count(),
            primary_camera: self.primary().map(|c| CameraRefBlock {
                uuid: c.uuid.clone(),
                model_name: c.model_name.clone(),
                ip_address: c.access_url.host.clone(),
            }),
            cameras,
            last_search_at: self.last_search_at.map(wall_of),
        }
    }

    // -----------------------------------------------------------------------------------------

    fn event(&mut self, e: DiscoveryEvent) {
        self.actions.push_back(Action::Event(e));
    }

    fn is_primary(&self, uuid: &str) -> bool {
        self.primary.as_deref() == Some(uuid)
    }

    fn clamp_max_age(&self, secs: u32) -> Duration {
        Duration::from_secs(u64::from(secs))
            .clamp(self.settings.min_max_age, self.settings.max_max_age)
    }

    /// Searches, expiries and fetches that are due at `now`.
    fn run_due(&mut self, now: Instant) {
        // Search schedule.
        match self.schedule {
            Schedule::Hunting { attempt, next_at } if next_at <= now => {
                let delay = self.settings.search.delay(attempt, &mut self.rng);
                self.schedule = Schedule::Hunting {
                    attempt: attempt.saturating_add(1),
                    next_at: now + delay,
                };
                self.search(now);
            }
            Schedule::Watching { next_at } if next_at <= now => {
                self.schedule = Schedule::Watching {
                    next_at: now + self.settings.connected_search_every,
                };
                self.search(now);
            }
            Schedule::Hunting { .. } | Schedule::Watching { .. } => {}
        }

        // Announcements that ran out. A camera the link is connected to stays online: the
        // link's health checks are the better evidence.
        let expired: Vec<String> = self
            .cameras
            .values()
            .filter(|c| c.online && !c.connected && c.expires_at.is_some_and(|t| t <= now))
            .map(|c| c.uuid.clone())
            .collect();
        for uuid in expired {
            self.mark_offline(&uuid);
        }

        // Token bucket refill.
        while let Some(at) = self.next_token_at {
            if at > now {
                break;
            }
            self.tokens += 1;
            self.next_token_at =
                (self.tokens < self.settings.fetch_burst).then_some(at + self.settings.fetch_every);
        }

        // Start fetches while there is room, tokens and work.
        while self.in_flight.len() < self.settings.max_in_flight && self.tokens > 0 {
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            if self.tokens == self.settings.fetch_burst {
                self.next_token_at = Some(now + self.settings.fetch_every);
            }
            self.tokens -= 1;
            self.actions
                .push_back(Action::FetchDescription(p.location.clone()));
            self.in_flight.push(p);
        }
    }

    fn search(&mut self, now: Instant) {
        self.last_search_at = Some(now);
        self.footprint.searches += 1;
        self.actions.push_back(Action::Search);
    }

    fn on_announce(&mut self, now: Instant, a: Announcement) {
        let max_age = self.clamp_max_age(a.max_age_secs);
        let mut nudged = false;
        if let Some(c) = self.cameras.get_mut(&a.uuid) {
            let same_place = c.location.as_ref() == Some(&a.location);
            let fresh = c
                .last_fetch
                .is_some_and(|t| now.saturating_duration_since(t) < self.settings.refetch_after);
            // Same place, online, description read recently: nothing new to learn.
            let up_to_date = same_place && c.online && fresh;
            if up_to_date {
                c.last_seen = now;
                c.expires_at = Some(now + max_age);
            }
            let (uuid, connected) = (c.uuid.clone(), c.connected);
            // The primary is back where the link expects it: nudge the link now, before
            // any description round trip (the 1 s reconnect budget).
            if same_place && !connected && self.is_primary(&uuid) {
                self.actions.push_back(Action::SsdpAlive { id: uuid });
                nudged = true;
            }
            if up_to_date {
                return;
            }
            // Moved, was offline, or not checked for a while: read the description again
            // (the address may have changed under DHCP).
        }
        self.enqueue_fetch(now, a.location, max_age, nudged);
    }

    fn enqueue_fetch(&mut self, now: Instant, location: HttpUrl, max_age: Duration, nudged: bool) {
        if self
            .pending
            .iter()
            .chain(&self.in_flight)
            .any(|p| p.location == location)
        {
            return;
        }
        // Drop negative-cache entries that have served their time.
        self.failed.retain(|(_, until)| *until > now);
        if self.failed.iter().any(|(l, _)| *l == location) {
            return;
        }
        if self.pending.len() >= self.settings.max_pending {
            self.footprint.dropped_announcements += 1;
            return;
        }
        self.pending.push_back(PendingFetch {
            location,
            max_age,
            nudged,
        });
    }

    fn on_byebye(&mut self, uuid: &str) {
        if self.cameras.get(uuid).is_some_and(|c| c.online) {
            self.mark_offline(uuid);
        }
    }

    fn mark_offline(&mut self, uuid: &str) {
        let Some(c) = self.cameras.get_mut(uuid) else {
            return;
        };
        c.online = false;
        c.back_reported = false;
        self.event(DiscoveryEvent::CameraOffline {
            uuid: uuid.to_string(),
        });
        if self.is_primary(uuid) {
            self.event(DiscoveryEvent::PrimaryCameraDisconnected {
                uuid: uuid.to_string(),
            });
        }
    }

    fn on_description(
        &mut self,
        now: Instant,
        location: HttpUrl,
        result: Result<DeviceDescription, String>,
    ) {
        let Some(i) = self.in_flight.iter().position(|p| p.location == location) else {
            return; // Not ours (or a duplicate answer): ignore.
        };
        let PendingFetch {
            max_age, nudged, ..
        } = self.in_flight.swap_remove(i);
        let desc = match result {
            Ok(d) => d,
            Err(why) => {
                log::debug!("description at {location} ignored: {why}");
                if self.failed.len() >= self.settings.max_failed {
                    self.failed.pop_front();
                }
                self.failed
                    .push_back((location, now + self.settings.failed_retry_after));
                return;
            }
        };
        let uuid = desc.udn.clone();
        self.adopt_manual_entry(&uuid, &desc.access_url);
        if let Some(c) = self.cameras.get_mut(&uuid) {
            let old = c.access_url.clone();
            let was_online = c.online;
            c.model_name = desc.model_name.or(c.model_name.take());
            c.serial_number = desc.serial_number.or(c.serial_number.take());
            c.friendly_name = desc.friendly_name.or(c.friendly_name.take());
            c.access_url = desc.access_url.clone();
            c.location = Some(location);
            c.last_seen = now;
            c.last_fetch = Some(now);
            c.expires_at = Some(now + max_age);
            c.online = true;
            c.source = Source::Ssdp;
            let (connected, back_reported) = (c.connected, c.back_reported);
            let moved = old.host != desc.access_url.host
                || old.port != desc.access_url.port
                || old.scheme != desc.access_url.scheme;
            if moved {
                self.event(DiscoveryEvent::CameraIpChanged {
                    uuid: uuid.clone(),
                    old_ip: old.host,
                    new_ip: desc.access_url.host.clone(),
                    old_port: old.port,
                    new_port: desc.access_url.port,
                });
            }
            if self.is_primary(&uuid) {
                if moved {
                    self.actions.push_back(Action::Target {
                        base_url: desc.access_url.clone(),
                        id: uuid.clone(),
                    });
                }
                if moved || (!was_online && !back_reported) {
                    self.event(DiscoveryEvent::PrimaryCameraReconnected {
                        uuid: uuid.clone(),
                        ip: desc.access_url.host.clone(),
                    });
                    if let Some(c) = self.cameras.get_mut(&uuid) {
                        c.back_reported = true;
                    }
                }
                if !connected && !moved && !nudged {
                    self.actions.push_back(Action::SsdpAlive { id: uuid });
                }
            }
            return;
        }
        self.make_room();
        self.cameras.insert(
            uuid.clone(),
            Camera {
                uuid: uuid.clone(),
                model_name: desc.model_name.clone(),
                serial_number: desc.serial_number,
                friendly_name: desc.friendly_name,
                access_url: desc.access_url.clone(),
                location: Some(location),
                last_seen: now,
                last_fetch: Some(now),
                expires_at: Some(now + max_age),
                online: true,
                connected: false,
                ever_connected: false,
                back_reported: false,
                source: Source::Ssdp,
            },
        );
        self.event(DiscoveryEvent::CameraDiscovered {
            uuid: uuid.clone(),
            model_name: desc.model_name,
            ip: desc.access_url.host.clone(),
            access_url: desc.access_url.to_string(),
        });
        if self.primary.is_none() {
            self.primary = Some(uuid.clone());
            self.event(DiscoveryEvent::PrimaryCameraChanged { uuid: uuid.clone() });
            self.actions.push_back(Action::Target {
                base_url: desc.access_url,
                id: uuid,
            });
        }
    }

    /// A camera first reached by address (`manual-ip:port`, e.g. the remembered one at start)
    /// and now announcing itself with its UDN is the same camera: re-key it, keep its role.
    fn adopt_manual_entry(&mut self, uuid: &str, access: &HttpUrl) {
        if self.cameras.contains_key(uuid) {
            return;
        }
        let key = self
            .cameras
            .values()
            .find(|c| {
                c.source == Source::Manual
                    && c.uuid.starts_with(MANUAL_PREFIX)
                    && c.access_url.host == access.host
                    && c.access_url.port == access.port
            })
            .map(|c| c.uuid.clone());
        let Some(mut c) = key.and_then(|k| self.cameras.remove(&k)) else {
            return;
        };
        if self.primary.as_deref() == Some(c.uuid.as_str()) {
            self.primary = Some(uuid.to_string());
        }
        c.uuid = uuid.to_string();
        self.cameras.insert(uuid.to_string(), c);
    }

    /// Evicts until there is room for one more entry: the least recently seen non-primary,
    /// offline entries first. The primary is never evicted.
    fn make_room(&mut self) {
        while self.cameras.len() >= self.settings.max_cameras {
            let victim = self
                .cameras
                .values()
                .filter(|c| !self.is_primary(&c.uuid) && !c.connected)
                .min_by_key(|c| (c.online, c.last_seen))
                .map(|c| c.uuid.clone());
            match victim {
                Some(uuid) => {
                    self.cameras.remove(&uuid);
                    self.footprint.evicted += 1;
                }
                None => break,
            }
        }
    }

    fn on_manual(&mut self, now: Instant, base_url: HttpUrl, mut info: ProbeInfo) {
        // The id comes from the camera: keep it only if it is a sane key.
        info.id = info
            .id
            .filter(|id| !id.is_empty() && id.len() <= 128 && !id.starts_with(MANUAL_PREFIX));
        // The same camera may already be known by id, or by address.
        let existing = info
            .id
            .as_deref()
            .filter(|id| self.cameras.contains_key(*id))
            .map(str::to_string)
            .or_else(|| {
                self.cameras
                    .values()
                    .find(|c| {
                        (c.access_url.host == base_url.host && c.access_url.port == base_url.port)
                            || (info.serial_number.is_some()
                                && c.serial_number == info.serial_number)
                    })
                    .map(|c| c.uuid.clone())
            });
        let uuid = existing
            .or(info.id.clone())
            .unwrap_or_else(|| format!("{MANUAL_PREFIX}{}", base_url.authority()));
        match self.cameras.get_mut(&uuid) {
            Some(c) => {
                c.access_url = base_url.clone();
                c.last_seen = now;
                c.online = true;
                c.connected = true;
                c.ever_connected = true;
                c.model_name = info.model_name.or(c.model_name.take());
                c.serial_number = info.serial_number.or(c.serial_number.take());
            }
            None => {
                self.make_room();
                self.cameras.insert(
                    uuid.clone(),
                    Camera {
                        uuid: uuid.clone(),
                        model_name: info.model_name,
                        serial_number: info.serial_number,
                        friendly_name: None,
                        access_url: base_url.clone(),
                        location: None,
                        last_seen: now,
                        last_fetch: None,
                        expires_at: None,
                        online: true,
                        connected: true,
                        ever_connected: true,
                        back_reported: false,
                        source: Source::Manual,
                    },
                );
            }
        }
        self.event(DiscoveryEvent::CameraConnected {
            uuid: uuid.clone(),
            ip: base_url.host.clone(),
            port: base_url.port,
        });
        // The user picked this camera: it becomes the primary.
        if !self.is_primary(&uuid) {
            self.primary = Some(uuid.clone());
            self.event(DiscoveryEvent::PrimaryCameraChanged { uuid: uuid.clone() });
        }
        // No `Target`: the link is already connected there (it told us).
        self.actions
            .push_back(Action::Remember { base_url, id: uuid });
        self.schedule = Schedule::Watching {
            next_at: now + self.settings.connected_search_every,
        };
    }

    fn on_link_up(&mut self, now: Instant, id: &str) {
        if !matches!(self.schedule, Schedule::Watching { .. }) {
            self.schedule = Schedule::Watching {
                next_at: now + self.settings.connected_search_every,
            };
        }
        let uuid = self
            .cameras
            .values()
            .find(|c| c.uuid == id || c.serial_number.as_deref() == Some(id))
            .or_else(|| self.primary())
            .map(|c| c.uuid.clone());
        let Some(uuid) = uuid else {
            return;
        };
        let primary = self.is_primary(&uuid);
        let Some(c) = self.cameras.get_mut(&uuid) else {
            return;
        };
        if c.connected {
            return;
        }
        let reconnect = c.ever_connected && !c.back_reported;
        c.back_reported = c.back_reported || primary;
        c.connected = true;
        c.ever_connected = true;
        c.online = true;
        c.last_seen = now;
        let (base_url, ip, port) = (
            c.access_url.clone(),
            c.access_url.host.clone(),
            c.access_url.port,
        );
        self.event(DiscoveryEvent::CameraConnected {
            uuid: uuid.clone(),
            ip: ip.clone(),
            port,
        });
        if primary && reconnect {
            self.event(DiscoveryEvent::PrimaryCameraReconnected {
                uuid: uuid.clone(),
                ip,
            });
        }
        self.actions
            .push_back(Action::Remember { base_url, id: uuid });
    }
}

impl crate::machine::Machine for Discovery {
    type Input = Input;
    type Action = Action;
    fn handle_input(&mut self, now: crate::machine::Now, input: Input) {
        self.handle(now.mono, input)
    }
    fn handle_timeout(&mut self, now: crate::machine::Now) {
        self.handle(now.mono, Input::Tick)
    }
    fn poll_action(&mut self) -> Option<Action> {
        Discovery::poll_action(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Discovery::poll_timeout(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::Backoff;
    use crate::discovery::ssdp::AnnounceKind;

    fn exact() -> Settings {
        Settings {
            search: Backoff {
                jitter: 0.0,
                ..Settings::default().search
            },
            ..Settings::default()
        }
    }

    fn drain(m: &mut Discovery) -> Vec<Action> {
        std::iter::from_fn(|| m.poll_action()).collect()
    }

    fn searches(actions: &[Action]) -> usize {
        actions.iter().filter(|a| **a == Action::Search).count()
    }

    fn events(actions: &[Action]) -> Vec<&'static str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Event(e) => Some(e.to_event().event_type()),
                _ => None,
            })
            .collect()
    }

    fn loc(host: &str) -> HttpUrl {
        HttpUrl::parse(&format!("http://{host}:49152/upnp/CameraDevDesc.xml")).unwrap()
    }

    fn announce(uuid: &str, host: &str) -> Input {
        Input::Ssdp(SsdpMessage::Announce(Announcement {
            kind: AnnounceKind::Alive,
            uuid: uuid.into(),
            location: loc(host),
            max_age_secs: 1800,
        }))
    }

    fn desc(uuid: &str, access: &str) -> DeviceDescription {
        DeviceDescription {
            udn: uuid.into(),
            model_name: Some("Canon EOS R50".into()),
            serial_number: Some(format!("sn-{uuid}")),
            friendly_name: None,
            access_url: HttpUrl::parse(access).unwrap(),
        }
    }

    /// Announce + fetch + description, returning the actions of the description step.
    fn discover(m: &mut Discovery, now: Instant, uuid: &str, host: &str, port: u16) -> Vec<Action> {
        m.handle(now, announce(uuid, host));
        let acts = drain(m);
        assert!(
            acts.contains(&Action::FetchDescription(loc(host))),
            "{acts:?}"
        );
        m.handle(
            now,
            Input::DescriptionFetched {
                location: loc(host),
                result: Ok(desc(uuid, &format!("http://{host}:{port}/ccapi"))),
            },
        );
        drain(m)
    }

    #[test]
    fn search_schedule_backs_off_to_five_minutes_then_slows_when_connected() {
        let t0 = crate::clock::test_t0();
        let mut m = Discovery::new(exact(), Rng::new(1), t0);
        assert_eq!(m.poll_timeout(), Some(t0));
        m.handle(t0, Input::Tick);
        assert_eq!(searches(&drain(&mut m)), 1);
        // 3, 6, 12, 24, 48, 96, 192, 300, 300 s between searches.
        let mut at = t0;
        for gap in [3u64, 6, 12, 24, 48, 96, 192, 300, 300] {
            let next = at + Duration::from_secs(gap);
            assert_eq!(m.poll_timeout(), Some(next), "gap {gap}");
            m.handle(next - Duration::from_millis(1), Input::Tick);
            assert_eq!(searches(&drain(&mut m)), 0, "early at gap {gap}");
            m.handle(next, Input::Tick);
            assert_eq!(searches(&drain(&mut m)), 1, "gap {gap}");
            at = next;
        }
        // A scan searches at once and restarts the schedule.
        let t1 = at + Duration::from_secs(10);
        m.handle(t1, Input::ScanRequested);
        assert_eq!(searches(&drain(&mut m)), 1);
        assert_eq!(m.poll_timeout(), Some(t1 + Duration::from_secs(3)));
        // Link up: every 10 minutes.
        m.handle(
            t1 + Duration::from_secs(1),
            Input::LinkUp { id: "x".into() },
        );
        let watch = t1 + Duration::from_secs(601);
        assert_eq!(m.poll_timeout(), Some(watch));
        m.handle(watch, Input::Tick);
        assert_eq!(searches(&drain(&mut m)), 1);
        // Link down: search now, then 3 s later.
        let t2 = watch + Duration::from_secs(5);
        m.handle(t2, Input::LinkDown);
        assert_eq!(searches(&drain(&mut m)), 1);
        assert_eq!(m.poll_timeout(), Some(t2 + Duration::from_secs(3)));
    }

    #[test]
    fn first_camera_becomes_primary_and_is_targeted() {
        let t0 = crate::clock::test_t0();
        let mut m = Discovery::new(exact(), Rng::new(1), t0);
        drain(&mut m);
        let acts = discover(&mut m, t0, "cam-a", "10.0.0.2", 8080);
        assert_eq!(
            events(&acts),
            ["camera_discovered", "primary_camera_changed"]
        );
        assert!(acts.contains(&Action::Target {
            base_url: HttpUrl::parse("http://10.0.0.2:8080/ccapi").unwrap(),
            id: "cam-a".into()
        }));
        let acts = discover(&mut m, t0, "cam-b", "10.0.0.3", 8080);
        assert_eq!(events(&acts), ["camera_discovered"]);
        assert_eq!(m.primary().unwrap().uuid, "cam-a");
        assert!(m.set_primary("nope").is_err());
        m.set_primary("cam-b").unwrap();
        let acts = drain(&mut m);
        assert_eq!(events(&acts), ["primary_camera_changed"]);
        assert!(matches!(&acts[1], Action::Target { id, .. } if id == "cam-b"));
        let s = serde_json::to_value(m.status(t0, SystemTime::UNIX_EPOCH)).unwrap();
        assert_eq!(s["totalCameras"], 2);
        assert_eq!(s["primaryCamera"]["uuid"], "cam-b");
        assert_eq!(s["cameras"]["cam-a"]["ipAddress"], "10.0.0.2");
    }

    #[test]
    fn same_udn_at_a_new_address_is_an_ip_change_and_retargets() {
        // Regression (PMK): a known UUID announcing from a new address was ignored.
        let t0 = crate::clock::test_t0();
        let mut m = Discovery::new(exact(), Rng::new(1), t0);
        drain(&mut m);
        discover(&mut m, t0, "cam-a", "10.0.0.2", 8080);
        m.handle(t0, Input::LinkUp { id: "cam-a".into() });
        drain(&mut m);
        m.handle(t0 + Duration::from_secs(20), Input::LinkDown);
        drain(&mut m);
        let acts = discover(
            &mut m,
            t0 + Duration::from_secs(21),
            "cam-a",
            "10.0.0.9",
            8080,
        );
        assert_eq!(
            events(&acts),
            ["camera_ip_changed", "primary_camera_reconnected"]
        );
        match &acts[0] {
            Action::Event(e) => {
                let ev = e.to_event();
                assert_eq!(ev.data["oldIP"], "10.0.0.2");
                assert_eq!(ev.data["newIP"], "10.0.0.9");
            }
            other => panic!("{other:?}"),
        }
        assert!(acts.contains(&Action::Target {
            base_url: HttpUrl::parse("http://10.0.0.9:8080/ccapi").unwrap(),
            id: "cam-a".into()
        }));
    }

    #[test]
    fn byebye_and_expiry_take_cameras_offline_and_alive_brings_them_back() {
        let t0 = crate::clock::test_t0();
        let mut m = Discovery::new(exact(), Rng::new(1), t0);
        drain(&mut m);
        discover(&mut m, t0, "cam-a", "10.0.0.2", 8080);
        discover(&mut m, t0, "cam-b", "10.0.0.3", 8080);
        m.handle(
            t0,
            Input::Ssdp(SsdpMessage::ByeBye {
                uuid: "cam-a".into(),
            }),
        );
        assert_eq!(
            events(&drain(&mut m)),
            ["camera_offline", "primary_camera_disconnected"]
        );
        // cam-b expires 1800 s after its last announcement.
        let exp = t0 + Duration::from_secs(1800);
        assert!(m.poll_timeout().unwrap() <= exp);
        m.handle(exp - Duration::from_secs(1), Input::Tick);
        assert!(events(&drain(&mut m)).is_empty());
        m.handle(exp, Input::Tick);
        assert_eq!(events(&drain(&mut m)), ["camera_offline"]);
        // The primary announces again: the link is nudged at once (before the description
        // round trip), then the description brings it back online.
        m.handle(exp, announce("cam-a", "10.0.0.2"));
        let acts = drain(&mut m);
        assert_eq!(acts[0], Action::SsdpAlive { id: "cam-a".into() });
        assert!(acts.contains(&Action::FetchDescription(loc("10.0.0.2"))));
        m.handle(
            exp,
            Input::DescriptionFetched {
                location: loc("10.0.0.2"),
                result: Ok(desc("cam-a", "http://10.0.0.2:8080/ccapi")),
            },
        );
        let acts = drain(&mut m);
        assert_eq!(events(&acts), ["primary_camera_reconnected"]);
        assert!(!acts.contains(&Action::SsdpAlive { id: "cam-a".into() }));
        // A second alive soon after needs no fetch, only the nudge.
        m.handle(exp + Duration::from_secs(1), announce("cam-a", "10.0.0.2"));
        assert_eq!(drain(&mut m), [Action::SsdpAlive { id: "cam-a".into() }]);
    }

    #[test]
    fn a_return_is_reported_once_whether_ssdp_or_the_link_sees_it_first() {
        let t0 = crate::clock::test_t0();
        let mut m = Discovery::new(exact(), Rng::new(1), t0);
        drain(&mut m);
        discover(&mut m, t0, "cam-a", "10.0.0.2", 8080);
        m.handle(t0, Input::LinkUp { id: "cam-a".into() });
        assert_eq!(events(&drain(&mut m)), ["camera_connected"]);
        // Lost, then found again by SSDP at a new address, then the link comes up there.
        let t1 = t0 + Duration::from_secs(30);
        m.handle(t1, Input::LinkDown);
        drain(&mut m);
        let acts = discover(&mut m, t1, "cam-a", "10.0.0.3", 8080);
        assert_eq!(
            events(&acts),
            ["camera_ip_changed", "primary_camera_reconnected"]
        );
        m.handle(t1, Input::LinkUp { id: "cam-a".into() });
        assert_eq!(events(&drain(&mut m)), ["camera_connected"]);
        // Lost again; this time the link comes back by itself.
        let t2 = t1 + Duration::from_secs(30);
        m.handle(t2, Input::LinkDown);
        drain(&mut m);
        m.handle(t2, Input::LinkUp { id: "cam-a".into() });
        assert_eq!(
            events(&drain(&mut m)),
            ["camera_connected", "primary_camera_reconnected"]
        );
    }

    #[test]
    fn a_flood_of_fake_devices_stays_bounded_and_keeps_the_primary() {
        let t0 = crate::clock::test_t0();
        let settings = Settings {
            fetch_burst: 1_000_000,
            ..exact()
        };
        let mut m = Discovery::new(settings, Rng::new(1), t0);
        drain(&mut m);
        discover(&mut m, t0, "real", "10.0.0.2", 8080);
        let mut now = t0;
        let mut fetched = 0;
        for i in 0..1000 {
            now += Duration::from_millis(10);
            let host = format!("10.1.{}.{}", i / 250, i % 250 + 1);
            m.handle(now, announce(&format!("fake-{i}"), &host));
            for a in drain(&mut m) {
                if let Action::FetchDescription(l) = a {
                    fetched += 1;
                    let uuid = format!("fake-{i}");
                    m.handle(
                        now,
                        Input::DescriptionFetched {
                            location: l,
                            result: Ok(desc(&uuid, &format!("http://{host}:8080/ccapi"))),
                        },
                    );
                }
            }
            let f = m.footprint();
            assert!(
                f.cameras <= 32 && f.pending <= 16 && f.in_flight <= 2,
                "{f:?}"
            );
        }
        assert_eq!(fetched, 1000);
        assert_eq!(m.footprint().cameras, 32);
        assert_eq!(m.primary().unwrap().uuid, "real");
        assert!(m.camera("fake-999").is_some() && m.camera("fake-0").is_none());
    }

    #[test]
    fn fetches_are_rate_limited_and_the_queue_is_bounded() {
        let t0 = crate::clock::test_t0();
        let mut m = Discovery::new(exact(), Rng::new(1), t0);
        drain(&mut m);
        // Nobody answers the fetches: two in flight, sixteen queued, the rest dropped.
        for i in 0..100 {
            m.handle(t0, announce(&format!("d{i}"), &format!("10.2.0.{}", i + 1)));
        }
        let acts: Vec<Action> = drain(&mut m)
            .into_iter()
            .filter(|a| matches!(a, Action::FetchDescription(_)))
            .collect();
        assert_eq!(acts.len(), 2);
        let f = m.footprint();
        assert_eq!(
            (f.in_flight, f.pending, f.dropped_announcements),
            (2, 16, 82)
        );
        // Failures free the slots; the burst of 8 is used up at once, then one fetch per 250 ms.
        let mut todo: VecDeque<Action> = acts.into();
        let (mut now, mut started, mut last_start) = (t0, 0, t0);
        for _ in 0..1000 {
            while let Some(a) = todo.pop_front() {
                if let Action::FetchDescription(l) = a {
                    started += 1;
                    last_start = now;
                    let result = Err("refused".to_string());
                    m.handle(
                        now,
                        Input::DescriptionFetched {
                            location: l,
                            result,
                        },
                    );
                    todo.extend(drain(&mut m));
                }
            }
            let f = m.footprint();
            if f.pending == 0 && f.in_flight == 0 {
                break;
            }
            now = m.poll_timeout().unwrap();
            m.handle(now, Input::Tick);
            todo.extend(drain(&mut m));
        }
        assert_eq!(started, 18);
        assert_eq!(last_start - t0, Duration::from_millis(2500));
        // Failed locations are not retried at once.
        m.handle(now, announce("d0", "10.2.0.1"));
        assert_eq!(m.footprint().pending, 0);
    }

    #[test]
    fn a_manual_camera_announcing_its_udn_is_the_same_camera() {
        let t0 = crate::clock::test_t0();
        let mut m = Discovery::new(exact(), Rng::new(1), t0);
        drain(&mut m);
        let url = HttpUrl::parse("http://10.0.0.2:8080/ccapi").unwrap();
        m.handle(
            t0,
            Input::ManualConnected {
                base_url: url,
                info: ProbeInfo::default(),
            },
        );
        drain(&mut m);
        let acts = discover(&mut m, t0, "cam-a", "10.0.0.2", 8080);
        assert!(events(&acts).is_empty(), "{acts:?}");
        assert_eq!(m.footprint().cameras, 1);
        assert_eq!(m.primary().unwrap().uuid, "cam-a");
    }

    #[test]
    fn manual_connection_becomes_primary_and_is_remembered() {
        let t0 = crate::clock::test_t0();
        let mut m = Discovery::new(exact(), Rng::new(1), t0);
        drain(&mut m);
        discover(&mut m, t0, "cam-a", "10.0.0.2", 8080);
        let url = HttpUrl::parse("https://10.0.0.7:443/ccapi").unwrap();
        m.handle(
            t0,
            Input::ManualConnected {
                base_url: url.clone(),
                info: ProbeInfo::default(),
            },
        );
        let acts = drain(&mut m);
        assert_eq!(
            events(&acts),
            ["camera_connected", "primary_camera_changed"]
        );
        let id = "manual-10.0.0.7:443".to_string();
        // The link is already there (it told us): discovery does not re-target it.
        assert!(!acts.iter().any(|a| matches!(a, Action::Target { .. })));
        assert!(acts.contains(&Action::Remember { base_url: url, id }));
        // The link coming up for it adds no second camera_connected.
        m.handle(
            t0,
            Input::LinkUp {
                id: "manual-10.0.0.7:443".into(),
            },
        );
        assert!(events(&drain(&mut m)).is_empty());
        assert_eq!(m.status(t0, SystemTime::UNIX_EPOCH).connected_cameras, 1);
    }
}
