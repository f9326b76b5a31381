"""mailslot: mail between AI coding agents."""
