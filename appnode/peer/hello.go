package peer

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/ringfront/ringfront/appnode/transport"
)

// Hello is the answer to GET /internal/v1/hello: who a member is and
// where it gossips.
type Hello struct {
	Member     string `json:"member"`
	Gossip     string `json:"gossip"`
	CatchingUp bool   `json:"catching_up"`
	// Store is the member's store id: another one means a new disk.
	Store string `json:"store"`
}

// HelloOf asks member who it is (GET /internal/v1/hello).
func (c *Cluster) HelloOf(ctx context.Context, member string) (Hello, error) {
	var ans Hello
	err := c.Call(ctx, http.MethodGet, member, "/internal/v1/hello", nil, &ans)
	return ans, err
}

// GossipAddrOf asks member for its gossip address: the failure
// detector learns the others' gossip addresses this way, so no port
// convention ties them to the members' addresses.
func (c *Cluster) GossipAddrOf(ctx context.Context, member string) (string, error) {
	ans, err := c.HelloOf(ctx, member)
	if err != nil {
		var te *transport.Error
		if errors.As(err, &te) && te.Status == http.StatusUnauthorized {
			return "", fmt.Errorf("%s refused our cluster secret (its cluster_secret_file differs)", member)
		}
		return "", err
	}
	if ans.Member != member {
		return "", fmt.Errorf("%s answered as %s: members disagree about its address", member, ans.Member)
	}
	if ans.Gossip == "" {
		return "", fmt.Errorf("%s has no gossip address", member)
	}
	return ans.Gossip, nil
}
