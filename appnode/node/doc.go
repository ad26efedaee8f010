// Package node wires one appnode daemon together: its configuration,
// the store, the API server, the admin listener, reloads and systemd
// notifications. package main only parses the command line and calls
// Run.
package node
