"""The cloud service: HTTP API, MQTT ingest, database, clip store, console."""
