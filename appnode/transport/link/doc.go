// Package link is the member link: one long-lived TCP connection
// between two members that carries many requests at once as frames
// (package frame), authenticated by a challenge answered with the
// cluster secret, and drained with a go-away that says which requests
// were read (link.go describes the protocol). It holds the owner's side
// (Server), the caller's (Pool: a few links per member, and HTTP for a
// while for a member that refuses them), and the payloads of request
// and answer frames (EncodeRequest, DecodeRequest, DecodeAnswer).
//
// Package transport decides what travels over a link and what over
// HTTP, and holds every forwarding rule.
package link
