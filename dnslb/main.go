// Command dnslb is an authoritative DNS server that answers a service
// name with the addresses of the targets that pass its health checks,
// rotated round-robin.
//
//	dnslb serve --config /etc/ringfront/dnslb.yaml
//	dnslb check-config --config /etc/ringfront/dnslb.yaml
//	dnslb status [--json]
//	dnslb reload
//	dnslb drain|undrain SERVICE ADDRESS
package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ringfront/ringfront/dnslb/config"
	"github.com/ringfront/ringfront/dnslb/server"
	iconfig "github.com/ringfront/ringfront/internal/config"
	"github.com/ringfront/ringfront/internal/daemon"
)

func main() {
	if err := rootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "dnslb:", err)
		os.Exit(1)
	}
}

// defaultAdmin is admin.listen's default.
const defaultAdmin = "127.0.0.1:8053"

func rootCmd() *cobra.Command {
	var file string
	root := &cobra.Command{
		Use:           "dnslb",
		Short:         "Health-checked authoritative round-robin DNS",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&file, "config", "c", "/etc/ringfront/dnslb.yaml", "config file (YAML)")
	// load reads the config; the secrets and the admin token are read by
	// its Validate, so check-config refuses what serve would.
	load := func(fs *pflag.FlagSet) (*config.Config, error) {
		return config.Load(iconfig.Options{File: file, EnvPrefix: config.EnvPrefix,
			Flags: map[string]*pflag.Flag{"listen": fs.Lookup("listen"), "admin.listen": fs.Lookup("admin-listen")}})
	}
	target := daemon.AdminTarget{
		Program: "dnslb", Default: defaultAdmin, ConfigFile: func() string { return file },
		Load: func(cmd *cobra.Command) (daemon.AdminConfig, error) {
			cfg, err := load(cmd.Flags())
			if err != nil {
				return daemon.AdminConfig{}, err
			}
			return cfg.Admin, nil
		},
	}
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Run the DNS server (SIGHUP or `dnslb reload` re-reads the config)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := load(cmd.Flags())
			if err != nil {
				return err
			}
			log := daemon.NewLogger(os.Stderr, cfg.Log, daemon.UnderJournald())
			srv, err := server.Open(cfg, server.Options{
				Logger:     log,
				Load:       func() (*config.Config, error) { return load(cmd.Flags()) },
				Notifier:   daemon.NewNotifier(log),
				AdminToken: cfg.Admin.Token,
			})
			if err != nil {
				return err
			}
			ctx, stop := daemon.SignalContext(cmd.Context())
			defer stop()
			return srv.Run(ctx)
		},
	}
	check := &cobra.Command{
		Use:   "check-config",
		Short: "Validate the config (secrets and token included) and print it with defaults filled in",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := load(cmd.Flags())
			if err != nil {
				return err
			}
			out, err := iconfig.YAML(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "# %s: valid\n", file)
			for _, z := range cfg.Zones {
				for _, w := range z.Warnings {
					fmt.Fprintf(cmd.OutOrStdout(), "# warning: zone %s: %s\n", z.Origin, w)
				}
			}
			fmt.Fprint(cmd.OutOrStdout(), out)
			return nil
		},
	}
	for _, c := range []*cobra.Command{serve, check} {
		c.Flags().StringSlice("listen", nil, "addresses to serve DNS on (overrides listen)")
		c.Flags().String("admin-listen", "", "admin API address (overrides admin.listen)")
	}
	status := daemon.StatusCommand(target, "Show every target's health and whether it is answered",
		func(w io.Writer, st server.Status) { server.FormatStatus(w, st, time.Now()) })
	// A reload waits for the first check of new targets.
	root.AddCommand(serve, check, status, daemon.ReloadCommand(target, 60*time.Second), drainCmd(target, "drain"), drainCmd(target, "undrain"))
	daemon.AddVersion(root)
	daemon.AddManPages(root)
	return root
}

func drainCmd(target daemon.AdminTarget, verb string) *cobra.Command {
	var reason, by string
	short := "Stop answering a target whatever its health (kept across restarts)"
	if verb == "undrain" {
		short = "Answer a drained target again (if healthy)"
	}
	cmd := &cobra.Command{Use: verb + " SERVICE ADDRESS", Short: short, Args: cobra.ExactArgs(2)}
	c := daemon.NewAdminClient(cmd, target)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var t server.TargetStatus
		q := url.Values{"by": {by}}
		if reason != "" {
			q.Set("reason", reason)
		}
		path := "/v1/targets/" + url.PathEscape(strings.TrimSuffix(args[0], ".")+".") + "/" + url.PathEscape(args[1]) + "/" + verb + "?" + q.Encode()
		if err := c.Call(cmd.Context(), "POST", path, 5*time.Second, &t); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s %s: %s, drained=%v, answered=%v\n", t.Service, t.Address, t.State, t.Drained, t.Answered)
		return nil
	}
	cmd.Flags().StringVar(&by, "by", daemon.Operator(), "who drains, as status shows it")
	if verb == "drain" {
		cmd.Flags().StringVar(&reason, "reason", "", "why, as status shows it")
	}
	return cmd
}
