//! Wi-Fi through NetworkManager over D-Bus (zbus).
pub mod machine;
pub mod nm;
