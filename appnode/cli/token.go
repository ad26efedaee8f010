package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/ringfront/ringfront/appnode/api"
	"github.com/ringfront/ringfront/appnode/client"
)

// tokenCmd is `appnode user token NAME`: issue a new token for NAME
// with its current one (--token or APPNODE_TOKEN), and revoke the
// current one (--revoke) or every other (--revoke-others).
func tokenCmd(run func(func(context.Context, *client.Client, io.Writer, []string) error) func(*cobra.Command, []string) error, tok func() (string, error)) *cobra.Command {
	var revoke, others bool
	c := &cobra.Command{
		Use:   "token NAME",
		Short: "Issue a new token for NAME (--revoke: revoke the current one; --revoke-others: every other)",
		Args:  cobra.ExactArgs(1),
		RunE: run(func(ctx context.Context, c *client.Client, w io.Writer, args []string) error {
			if revoke && others {
				return errors.New("--revoke and --revoke-others: choose one (--revoke-others revokes the current token too)")
			}
			t, err := tok()
			if err != nil {
				return err
			}
			ans, err := c.RotateToken(ctx, args[0], t, api.RotateTokenRequest{RevokeCurrent: revoke, RevokeOthers: others})
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "token %s\n", ans.Token)
			switch ans.Revoked {
			case "current":
				fmt.Fprintln(w, "revoked the current token")
			case "others":
				fmt.Fprintln(w, "revoked every other token")
			}
			fmt.Fprintf(w, "(keep the token: it is not shown again; export APPNODE_TOKEN=%s)\n", ans.Token)
			return nil
		}),
	}
	c.Flags().BoolVar(&revoke, "revoke", false, "revoke the token the request is made with")
	c.Flags().BoolVar(&others, "revoke-others", false, "revoke every token but the new one")
	return c
}
