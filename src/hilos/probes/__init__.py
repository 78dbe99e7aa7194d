"""Probe modules: one kind of packet each (build it, recognise its answers), above hilos.wire."""
