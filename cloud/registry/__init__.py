"""The fleet registry: claim tokens, devices and their cameras, bulk import, revocation, and the
broker's ACL generated from it. Called by the HTTP API, the console and `matthan cloud …`."""
