"""Nothing goes unseen: notification channels with a durable queue (`channels`, `queue`), escalation
of unacknowledged alerts (`escalation`), device outages as alerts (`outages`), run by one worker
per cloud process (`worker`) that is safe to run in several processes at once."""
