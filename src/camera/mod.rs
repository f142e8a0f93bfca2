//! The camera: CCAPI client (ureq + rustls, certificate pinning), the camera link machine and its driver.
