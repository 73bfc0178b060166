"""Every write to circles lives here: one transaction each, audited, broadcast after commit."""
