package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ringfront/ringfront/appnode/proxy"
	"github.com/ringfront/ringfront/internal/daemon"
)

// proxyCmd is `appnode proxy`: the local proxy (package proxy).
func proxyCmd() *cobra.Command {
	var listen string
	var seeds []string
	var logLevel string
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run a local proxy that sends each request straight to its user's members",
		Long: "Run a small HTTP proxy on this machine (a browser or any HTTP client talks to it on\n" +
			"localhost): it learns the ring from the seeds and sends each request to the\n" +
			"owner of its user, falling over to the replicas when the owner does not answer.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(seeds) == 0 {
				return fmt.Errorf("--seed: give at least one member (http://host:port)")
			}
			var lc daemon.LogConfig
			lc.Level = logLevel
			if err := lc.Validate(); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log := daemon.NewLogger(os.Stderr, lc, daemon.UnderJournald()).With("component", "appnode")
			p, err := proxy.New(seeds, proxy.Options{Log: log})
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
	cmd.Flags().StringSliceVar(&seeds, "seed", nil, "a member to learn the ring from, http://host:port (repeat or comma-separate for several)")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}
