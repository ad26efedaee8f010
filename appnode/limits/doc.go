// Package limits holds appnode's rate limits: a token bucket
// (golang.org/x/time/rate) per client address and kind of request
// (sign-ups, posts, follows, reads), and one per user and kind, in two
// tables of bounded size (the least recently used entry goes first), so
// that a flood of distinct addresses costs a fixed amount of memory.
//
// Addresses count by network: an IPv4 address alone (/32), an IPv6
// address by its /64, the smallest network one subscriber gets. The
// rules are for the whole cluster: a member that admits a client's
// requests, whichever member the client chose, enforces the address
// rules divided by the number of members (SetMembers), so a client that
// spreads its requests over every member gets the cluster's rate and no
// more. A user's requests all reach the member that answers for the
// user, which enforces the user rules as they are.
//
// A Gate applies the limiter to the API's requests (gate.go): which
// route is which kind, 429 with Retry-After, and the metrics
// (appnode_rate_limited_total, appnode_rate_limit_entries).
package limits
