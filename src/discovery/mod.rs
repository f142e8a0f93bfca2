//! Camera discovery: SSDP/UPnP search and NOTIFY listening, description XML, the camera registry.
