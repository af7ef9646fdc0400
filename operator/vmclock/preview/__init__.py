"""`vmclock plan`: what applying VmClockPolicy manifests would do, read from the live ZStack (design.md §7.3).

Modules, in the order a plan runs: `command` (flags, exit codes), `manifests` (reading -f), `session` (one
run), `cluster` (the policies and connections that exist), `access` (reaching ZStack), `planner` (the
engine's plan of each policy), `outcome` (per-VM verdicts), `render` (table, JSON, YAML).
"""
