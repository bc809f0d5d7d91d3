"""The technician's tools: CA and certificates, enrollment, site checks, bulk import, broker config."""
