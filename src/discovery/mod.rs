//! Camera discovery: SSDP/UPnP search and NOTIFY listening, description XML, the camera registry.
//!
//! ```text
//!   ssdp.rs         packets: M-SEARCH out; search replies and NOTIFY alive/byebye in
//!   description.rs  CameraDevDesc.xml → UDN, modelName, serialNumber, X_accessURL
//!   registry.rs     the sans-IO machine: search schedule, fetch queue, bounded registry
//!   types.rs        its tunables, inputs, actions, events and registry entries
//!   driver.rs       the executor for driver::run: socket readers, fetches, effects
//!                   (`DiscoveryConfig`)
//!   service.rs      `app::Service`: discovery_scan, set_primary_camera, status
//! ```
//!
//! The camera link is reached only through [`CameraProber`], which the camera side implements.

pub mod description;
pub mod driver;
pub mod registry;
pub mod service;
pub mod ssdp;
pub mod types;

pub use driver::DiscoveryConfig;
pub use registry::ProbeInfo;
pub use service::DiscoveryService;

/// What discovery needs from the camera side.
pub trait CameraProber: Send + Sync + 'static {
    /// Point the camera link at this camera. `id` is its UDN (without `uuid:`) or the id the
    /// probe reported; `None` for a camera known only by address. Must not block, and must not
    /// call back into discovery and wait (it runs in discovery's driver loop).
    fn target(&self, base_url: &str, id: Option<&str>);

    /// The camera `id` just announced itself over SSDP while the link is not connected to it:
    /// reconnect now instead of waiting out the backoff. Must not block.
    fn ssdp_alive(&self, id: &str);

    /// Try once to connect to a remembered address (one probe by the link; nothing changes
    /// if it fails). Success arrives as the link's `Connected { manual: true }` notice.
    fn connect(&self, base_url: &str);
}
