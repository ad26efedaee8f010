// Package proxy is appnode's local proxy (`appnode proxy`): an HTTP
// server on the user's own machine, typically 127.0.0.1:8080, that a
// browser or a plain HTTP client talks to instead of the cluster. It
// learns the ring with appnode/client, sends each request about a user
// straight to the first member of the user's preference list (the
// owner), and when that member does not answer goes on to the next, so
// a dead owner costs one refused connection, not a failed request.
// Live timeline streams are passed through unbuffered.
package proxy
