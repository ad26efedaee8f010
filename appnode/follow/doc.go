// Package follow holds appnode's follow graph as the API serves it:
// follow and unfollow (PUT and DELETE /v1/users/{name}/following/{other}),
// the edge's clock (pinned by the client or by the member that forwards
// the request, checked against the member's clock, or drawn here), the
// followee's side (PUT /internal/v1/users/{name}/followers, on the
// followee's members), and the lists of whom a user follows and who
// follows the user.
//
// An edge is stored on both sides, each replicated (package replica),
// with the same clock, so a retry or a replica's copy merges to the
// same edge; replica's edge notes make sure the two sides converge
// whatever answer is lost. A new follow back-fills the follower's inbox
// (package fanout).
package follow
