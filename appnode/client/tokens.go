package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/feed"
)

// RotateToken issues a new token for user name, authorised with token
// (one of name's live tokens), and revokes the current one or every
// other as req asks. The new token is shown only in the answer.
//
// Unlike the other writes, a rotation that reached a member is never
// sent again to another (it goes on to the next member only when it
// could not connect: NotSent): the member that takes it draws the new
// token and fails over to the next member itself with the same token,
// but a second request from here would draw another token, and might
// find the current one revoked by the first. When the answer is lost,
// the current token still works unless it was to be revoked; a
// rotation with another live token and RevokeOthers then recovers.
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
	var errs []error
	for _, m := range c.order(r.Preference(buf[:0], name)) {
		_, err := c.send(ctx, m, http.MethodPost, "/v1/users/"+name+"/tokens", token, req, &ans)
		if err == nil {
			c.answered(m)
			return ans, nil
		}
		if !NotSent(err) || ctx.Err() != nil {
			return ans, fmt.Errorf("rotating %s's token: %w", name, err)
		}
		c.failed(m)
		errs = append(errs, err)
	}
	return ans, fmt.Errorf("rotating %s's token: %w: %w", name, ErrUnavailable, errors.Join(errs...))
}

// NotSent reports whether err is a failure to connect to a member: the
// request never left, so sending it to another member is safe even for
// a request that must not be served twice (a token rotation).
func NotSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
