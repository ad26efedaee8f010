// Package account holds appnode's user accounts as the API serves them:
// sign-up (POST /v1/users: the name, the first token, drawn before the
// request is routed so a retry on another member issues the same one),
// a user's public record, bearer tokens (checking one, Authorize, which
// also charges the user's rate limits; rotating and revoking them,
// tokens.go), and whether a user exists, for the other handlers.
//
// Its handlers run on the member that answers for the user: the server
// routes each request there (package server) and Accounts serves it.
// Writes are replicated like any other (package replica).
package account
