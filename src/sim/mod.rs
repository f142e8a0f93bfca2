//! The camera simulator: a faithful CCAPI peer (HTTPS + HTTP, UPnP description, SSDP) with fault injection.
