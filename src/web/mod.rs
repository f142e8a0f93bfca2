//! Web server: HTTP/1.1, WebSocket, REST routes, static assets, the hub.
