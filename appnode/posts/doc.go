// Package posts holds appnode's posts as the API serves them: posting
// (POST /v1/users/{name}/posts: the post's id, pinned by the client or
// by the member that forwards it, or drawn here; the post stored with
// its fan-out entries, replicated, then delivered into the followers'
// inboxes by package fanout), a user's posts (GET
// /v1/users/{name}/posts), and a page of a user's home timeline (GET
// /v1/users/{name}/timeline, read by package timeline). Pages are
// written from the stored JSON, without decoding and re-encoding every
// post.
package posts
