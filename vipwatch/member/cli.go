package member

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringfront/ringfront/internal/daemon"
)

// MoveCommand is the command of a move, vipwatch handover or takeback:
// it POSTs path to the running daemon's admin API, waits (--wait) until
// done says the move is complete (Move), and prints the status.
func MoveCommand(target daemon.AdminTarget, use, short, long string, path func() string, done func(Status) bool) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{Use: use, Short: short, Long: long, Args: cobra.NoArgs}
	c := daemon.NewAdminClient(cmd, target)
	cmd.Flags().DurationVar(&wait, "wait", 5*time.Second, "how long to wait for the move to complete")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		call := func(ctx context.Context, method, path string, out any) error {
			return c.Call(ctx, method, path, 5*time.Second, out)
		}
		st, err := Move(cmd.Context(), call, path(), done, wait)
		if st.Node != "" {
			fmt.Fprint(cmd.OutOrStdout(), FormatStatus(st))
		}
		return err
	}
	return cmd
}
