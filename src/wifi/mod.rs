//! Wi-Fi through NetworkManager over D-Bus (zbus).
