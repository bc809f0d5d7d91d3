"""The operations centre's web console: server-rendered pages over the cloud's own queries."""
