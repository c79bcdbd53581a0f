// Package load is taskerctl load's engine: it creates tasks of a mix of shapes at a target
// rate (open model) or with a fixed number in flight (closed model), watches them finish,
// applies timed fault phases, and measures latency from each task's intended start, so a
// system that falls behind cannot hide it (no coordinated omission).
package load
