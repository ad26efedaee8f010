// Package cli holds appnode's commands that are not the daemon's own:
// `appnode user ...`, the command-line client (user create, post, feed,
// timeline, follow, stream, following, followers, lookup, on package
// client), `appnode proxy`, the local proxy (package proxy), and the
// table `appnode status` prints. package main wires them under its root
// command.
package cli
