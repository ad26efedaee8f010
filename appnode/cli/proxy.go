package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringfront/ringfront/appnode/client"
	"github.com/ringfront/ringfront/appnode/feed"
	"github.com/ringfront/ringfront/appnode/proxy"
	"github.com/ringfront/ringfront/internal/daemon"
)

// Proxy is `appnode proxy`: the local proxy (package proxy).
func Proxy() *cobra.Command {
	var listen string
	var seeds []string
	var logLevel, caFile string
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run a local proxy that sends each request straight to its user's members",
		Long: "Run a small HTTP proxy on this machine (a browser or any HTTP client talks to it on\n" +
			"localhost): it learns the ring from the seeds and sends each request to the\n" +
			"owner of its user, falling over to the replicas when the owner does not answer.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(seeds) == 0 {
				return fmt.Errorf("--seed: give at least one member (http://host:port or https://host:port)")
			}
			var lc daemon.LogConfig
			lc.Level = logLevel
			if err := lc.Validate(); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log := daemon.NewLogger(os.Stderr, lc, daemon.UnderJournald()).With("component", "appnode")
			p, err := proxy.New(seeds, proxy.Options{Log: log, CAFile: caFile})
			if err != nil {
				return err
			}
			if err := p.Listen(listen); err != nil {
				return err
			}
			log.Info("proxying", "op", "start", "listen", p.Addr().String(), "seeds", seeds)
			ctx, stop := daemon.SignalContext(context.Background())
			defer stop()
			return p.Serve(ctx)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on (keep it on loopback)")
	cmd.Flags().StringSliceVar(&seeds, "seed", nil, "a member to learn the ring from, http://host:port or https://host:port (repeat or comma-separate for several)")
	cmd.Flags().StringVar(&caFile, "ca-file", envOr("APPNODE_CA_FILE", ""), "PEM file of the CAs that sign the members' certificates, instead of the system's (env APPNODE_CA_FILE)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// streamCmd is `appnode user stream NAME`: the live timeline in a
// terminal, on client.Stream.
func streamCmd(newClient func() (*client.Client, error), tok func() (string, error)) *cobra.Command {
	var after string
	c := &cobra.Command{
		Use: "stream NAME", Short: "Follow NAME's home timeline live (needs NAME's token; Ctrl-C ends it)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := newClient()
			if err != nil {
				return err
			}
			token, err := tok()
			if err != nil {
				return err
			}
			ctx, stop := daemon.SignalContext(cmd.Context())
			defer stop()
			w := cmd.OutOrStdout()
			err = cl.Stream(ctx, args[0], token, after, func(p feed.Post) error {
				_, err := fmt.Fprintf(w, "%s  %s  @%s: %s\n", p.ID, p.Created.Local().Format(time.DateTime), p.Author, p.Text)
				return err
			})
			if errors.Is(err, context.Canceled) {
				return nil // Ctrl-C
			}
			return err
		},
	}
	c.Flags().StringVar(&after, "after", "", "start after this post id (replays the newer ones)")
	return c
}
