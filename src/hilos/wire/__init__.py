"""The wire layer: what every engine shares below the probes (sockets, frames, RTT, limits)."""
