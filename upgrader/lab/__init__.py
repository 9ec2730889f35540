"""The built-in lab: an OpenNebula 3.x cloud on one machine (DESIGN.md section 8)."""
