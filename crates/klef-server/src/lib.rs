//! klef-server: the team server.
