"""The edge agent: capture, motion gate, detector, tracker, rules, events, recorder, MQTT link."""
