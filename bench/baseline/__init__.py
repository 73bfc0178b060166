"""The least a Channels chat can be: the reference Peer Circles is measured against."""
