package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
)

// RotateToken issues a new token for user name, authorised with token
// (one of name's live tokens), and revokes the current one or every
// other as req asks. The new token is shown only in the answer.
//
// Unlike the other writes, a rotation is sent to one member only (the
// first of name's members that answered lately), never sent again to
// another: the member that takes it draws the new token and fails over
// to the next member itself with the same token, but a second request
// from here would draw another token, and might find the current one
// revoked by the first. When the answer is lost, the current token
// still works unless it was to be revoked; a rotation with another live
// token and RevokeOthers then recovers.
func (c *Client) RotateToken(ctx context.Context, name, token string, req api.RotateTokenRequest) (api.RotateTokenAnswer, error) {
	var ans api.RotateTokenAnswer
	if err := feed.ValidName(name); err != nil {
		return ans, err
	}
	r, err := c.Ring(ctx)
	if err != nil {
		return ans, err
	}
	var buf [8]string
	m := c.order(r.Preference(buf[:0], name))[0]
	if _, err := c.send(ctx, m, http.MethodPost, "/v1/users/"+name+"/tokens", token, req, &ans); err != nil {
		return ans, fmt.Errorf("rotating %s's token: %w", name, err)
	}
	c.answered(m)
	return ans, nil
}
