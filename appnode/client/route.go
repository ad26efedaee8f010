package client

// NoteVersion tells the client that a member answered with ring version
// v (api.HeaderRingVersion): when it is not the client's ring's, the
// next request fetches the ring again. For programs that send requests
// of their own along the client's preference lists, such as the local
// proxy. It is safe for concurrent use.
func (c *Client) NoteVersion(v string) {
	if r := c.ring.Load(); r != nil && v != "" && v != r.Version() {
		c.stale.Store(true)
	}
}
